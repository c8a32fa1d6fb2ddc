/**
 * In-memory vector indexes for large collections, two per collection and embedder:
 *
 * - an HNSW graph (usearch), about 1 ms per query where the vectors have structure (real
 *   embeddings do);
 * - a flat copy quantised to int8 (a quarter of the float32 bytes), scanned with SIMD in about
 *   5 ms per 100,000 vectors of 512 dimensions, candidates re-ranked against the float32 query.
 *
 * After a build, a self-check queries the graph with a sample of the stored vectors and compares
 * with the flat scan; where the graph finds fewer than {@link MIN_RECALL} of the true neighbours
 * (isotropic, structureless vectors defeat HNSW), searches use the flat scan instead.
 *
 * SQLite stays the source of truth: the indexes are built from the stored vectors, follow every
 * index update in memory, are saved next to the database on close and reloaded only when their
 * recorded chunk statistics (count, largest and sum of row ids) still match the database;
 * otherwise they are rebuilt in the background while searches use sqlite-vec's exact search.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import type { exactSearch as UsearchExactSearch, Index as UsearchIndex, MetricKind as UsearchMetric, ScalarKind as UsearchScalar } from 'usearch'
import type { StorageProvider, VectorChanges } from '../../storage/index.js'
import { writeFileAtomic } from '../../identity/index.js'
import { createLogger } from '../logger.js'

const logger = createLogger('ann')
// usearch's ES module build cannot find its native binary from an ES module graph (it recurses
// to the file system root); its CommonJS build can
const usearch = createRequire(import.meta.url)('usearch') as { Index: typeof UsearchIndex, MetricKind: typeof UsearchMetric, ScalarKind: typeof UsearchScalar, exactSearch: typeof UsearchExactSearch }
// one thread: usearch starts its threads per call, which costs more than the second core saves (measured)
const SCAN_THREADS = 1

/** Collections with fewer chunks than this are searched exactly (fast enough). */
export const ANN_MIN_CHUNKS = 5_000
/** HNSW parameters: connectivity 16, expansion 128 (add) / 96 (search), cosine. */
export const ANN_PARAMS = { connectivity: 16, expansionAdd: 128, expansionSearch: 96 } as const

/** Below this share of true neighbours found by the graph (self-check), searches scan instead. */
export const MIN_RECALL = 0.9

interface Meta { collection: string, embedder: string, dims: number, count: number, maxRid: number, sumRid: number, recall?: number }

/** Unit vectors quantised to int8 (per-vector scale: cosine ignores it), scanned exhaustively. */
export class FlatIndex {
  private data: Int8Array
  private rids: number[] = []
  private readonly slots = new Map<number, number>()

  constructor (readonly dims: number, capacity = 1024) {
    this.data = new Int8Array(dims * capacity)
  }

  get size (): number {
    return this.rids.length
  }

  static quantise (v: Float32Array, out: Int8Array, at = 0): Int8Array {
    let max = 0
    for (let i = 0; i < v.length; i++) max = Math.max(max, Math.abs(v[i] as number))
    const f = max > 0 ? 127 / max : 0
    for (let i = 0; i < v.length; i++) out[at + i] = Math.round((v[i] as number) * f)
    return out
  }

  add (rids: readonly number[], vectors: readonly Float32Array[]): void {
    rids.forEach((rid, i) => {
      let slot = this.slots.get(rid)
      if (slot === undefined) {
        slot = this.rids.length
        if ((slot + 1) * this.dims > this.data.length) {
          const grown = new Int8Array(this.data.length * 2)
          grown.set(this.data)
          this.data = grown
        }
        this.rids.push(rid)
        this.slots.set(rid, slot)
      }
      FlatIndex.quantise(vectors[i] as Float32Array, this.data, slot * this.dims)
    })
  }

  remove (rids: readonly number[]): void {
    for (const rid of rids) {
      const slot = this.slots.get(rid)
      if (slot === undefined) continue
      const last = this.rids.length - 1
      if (slot !== last) {
        const moved = this.rids[last] as number
        this.data.copyWithin(slot * this.dims, last * this.dims, (last + 1) * this.dims)
        this.rids[slot] = moved
        this.slots.set(moved, slot)
      }
      this.rids.pop()
      this.slots.delete(rid)
    }
  }

