/**
 * Gossip admission: gossipsub meets a peer only once it completed hello. Until then the peer's
 * "connected" notices are not passed on and its inbound gossipsub streams wait unread, so
 * gossipsub has no stream to it (gossipsub sends only on streams it opened, and opens one only on
 * those two events): no message, heads, IHAVE or subscription reaches a stranger, and it never
 * counts as a subscriber. On verification gossipsub is told at once (no wait for identify).
 * Peer scoring was not used: ignoring a peer means graylisting it, which also drops the
 * subscriptions a member sends before its hello completes, and scores are cached per heartbeat.
 */
import type { Connection, PeerId, Stream, StreamHandler, StreamHandlerOptions, StreamMiddleware, Topology, AbortOptions } from '@libp2p/interface'
import type { GossipSubComponents } from '@libp2p/gossipsub'
import type { PeerGate } from './peer-gate.js'

type Registrar = GossipSubComponents['registrar']
type ConnectionManager = GossipSubComponents['connectionManager']

/**
 * Wraps a libp2p service factory (gossipsub, the kad-dht) so that the service meets verified
 * peers only. Every verified peer is a PeakDB device, so it is announced to the service as soon
 * as it is verified.
 *
 * @example
 * ```ts
 * services: { pubsub: admitVerifiedPeers(gossipsub({ emitSelf: false }), gate) }
 * ```
 */
export function admitVerifiedPeers<C extends { registrar: Registrar, connectionManager: ConnectionManager }, S> (createService: (components: C) => S, gate: PeerGate): (components: C) => S {
  return (components) => {
    const registrar = new AdmittingRegistrar(components, gate)
    return createService(new Proxy(components, {
      get: (target, prop, receiver) => prop === 'registrar' ? registrar : Reflect.get(target, prop, receiver)
    }))
  }
}

/** The registrar the service sees: nothing of a peer reaches it before the peer is verified. */
class AdmittingRegistrar implements Registrar {
  /** The service's topologies, by registration id. */
  private readonly topologies = new Map<string, Topology>()
  /** Inbound streams of unverified peers, handed over when the peer is verified. */
  private readonly waiting = new Map<string, Map<Stream, () => void>>()

  constructor (private readonly components: { registrar: Registrar, connectionManager: ConnectionManager }, private readonly gate: PeerGate) {
    gate.watch((peer, verified) => {
      const streams = this.waiting.get(peer)
      this.waiting.delete(peer)
      if (!verified) {
        this.evict(peer)
        return
      }
      this.announce(peer)
      for (const handOver of streams?.values() ?? []) handOver()
    })
  }

  private get registrar (): Registrar {
    return this.components.registrar
  }

  /** Tells each topology that a verified peer is connected. */
  private announce (peer: string): void {
    const open = this.components.connectionManager.getConnections().filter(c => c.remotePeer.toString() === peer && c.status === 'open')
    const unlimited = open.find(c => c.limits === undefined)
    for (const topology of new Set(this.topologies.values())) {
      const connection = unlimited ?? (topology.notifyOnLimitedConnection === true ? open[0] : undefined)
      if (connection !== undefined) settle(() => topology.onConnect?.(connection.remotePeer, connection))
    }
  }

  /** Makes the service drop a peer that lost its verification while still connected (a ban). */
  private evict (peer: string): void {
    const connection = this.components.connectionManager.getConnections().find(c => c.remotePeer.toString() === peer)
    // not connected: libp2p tells the service itself
    if (connection === undefined) return
    for (const topology of new Set(this.topologies.values())) settle(() => topology.onDisconnect?.(connection.remotePeer))
  }

  async handle (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions): Promise<void> {
    await this.registrar.handle(protocol, (stream: Stream, connection: Connection) => {
      const handOver = (): void => {
        if (stream.status === 'open') settle(() => handler(stream, connection), err => stream.abort(err))
      }
      const peer = connection.remotePeer.toString()
      if (this.gate.isVerified(peer)) {
        handOver()
        return
      }
      // unread meanwhile: what the peer writes stays in the stream's capped read buffer
      let streams = this.waiting.get(peer)
      if (streams === undefined) this.waiting.set(peer, streams = new Map())
      streams.set(stream, handOver)
      stream.addEventListener('close', () => {
        streams.delete(stream)
        if (streams.size === 0 && this.waiting.get(peer) === streams) this.waiting.delete(peer)
      }, { once: true })
    }, options)
  }

  async register (protocol: string, topology: Topology, options?: AbortOptions): Promise<string> {
    const id = await this.registrar.register(protocol, {
      ...(topology.filter !== undefined ? { filter: topology.filter } : {}),
      ...(topology.notifyOnLimitedConnection !== undefined ? { notifyOnLimitedConnection: topology.notifyOnLimitedConnection } : {}),
      // an unverified peer is announced when it gets verified, not now
      onConnect: (peer: PeerId, connection: Connection) => {
        if (this.gate.isVerified(peer.toString())) return topology.onConnect?.(peer, connection)
      },
      onDisconnect: (peer: PeerId) => topology.onDisconnect?.(peer)
    }, options)
    this.topologies.set(id, topology)
    return id
  }

  async unhandle (protocol: string, options?: AbortOptions): Promise<void> {
    await this.registrar.unhandle(protocol, options)
  }

  unregister (id: string): void {
    this.topologies.delete(id)
    this.registrar.unregister(id)
  }

  getProtocols (): string[] {
    return this.registrar.getProtocols()
  }

  getHandler (protocol: string): ReturnType<Registrar['getHandler']> {
    return this.registrar.getHandler(protocol)
  }

  getTopologies (protocol: string): Topology[] {
    return this.registrar.getTopologies(protocol)
  }

  use (protocol: string, middleware: StreamMiddleware[]): void {
    this.registrar.use(protocol, middleware)
  }

  unuse (protocol: string): void {
    this.registrar.unuse(protocol)
  }

  getMiddleware (protocol: string): StreamMiddleware[] {
    return this.registrar.getMiddleware(protocol)
  }
}

/** Runs a callback of the service that may throw or reject; the service logs its own failures. */
function settle (run: () => unknown, onError: (err: Error) => void = () => {}): void {
  try {
    Promise.resolve(run()).catch(onError)
  } catch (err) {
    onError(err as Error)
  }
}
