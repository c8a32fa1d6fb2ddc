/**
 * Swarm search: one query over every online device of the user's swarm, one ranked list.
 *
 * The asking device embeds the query once, searches its own collection and, in parallel, asks
 * every connected member device (`/peakdb/search/1.0.0`) for its local top-k under one
 * deadline. Answers are merged as they arrive: documents of replicated collections are the
 * same document on every device, so they appear once (best score, the asking device's copy on
 * a tie); device-local documents are distinct per device. Scores compare across devices
 * because they are absolute (cosine similarity, plus keyword relevance in [0, 1] in hybrid mode) and
 * every device is asked to use the asker's query vector: a device whose embedder differs
 * refuses rather than compare vectors of different models.
 */
import type { JsonObject } from '../crdt/index.js'
import { isCollectionName } from '../crdt/index.js'
import { InvalidQueryError, normaliseWhere, type Where } from '../storage/index.js'
import type { SearchRequest, SearchResponse, SwarmTransport } from '../transport/index.js'
import type { Collection } from './collection.js'
import { normalise, type Embedder } from './embedding/embedder.js'
import { checkQuery, type SearchMode, type SearchResults } from './search.js'

/** Most results of a swarm search. */
export const MAX_SWARM_RESULTS = 100
/** Default and largest deadline, ms. */
export const DEFAULT_SWARM_TIMEOUT_MS = 2000
const MAX_SWARM_TIMEOUT_MS = 60_000
/** The most time a device spends indexing pending documents before it answers. */
const MAX_DRAIN_MS = 500

/** A swarm search. */
export interface SwarmSearchQuery {
  /** The collection to search on every device. */
  readonly collection: string
  readonly text?: string
  /** A query vector instead of text (vector mode). */
  readonly vector?: readonly number[] | Float32Array
  /** Results, 1..100 (default 10); each device returns its own top k. */
  readonly k?: number
  readonly where?: Where
  /** Default 'hybrid' with text, 'vector' with a vector. */
  readonly mode?: SearchMode
  /** Deadline for the other devices' answers, ms (default 2000, at most 60000). */
  readonly timeout?: number
  readonly signal?: AbortSignal
}

/** One result: which device holds it, and the document as that device has it. */
export interface SwarmHit {
  readonly id: string
  readonly score: number
  readonly device: string
  readonly deviceName: string
  /** True for a document of a device-local collection (it exists on that device only). */
  readonly local: boolean
  readonly doc: JsonObject & { _id: string }
}

/** How one device answered. */
export interface DeviceAnswer {
  readonly device: string
  readonly name: string
  readonly status: 'ok' | 'timeout' | 'error'
  /** Time from sending the query to its answer (or to the deadline). */
  readonly ms: number
  /** Hits it returned. */
  readonly count: number
  /** Documents it had not indexed yet. */
  readonly pending?: number
  /** Why it failed ('not-member', 'embedder', ...: message). */
  readonly error?: string
  /** This device. */
  readonly self: boolean
}

/** The merged result. */
export interface SwarmSearchResult {
  readonly hits: SwarmHit[]
  readonly devices: DeviceAnswer[]
  /** Time spent embedding the query on this device, ms. */
  readonly embedMs: number
  /** Total time, ms. */
  readonly ms: number
}

/** Progress of a swarm search: one event per device answer, then the result. */
export type SwarmSearchEvent =
  | { readonly type: 'answer', readonly answer: DeviceAnswer, readonly hits: SwarmHit[] }
  | { readonly type: 'done', readonly result: SwarmSearchResult }

/** What swarm search needs from its node. */
export interface SwarmSearchContext {
  readonly deviceId: string
  readonly deviceName: string
  readonly swarmId: string
  collection (name: string): Collection
  embedder (): Promise<Embedder>
  network (): SwarmTransport | undefined
}

interface Answer { device: string, name: string, self: boolean, local: boolean, hits: Array<{ id: string, score: number, doc: JsonObject & { _id: string } }> }

/** Orders hits: score, then id, then this device's copy, then device id. */
function compareHits (self: string) {
  return (a: SwarmHit, b: SwarmHit): number =>
    b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) ||
    (a.device === self ? -1 : b.device === self ? 1 : 0) || (a.device < b.device ? -1 : a.device > b.device ? 1 : 0)
}

/**
 * Merges devices' ranked lists: replicated documents once (by id), device-local ones per
 * device, best score kept, deterministic order, top k.
 */