  /**
   * The `k` nearest: a SIMD scan of the int8 vectors against the quantised query for 4k
   * candidates, re-ranked against the float32 query (which removes the query's rounding).
   */
  search (vector: Float32Array, k: number): Array<{ rid: number, distance: number }> {
    const n = this.rids.length
    if (n === 0) return []
    const q = FlatIndex.quantise(vector, new Int8Array(this.dims))
    const m = usearch.exactSearch(this.data.subarray(0, n * this.dims), q, this.dims, Math.min(Math.max(4 * k, 40), n), 'cos' as UsearchMetric, SCAN_THREADS) as { keys: BigUint64Array }
    const out: Array<{ rid: number, distance: number }> = []
    for (const key of m.keys) {
      const rid = this.rids[Number(key)] as number
      out.push({ rid, distance: this.distance(rid, vector) })
    }
    return out.sort((a, b) => a.distance - b.distance).slice(0, k)
  }

  /** Cosine distance between a stored (quantised) vector and `v`; Infinity when absent. */
  distance (rid: number, v: Float32Array): number {
    const slot = this.slots.get(rid)
    if (slot === undefined) return Infinity
    let dot = 0
    let norm = 0
    for (let i = 0, o = slot * this.dims; i < this.dims; i++, o++) {
      const x = this.data[o] as number
      dot += x * (v[i] as number)
      norm += x * x
    }
    return norm === 0 ? 1 : 1 - dot / Math.sqrt(norm)
  }

  /** A stored vector, dequantised (for self-checks). */
  vectorAt (slot: number): Float32Array {
    return Float32Array.from(this.data.subarray(slot * this.dims, (slot + 1) * this.dims), x => x / 127)
  }

  serialise (): Buffer {
    const n = this.rids.length
    const out = Buffer.alloc(n * 8 + n * this.dims)
    Buffer.from(Float64Array.from(this.rids).buffer).copy(out, 0)
    Buffer.from(this.data.buffer, this.data.byteOffset, n * this.dims).copy(out, n * 8)
    return out
  }

  static deserialise (bytes: Buffer, dims: number, count: number): FlatIndex {
    if (bytes.length !== count * (8 + dims)) throw new Error(`flat index file holds ${bytes.length} bytes, expected ${count * (8 + dims)}`)
    const f = new FlatIndex(dims, Math.max(1024, count))
    const rids = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + count * 8))
    f.rids = Array.from(rids)
    f.rids.forEach((rid, slot) => f.slots.set(rid, slot))
    f.data.set(new Int8Array(bytes.buffer, bytes.byteOffset + count * 8, count * dims))
    return f
  }
}

/** The indexes of the chunks of a collection for one embedder: HNSW graph and flat scan. */
export class AnnIndex {
  private readonly index: UsearchIndex
  private readonly flat: FlatIndex
  private count = 0
  /** Share of true neighbours the graph found in the self-check (undefined until checked). */
  recall: number | undefined
  /** Below this self-checked recall, searches scan the flat index. */
  minRecall = MIN_RECALL
  /** Nearest chunks per document seen by recent searches (undefined until one reports). */
  private spread: number | undefined

  constructor (readonly dims: number, flat?: FlatIndex, expansionSearch: number = ANN_PARAMS.expansionSearch) {
    this.index = new usearch.Index({ metric: usearch.MetricKind.Cos, quantization: usearch.ScalarKind.F32, multi: false, connectivity: ANN_PARAMS.connectivity, dimensions: dims, expansion_add: ANN_PARAMS.expansionAdd, expansion_search: expansionSearch })
    this.flat = flat ?? new FlatIndex(dims)
  }

  /** Adds vectors (row id keys; unit-length vectors). */
  add (rids: readonly number[], vectors: readonly Float32Array[]): void {
    if (rids.length === 0) return
    const flat = new Float32Array(rids.length * this.dims)
    vectors.forEach((v, i) => flat.set(v, i * this.dims))
    this.index.add(BigUint64Array.from(rids.map(r => BigInt(r))), flat, 0)
    this.flat.add(rids, vectors)
    this.count += rids.length
  }

  remove (rids: readonly number[]): void {
    if (rids.length === 0) return
    const removed = this.index.remove(BigUint64Array.from(rids.map(r => BigInt(r))))
    this.flat.remove(rids)
    this.count -= (Array.isArray(removed) ? removed.reduce((a, b) => a + b, 0) : removed)
  }

  /** Whether searches scan the flat index (the graph failed its self-check). */
  get scans (): boolean {
    return this.recall !== undefined && this.recall < this.minRecall
  }

  /**
   * The `k` nearest chunks: row id and cosine distance. From the graph, or from the flat scan
   * (then the distances are from the int8 vectors: within about 0.002 of the float32 ones).
   */
  search (vector: Float32Array, k: number): Array<{ rid: number, distance: number }> {
    if (this.count === 0) return []
    return this.scans ? this.flat.search(vector, k) : this.graphSearch(vector, k)
  }

  private graphSearch (vector: Float32Array, k: number): Array<{ rid: number, distance: number }> {
    const m = this.index.search(vector, Math.min(k, this.count), 0)
    const out: Array<{ rid: number, distance: number }> = []
    for (let i = 0; i < m.keys.length; i++) out.push({ rid: Number(m.keys[i]), distance: m.distances[i] as number })
    return out
  }

