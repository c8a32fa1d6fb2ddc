/**
 * `/peakdb/pair/2.0.0`: a new device joins with an invite. The joiner names the invite (its
 * public id, not the secret) and a nonce; the inviter answers with its own nonce; the joiner
 * proves it knows the secret with an HMAC bound to both devices' keys and both nonces; the
 * inviter checks it (the invite is single-use, and dies after three wrong proofs), certifies the
 * joiner and answers with its own proof, the certificate chain, the swarm's public keys and
 * the epoch keys sealed to the joiner. The joiner stores its identity and says so (`stored`);
 * only then does the inviter record the certificate in its log and answer `done`. A joiner that
 * fails before `stored` (or goes silent) leaves no member behind, and the invite can be used
 * again. The secret itself never crosses the wire, and Noise has already authenticated both
 * ends (the joiner dials the PeerId written in the invite).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { lpStream } from '@libp2p/utils'
import type { Connection, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import {
  InviteExpiredError, InviteRejectedError, InviteUsedError, inviteId, pairingProof, publicKeyFromDeviceId, type Invite
} from '../identity/index.js'
import type { Host } from './host.js'
import {
  encodeMessage, errorSchema, MAX_SMALL_FRAME, pairChallengeSchema, pairDoneSchema, pairJoinSchema, pairProofSchema, pairStoredSchema,
  pairWelcomeSchema, readMessage
} from './messages.js'

export const PAIR_PROTOCOL = '/peakdb/pair/2.0.0'
const TIMEOUT_MS = 15_000
/** How long the inviter waits for the joiner to store its identity before it gives up on it. */
export const PAIR_STORE_TIMEOUT_MS = 60_000

/** What the welcome carries besides the proof. */
export interface Welcome {
  readonly swarm: string
  readonly rootPublicKey: Uint8Array
  readonly recoveryPublicKey: Uint8Array
  /** The joiner's certificate (encoded). */
  readonly certificate: Uint8Array
  /** Certificates of its issuers, when the inviter is not the root key (encoded). */
  readonly chain: Uint8Array[]
  /** Epoch keys sealed to the joiner. */
  readonly keys: Array<{ id: number, box: Uint8Array }>
  /** The inviter's addresses. */
  readonly addrs: string[]
  /** The inviter's name. */
  readonly name: string
}

/**
 * An invite as the inviter keeps it: pending (with its secret), `held` for a joiner that was
 * welcomed and has not confirmed yet, used up, expired, or unknown.
 */
export type InviteState = { readonly secret: Uint8Array, readonly expires: number } | 'held' | 'used' | 'expired' | undefined

/** What the inviting side of pairing needs from the node. */
export interface PairingBackend {
  /** This device's Ed25519 public key. */
  readonly publicKey: Uint8Array
  /** A pending invite by its public id. */
  findInvite (id: Uint8Array): InviteState
  /** Counts a wrong proof for an invite. */
  failedProof (id: Uint8Array): void
  /**
   * Certifies the joiner and prepares its welcome, without recording the certificate: the
   * invite is held for this joiner until {@link confirm} or {@link release}.
   */
  admit (id: Uint8Array, joiner: { device: string, name: string }): Promise<Welcome>
  /** The joiner stored its identity: records its certificate; the invite is used up. */
  confirm (id: Uint8Array, joiner: { device: string }): Promise<void>
  /** The joiner did not confirm: its certificate is forgotten and the invite is pending again. */
  release (id: Uint8Array): void
}

const challengeOrError = z.union([pairChallengeSchema, errorSchema])

/**
 * Serves pairing requests on an inviting node. `onPairing` hears of each peer that starts
 * pairing (it is not expected to say hello).
 */
export async function handlePairing (host: Host, backend: PairingBackend, onPairing: (peer: string) => void, log: (m: string, f?: Record<string, unknown>) => void): Promise<void> {
  await host.handle(PAIR_PROTOCOL, async (stream: Stream, connection: Connection) => {
    const joiner = connection.remotePeer.toString()
    log('a device is pairing', { peer: joiner })
    const lp = lpStream(stream, { maxDataLength: MAX_SMALL_FRAME })
    const signal = (): AbortSignal => AbortSignal.timeout(TIMEOUT_MS)
    const refuse = async (code: string, message: string): Promise<void> => {
      log('pairing refused', { peer: joiner, code })
      await lp.write(encodeMessage({ t: 'error', code, message }))
      await stream.close()
    }
    try {
      const join = await readMessage(lp, pairJoinSchema, 'pair join', signal())
      const state = backend.findInvite(join.invite)
      if (state === undefined) return await refuse('unknown', 'no such invite')
      if (state === 'used') return await refuse('used', 'the invite was already used')
      if (state === 'held') return await refuse('busy', 'another device is joining with this invite right now')
      if (state === 'expired') return await refuse('expired', 'the invite has expired')
      const nonce = randomBytes(16)
      await lp.write(encodeMessage({ t: 'challenge', nonce }))
      const proof = await readMessage(lp, pairProofSchema, 'pair proof', signal())
      const joinerKey = publicKeyFromDeviceId(joiner)
      const expected = pairingProof(state.secret, 'joiner', backend.publicKey, joinerKey, nonce, join.nonce)
      if (!timingSafeEqual(expected, proof.mac)) {
        backend.failedProof(join.invite)
        return await refuse('bad-proof', 'the proof does not match the invite')
      }
      // it proved it holds the invite: it says hello only once certified, so keep it connected
      onPairing(joiner)
      const welcome = await backend.admit(join.invite, { device: joiner, name: join.name })
      let recorded = false
      try {
        const mac = pairingProof(state.secret, 'inviter', backend.publicKey, joinerKey, nonce, join.nonce)
        await lp.write(encodeMessage({ t: 'welcome', mac, ...welcome }))
        await readMessage(lp, pairStoredSchema, 'pair stored', AbortSignal.timeout(PAIR_STORE_TIMEOUT_MS))
        await backend.confirm(join.invite, { device: joiner })
        recorded = true
      } finally {
        if (!recorded) {
          backend.release(join.invite)
          log('pairing not completed: the new device was not recorded, the invite is pending again', { peer: joiner })
        }
      }
      await lp.write(encodeMessage({ t: 'done' }))
      await stream.close()
      log('device paired', { peer: joiner, name: join.name })
    } catch (err) {
      log('pairing failed', { peer: joiner, error: (err as Error).message })
      stream.abort(err as Error)
    }
  }, { maxInboundStreams: 4, runOnLimitedConnection: true })
}

