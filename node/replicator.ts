/**
 * Wires the log to the swarm transport: implements the transport's backend over the log and
 * storage, announces local entries, confirms writes from other devices' acknowledgements,
 * shares data-key epochs with members that lack them, and remembers peers' addresses.
 */
import './polyfills.js'
import { EventEmitter } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import {
  createEpoch, writeFileAtomic, encodeCertificate, encodeRevocation, needsRotation, planEpochShares, shareEpoch, verifyCertificateChain, type DeviceCertificate, type DeviceId
} from '../identity/index.js'
import { coveredPrefix, MAX_ENTRY_BYTES } from '../crdt/index.js'
import type { StorageProvider } from '../storage/index.js'
import { MAX_CHAIN, SwarmTransport, type NetworkOptions, type PairingBackend, type PeerInfo, type ReplicaBackend, type SearchHandler, type SwarmEvents, type VerifiedDevice } from '../transport/index.js'
import type { Confirmations } from './confirmations.js'
import { epochOp, type Log } from './log.js'
import { createLogger } from './logger.js'

const logger = createLogger('replication')
const PEERS_META = 'peers'
const SHARE_DELAY_MS = 30
/**
 * A page wide enough for any run under one chain signature (a device signs at least every
 * MAX_UNSIGNED_RUN entries / MAX_UNSIGNED_BYTES, and relays what it received in pages of at
 * most this), within one sync frame.
 */
const WHOLE_RUN_LIMITS = { maxEntries: 4096, maxBytes: MAX_ENTRY_BYTES }

/** Options of the network side of a node. */
export type ReplicationOptions = NetworkOptions

interface PeerRecord { name: string, addrs: string[], seen: number }

/** Replication of one node's log with the user's other devices. */
export class Replicator extends EventEmitter<SwarmEvents> implements ReplicaBackend {
  readonly confirmations: Confirmations
  private transport: SwarmTransport | undefined
  private peerBook = new Map<string, PeerRecord>()
  private peerBookTimer: NodeJS.Timeout | undefined
  private shareTimer: NodeJS.Timeout | undefined
  private sharing: Promise<void> | undefined
  private stopped = false
  private encodedChain: Uint8Array[] | undefined
  private readonly vectors = new Map<string, ReadonlyMap<string, number>>()
  private readonly progress = new Map<string, { received: number, total: number, at: number }>()
  private readonly onEntries = (ev: { origin: 'local' | 'remote', entries: ReadonlyArray<{ bytes: Uint8Array, header: { epoch: number } }>, sig?: Uint8Array }): void => {
    if (ev.origin === 'local' && ev.sig !== undefined) this.transport?.announceEntries(ev.entries.map(e => e.bytes), ev.sig)
    if (ev.entries.some(e => e.header.epoch === 0)) this.scheduleShares()
  }
  private readonly onRevoked = (ev: { device: string }): void => {
    if (ev.device === this.log.deviceId) {
      this.transport?.standDown()
      return
    }
    this.transport?.hangUp(ev.device).catch(() => {})
    this.scheduleShares()
  }

  constructor (
    private readonly log: Log,
    private readonly storage: StorageProvider,
    private readonly identity: { certificate: DeviceCertificate, chain: readonly DeviceCertificate[], rootPublicKey: Uint8Array, recoveryPublicKey: Uint8Array, deviceSecretKey: Uint8Array },
    private readonly options: ReplicationOptions,
    /** Where the devices met before are remembered (outside the database: see data-dir.ts). */
    private readonly peersFile: string,
    confirmations: Confirmations,
    private readonly pairing?: PairingBackend,
    private readonly searchHandler?: SearchHandler
  ) {
    super()
    this.confirmations = confirmations
    log.on('entries', this.onEntries)
    log.on('revoked', this.onRevoked)
  }

  get swarmId (): string { return this.log.swarmId }
  get deviceId (): string { return this.log.deviceId }