  /**
   * Self-check: top-10 of the graph against the flat scan for up to `samples` stored vectors
   * (spread over the index): the share of the graph's results that are as near as the scan's
   * tenth (both measured on the quantised vectors, so that ties count as found).
   */
  async check (samples = 32): Promise<number> {
    const n = this.flat.size
    if (n === 0) return 1
    let found = 0
    let total = 0
    for (let i = 0; i < Math.min(samples, n); i++) {
      const q = this.flat.vectorAt(Math.floor((i + 0.5) * n / Math.min(samples, n)))
      const want = this.flat.search(q, 10)
      const bar = Math.max(...want.map(h => this.flat.distance(h.rid, q))) + 1e-6
      found += this.graphSearch(q, want.length).filter(h => this.flat.distance(h.rid, q) <= bar).length
      total += want.length
      await new Promise(resolve => setImmediate(resolve))
    }
    this.recall = total === 0 ? 1 : found / total
    return this.recall
  }

  get size (): number {
    return this.count
  }

  /**
   * How many chunks to ask for per document wanted: the nearest chunks per distinct document
   * recent searches found, with a quarter more as margin, from 1.25 (a chunk per document) to 4
   * (until a search reports, and for long texts whose nearest chunks cluster in few documents).
   */
  get chunksPerDocument (): number {
    return this.spread === undefined ? 4 : Math.min(4, Math.max(1, this.spread) * 1.25)
  }

  /** Reports what a search found: `ratio` nearest chunks per distinct document among them. */
  observeChunksPerDocument (ratio: number): void {
    this.spread = this.spread === undefined ? ratio : 0.8 * this.spread + 0.2 * ratio
  }

  save (path: string): void {
    this.index.save(path)
    writeFileAtomic(`${path}.flat`, this.flat.serialise(), 0o600)
  }

  static load (path: string, dims: number, count: number, recall: number | undefined): AnnIndex {
    const a = new AnnIndex(dims, FlatIndex.deserialise(readFileSync(`${path}.flat`), dims, count))
    a.index.load(path)
    a.count = count
    a.recall = recall
    return a
  }
}

/** The ANN indexes of a node: built when a collection is large enough, kept in step with updates. */
export class AnnIndexes {
  private readonly ready = new Map<string, AnnIndex>()
  private readonly building = new Map<string, { promise: Promise<void>, pending: VectorChanges[] }>()
  private readonly meta = new Map<string, Meta>()
  private readonly source = new Map<string, 'built' | 'loaded'>()
  /** Collections (`collection\0embedder`) below the size threshold: not counted again until vectors are added. */
  private readonly small = new Set<string>()
  private closed = false

  constructor (private readonly storage: StorageProvider, private readonly dir: string, private readonly minChunks = ANN_MIN_CHUNKS, private readonly minRecall = MIN_RECALL) {}

  private key (collection: string, embedder: string): string {
    return createHash('sha256').update(`${collection}\0${embedder}`).digest('hex').slice(0, 16)
  }

  /**
   * The ready index of a collection, or undefined (then search exactly). Starts loading or
   * building one when the collection has enough chunks.
   */
  async get (collection: string, embedder: string, dims: number): Promise<AnnIndex | undefined> {
    const key = this.key(collection, embedder)
    const index = this.ready.get(key)
    if (index !== undefined || this.building.has(key) || this.small.has(`${collection}\0${embedder}`) || this.closed) return index
    const stats = await this.storage.chunkStats(collection, embedder)
    if (stats.count < this.minChunks) {
      this.small.add(`${collection}\0${embedder}`)
      return undefined
    }
    const file = join(this.dir, `${key}.usearch`)
    const metaFile = join(this.dir, `${key}.json`)
    if (existsSync(file) && existsSync(metaFile)) {
      try {
        const m = JSON.parse(readFileSync(metaFile, 'utf8')) as Meta
        if (m.dims === dims && m.count === stats.count && m.maxRid === stats.maxRid && m.sumRid === stats.sumRid) {
          const loaded = AnnIndex.load(file, dims, m.count, m.recall)
          loaded.minRecall = this.minRecall
          this.ready.set(key, loaded)
          this.meta.set(key, { ...m, collection, embedder })
          this.source.set(key, 'loaded')
          return loaded
        }
      } catch (err) {
        logger.warn('ignoring an unreadable ANN index file; rebuilding', { file, error: (err as Error).message })
      }
      for (const f of [file, `${file}.flat`, metaFile]) rmSync(f, { force: true })
    }
    this.build(key, collection, embedder, dims)
    return undefined
  }

