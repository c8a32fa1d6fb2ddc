/**
 * `/peakdb/punch/1.0.0`: hole punching between two members that meet only through a relay.
 *
 * libp2p's DCUtR cannot punch on this stack: `@libp2p/tcp` dials from an ephemeral port (the
 * address a peer observes is one nobody can reach back), and `@chainsafe/libp2p-quic` dials
 * from a client endpoint apart from its listener (the same problem over UDP). This protocol does
 * TCP simultaneous open through libp2p's own dialer instead. Each side picks a free local port
 * and predicts that its NAT keeps it (the public IP a verified member observed, the same port:
 * what port-preserving NATs do, Linux masquerade and most home routers among them); both dial
 * each other from that port at the same time, so each SYN opens its own NAT's mapping for the
 * other's, and one TCP connection forms. The side that started acts as the listener in the
 * upgrade (Noise responder and multistream-select server), like DCUtR's B. A NAT that picks a
 * new port per connection defeats the prediction: the devices stay relayed.
 *
 *   I (its relayed connection is inbound) → R   punch { ip, port }
 *   R → I                                      punch { ip, port }   (I measures the round trip)
 *   I → R                                      sync: R dials at once, I after half the round trip
 *
 * Both retry (a NAT that answers an early SYN with a reset refuses the first tries) until the
 * window closes or a direct connection exists. Members only, over relayed connections only.
 */
