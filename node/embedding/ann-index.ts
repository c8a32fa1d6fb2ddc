/**
 * Approximate nearest-neighbour indexes (HNSW, usearch) for large collections. SQLite stays the
 * source of truth: an index is built from the stored vectors, follows every index update in
 * memory, is saved next to the database on close and reloaded only when its recorded chunk
 * statistics (count, largest and sum of row ids) still match the database; otherwise it is
 * rebuilt in the background while searches use exact search.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import type { Index as UsearchIndex, MetricKind as UsearchMetric, ScalarKind as UsearchScalar } from 'usearch'
import type { StorageProvider, VectorChanges } from '../../storage/index.js'
import { writeFileAtomic } from '../../identity/index.js'
import { createLogger } from '../logger.js'

const logger = createLogger('ann')
// usearch's ES module build cannot find its native binary from an ES module graph (it recurses
// to the file system root); its CommonJS build can
const usearch = createRequire(import.meta.url)('usearch') as { Index: typeof UsearchIndex, MetricKind: typeof UsearchMetric, ScalarKind: typeof UsearchScalar }

/** Collections with fewer chunks than this are searched exactly (fast enough). */
export const ANN_MIN_CHUNKS = 20_000
/** HNSW parameters: connectivity 16, expansion 128 (add) / 96 (search), cosine. */
export const ANN_PARAMS = { connectivity: 16, expansionAdd: 128, expansionSearch: 96 } as const

interface Meta { collection: string, embedder: string, dims: number, count: number, maxRid: number, sumRid: number }

/** One HNSW index over the chunks of a collection for one embedder. */
export class AnnIndex {
  private readonly index: UsearchIndex
  private count = 0

  constructor (readonly dims: number, expansionSearch: number = ANN_PARAMS.expansionSearch) {
    this.index = new usearch.Index({ metric: usearch.MetricKind.Cos, quantization: usearch.ScalarKind.F32, multi: false, connectivity: ANN_PARAMS.connectivity, dimensions: dims, expansion_add: ANN_PARAMS.expansionAdd, expansion_search: expansionSearch })
  }

  /** Adds vectors (row id keys; unit-length vectors). */
  add (rids: readonly number[], vectors: readonly Float32Array[]): void {
    if (rids.length === 0) return
    const flat = new Float32Array(rids.length * this.dims)
    vectors.forEach((v, i) => flat.set(v, i * this.dims))
    this.index.add(BigUint64Array.from(rids.map(r => BigInt(r))), flat, 0)
    this.count += rids.length
  }

  remove (rids: readonly number[]): void {
    if (rids.length === 0) return
    const removed = this.index.remove(BigUint64Array.from(rids.map(r => BigInt(r))))
    this.count -= (Array.isArray(removed) ? removed.reduce((a, b) => a + b, 0) : removed)
  }

  /** The `k` nearest chunks: row id and cosine distance. */
  search (vector: Float32Array, k: number): Array<{ rid: number, distance: number }> {
    if (this.count === 0) return []
    const m = this.index.search(vector, Math.min(k, this.count), 0)
    const out: Array<{ rid: number, distance: number }> = []
    for (let i = 0; i < m.keys.length; i++) out.push({ rid: Number(m.keys[i]), distance: m.distances[i] as number })
    return out
  }

  get size (): number {
    return this.count
  }

  save (path: string): void {
    this.index.save(path)
  }

  static load (path: string, dims: number, count: number): AnnIndex {
    const a = new AnnIndex(dims)
    a.index.load(path)
    a.count = count
    return a
  }
}

/** The ANN indexes of a node: built when a collection is large enough, kept in step with updates. */
export class AnnIndexes {
  private readonly ready = new Map<string, AnnIndex>()
  private readonly building = new Map<string, { promise: Promise<void>, pending: VectorChanges[] }>()
  private readonly meta = new Map<string, Meta>()
  private readonly source = new Map<string, 'built' | 'loaded'>()
  private closed = false

  constructor (private readonly storage: StorageProvider, private readonly dir: string, private readonly minChunks = ANN_MIN_CHUNKS) {}

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
    if (index !== undefined || this.building.has(key) || this.closed) return index
    const stats = await this.storage.chunkStats(collection, embedder)
    if (stats.count < this.minChunks) return undefined
    const file = join(this.dir, `${key}.usearch`)
    const metaFile = join(this.dir, `${key}.json`)
    if (existsSync(file) && existsSync(metaFile)) {
      try {
        const m = JSON.parse(readFileSync(metaFile, 'utf8')) as Meta
        if (m.dims === dims && m.count === stats.count && m.maxRid === stats.maxRid && m.sumRid === stats.sumRid) {
          const loaded = AnnIndex.load(file, dims, m.count)
          this.ready.set(key, loaded)
          this.meta.set(key, { ...m, collection, embedder })
          this.source.set(key, 'loaded')
          return loaded
        }
      } catch (err) {
        logger.warn('ignoring an unreadable ANN index file; rebuilding', { file, error: (err as Error).message })
      }
      rmSync(file, { force: true })
      rmSync(metaFile, { force: true })
    }
    this.build(key, collection, embedder, dims)
    return undefined
  }

  private build (key: string, collection: string, embedder: string, dims: number): void {
    const state = { promise: Promise.resolve(), pending: [] as VectorChanges[] }
    state.promise = (async () => {
      const started = Date.now()
      const index = new AnnIndex(dims)
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
      this.ready.set(key, index)
      this.meta.set(key, { collection, embedder, dims, count: 0, maxRid: 0, sumRid: 0 })
      this.source.set(key, 'built')
      logger.info('ANN index built', { collection, vectors: index.size, ms: Date.now() - started })
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

  /** Keeps the indexes in step with index updates. */
  apply (changes: VectorChanges): void {
    if (changes.added.length === 0 && changes.removed.length === 0) return
    for (const [key, m] of this.meta) {
      const index = this.ready.get(key)
      if (index !== undefined) this.follow(index, m.collection, m.embedder, changes)
    }
    for (const state of this.building.values()) state.pending.push(changes)
  }

  /** The ready indexes: collection, embedder, vectors, and whether built now or loaded from disk. */
  status (): Array<{ collection: string, embedder: string, vectors: number, source: 'built' | 'loaded' }> {
    return [...this.ready].map(([key, index]) => {
      const m = this.meta.get(key) as Meta
      return { collection: m.collection, embedder: m.embedder, vectors: index.size, source: this.source.get(key) ?? 'built' }
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
        writeFileAtomic(join(this.dir, `${key}.json`), JSON.stringify({ ...m, ...stats }), 0o600)
      } catch (err) {
        logger.warn('could not save an ANN index; it will be rebuilt', { collection: m.collection, error: (err as Error).message })
      }
    }
    this.ready.clear()
  }
}