export function mergeAnswers (self: string, answers: readonly Answer[], k: number): SwarmHit[] {
  const order = compareHits(self)
  const best = new Map<string, SwarmHit>()
  for (const a of answers) {
    for (const h of a.hits) {
      const hit: SwarmHit = { id: h.id, score: h.score, device: a.device, deviceName: a.name, local: a.local, doc: h.doc }
      const key = a.local ? `${a.device}\0${h.id}` : `\0${h.id}`
      const current = best.get(key)
      if (current === undefined || order(hit, current) < 0) best.set(key, hit)
    }
  }
  return [...best.values()].sort(order).slice(0, k)
}

/** A search request refused with a reason the asker sees. */
function refusal (reason: string, message: string): Error {
  return Object.assign(new Error(message), { reason })
}

/** `node.swarm`: searching across the user's devices. */
export class SwarmSearch {
  constructor (private readonly ctx: SwarmSearchContext) {}

  /** Searches every online device; resolves when all answered or the deadline passed. */
  async search (query: SwarmSearchQuery): Promise<SwarmSearchResult> {
    let result: SwarmSearchResult | undefined
    for await (const ev of this.searchEvents(query)) if (ev.type === 'done') result = ev.result
    return result as SwarmSearchResult
  }

  /** The same search, as events: an `answer` (with the merged hits so far) per device, then `done`. */
  async * searchEvents (query: SwarmSearchQuery): AsyncGenerator<SwarmSearchEvent> {
    const started = performance.now()
    const q = check(query)
    const self = this.ctx.deviceId
    let vector: Float32Array | undefined
    let embedder: string | undefined
    let embedMs = 0
    if (q.mode !== 'text') {
      const e = await this.ctx.embedder()
      const t = performance.now()
      vector = q.vector !== undefined ? Float32Array.from(q.vector) : (await e.embed([q.text as string], q.signal !== undefined ? { signal: q.signal } : {}))[0]
      embedMs = performance.now() - t
      if (vector === undefined || vector.length !== e.dims) throw new InvalidQueryError(`"vector" expected ${e.dims} numbers (embedder ${e.id})`)
      vector = normalise(Float32Array.from(vector))
      embedder = e.id
    }
    const request: SearchRequest = {
      t: 'search',
      v: 1,
      swarm: this.ctx.swarmId,
      collection: q.collection,
      mode: q.mode,
      k: q.k,
      budget: Math.min(MAX_DRAIN_MS, Math.floor(q.timeout / 4)),
      ...(q.text !== undefined ? { text: q.text } : {}),
      ...(vector !== undefined ? { vector: new Uint8Array(Float32Array.from(vector).buffer), embedder: embedder as string } : {}),
      ...(q.where !== undefined ? { where: JSON.stringify(q.where) } : {})
    }
    const network = this.ctx.network()
    const peers = network === undefined ? [] : network.peers().filter(p => p.verified)
    const deadline = AbortSignal.timeout(q.timeout)
    const signal = q.signal === undefined ? deadline : AbortSignal.any([deadline, q.signal])

    const events: Array<{ answer: DeviceAnswer, result?: Answer }> = []
    let wake: (() => void) | undefined
    const push = (e: { answer: DeviceAnswer, result?: Answer }): void => {
      events.push(e)
      wake?.()
    }
    const ask = async (device: string, name: string, sent: () => void): Promise<void> => {
      const t = performance.now()
      try {
        const res = await (network as SwarmTransport).search(device, request, signal, sent)
        const hits = decodeHits(res)
        push({ answer: { device, name, status: 'ok', ms: performance.now() - t, count: hits.length, pending: res.pending, self: false }, result: { device, name, self: false, local: res.local, hits } })
      } catch (err) {
        sent()
        const e = err as Error & { reason?: string }
        const timedOut = deadline.aborted && q.signal?.aborted !== true
        push({
          answer: timedOut
            ? { device, name, status: 'timeout', ms: performance.now() - t, count: 0, self: false }
            : { device, name, status: 'error', ms: performance.now() - t, count: 0, error: `${e.reason ?? e.name}: ${e.message}`, self: false }
        })
      }
    }
    const askHere = async (): Promise<void> => {
      const t = performance.now()
      try {
        const { hits, local } = await this.searchHere(request)
        push({ answer: { device: self, name: this.ctx.deviceName, status: 'ok', ms: performance.now() - t, count: hits.length, pending: hits.pending, self: true }, result: { device: self, name: this.ctx.deviceName, self: true, local, hits } })
      } catch (err) {
        push({ answer: { device: self, name: this.ctx.deviceName, status: 'error', ms: performance.now() - t, count: 0, error: (err as Error).message, self: true } })
      }
    }
    // the requests go out first: this device's own search holds the event loop while it runs
    const sent = peers.map(p => new Promise<void>(resolve => { void ask(p.device, p.name ?? p.device.slice(-8), resolve) }))
    await Promise.race([Promise.all(sent), new Promise(resolve => setTimeout(resolve, 50))])
    void askHere()

    const answers: Answer[] = []
    const devices: DeviceAnswer[] = []
    const expected = peers.length + 1
    while (devices.length < expected) {
      if (events.length === 0) await new Promise<void>(resolve => { wake = resolve })
      wake = undefined
      for (const e of events.splice(0)) {
        devices.push(e.answer)
        if (e.result !== undefined) answers.push(e.result)
        yield { type: 'answer', answer: e.answer, hits: mergeAnswers(self, answers, q.k) }
      }
    }
    yield { type: 'done', result: { hits: mergeAnswers(self, answers, q.k), devices, embedMs, ms: performance.now() - started } }
  }

