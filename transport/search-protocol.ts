/**
 * `/peakdb/search/1.0.0`: one device asks another for its local top-k of a collection. The
 * asker sends the query (text, and the query vector it embedded once, tagged with its embedder
 * id), the answer is the device's own ranked hits with their documents. Members only: the
 * responder serves verified peers of its own swarm and nothing else. Both messages are
 * DAG-CBOR, capped and validated; a response over the frame cap is cut to the hits that fit.
 */
import { lpStream } from '@libp2p/utils'
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { z } from 'zod'
import type { Host } from './host.js'
import type { PeerGate } from './peer-gate.js'
import { allowLargeFrames, encodeMessage, errorSchema, ProtocolError, readMessage } from './messages.js'

export const SEARCH_PROTOCOL = '/peakdb/search/1.0.0'
/** Most hits a device returns for one swarm query. */
export const MAX_SWARM_K = 100
/** Largest search request (the query, a vector of up to 4096 numbers, a filter). */
export const MAX_SEARCH_REQUEST = 128 * 1024
/** Largest search response. */
export const MAX_SEARCH_RESPONSE = 8 * 1024 * 1024
/** Largest document text in a response (the node's document cap, with room for escaping). */
const MAX_DOC_TEXT = 2 * 1024 * 1024
const READ_TIMEOUT_MS = 60_000

export const searchRequestSchema = z.object({
  t: z.literal('search'),
  v: z.literal(1),
  swarm: z.string().min(1).max(128),
  collection: z.string().min(1).max(64),
  mode: z.enum(['vector', 'text', 'hybrid']),
  k: z.number().int().min(1).max(MAX_SWARM_K),
  text: z.string().min(1).max(8192).optional(),
  /** Query vector, float32 little-endian. */
  vector: z.instanceof(Uint8Array).refine(b => b.length > 0 && b.length <= 4 * 4096 && b.length % 4 === 0, 'expected 1..4096 float32 values').optional(),
  /** The embedder that made `vector`. */
  embedder: z.string().min(1).max(256).optional(),
  /** Filter (JSON text of a `where`). */
  where: z.string().max(64 * 1024).optional(),
  /** Milliseconds the responder may spend indexing pending documents first. */
  budget: z.number().int().min(0).max(60_000)
}).strict()

export const searchHitSchema = z.object({
  id: z.string().min(1).max(256),
  score: z.number().finite(),
  /** The document as JSON text. */
  doc: z.string().max(MAX_DOC_TEXT)
}).strict()

export const searchResponseSchema = z.object({
  t: z.literal('results'),
  hits: z.array(searchHitSchema).max(MAX_SWARM_K),
  /** The collection is device-local on the responder (its ids name documents of that device only). */
  local: z.boolean(),
  /** Documents the responder had not indexed yet. */
  pending: z.number().int().min(0)
}).strict()

export type SearchRequest = z.infer<typeof searchRequestSchema>
export type SearchResponse = z.infer<typeof searchResponseSchema>
export type SearchHitWire = z.infer<typeof searchHitSchema>

/** A device refused or failed a search; `code` says why ('not-member', 'embedder', 'bad-request', ...). */
export class SearchRefusedError extends Error {
  static readonly code = 'ERR_SEARCH_REFUSED'
  override readonly name = 'SearchRefusedError'
  readonly code = SearchRefusedError.code
  constructor (readonly reason: string, message: string) {
    super(message)
  }
}

/** What the responding side needs from the node. */
export interface SearchHandler {
  /** Runs the query locally for a verified member. Throws SearchRefusedError (or anything) to answer with an error. */
  search (from: string, request: SearchRequest): Promise<SearchResponse>
}

const answer = z.union([searchResponseSchema, errorSchema])

/** Registers the responder. */
export async function handleSearch (host: Host, gate: PeerGate, swarmId: string, handler: SearchHandler, log: (m: string, f?: Record<string, unknown>) => void): Promise<void> {
  await host.handle(SEARCH_PROTOCOL, (stream: Stream, connection: Connection) => {
    void serve(stream, connection.remotePeer.toString())
  }, { maxInboundStreams: 16, runOnLimitedConnection: true })

  async function serve (stream: Stream, peer: string): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: MAX_SEARCH_REQUEST })
    const refuse = async (code: string, message: string): Promise<void> => {
      await lp.write(encodeMessage({ t: 'error', code, message: message.slice(0, 1024) }))
      await stream.close()
    }
    try {
      if (!gate.isVerified(peer)) {
        await refuse('not-member', 'search is for member devices that said hello')
        return
      }
      let req: SearchRequest
      try {
        req = await readMessage(lp, searchRequestSchema, 'search request', AbortSignal.timeout(READ_TIMEOUT_MS))
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err
        log('search request dropped', { peer, error: err.message })
        await refuse('bad-request', err.message)
        return
      }
      if (req.swarm !== swarmId) {
        await refuse('wrong-swarm', 'this device answers its own swarm only')
        return
      }
      let res: SearchResponse
      try {
        res = fit(await handler.search(peer, req))
      } catch (err) {
        // a handler names the reason with a `reason` property (SearchRefusedError or its own)
        const e = err as Error & { reason?: unknown }
        await refuse(typeof e.reason === 'string' ? e.reason.slice(0, 64) : 'failed', e.message)
        return
      }
      await lp.write(encodeMessage(res))
      await stream.close()
    } catch (err) {
      stream.abort(err as Error)
    }
  }
}

/** Cuts a response to the hits that fit in one frame (best first). */
function fit (res: SearchResponse): SearchResponse {
  let size = 1024
  const hits: SearchHitWire[] = []
  for (const h of res.hits) {
    size += Buffer.byteLength(h.doc) + Buffer.byteLength(h.id) + 32
    if (size > MAX_SEARCH_RESPONSE) break
    hits.push(h)
  }
  return hits.length === res.hits.length ? res : { ...res, hits }
}

/**
 * Asks one device. Rejects with SearchRefusedError, ProtocolError, or the signal's reason.
 * `onSent` is called once the request is on its way.
 */
export async function requestSearch (host: Host, peer: PeerId, request: SearchRequest, signal: AbortSignal, onSent?: () => void): Promise<SearchResponse> {
  // optimistic protocol selection: the protocol name travels with the request (one round trip less)
  const stream = await host.dialProtocol(peer, SEARCH_PROTOCOL, { signal, negotiateFully: false, runOnLimitedConnection: true })
  allowLargeFrames(stream, MAX_SEARCH_RESPONSE)
  const lp = lpStream(stream, { maxDataLength: MAX_SEARCH_RESPONSE, maxBufferSize: 2 * MAX_SEARCH_RESPONSE })
  try {
    await lp.write(encodeMessage(request), { signal })
    onSent?.()
    const msg = await readMessage(lp, answer, 'search response', signal)
    await stream.close().catch(() => {})
    if (msg.t === 'error') throw new SearchRefusedError(msg.code, msg.message)
    return msg
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}