  private build (key: string, collection: string, embedder: string, dims: number): void {
    const state = { promise: Promise.resolve(), pending: [] as VectorChanges[] }
    state.promise = (async () => {
      const started = Date.now()
      const index = new AnnIndex(dims)
      index.minRecall = this.minRecall
      for (let after = 0; !this.closed;) {
        const page = await this.storage.vectorsOf(collection, embedder, after, 2000)
        if (page.length === 0) break
        index.add(page.map(p => p.rid), page.map(p => p.vector))
        after = (page[page.length - 1] as { rid: number }).rid
        await new Promise(resolve => setImmediate(resolve))
      }
      if (this.closed) return
      // changes made while building (the pages read before them may or may not hold them)
      for (const c of state.pending) this.follow(index, collection, embedder, c)
      state.pending.length = 0
      const recall = await index.check()
      if (this.closed) return
      for (const c of state.pending) this.follow(index, collection, embedder, c)
      this.ready.set(key, index)
      this.meta.set(key, { collection, embedder, dims, count: 0, maxRid: 0, sumRid: 0 })
      this.source.set(key, 'built')
      logger.info('vector indexes built', { collection, vectors: index.size, ms: Date.now() - started, graphRecall: Math.round(recall * 1000) / 1000, search: index.scans ? 'int8 scan' : 'HNSW' })
    })().catch(err => logger.warn('ANN index build failed; searches stay exact', { collection, error: (err as Error).message }))
      .finally(() => { this.building.delete(key) })
    this.building.set(key, state)
  }

  private follow (index: AnnIndex, collection: string, embedder: string, changes: VectorChanges): void {
    index.remove(changes.removed.filter(r => r.collection === collection && r.embedder === embedder).map(r => r.rid))
    const added = changes.added.filter(a => a.collection === collection && a.embedder === embedder)
    index.remove(added.map(a => a.rid))
    index.add(added.map(a => a.rid), added.map(a => a.vector))
  }

  /**
   * Drops a collection's indexes (it moved to another provider: its chunk row ids are new);
   * they are built again from its new provider when it has enough chunks.
   */
  forget (collection: string): void {
    for (const [key, m] of [...this.meta]) {
      if (m.collection !== collection) continue
      this.ready.delete(key)
      this.meta.delete(key)
      this.source.delete(key)
      for (const f of ['usearch', 'usearch.flat', 'json']) rmSync(join(this.dir, `${key}.${f}`), { force: true })
    }
    for (const k of [...this.small]) if (k.startsWith(`${collection}\0`)) this.small.delete(k)
  }

  /** Keeps the indexes in step with index updates. */
  apply (changes: VectorChanges): void {
    if (changes.added.length === 0 && changes.removed.length === 0) return
    for (const a of changes.added) this.small.delete(`${a.collection}\0${a.embedder}`)
    for (const [key, m] of this.meta) {
      const index = this.ready.get(key)
      if (index !== undefined) this.follow(index, m.collection, m.embedder, changes)
    }
    for (const state of this.building.values()) state.pending.push(changes)
  }

  /**
   * The ready indexes: collection, embedder, vectors, whether built now or loaded from disk, the
   * graph's self-checked recall, and what searches use ('hnsw' or 'scan').
   */
  status (): Array<{ collection: string, embedder: string, vectors: number, source: 'built' | 'loaded', recall: number | undefined, search: 'hnsw' | 'scan' }> {
    return [...this.ready].map(([key, index]) => {
      const m = this.meta.get(key) as Meta
      return { collection: m.collection, embedder: m.embedder, vectors: index.size, source: this.source.get(key) ?? 'built', recall: index.recall, search: index.scans ? 'scan' : 'hnsw' }
    })
  }

  /** Waits for running builds (tests and benchmarks). */
  async settled (): Promise<void> {
    await Promise.all([...this.building.values()].map(b => b.promise))
  }

  /** Saves the ready indexes with their chunk statistics, so the next start can load them. */
  async close (): Promise<void> {
    this.closed = true
    await this.settled()
    if (this.ready.size > 0) mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    for (const [key, index] of this.ready) {
      const m = this.meta.get(key)
      if (m === undefined) continue
      try {
        const stats = await this.storage.chunkStats(m.collection, m.embedder)
        if (stats.count !== index.size) continue // out of step: let the next start rebuild
        index.save(join(this.dir, `${key}.usearch`))
        writeFileAtomic(join(this.dir, `${key}.json`), JSON.stringify({ ...m, ...stats, recall: index.recall }), 0o600)
      } catch (err) {
        logger.warn('could not save an ANN index; it will be rebuilt', { collection: m.collection, error: (err as Error).message })
      }
    }
    this.ready.clear()
  }
}
