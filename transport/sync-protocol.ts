/**
 * `/peakdb/sync/2.0.0`: pull what a peer has and this device lacks. The puller sends its version
 * vector; the peer streams the missing entries in causal (log) order, in batches capped in
 * entries and bytes, at most two unacknowledged at a time, each with the chain signatures that
 * cover it (a batch ends where every author's part ends on a signed entry: see crdt/entry.ts);
 * the puller applies each batch in one transaction and acknowledges it. Progress survives interruption: the next pull starts from
 * what was applied.
 */
import { EventEmitter } from 'node:events'
import { lpStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { z } from 'zod'
import { missingCount, vectorToWire } from '../crdt/index.js'
import type { ReplicaBackend } from './backend.js'
import type { Host } from './host.js'
import type { PeerGate } from './peer-gate.js'
import {
  allowLargeFrames, encodeMessage, errorSchema, MAX_SMALL_FRAME, MAX_SYNC_FRAME, readMessage, syncAckSchema, syncBatchSchema,
  syncEndSchema, syncRequestSchema
} from './messages.js'

export const SYNC_PROTOCOL = '/peakdb/sync/2.0.0'
/** Caps of one batch. */
export const BATCH_LIMITS = { maxEntries: 1000, maxBytes: 2 * 1024 * 1024 }
const WINDOW = 2
const READ_TIMEOUT_MS = 60_000

const serverMessage = z.union([syncBatchSchema, syncEndSchema, errorSchema])

/** Progress of one pull. */
export interface SyncProgress {
  readonly peer: string
  readonly received: number
  readonly total: number
  readonly done: boolean
}

/** Events of the sync protocol. */
export interface SyncEvents {
  progress: [SyncProgress]
}

/** The peer refused to sync (it does not consider this device a member). */
export class SyncRefusedError extends Error {
  static readonly code = 'ERR_SYNC_REFUSED'
  override readonly name = 'SyncRefusedError'
  readonly code = SyncRefusedError.code
}

/** Both sides of the sync protocol. */
export class SyncProtocol extends EventEmitter<SyncEvents> {
  constructor (private readonly host: Host, private readonly backend: ReplicaBackend, private readonly gate: PeerGate) {
    super()
  }

  async start (): Promise<void> {
    await this.host.handle(SYNC_PROTOCOL, (stream, connection) => this.serve(stream, connection), { maxInboundStreams: 8, runOnLimitedConnection: true })
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: MAX_SMALL_FRAME })
    try {
      if (!this.gate.isVerified(peer)) {
        await lp.write(encodeMessage({ t: 'error', code: 'not-member', message: 'say hello first' }))
        await stream.close()
        return
      }
      const req = await readMessage(lp, syncRequestSchema, 'sync request', AbortSignal.timeout(READ_TIMEOUT_MS))
      const have = new Map(req.have)
      this.backend.peerVector(peer, have)
      const total = missingCount(this.backend.versionVector(), have)
      let after = 0
      let sent = 0
      let unacked = 0
      for (;;) {
        const page = await this.backend.entriesNotIn(have, after, BATCH_LIMITS)
        if (page.entries.length === 0) break
        while (unacked >= WINDOW) {
          await readMessage(lp, syncAckSchema, 'sync ack', AbortSignal.timeout(READ_TIMEOUT_MS))
          unacked--
        }
        sent += page.entries.length
        await lp.write(encodeMessage({ t: 'batch', entries: page.entries, sigs: page.sigs, remaining: Math.max(0, total - sent) }))
        unacked++
        if (page.next === undefined) break
        after = page.next
      }
      while (unacked > 0) {
        await readMessage(lp, syncAckSchema, 'sync ack', AbortSignal.timeout(READ_TIMEOUT_MS))
        unacked--
      }
      await lp.write(encodeMessage({ t: 'end', have: vectorToWire(this.backend.versionVector()) }))
      await stream.close()
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  /**
   * Pulls from `peer` until it has nothing more. Resolves with the number of entries applied;
   * rejects with the typed error of the first invalid batch (nothing of that batch applied).
   */
  async pull (peer: PeerId, options: { signal?: AbortSignal } = {}): Promise<{ received: number, applied: number }> {
    const id = peer.toString()
    const stream = await this.host.dialProtocol(peer, SYNC_PROTOCOL, { signal: options.signal ?? AbortSignal.timeout(10_000), runOnLimitedConnection: true })
    allowLargeFrames(stream, MAX_SYNC_FRAME)
    const lp = lpStream(stream, { maxDataLength: MAX_SYNC_FRAME, maxBufferSize: 2 * MAX_SYNC_FRAME })
    let received = 0
    let applied = 0
    let total = 0
    try {
      await lp.write(encodeMessage({ t: 'req', have: vectorToWire(this.backend.versionVector()) }))
      for (;;) {
        const signal = options.signal === undefined ? AbortSignal.timeout(READ_TIMEOUT_MS) : AbortSignal.any([options.signal, AbortSignal.timeout(READ_TIMEOUT_MS)])
        const msg = await readMessage(lp, serverMessage, 'sync message', signal)
        if (msg.t === 'error') throw new SyncRefusedError(`peer ${id} refused to sync: ${msg.message}`)
        if (msg.t === 'end') {
          this.backend.peerVector(id, new Map(msg.have))
          break
        }
        total = Math.max(total, received + msg.entries.length + msg.remaining)
        const r = await this.backend.ingest(msg.entries, msg.sigs)
        received += msg.entries.length
        applied += r.applied
        await lp.write(encodeMessage({ t: 'ack', applied: r.applied }))
        this.emit('progress', { peer: id, received, total, done: false })
      }
      await stream.close()
      if (received > 0) this.emit('progress', { peer: id, received, total: Math.max(total, received), done: true })
      return { received, applied }
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}
