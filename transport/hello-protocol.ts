/**
 * `/peakdb/hello/1.0.0`: mutual proof of membership, then a key handover. The dialer sends its
 * swarm id and certificate chain; the listener checks it and answers with its own chain and its
 * epoch keys sealed to the dialer (or with an error and a hang-up); the dialer checks that and
 * sends its own epoch keys sealed to the listener. Keys therefore only ever go to a peer whose
 * membership was verified, and a new device can read what it syncs straight away. Until a peer
 * has said hello, sync, search and gossip ignore it. A revoked device that says hello gets its
 * signed revocation instead (and a hang-up), so that it knows and stops dialling.
 */
import { lpStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import type { ReplicaBackend, VerifiedDevice } from './backend.js'
import type { Host } from './host.js'
import { encodeMessage, errorSchema, helloRevokedSchema, helloSchema, keysSchema, MAX_SMALL_FRAME, ProtocolError, readMessage } from './messages.js'
import { z } from 'zod'

export const HELLO_PROTOCOL = '/peakdb/hello/1.0.0'
const TIMEOUT_MS = 10_000

const helloReply = z.union([helloSchema, errorSchema, helloRevokedSchema])

/** The peer is not a member of this swarm (or of any swarm this node accepts). */
export class NotAMemberPeerError extends Error {
  static readonly code = 'ERR_NOT_A_MEMBER_PEER'
  override readonly name = 'NotAMemberPeerError'
  readonly code = NotAMemberPeerError.code
}

/**
 * The peer refused this device because this device was revoked, and proved it with the
 * revocation, which this device has now recorded.
 */
export class RevokedByPeerError extends Error {
  static readonly code = 'ERR_REVOKED_BY_PEER'
  override readonly name = 'RevokedByPeerError'
  readonly code = RevokedByPeerError.code
}

/** Runs the hello handshake on both sides. */
export class HelloProtocol {
  constructor (
    private readonly host: Host,
    private readonly backend: ReplicaBackend,
    private readonly onVerified: (peer: PeerId, device: VerifiedDevice, connection: Connection) => void,
    private readonly onRejected: (peer: PeerId, reason: string) => void,
    private readonly onFailed: (peer: PeerId, reason: string) => void
  ) {}

  private hello (keysFor?: string): Uint8Array {
    const base = { t: 'hello', v: 1, swarm: this.backend.swarmId, chain: this.backend.certificateChain() }
    return encodeMessage(keysFor === undefined ? base : { ...base, keys: this.backend.keyBoxesFor(keysFor) })
  }

  private check (peer: PeerId, msg: z.infer<typeof helloSchema>): VerifiedDevice {
    if (msg.swarm !== this.backend.swarmId) throw new NotAMemberPeerError(`peer ${peer.toString()} belongs to swarm ${msg.swarm}`)
    try {
      return this.backend.verifyChain(peer.toString(), msg.chain)
    } catch (err) {
      throw new NotAMemberPeerError(`peer ${peer.toString()} is not a member: ${(err as Error).message}`)
    }
  }

  async start (): Promise<void> {
    await this.host.handle(HELLO_PROTOCOL, (stream, connection) => this.respond(stream, connection), { maxInboundStreams: 4, runOnLimitedConnection: true })
  }

  private async respond (stream: Stream, connection: Connection): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: MAX_SMALL_FRAME })
    const peer = connection.remotePeer
    try {
      const msg = await readMessage(lp, helloSchema, 'hello', AbortSignal.timeout(TIMEOUT_MS))
      // a revoked device is told why (with its signed revocation) instead of being cut off
      // silently: it records it and stops dialling; only that device itself learns it here
      const proof = msg.swarm === this.backend.swarmId && this.backend.isRevoked(peer.toString()) ? this.backend.revocationProof(peer.toString()) : undefined
      if (proof !== undefined) {
        await lp.write(encodeMessage({ t: 'revoked', rev: proof.rev, chain: proof.chain }))
        await stream.close()
        this.onRejected(peer, 'revoked (told it so)')
        return
      }
      let device: VerifiedDevice
      try {
        device = this.check(peer, msg)
      } catch (err) {
        await lp.write(encodeMessage({ t: 'error', code: 'not-member', message: 'not a member of this swarm' }))
        await stream.close()
        this.onRejected(peer, (err as Error).message)
        return
      }
      await lp.write(this.hello(peer.toString()))
      this.onVerified(peer, device, connection)
      const keys = await readMessage(lp, keysSchema, 'keys', AbortSignal.timeout(TIMEOUT_MS))
      await this.backend.acceptKeyBoxes(peer.toString(), keys.keys)
      await stream.close()
    } catch (err) {
      stream.abort(err as Error)
      // a malformed hello is hostile; a timeout or a closed stream is a busy or leaving peer,
      // which may try again: only the first gets a ban
      if (isRefusal(err)) this.onRejected(peer, `hello failed: ${(err as Error).message}`)
      else this.onFailed(peer, `hello failed: ${(err as Error).message}`)
    }
  }

  /** Says hello to a connected peer; resolves with its verified identity. */
  async initiate (connection: Connection, signal = AbortSignal.timeout(TIMEOUT_MS)): Promise<VerifiedDevice> {
    const stream = await connection.newStream(HELLO_PROTOCOL, { signal, runOnLimitedConnection: true })
    const lp = lpStream(stream, { maxDataLength: MAX_SMALL_FRAME })
    try {
      await lp.write(this.hello(), { signal })
      const msg = await readMessage(lp, helloReply, 'hello reply', signal)
      if (msg.t === 'error') throw new NotAMemberPeerError(`peer ${connection.remotePeer.toString()} refused: ${msg.message}`)
      if (msg.t === 'revoked') {
        // throws InvalidCertificateError for a forged one: the peer is then rejected below
        await this.backend.learnRevocation(msg.rev, msg.chain)
        throw new RevokedByPeerError(`peer ${connection.remotePeer.toString()} refused this device: it was revoked`)
      }
      const device = this.check(connection.remotePeer, msg)
      // keys first, so that the pull that follows verification can open what it receives
      await this.backend.acceptKeyBoxes(device.device, msg.keys ?? [])
      await lp.write(encodeMessage({ t: 'keys', keys: this.backend.keyBoxesFor(device.device) }), { signal })
      await stream.close()
      this.onVerified(connection.remotePeer, device, connection)
      return device
    } catch (err) {
      stream.abort(err as Error)
      if (isRefusal(err)) this.onRejected(connection.remotePeer, (err as Error).message)
      throw err
    }
  }
}

/** Errors that prove the peer is not one of ours or speaks nonsense (as opposed to being slow or gone). */
function isRefusal (err: unknown): boolean {
  return err instanceof ProtocolError || err instanceof NotAMemberPeerError || (err as Error).name === 'InvalidCertificateError'
}
