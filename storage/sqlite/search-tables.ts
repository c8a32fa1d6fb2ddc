/**
 * The SQLite provider's search tables: the index queue, full-text rows (FTS5, keyed by
 * docs.rid), chunks and their vectors (one sqlite-vec `vec0` table per embedder, partitioned by
 * collection). Everything here runs synchronously inside the provider's guard.
 */
import type { Database as Db, Statement } from 'better-sqlite3'
import { BM25_K1, bm25Idf, isSearchIndexed as indexed, SEARCH_INDEXED_SQL, type CollectionSettings, type IndexTask, type IndexUpdate, type VectorChanges } from '../provider.js'
import type { Filter } from '../query.js'
import { compileFilter, type Sql } from './query-sql.js'

/**
 * Up to this many chunks of candidate documents, a filtered vector search runs KNN over them only;
 * above it, over the collection, widened until enough pass the filter.
 */
const EXACT_CANDIDATES = 50_000
/** sqlite-vec's largest k. */
const MAX_KNN = 4096

function vecBytes (v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
}

/** An FTS5 string literal: the word as one token, never an operator. */
export function ftsString (word: string): string {
  return `"${word.replace(/"/g, '""')}"`
}

/** Search tables of one database. */
export class SearchTables {
  private readonly settings = new Map<string, CollectionSettings>()
  private readonly vecTables = new Map<string, { name: string, dims: number }>()
  /** Rows written to the full-text table since its segments were last merged into one, and its size then. */
  private textWrites = 0
  private textRowsAtMerge = 0
  /** Index queue lengths per collection, and of the whole queue (see {@link queueCount}). */
  private readonly queued = new Map<string, number>()
  private allQueued: number | undefined
  private readonly s: Record<'enqueue' | 'queue' | 'queueOf' | 'queueCount' | 'queueCountOf' | 'dequeue' | 'chunksOf' | 'deleteChunks' | 'insertChunk' | 'ftsDelete' | 'ftsInsert' | 'docRid' | 'chunkDocs', Statement>

  constructor (private readonly db: Db) {
    for (const row of db.prepare('SELECT name, settings FROM collection_settings').all() as Array<{ name: string, settings: string }>) {
      this.settings.set(row.name, JSON.parse(row.settings) as CollectionSettings)
    }
    for (const row of db.prepare('SELECT embedder, name, dims FROM vector_tables').all() as Array<{ embedder: string, name: string, dims: number }>) {
      this.vecTables.set(row.embedder, { name: row.name, dims: row.dims })
    }
    this.s = {
      enqueue: db.prepare('INSERT INTO index_queue (collection, id) VALUES (?, ?) ON CONFLICT DO UPDATE SET ver = ver + 1 RETURNING ver').pluck(),
      queue: db.prepare('SELECT collection, id, ver FROM index_queue LIMIT ?'),
      queueOf: db.prepare('SELECT collection, id, ver FROM index_queue WHERE collection = ? LIMIT ?'),
      queueCount: db.prepare('SELECT count(*) FROM index_queue').pluck(),
      queueCountOf: db.prepare('SELECT count(*) FROM index_queue WHERE collection = ?').pluck(),
      dequeue: db.prepare('DELETE FROM index_queue WHERE collection = ? AND id = ? AND ver = ?'),
      chunksOf: db.prepare('SELECT rid, embedder, text FROM chunks WHERE collection = ? AND id = ? ORDER BY seq'),
      deleteChunks: db.prepare('DELETE FROM chunks WHERE collection = ? AND id = ?'),
      insertChunk: db.prepare('INSERT INTO chunks (collection, id, seq, embedder, text) VALUES (?, ?, ?, ?, ?)'),
      ftsDelete: db.prepare('DELETE FROM fts WHERE rowid = ?'),
      ftsInsert: db.prepare('INSERT INTO fts (rowid, text) VALUES (?, ?)'),
      docRid: db.prepare('SELECT rid FROM docs WHERE collection = ? AND id = ?').pluck(),
      // CROSS JOIN: one rowid lookup per chunk (with IN, SQLite walks the collection's chunks instead)
      chunkDocs: db.prepare('SELECT c.rid AS rid, c.id AS id FROM json_each(?) j CROSS JOIN chunks c ON c.rid = j.value WHERE c.collection = ?')
    }
  }

