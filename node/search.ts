/**
 * Search in a collection: by meaning (vector), by words (full text, BM25), or both (hybrid).
 * `where` filters are exact (the same language as `find`) and apply before ranking.
 *
 * Hybrid ranking: score = cosine similarity + keyword relevance, where relevance is a
 * document's BM25 over the most any document could score for the query's words (the sum of
 * their IDF x (k1 + 1)), in [0, 1]; candidates are the union of the vector and the keyword
 * (BM25) top lists, and a document only one list found counts 0 for the other part. Both parts
 * are absolute, so a keyword match that covers the query's rare words well lifts a document as
 * much as a close meaning does, and neither part's spread depends on what else was found: where
 * the sentence encoder does not know a domain (medicine, law, jargon), BM25 still ranks, and
 * where the words are only paraphrased, cosine does. Chosen on half of the queries of four
 * labeled sets (the project's notes and three public test collections) and measured on the
 * other half (bench/RESULTS.md); it replaced cosine + 0.2 x keyword coverage (the share of the
 * query's words a document holds), which ranked below keyword search alone on every public set.
 * Scores from different devices compare directly (swarm search). `weights: { vector, text }`
 * replace 1 and 1.
 */
import type { JsonObject } from '../crdt/index.js'
import { InvalidQueryError, normaliseWhere, type Filter, type StorageProvider, type Where } from '../storage/index.js'
import type { AnnIndex, AnnIndexes } from './embedding/ann-index.js'
import { normalise, type Embedder } from './embedding/embedder.js'
import type { Indexer } from './embedding/indexer.js'
import { ftsTerms } from './embedding/text.js'

/** How results are ranked. */
export type SearchMode = 'vector' | 'text' | 'hybrid'

/** A search query. */
export interface SearchQuery {
  /** Free text: embedded for vector search, split into words for text search. */
  readonly text?: string
  /**
   * A query vector (of the node's embedder's size): with `text` in hybrid mode it replaces
   * embedding the text; alone it searches in vector mode.
   */
  readonly vector?: readonly number[] | Float32Array
  /** The id of the embedder that made `vector`: refused unless it is this node's (vectors of different models never compare). */
  readonly embedder?: string
  /** Number of results, 1..1000 (default 10). */
  readonly k?: number
  /** Exact filter on the documents, as in `find`. */
  readonly where?: Where
  /** Default 'hybrid' for text, 'vector' for a vector. */
  readonly mode?: SearchMode
  /** Hybrid weights: score = vector × cosine + text × keyword relevance (default 1 and 1). */
  readonly weights?: { readonly text?: number, readonly vector?: number }
  /**
   * Hybrid: how many of the vector list's and of the keyword list's best are ranked together,
   * k to 5,000 (default the larger of 50 and 5 × k). Fewer is faster; more finds documents
   * that rank well on both parts but high on neither.
   */
  readonly candidates?: number
  /**
   * Index the collection's pending documents first (default true); a number is a time budget
   * in ms after which the search runs on what is indexed and reports the rest as pending.
   */
  readonly drain?: boolean | number
  /** Exact vector search even where an ANN (HNSW) index exists (default false). */
  readonly exact?: boolean
  readonly signal?: AbortSignal
}

/** One result. */
export interface SearchHit {
  readonly id: string
  /** Higher is better: cosine similarity (vector), BM25 (text), cosine + keyword relevance (hybrid). */
  readonly score: number
  readonly doc: JsonObject & { _id: string }
  /** The components of a hybrid score: keyword relevance (text, BM25 over its ceiling, in [0, 1]) and cosine similarity (vector). */
  readonly scores?: { readonly text: number, readonly vector: number }
}

/** Results, in rank order, with how many documents were not indexed yet. */
export interface SearchResults extends Array<SearchHit> {
  /** Documents of the collection still waiting to be indexed (not searched). */
  pending: number
}

export const MAX_QUERY_CHARS = 8192
export const MAX_K = 1000

/** Most candidates a hybrid search ranks from each list. */
const MAX_CANDIDATES = 5000
const MODES = new Set(['vector', 'text', 'hybrid'])
/** Weight of keyword relevance in hybrid scores (cosine similarity weighs 1). */
export const HYBRID_TEXT_WEIGHT = 1

/** What search needs. */
export interface SearchContext {
  readonly storage: StorageProvider
  readonly indexer: Indexer
  readonly ann?: AnnIndexes
}

