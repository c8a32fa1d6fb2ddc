/**
 * Who may talk to this node. A peer is *verified* once it proved membership with its
 * certificate chain (hello protocol); sync, search and gossip serve verified peers only (gossip
 * is told through {@link PeerGate.watch}). The libp2p connection gater refuses peers banned for
 * sending invalid data, never dials revoked devices, and refuses everything once this device
 * itself was revoked.
 */
import type { ConnectionGater, PeerId } from '@libp2p/interface'

/** Verified peers and bans. */
export class PeerGate {
  /** Verified peer -> the name in its certificate. */
  private readonly verified = new Map<string, string>()
  private readonly banned = new Map<string, { until: number, reason: string }>()
  private readonly watchers = new Set<(peer: string, verified: boolean) => void>()
  private retired = false

  constructor (private readonly isRevoked: (device: string) => boolean) {}

  /** Records a peer that proved membership. */
  verify (peer: string, name: string): void {
    this.verified.set(peer, name)
    this.tell(peer, true)
  }

  /**
   * Resolves true once the peer is verified (at once if it is), false when it is refused or
   * `ms` pass first: for requests that may arrive while the peer's hello is still under way.
   */
  async whenVerified (peer: string, ms: number): Promise<boolean> {
    if (this.isVerified(peer)) return true
    if (this.retired || this.banReason(peer) !== undefined) return false
    return await new Promise<boolean>(resolve => {
      const done = (result: boolean): void => {
        clearTimeout(timer)
        stop()
        resolve(result)
      }
      const timer = setTimeout(() => done(false), ms)
      const stop = this.watch((p, verified) => { if (p === peer) done(verified && this.isVerified(peer)) })
    })
  }

  /** Forgets a peer's verification (on disconnect). */
  forget (peer: string): void {
    this.verified.delete(peer)
    this.tell(peer, false)
  }

  /**
   * Calls `watcher` when a peer is verified (`true`) or forgotten or banned (`false`); returns
   * the function that stops watching.
   */
  watch (watcher: (peer: string, verified: boolean) => void): () => void {
    this.watchers.add(watcher)
    return () => { this.watchers.delete(watcher) }
  }

  private tell (peer: string, verified: boolean): void {
    for (const watcher of this.watchers) watcher(peer, verified)
  }

  /** True when the peer proved membership on its current connection and is not revoked since. */
  isVerified (peer: string): boolean {
    return this.verified.has(peer) && !this.isRevoked(peer)
  }

  /** Name the peer gave in its certificate. */
  nameOf (peer: string): string | undefined {
    return this.verified.get(peer)
  }

  /** Refuses a peer for `ms` milliseconds. */
  ban (peer: string, reason: string, ms = 10 * 60_000): void {
    this.verified.delete(peer)
    this.banned.set(peer, { until: Date.now() + ms, reason })
    this.tell(peer, false)
  }

  /** Lifts a ban. */
  unban (peer: string): void {
    this.banned.delete(peer)
  }

  /** The reason a peer is banned now, if it is. */
  banReason (peer: string): string | undefined {
    const b = this.banned.get(peer)
    if (b === undefined) return undefined
    if (b.until < Date.now()) {
      this.banned.delete(peer)
      return undefined
    }
    return b.reason
  }

  private refused (peer: PeerId): boolean {
    const id = peer.toString()
    return this.isRevoked(id) || this.banReason(id) !== undefined
  }

  /** Refuses every connection from now on (this device was revoked: nobody talks to it). */
  retire (): void {
    this.retired = true
    const peers = [...this.verified.keys()]
    this.verified.clear()
    for (const peer of peers) this.tell(peer, false)
  }

  /** True after {@link retire}. */
  get isRetired (): boolean {
    return this.retired
  }

  /**
   * The libp2p connection gater: refuses banned peers at dial and after Noise, and never dials
   * a revoked device. A revoked device that dials in is let through Noise so that hello can
   * tell it why it is refused (it is then banned); until hello it is served nothing, like any
   * unverified peer. As a relay, it reserves slots for verified members only (a reservation
   * may wait up to `reservationVerifyMs` for the asker's hello), and relays circuits only to
   * them: a device pairing from elsewhere is not a member yet, and the member it reaches serves
   * it nothing but pairing and hello. It accepts circuits only through relays that are members.
   */
  connectionGater (options: { reservationVerifyMs: number }): ConnectionGater {
    return {
      denyDialMultiaddr: () => this.retired,
      denyDialPeer: (peer) => this.retired || this.refused(peer),
      denyInboundConnection: () => this.retired,
      denyInboundEncryptedConnection: (peer) => this.retired || this.banReason(peer.toString()) !== undefined,
      denyOutboundEncryptedConnection: (peer) => this.retired || this.refused(peer),
      denyInboundRelayReservation: async (peer) => !(await this.whenVerified(peer.toString(), options.reservationVerifyMs)),
      denyOutboundRelayedConnection: (_source, destination) => !this.isVerified(destination.toString()),
      // circuits only through the swarm's own relay nodes
      denyInboundRelayedConnection: (relay) => this.retired || !this.isVerified(relay.toString())
    }
  }
}