  /** Called for every document change a commit makes. */
  changed (collection: string, id: string): void {
    // ver 1: a new queue entry
    if (indexed(collection) && this.s.enqueue.get(collection, id) === 1) this.countQueued(collection, 1)
  }

  private countQueued (collection: string, by: number): void {
    const n = this.queued.get(collection)
    if (n !== undefined) this.queued.set(collection, n + by)
    if (this.allQueued !== undefined) this.allQueued += by
  }

  /**
   * Forgets the queue lengths kept in memory; they are counted again when next asked. Called
   * after anything that may have changed the queue without counting (a rolled-back transaction).
   */
  forgetQueueCounts (): void {
    this.queued.clear()
    this.allQueued = undefined
  }

  getSettings (name: string): CollectionSettings | undefined {
    return this.settings.get(name)
  }

  setSettings (name: string, settings: CollectionSettings | undefined): void {
    if (settings === undefined) {
      this.db.prepare('DELETE FROM collection_settings WHERE name = ?').run(name)
      this.settings.delete(name)
    } else {
      this.db.prepare('INSERT INTO collection_settings (name, settings) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET settings = excluded.settings').run(name, JSON.stringify(settings))
      this.settings.set(name, settings)
    }
  }

  queue (limit: number, collection?: string): IndexTask[] {
    return (collection === undefined ? this.s.queue.all(limit) : this.s.queueOf.all(collection, limit)) as IndexTask[]
  }

  /**
   * The queue's length (of one collection, or all): counted once, then kept by the writes of this
   * connection, the only one that writes the queue (an indexer asking after every batch made
   * indexing quadratic in the queue's length: 15 s of counting for 100,000 documents).
   */
  queueCount (collection?: string): number {
    if (collection === undefined) return this.allQueued ??= this.s.queueCount.get() as number
    let n = this.queued.get(collection)
    if (n === undefined) this.queued.set(collection, n = this.s.queueCountOf.get(collection) as number)
    return n
  }

  requeue (collection: string): number {
    this.forgetQueueCounts()
    return this.db.prepare('INSERT INTO index_queue (collection, id) SELECT collection, id FROM docs WHERE collection = ? AND body IS NOT NULL ON CONFLICT DO UPDATE SET ver = ver + 1').run(collection).changes
  }

  chunksOf (collection: string, id: string): Array<{ text: string, embedder: string }> {
    return (this.s.chunksOf.all(collection, id) as Array<{ embedder: string, text: string }>).map(r => ({ text: r.text, embedder: r.embedder }))
  }

  embeddersOf (collection: string): string[] {
    return (this.db.prepare('SELECT DISTINCT embedder FROM chunks WHERE collection = ?').pluck().all(collection) as string[])
  }

  private vecTable (embedder: { id: string, dims: number }): string {
    const known = this.vecTables.get(embedder.id)
    if (known !== undefined) {
      if (known.dims !== embedder.dims) throw new Error(`embedder ${embedder.id} changed dimensions (${known.dims} -> ${embedder.dims}); give it a new id`)
      return known.name
    }
    const name = `vec_${this.vecTables.size + 1}`
    this.db.exec(`CREATE VIRTUAL TABLE ${name} USING vec0(embedding float[${embedder.dims}] distance_metric=cosine, collection text partition key)`)
    this.db.prepare('INSERT INTO vector_tables (embedder, name, dims) VALUES (?, ?, ?)').run(embedder.id, name, embedder.dims)
    this.vecTables.set(embedder.id, { name, dims: embedder.dims })
    return name
  }