/** A joiner's pairing in progress: welcomed, and waiting to confirm it stored its identity. */
export interface PairingSession {
  readonly welcome: Welcome
  /**
   * Tells the inviter the identity is stored and waits until it recorded the certificate.
   * Throws when it did not (the new device is then not a member).
   */
  confirm (options?: { signal?: AbortSignal }): Promise<void>
  /** Gives up: the inviter records nothing and the invite can be used again. */
  abort (reason: Error): void
}

/**
 * Joins with an invite from `host` (whose key is the joining device's key); the caller checked
 * its expiry when it decoded it. Resolves once welcomed; the caller stores the identity, then
 * confirms (or aborts). Throws {@link InviteExpiredError}, {@link InviteUsedError} or
 * {@link InviteRejectedError} as the inviter answers.
 */
export async function requestPairing (host: Host, invite: Invite, name: string, options: { signal?: AbortSignal } = {}): Promise<PairingSession> {
  const inviter = peerIdFromString(invite.inviter)
  const addrs = invite.addrs.map(a => multiaddr(a).encapsulate(`/p2p/${invite.inviter}`))
  const signal = options.signal ?? AbortSignal.timeout(TIMEOUT_MS)
  if (addrs.length > 0) await host.dial(addrs, { signal })
  const stream = await host.dialProtocol(inviter, PAIR_PROTOCOL, { signal, runOnLimitedConnection: true })
  const lp = lpStream(stream, { maxDataLength: MAX_SMALL_FRAME })
  try {
    const nonce = randomBytes(16)
    await lp.write(encodeMessage({ t: 'join', invite: inviteId(invite.secret), name, nonce }), { signal })
    const first = await readMessage(lp, challengeOrError, 'pair reply', signal)
    if (first.t === 'error') throw refusal(first.code, first.message)
    const joinerKey = publicKeyFromDeviceId(host.peerId.toString())
    await lp.write(encodeMessage({ t: 'proof', mac: pairingProof(invite.secret, 'joiner', invite.inviterKey, joinerKey, first.nonce, nonce) }), { signal })
    const second = await readMessage(lp, z.union([pairWelcomeSchema, errorSchema]), 'pair welcome', signal)
    if (second.t === 'error') throw refusal(second.code, second.message)
    const expected = pairingProof(invite.secret, 'inviter', invite.inviterKey, joinerKey, first.nonce, nonce)
    if (!timingSafeEqual(expected, second.mac)) throw new InviteRejectedError('the inviter could not prove it knows the invite secret')
    const { t: _t, mac: _mac, ...welcome } = second
    return {
      welcome,
      async confirm (opts = {}) {
        const s = opts.signal ?? AbortSignal.timeout(TIMEOUT_MS)
        try {
          await lp.write(encodeMessage({ t: 'stored' }), { signal: s })
          const done = await readMessage(lp, z.union([pairDoneSchema, errorSchema]), 'pair done', s)
          if (done.t === 'error') throw refusal(done.code, done.message)
          await stream.close()
        } catch (err) {
          stream.abort(err as Error)
          if (err instanceof InviteRejectedError) throw err
          throw new InviteRejectedError(`the inviter did not confirm that it recorded this device: ${(err as Error).message}`, { cause: err })
        }
      },
      abort (reason) {
        stream.abort(reason)
      }
    }
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

function refusal (code: string, message: string): Error {
  if (code === 'expired') return new InviteExpiredError(`the inviter says: ${message}`)
  if (code === 'used') return new InviteUsedError(`the inviter says: ${message}`)
  if (code === 'busy') return new InviteRejectedError(`the invite is in use right now: ${message}; try again in a minute`)
  return new InviteRejectedError(`the inviter refused the invite: ${message}`)
}
