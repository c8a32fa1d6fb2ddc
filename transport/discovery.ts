/**
 * Finding the user's other devices: bootstrap addresses and devices seen before are dialed
 * (with exponential backoff until one proves membership) until connected; the kad-dht rendezvous (a key derived from the SwarmId that
 * every device provides) finds devices beyond direct connections; mDNS finds them on the LAN.
 */
import { createHash } from 'node:crypto'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import type { ReplicaBackend } from './backend.js'
import type { Host, NetworkOptions } from './host.js'

const RAW = 0x55
const REDIAL_MIN_MS = 2_000
const REDIAL_MAX_MS = 5 * 60_000
const RENDEZVOUS_EVERY_MS = 30_000
const DHT_TIMEOUT_MS = 10_000

/** The DHT key devices of a swarm provide and look up. */
export function rendezvousKey (swarmId: string): CID {
  const hash = createHash('sha256').update(`peakdb/rendezvous/v1/${swarmId}`).digest()
  return CID.createV1(RAW, Digest.create(0x12, new Uint8Array(hash)))
}

interface Target { readonly key: string, readonly dial: () => Promise<unknown>, peer: string | undefined, next: number, backoff: number }

/** Keeps this device connected to the others it knows of or can find. */
export class Discovery {
  private timer: NodeJS.Timeout | undefined
  private started = false
  private stopped = false
  private readonly targets = new Map<string, Target>()
  private nextRendezvous: number
  private readonly onDiscovery = (evt: CustomEvent<{ id: PeerId }>): void => { this.dialPeer(evt.detail.id) }

  /** `now` is the clock redials are scheduled by (tests inject one). */
  constructor (private readonly host: Host, private readonly backend: ReplicaBackend, private readonly options: NetworkOptions, private readonly log: (m: string, f?: Record<string, unknown>) => void, private readonly now: () => number = Date.now) {
    this.nextRendezvous = now() + 1_000
  }

  start (): void {
    this.started = true
    // relays are dialled like bootstrap addresses: a reservation needs a connection
    for (const addr of new Set([...(this.options.bootstrap ?? []), ...(this.options.relays ?? [])])) {
      const ma = multiaddr(addr)
      this.addTarget(`addr:${addr}`, ma.getComponents().find(c => c.name === 'p2p')?.value, async () => await this.host.dial(ma, { signal: AbortSignal.timeout(10_000) }))
    }
    for (const peer of this.backend.knownPeers()) this.watch(peer.device, peer.addrs)
    if (this.options.mdns === true) this.host.addEventListener('peer:discovery', this.onDiscovery)
    this.schedule(50)
  }

  /** True while it keeps dialling (started, and not stopped, e.g. by a revocation of this device). */
  get running (): boolean {
    return this.started && !this.stopped
  }

  /** Keeps reconnecting to a member device at these addresses. */
  watch (device: string, addrs: readonly string[]): void {
    if (device === this.backend.deviceId || addrs.length === 0) return
    // libp2p dials a list only when every address names the same peer: give them all /p2p/<id>
    const seen = new Set<string>()
    const list: Multiaddr[] = []
    for (const a of addrs) {
      try {
        let ma = multiaddr(a)
        // the last /p2p/ names the peer (one before /p2p-circuit names the relay)
        const last = ma.getComponents().at(-1)
        if (last?.name === 'p2p') {
          if (last.value !== device) continue
        } else ma = ma.encapsulate(`/p2p/${device}`)
        if (!seen.has(ma.toString())) {
          seen.add(ma.toString())
          list.push(ma)
        }
      } catch { /* skip unparsable */ }
    }
    if (list.length === 0) return
    const old = this.targets.get(`peer:${device}`)
    this.targets.delete(`peer:${device}`)
    this.addTarget(`peer:${device}`, device, async () => await this.host.dial(list, { signal: AbortSignal.timeout(10_000) }))
    // new addresses do not reset the backoff of a peer that keeps refusing this device
    if (old !== undefined) Object.assign(this.targets.get(`peer:${device}`) as Target, { next: old.next, backoff: old.backoff })
  }