  /** Drops every search index and queues every live document again (after a rebuild). */
  resetAll (): void {
    this.forgetQueueCounts()
    this.db.exec('DELETE FROM fts; DELETE FROM chunks')
    for (const t of this.vecTables.values()) this.db.exec(`DELETE FROM ${t.name}`)
    this.db.exec(`INSERT INTO index_queue (collection, id) SELECT collection, id FROM docs WHERE body IS NOT NULL AND ${SEARCH_INDEXED_SQL} ON CONFLICT DO UPDATE SET ver = ver + 1`)
  }

  /** Applies index updates (inside the caller's transaction). */
  apply (updates: readonly IndexUpdate[]): VectorChanges {
    const added: Array<{ rid: number, collection: string, embedder: string, vector: Float32Array }> = []
    const removed: Array<{ rid: number, collection: string, embedder: string }> = []
    for (const u of updates) {
      const docRid = this.s.docRid.get(u.collection, u.id) as number | undefined
      if (docRid !== undefined) {
        this.s.ftsDelete.run(docRid)
        if (u.text !== undefined && u.text.length > 0) this.s.ftsInsert.run(docRid, u.text)
        this.textWrites++
      }
      if (u.chunks === undefined) {
        this.dequeue(u)
        continue
      }
      for (const old of this.s.chunksOf.all(u.collection, u.id) as Array<{ rid: number, embedder: string }>) {
        const table = this.vecTables.get(old.embedder)
        if (table !== undefined) this.db.prepare(`DELETE FROM ${table.name} WHERE rowid = ?`).run(BigInt(old.rid))
        removed.push({ rid: old.rid, collection: u.collection, embedder: old.embedder })
      }
      this.s.deleteChunks.run(u.collection, u.id)
      if (u.chunks.length > 0) {
        if (u.embedder === undefined) throw new Error('index update with chunks needs its embedder')
        const table = this.vecTable(u.embedder)
        const insertVec = this.db.prepare(`INSERT INTO ${table} (rowid, embedding, collection) VALUES (?, ?, ?)`)
        u.chunks.forEach((c, seq) => {
          const embedderId = (u.embedder as { id: string }).id
          const rid = this.s.insertChunk.run(u.collection, u.id, seq, embedderId, c.text).lastInsertRowid
          insertVec.run(BigInt(rid), vecBytes(c.vector), u.collection)
          added.push({ rid: Number(rid), collection: u.collection, embedder: embedderId, vector: c.vector })
        })
      }
      this.dequeue(u)
    }
    return { added, removed }
  }

  /**
   * Merges the full-text index into one segment once the index queue is empty, after at least
   * {@link TEXT_MERGE_AFTER} writes and a tenth of the table's rows (so the merge, whose cost
   * follows the table's size, stays a small share of indexing). Indexing in batches leaves FTS5
   * with segments on several levels, and every lookup of a word then seeks in each: measured at
   * 100,000 memories, checking 400 candidates for a common word took 40-80 ms before the merge
   * and 2.5 ms after it (the merge took 24-42 ms).
   */
  mergeTextIndexWhenIdle (): void {
    if (this.textWrites < Math.max(TEXT_MERGE_AFTER, this.textRowsAtMerge / 10) || this.queueCount() > 0) return
    this.db.prepare("INSERT INTO fts (fts) VALUES ('optimize')").run()
    this.textWrites = 0
    this.textRowsAtMerge = this.db.prepare('SELECT count(*) FROM fts_docsize').pluck().get() as number
  }

  private dequeue (u: { collection: string, id: string, ver: number }): void {
    if (this.s.dequeue.run(u.collection, u.id, u.ver).changes > 0) this.countQueued(u.collection, -1)
  }