  /** Answers another member's search request. */
  async answer (req: SearchRequest): Promise<SearchResponse> {
    const { hits, local } = await this.searchHere(req)
    return { t: 'results', hits: hits.map(h => ({ id: h.id, score: h.score, doc: JSON.stringify(h.doc) })), local, pending: hits.pending }
  }

  /** Runs a search request on this device's collection. */
  private async searchHere (req: SearchRequest): Promise<{ hits: SearchResults, local: boolean }> {
    if (!searchable(req.collection)) throw refusal('bad-request', `invalid collection name ${JSON.stringify(req.collection)}`)
    let where: Where | undefined
    if (req.where !== undefined) {
      try {
        where = JSON.parse(req.where) as Where
      } catch {
        throw refusal('bad-request', '"where" is not JSON')
      }
    }
    if (req.vector !== undefined) {
      const e = await this.ctx.embedder()
      if (req.embedder !== e.id) throw refusal('embedder', `this device embeds with ${e.id}, the query was embedded with ${req.embedder ?? 'an unnamed embedder'}`)
    }
    const collection = this.ctx.collection(req.collection)
    try {
      const vector = req.vector === undefined ? undefined : new Float32Array(req.vector.slice().buffer)
      const r = await collection.search({
        mode: req.mode,
        k: req.k,
        drain: Math.min(req.budget, MAX_DRAIN_MS), // whatever the asker wants: this device's limit
        ...(req.text !== undefined ? { text: req.text } : {}),
        ...(vector !== undefined ? { vector, ...(req.embedder !== undefined ? { embedder: req.embedder } : {}) } : {}),
        ...(where !== undefined ? { where } : {})
      })
      return { hits: r, local: collection.local }
    } catch (err) {
      if ((err as Error).name === 'InvalidQueryError') throw refusal('bad-request', (err as Error).message)
      throw err
    }
  }

  /** The handler the transport calls for other members' requests. */
  handler (): { search: (from: string, req: SearchRequest) => Promise<SearchResponse> } {
    return { search: async (_from, req) => await this.answer(req) }
  }
}

function decodeHits (res: SearchResponse): Answer['hits'] {
  const hits: Answer['hits'] = []
  for (const h of res.hits) {
    let doc: unknown
    try {
      doc = JSON.parse(h.doc)
    } catch {
      continue
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) continue
    hits.push({ id: h.id, score: h.score, doc: { ...(doc as JsonObject), _id: h.id } })
  }
  return hits
}

/** User collections, and the device-local context of agent memory; no other system collection. */
function searchable (name: string): boolean {
  return name === '_memory_context' || (isCollectionName(name) && !name.startsWith('_'))
}

function check (q: SwarmSearchQuery): { collection: string, text?: string, vector?: readonly number[] | Float32Array, k: number, where?: Where, mode: SearchMode, timeout: number, signal?: AbortSignal } {
  const { k, mode } = checkQuery(q)
  if (typeof q.collection !== 'string' || !searchable(q.collection)) throw new InvalidQueryError(`"collection" expected a collection name, got ${JSON.stringify(q.collection)}`)
  if (k > MAX_SWARM_RESULTS) throw new InvalidQueryError(`"k" expected an integer in 1..${MAX_SWARM_RESULTS}, got ${JSON.stringify(q.k)}`)
  const timeout = q.timeout ?? DEFAULT_SWARM_TIMEOUT_MS
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_SWARM_TIMEOUT_MS) throw new InvalidQueryError(`"timeout" expected milliseconds in 1..${MAX_SWARM_TIMEOUT_MS}, got ${JSON.stringify(q.timeout)}`)
  normaliseWhere(q.where) // throws InvalidQueryError here rather than on every device
  return {
    collection: q.collection,
    k,
    mode,
    timeout,
    ...(q.text !== undefined ? { text: q.text } : {}),
    ...(q.vector !== undefined ? { vector: q.vector } : {}),
    ...(q.where !== undefined ? { where: q.where } : {}),
    ...(q.signal !== undefined ? { signal: q.signal } : {})
  }
}
