/**
 * Pairing: inviting a new device (this side) and joining with an invite (the new device's side).
 * An invite is short-lived and single-use, held in memory by the inviting node while it runs.
 */
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, rmSync, statSync, unlinkSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { renderUnicodeCompact } from 'uqr'
import {
  createSigner, decodeCertificate, decodeInvite, deviceIdFromPublicKey, encodeCertificate, encodeInvite, generateSecretKey, inviteId,
  inviteSecret, issueCertificate, publicKeyOf, swarmIdFromRootKey, verifyCertificateChain, InvalidCertificateError, InviteExpiredError,
  type DeviceCertificate, type DeviceId, type KeystoreData
} from '../identity/index.js'
import type { InviteState, PairingBackend, Welcome } from '../transport/index.js'
import { relayOf, scopeOf } from '../transport/addresses.js'
import type { Log } from './log.js'
import { createLogger } from './logger.js'
import { DataDirError, DataDirLockedError, DeviceRevokedError, InvalidOptionError, NotOnNetworkError } from './errors.js'
import { lockHolder, type DataDirPaths } from './data-dir.js'

const logger = createLogger('pairing')
/** Default lifetime of an invite. */
export const DEFAULT_INVITE_TTL_MS = 10 * 60_000
const MAX_INVITE_TTL_MS = 24 * 60 * 60_000
const MAX_FAILED_PROOFS = 3

/** An invite as shown to the user. */
export interface InviteInfo {
  /** The invite code to type or paste on the new device. */
  readonly code: string
  /** The same code as a QR code for a terminal. */
  readonly qr: string
  /** When the invite stops working. */
  readonly expires: string
  /** This device (the one the new device will dial). */
  readonly inviter: string
  /** Addresses in the code. */
  readonly addrs: readonly string[]
}

/**
 * An invite on the inviting device: `open` until a joiner proves its secret, then `held` for
 * that joiner (its certificate issued, not recorded) until it confirms (`used`) or fails
 * (`open` again).
 */
interface PendingInvite { secret: Uint8Array, expires: number, failures: number, state: 'open' | 'held' | 'used', held?: DeviceCertificate }

const inviteKey = (id: Uint8Array): string => Buffer.from(id).toString('hex')

/** What the pairing service needs from its node. */
export interface PairingContext {
  readonly log: Log
  readonly keystore: KeystoreData
  readonly deviceName: string
  /** This node's listen addresses (empty when it is not on the network). */
  multiaddrs (): string[]
}

/** Invites on the inviting device; it serves `/peakdb/pair/2.0.0` through the transport. */
export class Pairing implements PairingBackend {
  private readonly invites = new Map<string, PendingInvite>()
  readonly publicKey: Uint8Array

  constructor (private readonly ctx: PairingContext) {
    this.publicKey = publicKeyOf(ctx.keystore.deviceSecretKey)
  }

  /**
   * Creates a short-lived, single-use invite for a new device. The node must be on the network
   * (the new device dials it). Throws {@link DeviceRevokedError} on a revoked device.
   *
   * @example
   * ```ts
   * const { code } = await node.pairing.invite({ ttl: 10 * 60_000 })
   * ```
   */
  async invite (options: { ttl?: number } = {}): Promise<InviteInfo> {
    const revocation = this.ctx.log.revocation
    if (revocation !== undefined) throw new DeviceRevokedError(revocation)
    const ttl = options.ttl ?? DEFAULT_INVITE_TTL_MS
    if (!Number.isInteger(ttl) || ttl < 1_000 || ttl > MAX_INVITE_TTL_MS) throw new InvalidOptionError(`"ttl" expected 1000..${MAX_INVITE_TTL_MS} ms, got ${String(ttl)}`)
    const addrs = this.ctx.multiaddrs()
    if (addrs.length === 0) throw new NotOnNetworkError('invites need the node on the network: run `peakdb start` (or open the node with `network`)')
    const secret = inviteSecret()
    const expires = Math.ceil((Date.now() + ttl) / 1000)
    this.prune()
    this.invites.set(inviteKey(inviteId(secret)), { secret, expires, failures: 0, state: 'open' })
    // the code holds four addresses: the ones a device elsewhere can dial come first
    const bare = [...addrs].sort((a, b) => addressRank(a) - addressRank(b)).map(a => multiaddr(a).decapsulateCode(421))
    const code = encodeInvite({ inviterKey: this.publicKey, addrs: bare.slice(0, 4).map(a => a.bytes), secret, expires })
    logger.info('invite created', { expires: new Date(expires * 1000).toISOString() })
    return { code, qr: renderUnicodeCompact(code.toUpperCase(), { ecc: 'L', border: 1 }), expires: new Date(expires * 1000).toISOString(), inviter: this.ctx.log.deviceId, addrs: bare.map(a => a.toString()) }
  }