  chunkStats (collection: string, embedder: string): { count: number, maxRid: number, sumRid: number } {
    const r = this.db.prepare('SELECT count(*) AS count, coalesce(max(rid), 0) AS maxRid, coalesce(sum(rid), 0) AS sumRid FROM chunks WHERE collection = ? AND embedder = ?').get(collection, embedder) as { count: number, maxRid: number, sumRid: number }
    return r
  }

  /** The sqlite-vec table holding an embedder's vectors, if it has any. */
  vectorTable (embedder: string): string | undefined {
    return this.vecTables.get(embedder)?.name
  }

  vectorsOf (collection: string, embedder: string, after: number, limit: number): Array<{ rid: number, id: string, vector: Float32Array }> {
    const table = this.vecTables.get(embedder)
    if (table === undefined) return []
    const chunks = this.db.prepare('SELECT rid, id FROM chunks WHERE collection = ? AND embedder = ? AND rid > ? ORDER BY rid LIMIT ?').all(collection, embedder, after, limit) as Array<{ rid: number, id: string }>
    if (chunks.length === 0) return []
    const vectors = this.chunkVectors(embedder, chunks.map(c => c.rid))
    return chunks.filter(c => vectors.has(c.rid)).map(c => ({ rid: c.rid, id: c.id, vector: vectors.get(c.rid) as Float32Array }))
  }

  chunkVectors (embedder: string, rids: readonly number[]): Map<number, Float32Array> {
    const table = this.vecTables.get(embedder)
    const out = new Map<number, Float32Array>()
    if (table === undefined) return out
    // point lookups: sqlite-vec answers `rowid IN (...)` by scanning the table
    const get = this.db.prepare(`SELECT embedding FROM ${table.name} WHERE rowid = ?`).pluck()
    for (const rid of rids) {
      const e = get.get(rid) as Buffer | undefined
      if (e !== undefined) out.set(rid, new Float32Array(e.buffer.slice(e.byteOffset, e.byteOffset + e.byteLength)))
    }
    return out
  }

  chunkDocs (collection: string, rids: readonly number[]): Map<number, string> {
    const out = new Map<number, string>()
    // one prepared statement, the rids as one JSON parameter: preparing a statement with a few
    // hundred placeholders on every search cost more than the lookups
    for (const row of this.s.chunkDocs.all(JSON.stringify(rids), collection) as Array<{ rid: number, id: string }>) out.set(row.rid, row.id)
    return out
  }

  /** Removes a collection's queue, settings, words, chunks and vectors (inside the caller's transaction). */
  dropCollection (collection: string): void {
    this.db.prepare('DELETE FROM fts WHERE rowid IN (SELECT rid FROM docs WHERE collection = ?)').run(collection)
    for (const t of this.vecTables.values()) this.db.prepare(`DELETE FROM ${t.name} WHERE rowid IN (SELECT rid FROM chunks WHERE collection = ?)`).run(collection)
    this.db.prepare('DELETE FROM chunks WHERE collection = ?').run(collection)
    this.db.prepare('DELETE FROM index_queue WHERE collection = ?').run(collection)
    this.forgetQueueCounts()
    this.setSettings(collection, undefined)
  }
}

/** Full-text writes after which an idle index merges its segments (see {@link SearchTables.mergeTextIndexWhenIdle}). */
const TEXT_MERGE_AFTER = 1000

/**
 * Per query word, how many rows of the full-text table hold it, with FTS5's averages record
 * (its row count first): what FTS5's own BM25 takes its IDF from. One row per word.
 */
export const TEXT_TERM_COUNTS_SQL = 'SELECT (SELECT count(*) FROM fts WHERE fts MATCH j.value) AS n, (SELECT block FROM fts_data WHERE id = 1) AS avg FROM json_each(?) j ORDER BY j.key'

/** A row of {@link TEXT_TERM_COUNTS_SQL}: rows holding one query word, and FTS5's averages record. */
export interface TermCount {
  readonly n: number
  readonly avg: Uint8Array | null
}