  /** Starts the libp2p host and the protocols. */
  async start (): Promise<void> {
    // the peer list of older data dirs was kept in the database
    const stored = existsSync(this.peersFile) ? readFileSync(this.peersFile, 'utf8') : await this.storage.getMeta(PEERS_META)
    if (stored !== undefined) {
      try {
        this.peerBook = new Map(Object.entries(JSON.parse(stored) as Record<string, PeerRecord>))
      } catch {
        logger.warn('ignoring an unreadable peer list')
      }
    }
    this.transport = await SwarmTransport.start({
      backend: this,
      ...(this.pairing !== undefined ? { pairing: this.pairing } : {}),
      ...(this.searchHandler !== undefined ? { search: this.searchHandler } : {}),
      deviceSecretKey: this.identity.deviceSecretKey,
      options: this.options,
      log: (level, m, f) => logger[level](m, f)
    })
    const t = this.transport
    t.on('peer:verified', ev => this.emit('peer:verified', ev))
    t.on('peer:disconnected', ev => this.emit('peer:disconnected', ev))
    t.on('peer:rejected', ev => this.emit('peer:rejected', ev))
    t.on('sync:progress', ev => {
      if (ev.done) this.progress.delete(ev.peer)
      else this.progress.set(ev.peer, { received: ev.received, total: ev.total, at: Date.now() })
      this.emit('sync:progress', ev)
    })
    t.on('sync:done', ev => this.emit('sync:done', ev))
    this.scheduleShares()
  }

  /** The running transport. */
  get network (): SwarmTransport | undefined {
    return this.transport
  }

  // --- ReplicaBackend -------------------------------------------------------------------------

  certificateChain (): Uint8Array[] {
    this.encodedChain ??= [this.identity.certificate, ...this.identity.chain].map(encodeCertificate)
    return this.encodedChain
  }

  verifyChain (peer: string, chain: readonly Uint8Array[]): VerifiedDevice {
    const cert = verifyCertificateChain(peer, chain, this.log.swarmId, this.identity.rootPublicKey, d => this.isRevoked(d))
    return { device: cert.device, name: cert.name }
  }

  isMember (device: string): boolean {
    return this.log.membership.isMember(device)
  }

  isRevoked (device: string): boolean {
    if (device === this.log.deviceId) return this.log.revocation !== undefined
    return this.log.membership.revocationOf(device) !== undefined
  }

  revocationProof (device: string): { rev: Uint8Array, chain: Uint8Array[] } | undefined {
    const membership = this.log.membership
    const rev = membership.revocationOf(device)
    if (rev === undefined) return undefined
    const chain: Uint8Array[] = []
    for (let issuer = rev.issuer; issuer !== 'root' && chain.length < MAX_CHAIN;) {
      const cert = membership.certificateOf(issuer)
      if (cert === undefined) break
      chain.push(encodeCertificate(cert))
      issuer = cert.issuer
    }
    return { rev: encodeRevocation(rev), chain }
  }

  async learnRevocation (rev: Uint8Array, chain: readonly Uint8Array[]): Promise<void> {
    await this.log.learnRevocation(rev, chain)
  }

  versionVector (): Map<string, number> {
    return this.log.versionVector()
  }

  async entriesNotIn (have: ReadonlyMap<string, number>, after: number, limits: { maxEntries: number, maxBytes: number }): Promise<{ entries: Uint8Array[], sigs: Array<[number, Uint8Array]>, next: number | undefined }> {
    // what this device wrote goes out signed
    await this.log.flush()
    let page = await this.storage.entriesNotIn(have, after, limits)
    let n = coveredPrefix(page.entries)
    if (n === 0 && page.next !== undefined) {
      // one run under a single signature is longer than the page: it goes whole (runs are bounded)
      page = await this.storage.entriesNotIn(have, after, WHOLE_RUN_LIMITS)
      n = coveredPrefix(page.entries)
      if (n === 0 && page.entries.length > 0) logger.warn('entries to send are not covered by a signature', { after, first: page.entries[0]?.pos })
    }
    const entries = page.entries.slice(0, n)
    const last = new Map<string, number>()
    entries.forEach((e, i) => last.set(e.author, i))
    const sigs: Array<[number, Uint8Array]> = []
    for (const i of last.values()) {
      const sig = entries[i]?.sig
      if (sig != null) sigs.push([i, sig])
    }
    const next = n === page.entries.length ? page.next : entries[n - 1]?.pos
    return { entries: entries.map(e => e.bytes), sigs, next }
  }

  async ingest (entries: readonly Uint8Array[], sigs: ReadonlyArray<readonly [number, Uint8Array]> = []): Promise<{ applied: number, duplicates: number }> {
    const r = await this.log.ingest(entries, new Map(sigs))
    return { applied: r.applied, duplicates: r.duplicates }
  }

  peerVector (device: string, vector: ReadonlyMap<string, number>): void {
    this.vectors.set(device, vector)
    this.confirmations.observe(device, vector.get(this.log.deviceId) ?? 0)
  }

  rememberPeer (device: string, name: string, addrs: readonly string[]): void {
    this.peerBook.set(device, { name, addrs: [...addrs], seen: Date.now() })
    if (this.peerBookTimer === undefined) {
      this.peerBookTimer = setTimeout(() => {
        this.peerBookTimer = undefined
        this.savePeerBook().catch(err => logger.warn('could not save the peer list', { error: (err as Error).message }))
      }, 100)
    }
  }