  private prune (): void {
    const now = Date.now() / 1000
    for (const [id, inv] of this.invites) if (inv.expires < now - 3600) this.invites.delete(id)
  }

  findInvite (id: Uint8Array): InviteState {
    const inv = this.invites.get(inviteKey(id))
    if (inv === undefined) return undefined
    if (inv.state !== 'open') return inv.state
    if (inv.expires * 1000 < Date.now()) return 'expired'
    return { secret: inv.secret, expires: inv.expires }
  }

  failedProof (id: Uint8Array): void {
    const inv = this.invites.get(inviteKey(id))
    if (inv === undefined) return
    inv.failures++
    // a 128-bit secret cannot be guessed, but there is no reason to let anyone keep trying
    if (inv.failures >= MAX_FAILED_PROOFS) inv.state = 'used'
  }

  async admit (id: Uint8Array, joiner: { device: string, name: string }): Promise<Welcome> {
    const inv = this.invites.get(inviteKey(id))
    if (inv === undefined || inv.state !== 'open') throw new InvalidOptionError('the invite is not pending')
    const revocation = this.ctx.log.revocation
    if (revocation !== undefined) throw new DeviceRevokedError(revocation)
    const ks = this.ctx.keystore
    // certified by the root key where this device holds it, else by this device (a chain)
    const asRoot = ks.rootSecretKey !== undefined
    const signer = createSigner(asRoot ? ks.rootSecretKey as Uint8Array : ks.deviceSecretKey)
    const certificate = issueCertificate({ swarm: ks.swarmId, device: joiner.device as DeviceId, name: joiner.name }, signer, asRoot)
    const chain = asRoot ? [] : [ks.certificate, ...ks.chain]
    // recorded only once the joiner confirms it stored its identity (see confirm)
    inv.state = 'held'
    inv.held = certificate
    return {
      swarm: ks.swarmId,
      rootPublicKey: ks.rootPublicKey,
      recoveryPublicKey: ks.recoveryPublicKey,
      certificate: encodeCertificate(certificate),
      chain: chain.map(encodeCertificate),
      keys: this.ctx.log.keyBoxesFor(joiner.device as DeviceId),
      addrs: this.ctx.multiaddrs(),
      name: this.ctx.deviceName
    }
  }

  async confirm (id: Uint8Array, joiner: { device: string }): Promise<void> {
    const inv = this.invites.get(inviteKey(id))
    const cert = inv?.held
    if (inv === undefined || inv.state !== 'held' || cert === undefined || cert.device !== joiner.device) throw new InvalidOptionError('the invite is not held for this device')
    await this.ctx.log.appendControl([{ t: 'cert', cert }])
    inv.state = 'used'
    delete inv.held
    logger.info('device certified', { device: cert.device, name: cert.name })
  }

  release (id: Uint8Array): void {
    const inv = this.invites.get(inviteKey(id))
    if (inv?.state !== 'held') return
    inv.state = 'open'
    delete inv.held
  }
}