/**
 * The most BM25 any row could score for the words counted by {@link TEXT_TERM_COUNTS_SQL}:
 * the sum of their IDF x (k1 + 1), with FTS5's row count and IDF.
 */
export function textScoreCeiling (counts: readonly TermCount[]): number {
  const block = counts[0]?.avg
  if (block == null) return 0
  const { rows } = textAverages(block)
  return counts.reduce((sum, c) => sum + bm25Idf(rows, c.n) * (BM25_K1 + 1), 0)
}

/** FTS5's averages record: rows in the full-text table, and words in them all. */
export function textAverages (block: Uint8Array): { rows: number, words: number } {
  const [rows, words] = varints(block, 2)
  return { rows: rows ?? 0, words: words ?? 0 }
}

/** The first `count` SQLite varints of `b` (big-endian, 7 bits a byte while the top bit is set, the ninth byte whole). */
function varints (b: Uint8Array, count: number): number[] {
  const out: number[] = []
  let at = 0
  while (out.length < count && at < b.length) {
    let v = 0
    for (let i = 0; i < 9 && at < b.length; i++) {
      const x = b[at++] as number
      if (i === 8) { v = v * 256 + x; break }
      v = v * 128 + (x & 0x7f)
      if ((x & 0x80) === 0) break
    }
    out.push(v)
  }
  return out
}

/** The FTS5 query of a keyword search: any of the words. */
export function ftsMatch (terms: readonly string[]): string {
  return terms.map(ftsString).join(' OR ')
}

/**
 * Keyword search (BM25) of one collection's documents for an FTS5 query (e.g. {@link ftsMatch});
 * lower `s` is better. With `top`, among the best `top` matches of the whole table only (`n`: how
 * many matches that was), which the caller widens until it has k.
 */
export function textSearchSql (collection: string, match: string, k: number, filter: Filter | undefined, top?: number): Sql {
  if (top !== undefined) {
    // the best `top` matches of the whole table first, then only those joined and filtered: a
    // filter reads each document's JSON, which over every match of a common word is most of the cost.
    // CROSS JOIN keeps them the outer loop (else SQLite may walk the collection and probe them)
    const params: unknown[] = [match, top, collection]
    const where = compileFilter(filter, params)
    params.push(k)
    return { text: `WITH best AS MATERIALIZED (SELECT rowid AS rid, bm25(fts) AS s FROM fts WHERE fts MATCH ? ORDER BY s LIMIT ?) SELECT d.id AS id, best.s AS s, (SELECT count(*) FROM best) AS n FROM best CROSS JOIN docs d ON d.rid = best.rid WHERE d.collection = ? AND d.body IS NOT NULL AND ${where} ORDER BY s LIMIT ?`, params }
  }
  const params: unknown[] = [match, collection]
  const where = compileFilter(filter, params)
  params.push(k)
  return { text: `SELECT d.id AS id, bm25(fts) AS s FROM fts JOIN docs d ON d.rid = fts.rowid WHERE fts MATCH ? AND d.collection = ? AND d.body IS NOT NULL AND ${where} ORDER BY s LIMIT ?`, params }
}

/** An exact nearest-documents search on one sqlite-vec table (see {@link exactVectorSearch}). */
export interface VectorQuery {
  readonly table: string
  readonly collection: string
  readonly embedder: string
  readonly vector: Float32Array
  readonly k: number
  readonly filter: Filter | undefined
}

/**
 * Exact nearest documents to a vector by their best chunk, among those matching the filter. Runs
 * on any connection to the database (the provider's, or a reader thread's) through `prepare`;
 * the caller gives it one read transaction, so that its statements see one snapshot.
 */