import { createServer, isIP, type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { lpStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { relayOf, scopeOf } from './addresses.js'
import type { Host } from './host.js'
import { encodeMessage, errorSchema, ProtocolError, punchSchema, punchSyncSchema, readMessage } from './messages.js'
import type { PeerGate } from './peer-gate.js'

export const PUNCH_PROTOCOL = '/peakdb/punch/1.0.0'
/** How long each message of the exchange may take, in ms. */
const STEP_MS = 5_000
/** How long both sides keep dialling after the sync, in ms. */
const WINDOW_MS = 6_000
/** Pause between two dials of one punch, in ms. */
const RETRY_MS = 150
const MAX_FRAME = 1024
/** Peers whose view of this device's address is kept. */
const MAX_OBSERVERS = 64

const punchReply = z.union([punchSchema, errorSchema])

/** A hole punch did not give a direct connection (the reason says why). */
export class HolePunchError extends Error {
  static readonly code = 'ERR_HOLE_PUNCH'
  override readonly name = 'HolePunchError'
  readonly code = HolePunchError.code
}

/** The last hole punch with a peer. */
export interface PunchOutcome {
  readonly result: 'direct' | 'failed'
  /** When it ended (ms since the epoch). */
  readonly at: number
  readonly error?: string
}

/** Runs hole punches, as the side that starts them and the side that answers. */
export class HolePuncher {
  /** Peer -> the public IP it saw this device's direct connection come from (newest last). */
  private readonly seenAs = new Map<string, string>()
  private readonly outcomes = new Map<string, PunchOutcome>()
  private readonly running = new Set<string>()
  /** Aborted on stop: a punch under way ends at once (a short-lived node does not wait for it). */
  private readonly stopping = new AbortController()

  constructor (
    private readonly host: Host,
    private readonly gate: PeerGate,
    private readonly log: (level: 'debug' | 'info', m: string, f?: Record<string, unknown>) => void,
    /** Called with each direct connection a punch gave. */
    private readonly onDirect: (peer: PeerId, connection: Connection) => void
  ) {}

  async start (): Promise<void> {
    await this.host.handle(PUNCH_PROTOCOL, (stream, connection) => { void this.answer(stream, connection) }, { maxInboundStreams: 2, runOnLimitedConnection: true })
  }

  /** Ends every punch under way. */
  stop (): void {
    this.stopping.abort(new HolePunchError('the node is stopping'))
  }

  /**
   * Records the address a peer saw this device's direct connection come from (identify tells it,
   * often before hello): only what verified members saw is used.
   */
  observed (peer: string, addr: string): void {
    const ip = /^\/ip[46]\/([^/]+)/.exec(addr)?.[1]
    if (ip === undefined || scopeOf(addr) !== 'public') return
    this.seenAs.delete(peer)
    this.seenAs.set(peer, ip)
    if (this.seenAs.size > MAX_OBSERVERS) this.seenAs.delete(this.seenAs.keys().next().value as string)
  }

  /** This device's public IP, as the verified member that saw it last saw it. */
  private publicIp (): string | undefined {
    let ip: string | undefined
    for (const [peer, seen] of this.seenAs) if (this.gate.isVerified(peer)) ip = seen
    return ip
  }

  /** The last punch with a peer, if one was tried. */
  outcome (peer: string): PunchOutcome | undefined {
    return this.outcomes.get(peer)
  }

  /** True while a punch with the peer is under way. */
  busy (peer: string): boolean {
    return this.running.has(peer)
  }

  /**
   * Turns a relayed connection into a direct one; resolves with the direct connection, or
   * rejects with a {@link HolePunchError} (the relayed connection stays either way).
   */
  async punch (relayed: Connection): Promise<Connection> {
    const peer = relayed.remotePeer
    return await this.track(peer, async () => {
      const ip = this.ownIp()
      const port = await freePort()
      const signal = this.within(STEP_MS)
      const stream = await relayed.newStream(PUNCH_PROTOCOL, { signal, runOnLimitedConnection: true })
      const lp = lpStream(stream, { maxDataLength: MAX_FRAME })
      try {
        const sent = performance.now()
        await lp.write(encodeMessage({ t: 'punch', ip, port }), { signal })
        const reply = await readMessage(lp, punchReply, 'punch', signal)
        if (reply.t === 'error') throw new HolePunchError(`the peer cannot punch: ${reply.message}`)
        const target = punchTarget(reply)
        const rtt = performance.now() - sent
        await lp.write(encodeMessage({ t: 'sync' }), { signal })
        await stream.close({ signal }).catch(() => {})
        await sleep(rtt / 2)
        return await this.dialAcross(peer, target, port, false)
      } catch (err) {
        stream.abort(err as Error)
        throw err
      }
    })
  }

  private async answer (stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME })
    try {
      if (relayOf(connection.remoteAddr.toString()) === undefined) throw new ProtocolError('punch: only over a relayed connection')
      // hello may still be finishing on this side
      if (!await this.gate.whenVerified(peer.toString(), STEP_MS)) throw new ProtocolError('punch: not a verified member')
      const signal = this.within(2 * STEP_MS)
      const theirs = await readMessage(lp, punchSchema, 'punch', signal)
      const target = punchTarget(theirs)
      const ip = this.publicIp()
      if (ip === undefined) {
        await lp.write(encodeMessage({ t: 'error', code: HolePunchError.code, message: 'its public address is not known yet' }), { signal })
        await stream.close({ signal })
        return
      }
      const port = await freePort()
      await lp.write(encodeMessage({ t: 'punch', ip, port }), { signal })
      await readMessage(lp, punchSyncSchema, 'punch sync', signal)
      await stream.close({ signal }).catch(() => {})
      await this.track(peer, async () => await this.dialAcross(peer, target, port, true))
    } catch (err) {
      stream.abort(err as Error)
      this.log('debug', 'hole punch not answered', { peer: peer.toString(), error: (err as Error).message })
    }
  }

  /** A signal that aborts after `ms`, or when the node stops. */
  private within (ms: number): AbortSignal {
    return AbortSignal.any([AbortSignal.timeout(Math.max(ms, 1)), this.stopping.signal])
  }

  private ownIp (): string {
    const ip = this.publicIp()
    if (ip === undefined) throw new HolePunchError('this device does not know its public address yet')
    return ip
  }

  /** Runs one punch with a peer (one at a time per peer), recording how it ended. */
  private async track (peer: PeerId, run: () => Promise<Connection>): Promise<Connection> {
    const id = peer.toString()
    if (this.running.has(id)) throw new HolePunchError('a hole punch with this peer is under way')
    this.running.add(id)
    try {
      const connection = await run()
      this.outcomes.set(id, { result: 'direct', at: Date.now() })
      this.log('info', 'hole punch gave a direct connection', { peer: id, addr: connection.remoteAddr.toString() })
      this.onDirect(peer, connection)
      return connection
    } catch (err) {
      const error = `${(err as Error).name}: ${(err as Error).message}`
      this.outcomes.set(id, { result: 'failed', at: Date.now(), error })
      this.log('info', 'hole punch failed: the connection stays relayed', { peer: id, error })
      throw err
    } finally {
      this.running.delete(id)
    }
  }

  /** Dials the peer's predicted address from `localPort` until a direct connection exists. */
  private async dialAcross (peer: PeerId, target: string, localPort: number, initiator: boolean): Promise<Connection> {
    const addr = multiaddr(`${target}/p2p/${peer.toString()}`)
    const until = Date.now() + WINDOW_MS
    let last: Error | undefined
    while (Date.now() < until && !this.stopping.signal.aborted) {
      const direct = this.host.getConnections(peer).find(c => c.status === 'open' && relayOf(c.remoteAddr.toString()) === undefined)
      if (direct !== undefined) return direct
      try {
        return await this.host.services.portDialer.dial(addr, { localPort, initiator, signal: this.within(until - Date.now()) })
      } catch (err) {
        last = err as Error
      }
      await sleep(RETRY_MS)
    }
    throw new HolePunchError(`no direct connection to ${target} within ${WINDOW_MS} ms${last === undefined ? '' : ` (${last.message})`}`)
  }
}

/** The address a punch message names, checked: a public IP and a port, nothing else. */
export function punchTarget (msg: z.infer<typeof punchSchema>): string {
  const family = isIP(msg.ip)
  if (family === 0) throw new ProtocolError('punch: not an IP address')
  const addr = `/ip${family}/${msg.ip}/tcp/${msg.port}`
  if (scopeOf(addr) !== 'public') throw new ProtocolError('punch: not a public address')
  return addr
}

/** A local TCP port free now (the OS picks it). */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}