/** Validates a query (shared with swarm search): k, mode, text, and that it has something to search for. */
export function checkQuery (q: SearchQuery): { k: number, mode: SearchMode, text: string | undefined } {
  if (q === null || typeof q !== 'object') throw new InvalidQueryError('search expects a query object')
  const k = q.k ?? 10
  if (!Number.isInteger(k) || k < 1 || k > MAX_K) throw new InvalidQueryError(`"k" expected an integer in 1..${MAX_K}, got ${JSON.stringify(q.k)}`)
  if (q.mode !== undefined && !MODES.has(q.mode)) throw new InvalidQueryError(`"mode" expected vector, text or hybrid, got ${JSON.stringify(q.mode)}`)
  const text = q.text
  if (text !== undefined && typeof text !== 'string') throw new InvalidQueryError('"text" expected a string')
  if (text !== undefined && text.trim().length === 0) throw new InvalidQueryError('"text" is empty')
  if (text !== undefined && text.length > MAX_QUERY_CHARS) throw new InvalidQueryError(`"text" is ${text.length} characters, over the ${MAX_QUERY_CHARS}-character cap`)
  if (text === undefined && q.vector === undefined) throw new InvalidQueryError('search needs "text" or "vector"')
  const mode = q.mode ?? (text !== undefined ? 'hybrid' : 'vector')
  if (text === undefined && mode !== 'vector') throw new InvalidQueryError(`mode ${mode} needs "text"`)
  const c = q.candidates
  if (c !== undefined && (!Number.isInteger(c) || c < k || c > MAX_CANDIDATES)) throw new InvalidQueryError(`"candidates" expected an integer in k..${MAX_CANDIDATES} (k is ${k}), got ${JSON.stringify(c)}`)
  return { k, mode, text }
}

/** Runs a search in one collection. */
export async function search (ctx: SearchContext, collection: string, query: SearchQuery): Promise<SearchResults> {
  const { k, mode, text } = checkQuery(query)
  const filter = normaliseWhere(query.where)
  const drain = query.drain ?? true
  if (mode !== 'text') await ctx.indexer.checkModel(collection)
  let pending: number
  if (drain === false) {
    pending = await ctx.storage.indexQueueCount(collection)
  } else {
    const budget = typeof drain === 'number' ? AbortSignal.timeout(drain) : undefined
    const signal = budget === undefined ? query.signal : query.signal === undefined ? budget : AbortSignal.any([budget, query.signal])
    pending = await ctx.indexer.drain(collection, signal === undefined ? {} : { signal })
  }
  const settings = await ctx.storage.collectionSettings(collection)
  const vectorsOn = settings?.embed !== false
  if (mode === 'vector' && !vectorsOn) throw new InvalidQueryError(`collection ${collection} has embedding turned off: use mode "text", or turn it on`)
  const wide = mode === 'hybrid' ? query.candidates ?? Math.max(50, k * 5) : k
  const embedder = mode !== 'text' && vectorsOn ? await ctx.indexer.embedder() : undefined
  const given = embedder !== undefined && query.vector !== undefined ? checkVector(query, embedder) : undefined
  const terms = text === undefined ? [] : ftsTerms(text)
  // the keyword search (on a reader thread) runs while the query is embedded and the vectors searched
  const [vectorHits, textHits] = await Promise.all([
    embedder === undefined ? [] : nearest(ctx, collection, embedder, given ?? (text as string), query, wide, filter),
    mode !== 'vector' && terms.length > 0 ? ctx.storage.textSearch(collection, terms, wide, filter) : []
  ])
  let ranked: Array<{ id: string, score: number, scores?: { text: number, vector: number } }>
  if (mode === 'vector') ranked = vectorHits
  else if (mode === 'text' || !vectorsOn) ranked = textHits
  else {
    ranked = fuse(vectorHits, textHits, query.weights?.vector ?? 1, query.weights?.text ?? HYBRID_TEXT_WEIGHT)
  }
  const top = ranked.slice(0, k)
  const hits: SearchHit[] = []
  for (const r of top) {
    const stored = await ctx.storage.getDocument(collection, r.id)
    if (stored?.body == null) continue
    hits.push({ id: r.id, score: r.score, doc: { _id: r.id, ...stored.body }, ...(r.scores !== undefined ? { scores: r.scores } : {}) })
  }
  return Object.assign(hits, { pending })
}

/** A query's own vector, checked against this node's embedder. */
function checkVector (query: SearchQuery, embedder: Embedder): Float32Array {
  const v = Float32Array.from(query.vector as readonly number[])
  if (query.embedder !== undefined && query.embedder !== embedder.id) throw new InvalidQueryError(`"vector" was made by embedder ${query.embedder}; this node embeds with ${embedder.id}`)
  if (v.length !== embedder.dims) throw new InvalidQueryError(`"vector" expected ${embedder.dims} numbers (embedder ${embedder.id}), got ${v.length}`)
  if (!v.every(Number.isFinite)) throw new InvalidQueryError('"vector" must hold finite numbers')
  return v
}