export function exactVectorSearch (prepare: (sql: string) => Statement, q: VectorQuery): Array<{ id: string, distance: number }> {
  const { table, collection, embedder, vector, k, filter } = q
  if (filter !== undefined) {
    const candidates = candidateChunks(prepare, collection, embedder, filter, EXACT_CANDIDATES + 1)
    if (candidates.length === 0) return []
    if (candidates.length <= EXACT_CANDIDATES) return scoreCandidates(prepare, table, collection, vector, k, candidates)
  }
  // KNN over the collection's partition, widened until k documents pass the filter
  const params: unknown[] = []
  const where = compileFilter(filter, params)
  const sql = `WITH knn AS (SELECT rowid, distance FROM ${table} WHERE embedding MATCH ? AND k = ? AND collection = ?)
    SELECT c.id AS id, min(knn.distance) AS distance FROM knn JOIN chunks c ON c.rid = knn.rowid
    JOIN docs ON docs.collection = c.collection AND docs.id = c.id
    WHERE docs.body IS NOT NULL AND ${where} GROUP BY c.id ORDER BY distance LIMIT ?`
  const stmt = prepare(sql)
  for (let kk = Math.min(MAX_KNN, k * (filter === undefined ? 4 : 40)); ; kk = Math.min(MAX_KNN, kk * 4)) {
    const rows = stmt.all(vecBytes(vector), kk, collection, ...params, k) as Array<{ id: string, distance: number }>
    if (rows.length >= k || kk >= MAX_KNN) {
      if (rows.length >= k || filter === undefined) return rows
      // a filter that keeps few of the nearest 4096 chunks: score its candidates directly
      return scoreCandidates(prepare, table, collection, vector, k, candidateChunks(prepare, collection, embedder, filter, Number.MAX_SAFE_INTEGER))
    }
    const total = prepare('SELECT count(*) FROM chunks WHERE collection = ? AND embedder = ?').pluck().get(collection, embedder) as number
    if (kk >= total) return rows
  }
}

/** The chunks (row id, document id) of the documents matching a filter, at most `limit`. */
function candidateChunks (prepare: (sql: string) => Statement, collection: string, embedder: string, filter: Filter, limit: number): Array<{ rid: number, id: string }> {
  const params: unknown[] = [collection, embedder]
  const where = compileFilter(filter, params)
  return prepare(`SELECT c.rid AS rid, c.id AS id FROM chunks c JOIN docs ON docs.collection = c.collection AND docs.id = c.id WHERE c.collection = ? AND c.embedder = ? AND docs.body IS NOT NULL AND ${where} LIMIT ?`).all(...params, limit) as Array<{ rid: number, id: string }>
}

/**
 * Exact nearest documents among those matching a filter: KNN restricted to the chunks of the
 * matching documents (sqlite-vec takes a rowid set; reading the vectors out row by row is
 * ten times slower), widened until k documents are found.
 */
function scoreCandidates (prepare: (sql: string) => Statement, table: string, collection: string, vector: Float32Array, k: number, chunks: ReadonlyArray<{ rid: number, id: string }>): Array<{ id: string, distance: number }> {
  if (chunks.length === 0) return []
  const byRid = new Map(chunks.map(c => [c.rid, c.id]))
  const rids = JSON.stringify(chunks.map(c => c.rid))
  const knn = prepare(`SELECT rowid, distance FROM ${table} WHERE embedding MATCH ? AND k = ? AND collection = ? AND rowid IN (SELECT value FROM json_each(?))`)
  for (let kk = Math.min(chunks.length, k * 4); ; kk = Math.min(chunks.length, kk * 4)) {
    const best = new Map<string, number>()
    for (const row of knn.all(vecBytes(vector), kk, collection, rids) as Array<{ rowid: number, distance: number }>) {
      const id = byRid.get(Number(row.rowid)) as string
      if (row.distance < (best.get(id) ?? Infinity)) best.set(id, row.distance)
    }
    if (best.size >= k || kk >= chunks.length) {
      return [...best].map(([id, distance]) => ({ id, distance })).sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1)).slice(0, k)
    }
  }
}
