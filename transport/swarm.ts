/**
 * The swarm transport: one libp2p host and the protocols that keep this device's log in step
 * with the user's other devices. Peers prove membership (hello), then each side pulls what it
 * lacks (sync); new entries spread by gossip; gaps, announcements and a periodic anti-entropy
 * round trigger pulls; discovery keeps the devices connected.
 */
import { EventEmitter } from 'node:events'
import type { Connection, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { RELAY_V2_HOP_CODEC } from '@libp2p/circuit-relay-v2'
import { dominates } from '../crdt/index.js'
import type { ReplicaBackend, VerifiedDevice } from './backend.js'
import { Discovery } from './discovery.js'
import { relayOf, scopeOf } from './addresses.js'
import { LogGossip } from './gossip.js'
import { HelloProtocol } from './hello-protocol.js'
import { createHost, type Host, type NetworkOptions } from './host.js'
import { PeerGate } from './peer-gate.js'
import { HolePuncher, type PunchOutcome } from './punch-protocol.js'
import { SyncProtocol, SyncRefusedError, type SyncProgress } from './sync-protocol.js'
import { handlePairing, type PairingBackend } from './pair-protocol.js'
import { handleSearch, requestSearch, type SearchHandler, type SearchRequest, type SearchResponse } from './search-protocol.js'

const VERIFY_WITHIN_MS = 10_000
// how long a peer whose hello did not complete is kept out (a hostile or broken hello is banned for longer)
const UNVERIFIED_BAN_MS = 15_000
/** How soon a failed relay reservation is tried again (while the relay stays connected), doubling up to the max, in ms. */
const RESERVE_RETRY_MS = 5_000
const RESERVE_RETRY_MAX_MS = 5 * 60_000
/** How soon a failed direct dial to a relayed peer may be tried again, in ms. */
const DIRECT_RETRY_MS = 30_000
const ANTI_ENTROPY_MS = 30_000
/**
 * Pulls from a newly verified peer again after these delays: until gossipsub has its stream to
 * the peer open, what this side or the peer publishes is dropped (an RTT or two after hello), so
 * writes made in that window would otherwise wait for anti-entropy.
 */
const WARM_UP_PULLS_MS = [1_000, 4_000]
const HEADS_DEBOUNCE_MS = 5
/** Errors that mean the gap is ours (pull), not the peer's fault. */
const GAP_ERRORS = new Set(['SeqGapError', 'MissingDependencyError', 'UnknownEpochError'])
/** Errors that mean the peer sent something invalid. */
const HOSTILE_ERRORS = new Set(['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'InvalidMessageLengthError', 'InvalidSignatureError', 'HashMismatchError', 'MalformedError', 'TooLargeError', 'WrongSwarmError', 'NotAMemberError', 'ForkError', 'ProtocolError', 'InvalidCertificateError', 'ClockDriftError', ...GAP_ERRORS])

/** A connected peer as seen by this device. */
export interface PeerInfo {
  readonly device: string
  readonly name: string | undefined
  readonly verified: boolean
  readonly addrs: string[]
  readonly lastSync: number | undefined
  readonly syncing: boolean
  /** True when every connection to the peer goes through a relay. */
  readonly relayed: boolean
  /** The relay (its DeviceId or PeerId) of a relayed connection. */
  readonly relay?: string
  /** The last hole punch with the peer, if one was tried (see {@link HolePuncher}). */
  readonly holePunch?: PunchOutcome
}

/**
 * How other devices can reach this one: `public` (an address off this machine and its private
 * networks), `relayed` (through a relay reservation), `private` (only on private networks: LAN,
 * behind a NAT), `local` (this machine only).
 */
export type Reachability = 'public' | 'relayed' | 'private' | 'local'

export { relayOf }

/** True for a direct (not relayed) address at a public IP. */
function isPublicDirect (addr: string): boolean {
  return relayOf(addr) === undefined && scopeOf(addr) === 'public'
}

/** Events of the swarm transport. */
export interface SwarmEvents {
  'peer:verified': [{ device: string, name: string }]
  'peer:disconnected': [{ device: string }]
  'peer:rejected': [{ peer: string, reason: string }]
  'sync:progress': [SyncProgress]
  'sync:done': [{ peer: string, received: number, applied: number }]
}

interface PullState { running: boolean, again: boolean, last: number | undefined, retryMs: number, retry: NodeJS.Timeout | undefined }

/** Replication over libp2p for one device. */
export class SwarmTransport extends EventEmitter<SwarmEvents> {
  readonly gate: PeerGate
  private readonly hello: HelloProtocol
  private readonly sync: SyncProtocol
  private readonly gossip: LogGossip
  private readonly discovery: Discovery
  private readonly pulls = new Map<string, PullState>()
  private readonly verifyTimers = new Map<string, NodeJS.Timeout>()
  private readonly hellos = new WeakMap<Connection, Promise<VerifiedDevice>>()
  private headsTimer: NodeJS.Timeout | undefined
  private antiEntropy: NodeJS.Timeout | undefined
  private readonly timers = new Set<NodeJS.Timeout>()
  /** Relays to keep a reservation on: relay id -> its address (with /p2p/<id>). */
  private readonly relays = new Map<string, string>()
  private readonly reserving = new Set<string>()
  /** Relay -> how long to wait before the next reservation attempt after a failure, in ms. */
  private readonly reserveBackoff = new Map<string, number>()
  /** Relayed peers a direct dial is under way (or was tried recently) for. */
  private readonly directTries = new Set<string>()
  private readonly puncher: HolePuncher
  private stopped = false

  private readonly onConnectionOpen = (evt: CustomEvent<Connection>): void => this.connectionOpened(evt.detail)
  private readonly onIdentify = (evt: CustomEvent<{ peerId: PeerId, listenAddrs: Array<{ toString: () => string }>, observedAddr?: { toString: () => string }, connection: Connection }>): void => {
    const id = evt.detail.peerId.toString()
    // where a peer on a direct connection saw this device come from: its public IP, if any
    if (evt.detail.observedAddr !== undefined && relayOf(evt.detail.connection.remoteAddr.toString()) === undefined) this.puncher.observed(id, evt.detail.observedAddr.toString())
    const name = this.gate.nameOf(id)
    if (name === undefined || !this.gate.isVerified(id)) return
    this.remember(id, name, evt.detail.listenAddrs.map(a => a.toString()))
    this.learnRelay(evt.detail.peerId)
    this.goDirect(evt.detail.peerId, evt.detail.listenAddrs.map(a => a.toString()))
  }
  private readonly onPeerDisconnect = (evt: CustomEvent<PeerId>): void => this.peerGone(evt.detail)

  private constructor (readonly host: Host, private readonly backend: ReplicaBackend, gate: PeerGate, private readonly options: NetworkOptions, private readonly log: (level: 'debug' | 'info' | 'warn', m: string, f?: Record<string, unknown>) => void) {
    super()
    this.gate = gate
    this.hello = new HelloProtocol(host, backend, (peer, device, connection) => this.verified(peer, device, connection), (peer, reason) => this.reject(peer, reason), (peer, reason) => this.dropUnverified(peer, reason))
    this.sync = new SyncProtocol(host, backend, gate)
    this.sync.on('progress', p => this.emit('sync:progress', p))
    this.gossip = new LogGossip(host, backend, gate, {
      onEntries: (entries, sig, origin, via) => { void this.gossipEntries(entries, sig, origin, via) },
      onHeads: (vector, origin, via) => this.gossipHeads(vector, origin, via),
      // writes made before a verified peer subscribed were announced to nobody: tell it now
      onSubscribed: peer => { if (this.gate.isVerified(peer.toString())) this.scheduleHeads() }
    })
    this.discovery = new Discovery(host, backend, options, (m, f) => log('debug', m, f))
    this.puncher = new HolePuncher(host, gate, log, (peer, connection) => this.leaveRelay(peer, connection))
  }

  /** Creates the host, registers the protocols and starts connecting. */
  static async start (init: { backend: ReplicaBackend, pairing?: PairingBackend, search?: SearchHandler, deviceSecretKey: Uint8Array, options: NetworkOptions, log: (level: 'debug' | 'info' | 'warn', m: string, f?: Record<string, unknown>) => void }): Promise<SwarmTransport> {
    const gate = new PeerGate(device => init.backend.isRevoked(device))
    const host = await createHost({ deviceSecretKey: init.deviceSecretKey, swarmId: init.backend.swarmId, gate, options: init.options })
    const t = new SwarmTransport(host, init.backend, gate, init.options, init.log)
    try {
      await t.hello.start()
      await t.sync.start()
      await t.puncher.start()
      // a joining device says hello only after it is certified: do not drop it meanwhile
      if (init.pairing !== undefined) await handlePairing(host, init.pairing, peer => t.clearVerifyTimer(peer), (m, f) => init.log('info', m, f))
      if (init.search !== undefined) await handleSearch(host, gate, init.backend.swarmId, init.search, (m, f) => init.log('debug', m, f))
      t.gossip.start()
      host.addEventListener('connection:open', t.onConnectionOpen)
      host.addEventListener('peer:disconnect', t.onPeerDisconnect)
      host.addEventListener('peer:identify', t.onIdentify as unknown as (evt: Event) => void)
      // a device that knows it was revoked stays off the swarm: nobody would talk to it
      if (init.backend.isRevoked(init.backend.deviceId)) t.standDown()
      else {
        t.keepReservations()
        t.discovery.start()
      }
      t.scheduleAntiEntropy()
    } catch (err) {
      await host.stop()
      throw err
    }
    return t
  }

  /** Listening addresses, with /p2p/<deviceId>. */
  multiaddrs (): string[] {
    return this.host.getMultiaddrs().map(a => a.toString())
  }

  /** How other devices can reach this one, from the addresses it has (see {@link Reachability}). */
  reachability (): Reachability {
    const addrs = this.host.getMultiaddrs().map(a => a.toString())
    if (addrs.some(isPublicDirect)) return 'public'
    if (addrs.some(a => relayOf(a) !== undefined)) return 'relayed'
    if (addrs.some(a => scopeOf(a) === 'private')) return 'private'
    return 'local'
  }

  /** Connected peers. */
  peers (): PeerInfo[] {
    const out: PeerInfo[] = []
    for (const peer of this.host.getPeers()) {
      const id = peer.toString()
      const pull = this.pulls.get(id)
      const addrs = this.host.getConnections(peer).map(c => c.remoteAddr.toString())
      const relay = addrs.length > 0 && addrs.every(a => relayOf(a) !== undefined) ? relayOf(addrs[0] as string) : undefined
      const holePunch = this.puncher.outcome(id)
      out.push({
        device: id,
        name: this.gate.nameOf(id),
        verified: this.gate.isVerified(id),
        addrs,
        lastSync: pull?.last,
        syncing: pull?.running === true,
        relayed: relay !== undefined,
        ...(relay !== undefined ? { relay } : {}),
        ...(holePunch !== undefined ? { holePunch } : {})
      })
    }
    return out
  }

  /** Asks a connected device to search (search protocol). */
  async search (device: string, request: SearchRequest, signal: AbortSignal, onSent?: () => void): Promise<SearchResponse> {
    return await requestSearch(this.host, peerIdFromString(device), request, signal, onSent)
  }

  /** Dials a multiaddr (with /p2p/<id>) and waits until the peer proved membership. */
  async dial (addr: string, options: { signal?: AbortSignal } = {}): Promise<VerifiedDevice> {
    const signal = options.signal ?? AbortSignal.timeout(15_000)
    const connection = await this.host.dial(multiaddr(addr), { signal })
    return await this.helloOnce(connection, signal)
  }

  /**
   * One hello at a time per outbound connection: `dial` and the connection-open handler both
   * want it, and a second hello racing a refused first one would end in a bare EOF.
   */
  private helloOnce (connection: Connection, signal?: AbortSignal): Promise<VerifiedDevice> {
    let hello = this.hellos.get(connection)
    if (hello === undefined) {
      hello = this.hello.initiate(connection, signal)
      this.hellos.set(connection, hello)
      // a failed hello may be tried again later (the peer may not know this device yet)
      hello.catch(() => this.hellos.delete(connection))
    }
    return hello
  }

  private connectionOpened (connection: Connection): void {
    const peer = connection.remotePeer
    const id = peer.toString()
    if (connection.direction === 'outbound') {
      this.helloOnce(connection).catch(err => this.log('debug', 'hello failed', { peer: id, error: (err as Error).message }))
    } else if (!this.gate.isVerified(id) && !this.verifyTimers.has(id)) {
      // an inbound peer that never says hello is not one of ours
      this.verifyTimers.set(id, setTimeout(() => {
        this.verifyTimers.delete(id)
        if (!this.gate.isVerified(id)) this.dropUnverified(peer, 'no hello in time')
      }, this.options.helloTimeoutMs ?? VERIFY_WITHIN_MS))
    }
  }

  private verified (peer: PeerId, device: VerifiedDevice, connection: Connection): void {
    const id = peer.toString()
    const fresh = !this.gate.isVerified(id)
    this.gate.verify(id, device.name)
    this.clearVerifyTimer(id)
    this.discovery.verified(id)
    if (!fresh) return
    const addrs = connection.direction === 'outbound' ? [connection.remoteAddr.toString()] : []
    // listen addresses come with identify, which may finish before or after hello
    void this.host.peerStore.get(peer)
      .then(p => this.remember(id, device.name, [...addrs, ...p.addresses.map(a => a.multiaddr.toString())]))
      .catch(() => this.remember(id, device.name, addrs))
    this.log('info', 'peer verified', { peer: id, name: device.name })
    this.learnRelay(peer)
    void this.host.peerStore.get(peer).then(p => this.goDirect(peer, p.addresses.map(a => a.multiaddr.toString())), () => {})
    this.emit('peer:verified', { device: id, name: device.name })
    this.requestPull(peer)
    for (const ms of WARM_UP_PULLS_MS) {
      const timer = setTimeout(() => {
        this.timers.delete(timer)
        if (this.gate.isVerified(id)) this.requestPull(peer)
      }, ms)
      this.timers.add(timer)
    }
  }

  private remember (device: string, name: string, addrs: string[]): void {
    // relayed addresses too (a device behind a NAT has no other), but only through relays that
    // are members: an address through another relay would send this device's dials its way
    const unique = [...new Set(addrs)].filter(a => {
      const relay = relayOf(a)
      return relay === undefined || this.relays.has(relay) || this.gate.isVerified(relay)
    })
    if (unique.length === 0) return
    this.backend.rememberPeer(device, name, unique)
    this.discovery.watch(device, unique)
  }

  private reject (peer: PeerId, reason: string): void {
    const id = peer.toString()
    this.log('warn', 'peer rejected', { peer: id, reason })
    this.gate.ban(id, reason)
    this.emit('peer:rejected', { peer: id, reason })
    this.host.hangUp(peer).catch(() => {})
  }

  /**
   * Hangs up on a peer whose hello did not complete (slow, busy or gone) without banning it for
   * long: a member on a loaded machine dials again and succeeds; a stranger holding connections
   * open without a hello is kept out for a short while.
   */
  private dropUnverified (peer: PeerId, reason: string): void {
    const id = peer.toString()
    if (this.gate.isVerified(id)) return
    this.log('info', 'peer dropped', { peer: id, reason })
    this.gate.ban(id, reason, UNVERIFIED_BAN_MS)
    this.host.hangUp(peer).catch(() => {})
  }

  private clearVerifyTimer (peer: string): void {
    clearTimeout(this.verifyTimers.get(peer))
    this.verifyTimers.delete(peer)
  }

  private peerGone (peer: PeerId): void {
    const id = peer.toString()
    this.clearVerifyTimer(id)
    this.gate.forget(id)
    // a new connection is a new chance to go direct (the last may have been a pairing device's)
    this.directTries.delete(id)
    this.emit('peer:disconnected', { device: id })
  }

  /** Pulls from a verified peer now (or again after the running pull). */
  requestPull (peer: PeerId): void {
    if (this.stopped) return
    const id = peer.toString()
    let state = this.pulls.get(id)
    if (state === undefined) this.pulls.set(id, state = { running: false, again: false, last: undefined, retryMs: 1_000, retry: undefined })
    if (state.running) {
      state.again = true
      return
    }
    state.running = true
    void this.runPulls(peer, state)
  }

  private async runPulls (peer: PeerId, state: PullState): Promise<void> {
    const id = peer.toString()
    try {
      for (let refused = 0; !this.stopped;) {
        state.again = false
        try {
          const r = await this.sync.pull(peer)
          state.last = Date.now()
          state.retryMs = 1_000
          if (r.received > 0) {
            this.emit('sync:done', { peer: id, received: r.received, applied: r.applied })
            this.scheduleHeads()
          }
        } catch (err) {
          const e = err as Error
          if (e instanceof SyncRefusedError && refused++ < 5) {
            // the peer has not finished verifying us yet
            await new Promise(resolve => setTimeout(resolve, 200))
            state.again = true
          } else if (HOSTILE_ERRORS.has(e.name)) {
            this.reject(peer, `sent invalid entries: ${e.name}: ${e.message}`)
            return
          } else {
            this.log('debug', 'pull failed', { peer: id, error: `${e.name}: ${e.message}` })
            // a transient failure (reset, timeout): try again soon while the peer stays connected
            clearTimeout(state.retry)
            state.retry = setTimeout(() => {
              if (this.host.getConnections(peer).length > 0 && this.gate.isVerified(id)) this.requestPull(peer)
            }, state.retryMs)
            state.retryMs = Math.min(state.retryMs * 2, ANTI_ENTROPY_MS)
          }
        }
        if (!state.again) break
      }
    } finally {
      state.running = false
    }
  }

  /** Pulls from every verified peer and waits for the pulls to finish. */
  async syncNow (): Promise<Array<{ device: string, ok: boolean, error?: string }>> {
    const peers = this.host.getPeers().filter(p => this.gate.isVerified(p.toString()))
    return await Promise.all(peers.map(async peer => {
      try {
        const r = await this.sync.pull(peer)
        if (r.received > 0) this.scheduleHeads()
        return { device: peer.toString(), ok: true }
      } catch (err) {
        return { device: peer.toString(), ok: false, error: (err as Error).message }
      }
    }))
  }

  private async gossipEntries (entries: Uint8Array[], sig: Uint8Array, origin: string, via: PeerId): Promise<void> {
    try {
      const r = await this.backend.ingest(entries, [[entries.length - 1, sig]])
      if (r.applied > 0) this.scheduleHeads()
    } catch (err) {
      const e = err as Error
      if (GAP_ERRORS.has(e.name)) {
        this.pullFrom(origin, via)
      } else if (HOSTILE_ERRORS.has(e.name)) {
        this.log('warn', 'gossiped entries rejected', { origin, via: via.toString(), error: `${e.name}: ${e.message}` })
        this.reject(peerIdFromString(origin), `gossiped invalid entries: ${e.name}`)
      } else {
        this.log('warn', 'gossiped entries not applied', { origin, error: `${e.name}: ${e.message}` })
      }
    }
  }

  private gossipHeads (vector: Map<string, number>, origin: string, via: PeerId): void {
    this.backend.peerVector(origin, vector)
    if (!dominates(this.backend.versionVector(), vector)) this.pullFrom(origin, via)
  }

  /** Pulls from the origin when directly connected and verified, else from the relaying peer. */
  private pullFrom (origin: string, via: PeerId): void {
    if (this.gate.isVerified(origin)) this.requestPull(peerIdFromString(origin))
    else if (this.gate.isVerified(via.toString())) this.requestPull(via)
  }

  /** Announces a run of new local entries, `sig` the chain signature on the last. */
  announceEntries (entries: readonly Uint8Array[], sig: Uint8Array): void {
    void this.gossip.publishEntries(entries, sig)
  }

  /** Announces this device's version vector soon (coalescing bursts). */
  scheduleHeads (): void {
    if (this.headsTimer !== undefined || this.stopped) return
    this.headsTimer = setTimeout(() => {
      this.headsTimer = undefined
      void this.gossip.publishHeads(this.backend.versionVector())
    }, HEADS_DEBOUNCE_MS)
  }

  private scheduleAntiEntropy (): void {
    this.antiEntropy = setTimeout(() => {
      for (const peer of this.host.getPeers()) if (this.gate.isVerified(peer.toString())) this.requestPull(peer)
      // a member still reached only through a relay: try its addresses, or a hole punch, again
      for (const peer of this.host.getPeers()) {
        if (this.onlyRelayed(peer)) void this.host.peerStore.get(peer).then(p => this.goDirect(peer, p.addresses.map(a => a.multiaddr.toString())), () => {})
      }
      for (const relay of this.relays.keys()) this.reserveOn(relay)
      void this.gossip.publishHeads(this.backend.versionVector())
      if (!this.stopped) this.scheduleAntiEntropy()
    }, ANTI_ENTROPY_MS)
  }

  /**
   * Keeps a reservation on each relay once it proved membership (a relay grants them to
   * verified members only): listening on `<relay>/p2p-circuit` makes it, and gives this device
   * an address through the relay. Made again whenever the relay comes back. The relays are the
   * configured ones and the swarm's relay nodes it meets ({@link learnRelay}); the anti-entropy
   * round makes again one that was lost while the relay stayed connected.
   */
  private keepReservations (): void {
    for (const addr of this.options.relays ?? []) {
      const id = multiaddr(addr).getComponents().findLast(c => c.name === 'p2p')?.value
      if (id !== undefined) this.relays.set(id, addr)
    }
    this.gate.watch((peer, verified) => { if (verified) this.reserveOn(peer) })
  }

  private reserveOn (relay: string): void {
    const addr = this.relays.get(relay)
    if (addr === undefined || this.reserving.has(relay) || this.stopped || !this.gate.isVerified(relay)) return
    if (this.host.getMultiaddrs().some(a => relayOf(a.toString()) === relay)) return
    this.reserving.add(relay)
    // libp2p has no public way to listen on an address after start: its transport manager does
    const transports = (this.host as unknown as { components: { transportManager: { listen: (addrs: Multiaddr[]) => Promise<void> } } }).components.transportManager
    transports.listen([multiaddr(`${addr}/p2p-circuit`)]).then(
      () => {
        this.reserveBackoff.delete(relay)
        this.log('info', 'reserved a slot on a relay', { relay })
      },
      (err: Error) => {
        if (this.stopped) return
        const delay = this.reserveBackoff.get(relay) ?? RESERVE_RETRY_MS
        this.reserveBackoff.set(relay, Math.min(delay * 2, RESERVE_RETRY_MAX_MS))
        this.log('warn', 'relay reservation failed', { relay, retryInMs: delay, error: `${err.name}: ${err.message}` })
        const retry = setTimeout(() => { this.timers.delete(retry); this.reserveOn(relay) }, delay)
        this.timers.add(retry)
      }
    ).finally(() => this.reserving.delete(relay))
  }

  /**
   * A verified member that serves circuit relay is one of the swarm's relay nodes: a device
   * keeps a reservation on it too, at the address it is directly connected to it by (even with
   * a forwarded port of its own, which nothing checks from outside; a relay node does not).
   */
  private learnRelay (peer: PeerId): void {
    const id = peer.toString()
    if (this.relays.has(id) || !this.gate.isVerified(id) || this.options.relay === true) return
    const direct = this.host.getConnections(peer).find(c => relayOf(c.remoteAddr.toString()) === undefined)
    if (direct === undefined) return
    void this.host.peerStore.get(peer).then(p => {
      if (!p.protocols.includes(RELAY_V2_HOP_CODEC) || this.relays.has(id)) return
      const addr = direct.remoteAddr.toString()
      this.relays.set(id, addr.endsWith(`/p2p/${id}`) ? addr : `${addr}/p2p/${id}`)
      this.log('info', 'found a relay node of the swarm', { relay: id })
      this.reserveOn(id)
    }, () => {})
  }

  /**
   * A member reached only through a relay is reached directly where possible: at a public
   * address of its own (a port its router forwards, say), else through a hole punch, started
   * by the side the relayed connection came in to (the other answers). The direct connection
   * then carries the protocols, and the relay is left for devices that have no other way.
   */
  private goDirect (peer: PeerId, addrs: readonly string[]): void {
    const id = peer.toString()
    if (!this.gate.isVerified(id) || !this.onlyRelayed(peer) || this.directTries.has(id) || this.puncher.busy(id)) return
    this.directTries.add(id)
    const direct = addrs.filter(isPublicDirect).map(a => multiaddr(a.endsWith(`/p2p/${id}`) ? a : `${a}/p2p/${id}`))
    void this.reachDirectly(peer, direct).finally(() => {
      if (this.stopped) return
      const again = setTimeout(() => { this.timers.delete(again); this.directTries.delete(id) }, DIRECT_RETRY_MS)
      this.timers.add(again)
    })
  }

  /** True when the peer is connected, and only through relays. */
  private onlyRelayed (peer: PeerId): boolean {
    const connections = this.host.getConnections(peer)
    return connections.length > 0 && connections.every(c => relayOf(c.remoteAddr.toString()) !== undefined)
  }

  private async reachDirectly (peer: PeerId, direct: Multiaddr[]): Promise<void> {
    const id = peer.toString()
    if (direct.length > 0) {
      try {
        const connection = await this.host.dial(direct, { signal: AbortSignal.timeout(10_000), force: true })
        this.log('info', 'direct connection to a device that was reached through a relay', { peer: id })
        this.leaveRelay(peer, connection)
        return
      } catch (err) {
        this.log('debug', 'no direct connection to a relayed device at its addresses', { peer: id, error: (err as Error).message })
      }
    }
    const inbound = this.host.getConnections(peer).find(c => c.direction === 'inbound' && relayOf(c.remoteAddr.toString()) !== undefined)
    // the outcome is recorded; the relayed connection stays when it fails
    if (inbound !== undefined && !this.stopped) await this.puncher.punch(inbound).catch(() => {})
  }

  /**
   * The relay's circuits are for devices with no other way: once hello passed on a direct
   * connection this side dialled, its relayed connections to the peer close (the peer's side
   * of them with them).
   */
  private leaveRelay (peer: PeerId, direct: Connection): void {
    if (direct.direction !== 'outbound') return
    this.helloOnce(direct).then(() => {
      for (const c of this.host.getConnections(peer)) if (relayOf(c.remoteAddr.toString()) !== undefined) c.close().catch(() => { /* already closing */ })
    }, () => { /* the relayed connection stays */ })
  }

  /** Looks up the DHT rendezvous once now; resolves with how many new peers were dialed. */
  async rendezvous (): Promise<number> {
    return await this.discovery.rendezvous()
  }

  /** True while discovery keeps (re)dialling devices; false once this device stood down. */
  get dialling (): boolean {
    return this.discovery.running
  }

  /**
   * Leaves the swarm for good because this device was revoked: no more dialling, every
   * connection refused and closed. The node stays open for reading what it had.
   */
  standDown (): void {
    if (this.gate.isRetired) return
    this.log('warn', 'this device was revoked: it no longer dials or accepts connections')
    this.gate.retire()
    this.discovery.stop()
    for (const c of this.host.getConnections()) c.close().catch(() => {})
  }

  /** Hangs up on a device. */
  async hangUp (device: string): Promise<void> {
    await this.host.hangUp(peerIdFromString(device))
  }

  /** Stops discovery, protocols and the host. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    clearTimeout(this.headsTimer)
    clearTimeout(this.antiEntropy)
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    for (const t of this.verifyTimers.values()) clearTimeout(t)
    for (const p of this.pulls.values()) clearTimeout(p.retry)
    this.verifyTimers.clear()
    this.discovery.stop()
    this.gossip.stop()
    this.puncher.stop()
    this.host.removeEventListener('connection:open', this.onConnectionOpen)
    this.host.removeEventListener('peer:disconnect', this.onPeerDisconnect)
    this.host.removeEventListener('peer:identify', this.onIdentify as unknown as (evt: Event) => void)
    await this.host.stop()
  }
}