/** The `wide` nearest documents to a vector, or to the text once embedded: through the ANN index where there is one, else exact. */
async function nearest (ctx: SearchContext, collection: string, embedder: Embedder, of: Float32Array | string, query: SearchQuery, wide: number, filter: Filter | undefined): Promise<Array<{ id: string, score: number }>> {
  const v = typeof of === 'string' ? (await embedder.embed([of], query.signal !== undefined ? { signal: query.signal } : {}))[0] as Float32Array : of
  const unit = normalise(v)
  const ann = query.exact === true ? undefined : await ctx.ann?.get(collection, embedder.id, embedder.dims)
  const approx = ann === undefined ? undefined : await annSearch(ctx.storage, ann, collection, unit, wide, filter)
  return (approx ?? await ctx.storage.vectorSearch(collection, embedder.id, unit, wide, filter)).map(h => ({ id: h.id, score: 1 - h.distance }))
}

/** Documents checked against a filter per query in {@link annSearch}. */
const FILTER_SLICE = 250

/**
 * Nearest documents through the in-memory indexes: the nearest chunks, their documents filtered
 * exactly in SQL, best chunk per document. The first round asks for about as many chunks as k
 * documents take in this collection (the index learns how many of its nearest chunks share a
 * document: one for short texts, more for long ones), and doubles while too few documents come
 * back, up to 4 times k chunks (40 times with a filter): the nearest passing documents among
 * the nearest chunks are the nearest passing documents, so a filter most documents pass costs
 * no more than none. Undefined when too few documents pass even then (the caller searches exactly).
 */
async function annSearch (storage: StorageProvider, ann: AnnIndex, collection: string, vector: Float32Array, k: number, filter: Filter | undefined): Promise<Array<{ id: string, distance: number }> | undefined> {
  const widest = Math.min(ann.size, k * (filter === undefined ? 4 : 40))
  // documents already checked against the filter (a wider round checks only the new ones)
  const passes = new Map<string, boolean>()
  for (let n = Math.min(widest, Math.ceil(k * ann.chunksPerDocument)); ; n = Math.min(widest, n * 2)) {
    const chunks = ann.search(vector, n)
    const docs = await storage.chunkDocs(collection, chunks.map(c => c.rid))
    let kept = chunks.filter(c => docs.has(c.rid))
    // the documents, nearest first
    const order = [...new Set(kept.map(c => docs.get(c.rid) as string))]
    if (order.length > 0) ann.observeChunksPerDocument(kept.length / order.length)
    if (filter !== undefined && kept.length > 0) {
      // nearest first, in slices, until k documents pass: the farther ones cannot be among the k nearest
      let passing = order.filter(id => passes.get(id) === true).length
      const unchecked = order.filter(id => !passes.has(id))
      for (let i = 0; i < unchecked.length && passing < k; i += FILTER_SLICE) {
        const slice = unchecked.slice(i, i + FILTER_SLICE)
        const byId = { op: 'in' as const, path: { segments: [], isId: true }, values: slice }
        const found = new Set((await storage.find(collection, { filter: { op: 'and', items: [filter, byId] }, orderBy: [], limit: undefined, offset: 0 })).map(r => r.id))
        for (const id of slice) passes.set(id, found.has(id))
        passing += found.size
      }
      kept = kept.filter(c => passes.get(docs.get(c.rid) as string) === true)
    }
    const best = new Map<string, number>()
    for (const c of kept) {
      const id = docs.get(c.rid) as string
      if (c.distance < (best.get(id) ?? Infinity)) best.set(id, c.distance)
    }
    if (best.size < k && chunks.length < ann.size) {
      if (n < widest) continue
      return undefined
    }
    return [...best].map(([id, distance]) => ({ id, distance })).sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1)).slice(0, k)
  }
}

/**
 * Hybrid scores: wv × cosine similarity + wt × keyword relevance, for every candidate of either
 * list (a document one list did not find counts 0 there). Ties by id.
 */
export function fuse (vector: ReadonlyArray<{ id: string, score: number }>, text: ReadonlyArray<{ id: string, relevance: number }>, wv: number, wt: number): Array<{ id: string, score: number, scores: { text: number, vector: number } }> {
  const parts = new Map<string, { text: number, vector: number }>()
  for (const h of vector) parts.set(h.id, { text: 0, vector: h.score })
  for (const h of text) parts.set(h.id, { text: h.relevance, vector: parts.get(h.id)?.vector ?? 0 })
  return [...parts].map(([id, p]) => ({ id, score: wv * p.vector + wt * p.text, scores: p }))
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
}