  private async savePeerBook (): Promise<void> {
    writeFileAtomic(this.peersFile, JSON.stringify(Object.fromEntries(this.peerBook)), 0o600)
  }

  knownPeers (): Array<{ device: string, addrs: string[] }> {
    return [...this.peerBook].map(([device, p]) => ({ device, addrs: p.addrs }))
  }

  keyBoxesFor (device: string): Array<{ id: number, box: Uint8Array }> {
    // called only after the peer's certificate chain was verified
    return this.isRevoked(device) ? [] : this.log.keyBoxesFor(device as DeviceId)
  }

  async acceptKeyBoxes (from: string, boxes: ReadonlyArray<{ id: number, box: Uint8Array }>): Promise<void> {
    const opened = await this.log.deliverKeys(boxes)
    if (opened > 0) logger.info('received data-key epochs', { from, epochs: opened })
  }

  // --- epochs ---------------------------------------------------------------------------------

  private scheduleShares (): void {
    if (this.shareTimer !== undefined || this.stopped) return
    // a little jitter, so that devices that could all share the same epoch rarely do it twice
    this.shareTimer = setTimeout(() => {
      this.shareTimer = undefined
      // stop() waits for a share in flight: the storage it writes to closes after
      this.sharing = this.shareEpochs().catch(err => logger.warn('epoch sharing failed', { error: (err as Error).message }))
    }, SHARE_DELAY_MS + Math.floor(Math.random() * SHARE_DELAY_MS))
  }

  /**
   * Seals every epoch this device can open to the members that lack it, and starts a new epoch
   * when the current one is still sealed to a revoked device (a revocation made concurrently
   * elsewhere), in one control entry.
   */
  private async shareEpochs (): Promise<void> {
    // a revoked device appends nothing (and nobody would take it)
    if (this.log.revocation !== undefined) return
    const keyring = this.log.keyring
    const members = this.log.membership.memberIds()
    const plan = planEpochShares(keyring, members, this.log.deviceId as DeviceId)
    const ops = plan.map(p => epochOp(shareEpoch(this.log.swarmId as never, p.record, p.key, p.recipients)))
    if (needsRotation(keyring, d => this.isRevoked(d))) {
      const epoch = createEpoch({ swarm: this.log.swarmId as never, gen: keyring.highestGeneration() + 1, devices: members, recoveryPublicKey: this.identity.recoveryPublicKey })
      ops.push(epochOp(epoch.record))
      logger.info('started a new data-key epoch without revoked devices', { epoch: epoch.record.id })
    }
    if (ops.length === 0) return
    await this.log.appendControl(ops)
    if (plan.length > 0) logger.info('shared data-key epochs', { epochs: plan.length, recipients: [...new Set(plan.flatMap(p => p.recipients))].length })
  }

  // --- status ---------------------------------------------------------------------------------

  /** Connected peers with what is known of their logs. */
  peers (): Array<PeerInfo & { holds?: Record<string, number> }> {
    return (this.transport?.peers() ?? []).map(p => {
      const v = this.vectors.get(p.device)
      return v === undefined ? p : { ...p, holds: Object.fromEntries(v) }
    })
  }

  /** Pulls in progress: entries received so far and expected, per peer. */
  syncState (): Array<{ peer: string, received: number, total: number }> {
    const now = Date.now()
    return [...this.progress].filter(([, p]) => now - p.at < 60_000).map(([peer, p]) => ({ peer, received: p.received, total: p.total }))
  }

  /** When each device was last connected. */
  lastSeen (): Map<string, number> {
    const out = new Map<string, number>()
    for (const [device, p] of this.peerBook) out.set(device, p.seen)
    for (const p of this.transport?.peers() ?? []) if (p.verified) out.set(p.device, Date.now())
    return out
  }

  /** Devices seen before, with their last known addresses. */
  peerBookEntries (): Array<{ device: string, name: string, addrs: string[], seen: number }> {
    return [...this.peerBook].map(([device, p]) => ({ device, ...p }))
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.log.off('entries', this.onEntries)
    this.log.off('revoked', this.onRevoked)
    clearTimeout(this.shareTimer)
    this.shareTimer = undefined
    await this.sharing
    if (this.peerBookTimer !== undefined) {
      clearTimeout(this.peerBookTimer)
      this.peerBookTimer = undefined
      await this.savePeerBook().catch(() => {})
    }
    await this.transport?.stop()
    this.transport = undefined
  }
}