  /**
   * A peer proved membership: a dial that reaches it again succeeds for real, so redial it soon
   * after it is lost.
   */
  verified (peer: string): void {
    for (const t of this.targets.values()) {
      if (t.peer !== peer) continue
      t.backoff = REDIAL_MIN_MS
      t.next = 0
    }
  }

  private addTarget (key: string, peer: string | undefined, dial: () => Promise<unknown>): void {
    if (!this.targets.has(key)) this.targets.set(key, { key, dial, peer, next: 0, backoff: REDIAL_MIN_MS })
  }

  /** False once this device knows it was revoked: nobody will talk to it. */
  private mayDial (): boolean {
    return !this.stopped && !this.backend.isRevoked(this.backend.deviceId)
  }

  private dialPeer (id: PeerId): void {
    if (!this.mayDial() || id.equals(this.host.peerId) || this.host.getConnections(id).length > 0 || this.backend.isRevoked(id.toString())) return
    this.host.dial(id, { signal: AbortSignal.timeout(10_000) }).catch(err => this.log('dial of discovered peer failed', { peer: id.toString(), error: (err as Error).message }))
  }

  private schedule (ms: number): void {
    if (this.stopped) return
    this.timer = setTimeout(() => { void this.tick() }, ms)
  }

  private async tick (): Promise<void> {
    this.timer = undefined
    if (!this.mayDial()) {
      this.log('not dialling any more: this device was revoked')
      this.stop()
      return
    }
    await this.dialDue()
    const now = this.now()
    if (this.options.dht !== false && now >= this.nextRendezvous && this.mayDial()) {
      this.nextRendezvous = now + RENDEZVOUS_EVERY_MS
      await this.rendezvous()
    }
    this.schedule(1_000)
  }

  /**
   * Dials every unconnected target whose backoff has passed. Each attempt doubles the target's
   * backoff (up to five minutes) whether the dial fails or the connection is refused after it
   * opens (a peer that hangs up on this device, e.g. because it was revoked); only a verified
   * peer ({@link verified}) resets it.
   */
  async dialDue (): Promise<void> {
    const now = this.now()
    for (const t of this.targets.values()) {
      if (!this.mayDial()) return
      if (t.peer !== undefined && (this.connected(t.peer) || this.backend.isRevoked(t.peer))) continue
      if (t.next > now) continue
      t.next = now + t.backoff
      t.backoff = Math.min(t.backoff * 2, REDIAL_MAX_MS)
      try {
        const conn = await t.dial() as { remotePeer?: PeerId }
        t.peer ??= conn.remotePeer?.toString()
      } catch (err) {
        this.log('dial failed', { target: t.key, error: (err as Error).message, retryInMs: t.next - now })
      }
    }
  }

  private connected (peer: string): boolean {
    try {
      return this.host.getConnections(peerIdFromString(peer)).length > 0
    } catch {
      return false
    }
  }

  /** Provides the swarm's rendezvous key and dials the other providers. */
  async rendezvous (): Promise<number> {
    if (!this.mayDial() || this.host.getConnections().length === 0) return 0
    const key = rendezvousKey(this.backend.swarmId)
    const dht = this.host.services.dht
    let dialed = 0
    try {
      for await (const _ of dht.provide(key, { signal: AbortSignal.timeout(DHT_TIMEOUT_MS) })) { /* drain */ }
    } catch (err) {
      this.log('rendezvous provide failed', { error: (err as Error).message })
    }
    try {
      for await (const ev of dht.findProviders(key, { signal: AbortSignal.timeout(DHT_TIMEOUT_MS) })) {
        if (ev.name !== 'PROVIDER') continue
        for (const p of ev.providers) {
          if (p.id.equals(this.host.peerId) || this.host.getConnections(p.id).length > 0) continue
          dialed++
          this.dialPeer(p.id)
        }
      }
    } catch (err) {
      this.log('rendezvous lookup failed', { error: (err as Error).message })
    }
    return dialed
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    this.host.removeEventListener('peer:discovery', this.onDiscovery)
  }
}