/** A new device's identity built from a welcome. */
export function keystoreFromWelcome (deviceSecretKey: Uint8Array, welcome: Welcome): KeystoreData {
  const swarmId = swarmIdFromRootKey(welcome.rootPublicKey)
  if (swarmId !== welcome.swarm) throw new InvalidCertificateError('the welcome names a swarm that does not match its root key')
  const device = deviceIdFromPublicKey(publicKeyOf(deviceSecretKey))
  const chainBytes = [welcome.certificate, ...welcome.chain]
  const certificate = verifyCertificateChain(device, chainBytes, swarmId, welcome.rootPublicKey, () => false)
  return {
    swarmId,
    rootPublicKey: welcome.rootPublicKey,
    recoveryPublicKey: welcome.recoveryPublicKey,
    deviceSecretKey,
    certificate,
    chain: welcome.chain.map(c => decodeCertificate(c, swarmId, welcome.rootPublicKey)),
    createdAt: new Date().toISOString(),
    origin: 'join'
  }
}

/** Decodes an invite code and checks it has not expired (before anything is dialed). */
export function parseInviteCode (code: string): ReturnType<typeof decodeInvite> {
  const invite = decodeInvite(code)
  if (invite.expires * 1000 < Date.now()) throw new InviteExpiredError(`the invite expired at ${new Date(invite.expires * 1000).toISOString()}`)
  return invite
}

/** A new device key and its default name. */
export function newDevice (name?: string): { secretKey: Uint8Array, name: string } {
  return { secretKey: generateSecretKey(), name: name ?? hostname() }
}

/** What {@link prepareJoinDir} created, to undo when the join fails. */
export interface JoinDir {
  /** Removes what the join created (the dir, if it did not exist; else the keystore). */
  undo (): void
}

/**
 * Checks, before the inviter is contacted, everything on this machine a join needs: the data
 * dir is a directory (created here if missing) that this process can write, it holds no device
 * and no process owns it, and a passphrase is acceptable. Throws {@link DataDirError},
 * {@link DataDirLockedError} or {@link InvalidOptionError}; nothing is left behind then.
 */
export function prepareJoinDir (paths: DataDirPaths, options: { passphrase?: string | undefined }): JoinDir {
  if (options.passphrase !== undefined && (typeof options.passphrase !== 'string' || options.passphrase.length < 8)) {
    throw new InvalidOptionError('"passphrase" expected at least 8 characters')
  }
  const dir = paths.dir
  let created: string | undefined
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new DataDirError(`${dir} is not a directory; join with a fresh (or missing) data dir`)
    if (existsSync(paths.keystore) || (existsSync(paths.database) && statSync(paths.database).size > 0)) {
      throw new DataDirError(`${dir} already holds a device; join with a fresh data dir`)
    }
    const holder = lockHolder(paths.lock)
    if (holder !== undefined) throw new DataDirLockedError(dir, holder.pid, holder.kind)
  } else {
    let parent = dirname(dir)
    while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent)
    if (!statSync(parent).isDirectory()) throw new DataDirError(`cannot create ${dir}: ${parent} is not a directory`)
    try {
      created = mkdirSync(dir, { recursive: true, mode: 0o700 })
    } catch (err) {
      throw new DataDirError(`cannot create ${dir}: ${(err as Error).message}`, { cause: err })
    }
  }
  const undo = (): void => {
    try {
      if (created !== undefined) rmSync(created, { recursive: true, force: true })
      else rmSync(paths.keystore, { force: true })
    } catch { /* best effort: the join error says what went wrong */ }
  }
  // the keystore is written next to this probe, with the same mode
  const probe = join(dir, `.join-${randomBytes(6).toString('hex')}`)
  try {
    closeSync(openSync(probe, 'wx', 0o600))
    unlinkSync(probe)
  } catch (err) {
    undo()
    throw new DataDirError(`cannot write in ${dir}: ${(err as Error).message}`, { cause: err })
  }
  return { undo }
}

/**
 * Order of addresses in an invite: public, then through a public relay, then private, then
 * through a private relay, then this machine's.
 */
function addressRank (addr: string): number {
  const scope = scopeOf(addr)
  if (scope === 'loopback') return 4
  const relayed = relayOf(addr) !== undefined
  if (scope === 'private') return relayed ? 3 : 2
  return relayed ? 1 : 0
}
