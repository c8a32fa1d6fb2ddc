/**
 * The PostgreSQL provider's search tables: the index queue, words (a tsvector per document,
 * english stemming, GIN-indexed) and vectors (one pgvector table per embedder with an HNSW
 * cosine index). Ranking inputs match the SQLite provider's: the same candidates, keyword
 * relevance as BM25 over its ceiling, cosine distance by a document's best chunk.
 */
import type { Pool, PoolClient } from 'pg'
import { BM25_B, BM25_K1, bm25Idf, SEARCH_INDEXED_SQL, type CollectionSettings, type IndexTask, type IndexUpdate, type TextHit, type VectorChanges } from '../provider.js'
import type { Filter } from '../query.js'
import { compileFilter } from './query-sql.js'
import type { Queryable } from './plan.js'

/** Up to this many chunks in a collection, vector search is exact; above, it walks the HNSW index. */
export const EXACT_MAX_CHUNKS = 20_000
/** HNSW search breadth for the approximate path (pgvector's default is 40). */
const EF_SEARCH = 200
/**
 * Most chunks a vector search counts: past EXACT_MAX_CHUNKS it takes the HNSW path, and past
 * pgvector's hnsw.max_scan_tuples (20,000 by default) an iterative scan visits no more rows, so
 * widening the scan further finds nothing new.
 */
const COUNT_CAP = Math.max(EXACT_MAX_CHUNKS, 20_000) + 1
/** Characters of a document's text given to to_tsvector (a tsvector holds at most 1 MB). */
const MAX_TEXT = 400_000
const TS_CONFIG = "'english'"

/** A to_tsquery operand for one word: quoted, so it is never read as an operator. */
function lexeme (word: string): string {
  return `'${word.replace(/'/g, "''").replace(/\\/g, '')}'`
}

/** pgvector's text form of a vector. */
export function vectorText (v: Float32Array): string {
  return `[${Array.from(v).join(',')}]`
}

/** Documents of a collection (alias `c` holds collection and id) that are live and pass a filter. */
function liveDoc (filter: Filter | undefined, params: unknown[]): string {
  const where = compileFilter(filter, params)
  return `EXISTS (SELECT 1 FROM docs WHERE docs.collection = c.collection AND docs.id = c.id AND docs.body IS NOT NULL AND ${where})`
}

/** Search tables of one schema. */
export class PgSearch {
  private readonly settings = new Map<string, CollectionSettings>()
  private readonly vecTables = new Map<string, { name: string, dims: number }>()
  /** BM25 statistics per collection (see {@link textStatsOf}); dropped when the collection's words change. */
  private readonly textStats = new Map<string, { total: number, avgdl: number }>()

  constructor (private readonly pool: Pool) {}

  /** Loads the settings and vector tables (at open). */
  async load (): Promise<void> {
    for (const row of (await this.pool.query<{ name: string, settings: string }>('SELECT name, settings FROM collection_settings')).rows) {
      this.settings.set(row.name, JSON.parse(row.settings) as CollectionSettings)
    }
    for (const row of (await this.pool.query<{ embedder: string, name: string, dims: number }>('SELECT embedder, name, dims FROM vector_tables')).rows) {
      this.vecTables.set(row.embedder, { name: row.name, dims: row.dims })
    }
  }

  getSettings (name: string): CollectionSettings | undefined {
    return this.settings.get(name)
  }

  async setSettings (db: Queryable, name: string, settings: CollectionSettings | undefined): Promise<void> {
    if (settings === undefined) {
      await db.query('DELETE FROM collection_settings WHERE name = $1', [name])
      this.settings.delete(name)
    } else {
      await db.query('INSERT INTO collection_settings (name, settings) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET settings = excluded.settings', [name, JSON.stringify(settings)])
      this.settings.set(name, settings)
    }
  }

  async queue (limit: number, collection?: string): Promise<IndexTask[]> {
    const { rows } = collection === undefined
      ? await this.pool.query<IndexTask>('SELECT collection, id, ver FROM index_queue ORDER BY collection, id LIMIT $1', [limit])
      : await this.pool.query<IndexTask>('SELECT collection, id, ver FROM index_queue WHERE collection = $1 ORDER BY id LIMIT $2', [collection, limit])
    return rows
  }

  async queueCount (collection?: string): Promise<number> {
    const { rows } = collection === undefined
      ? await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM index_queue')
      : await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM index_queue WHERE collection = $1', [collection])
    return rows[0]?.n ?? 0
  }

  async requeue (db: Queryable, collection: string): Promise<number> {
    const r = await db.query('INSERT INTO index_queue (collection, id) SELECT collection, id FROM docs WHERE collection = $1 AND body IS NOT NULL ON CONFLICT (collection, id) DO UPDATE SET ver = index_queue.ver + 1', [collection])
    return r.rowCount ?? 0
  }

  async chunksOf (collection: string, id: string): Promise<Array<{ text: string, embedder: string }>> {
    const { rows } = await this.pool.query<{ text: string, embedder: string }>('SELECT text, embedder FROM chunks WHERE collection = $1 AND id = $2 ORDER BY seq', [collection, id])
    return rows.map(r => ({ text: r.text, embedder: r.embedder }))
  }

  async embeddersOf (collection: string): Promise<string[]> {
    return (await this.pool.query<{ embedder: string }>('SELECT DISTINCT embedder FROM chunks WHERE collection = $1 ORDER BY embedder', [collection])).rows.map(r => r.embedder)
  }

  private async vecTable (db: Queryable, embedder: { id: string, dims: number }, number: number): Promise<string> {
    const name = `vec_${number}`
    await db.query(`CREATE TABLE ${name} (rid bigint PRIMARY KEY, collection text COLLATE "C" NOT NULL, embedding vector(${embedder.dims}) NOT NULL)`)
    // vectors stay in their rows (out of line only when a row would not fit a page): from about
    // 500 dimensions a row passes the ~2 KB at which PostgreSQL moves its largest value out of
    // line (TOAST), and an exact scan fetching every vector from there took 3 times as long
    // (25,000 x 512: 65 ms against 22 ms inline)
    await db.query(`ALTER TABLE ${name} ALTER COLUMN embedding SET STORAGE MAIN`)
    await db.query(`CREATE INDEX ${name}_collection ON ${name} (collection)`)
    await db.query(`CREATE INDEX ${name}_hnsw ON ${name} USING hnsw (embedding vector_cosine_ops)`)
    await db.query('INSERT INTO vector_tables (embedder, name, dims) VALUES ($1, $2, $3)', [embedder.id, name, embedder.dims])
    return name
  }

  /** Drops every search index and queues every live document again (inside the caller's transaction). */
  async resetAll (db: Queryable): Promise<void> {
    this.textStats.clear()
    await db.query('DELETE FROM fts')
    await db.query('DELETE FROM chunks')
    for (const t of this.vecTables.values()) await db.query(`DELETE FROM ${t.name}`)
    await db.query(`INSERT INTO index_queue (collection, id) SELECT collection, id FROM docs WHERE body IS NOT NULL AND ${SEARCH_INDEXED_SQL} ON CONFLICT (collection, id) DO UPDATE SET ver = index_queue.ver + 1`)
  }

  /**
   * Applies index updates inside the caller's transaction. Vector tables made here become known
   * only through {@link committed}, once that transaction commits.
   */
  async apply (db: PoolClient, updates: readonly IndexUpdate[]): Promise<{ changes: VectorChanges, created: Map<string, { name: string, dims: number }> }> {
    const added: Array<{ rid: number, collection: string, embedder: string, vector: Float32Array }> = []
    const removed: Array<{ rid: number, collection: string, embedder: string }> = []
    const created = new Map<string, { name: string, dims: number }>()
    const tables = (): Map<string, { name: string, dims: number }> => new Map([...this.vecTables, ...created])
    for (const u of updates) {
      const rid = (await db.query<{ rid: number }>('SELECT rid FROM docs WHERE collection = $1 AND id = $2', [u.collection, u.id])).rows[0]?.rid
      if (rid !== undefined) {
        this.textStats.delete(u.collection)
        if (u.text !== undefined && u.text.length > 0) {
          await db.query(`INSERT INTO fts (rid, tsv) VALUES ($1, to_tsvector(${TS_CONFIG}, $2)) ON CONFLICT (rid) DO UPDATE SET tsv = excluded.tsv`, [rid, u.text.slice(0, MAX_TEXT)])
        } else {
          await db.query('DELETE FROM fts WHERE rid = $1', [rid])
        }
      }
      if (u.chunks !== undefined) {
        const old = await db.query<{ rid: number, embedder: string }>('DELETE FROM chunks WHERE collection = $1 AND id = $2 RETURNING rid, embedder', [u.collection, u.id])
        for (const o of old.rows.sort((a, b) => a.rid - b.rid)) {
          const table = tables().get(o.embedder)
          if (table !== undefined) await db.query(`DELETE FROM ${table.name} WHERE rid = $1`, [o.rid])
          removed.push({ rid: o.rid, collection: u.collection, embedder: o.embedder })
        }
        if (u.chunks.length > 0) {
          if (u.embedder === undefined) throw new Error('index update with chunks needs its embedder')
          const embedder = u.embedder
          let table = tables().get(embedder.id)
          if (table === undefined) {
            this.checkDims(embedder)
            table = { name: await this.vecTable(db, embedder, tables().size + 1), dims: embedder.dims }
            created.set(embedder.id, table)
          } else if (table.dims !== embedder.dims) {
            throw new Error(`embedder ${embedder.id} changed dimensions (${table.dims} -> ${embedder.dims}); give it a new id`)
          }
          const rows = await db.query<{ rid: number }>(
            'INSERT INTO chunks (collection, id, seq, embedder, text) SELECT $1, $2, s, $3, t FROM unnest($4::text[]) WITH ORDINALITY AS u (t, s) ORDER BY s RETURNING rid',
            [u.collection, u.id, embedder.id, u.chunks.map(c => c.text)])
          const rids = rows.rows.map(r => r.rid).sort((a, b) => a - b)
          await db.query(`INSERT INTO ${table.name} (rid, collection, embedding) SELECT r, $2, v::vector FROM unnest($1::bigint[], $3::text[]) AS u (r, v)`, [rids, u.collection, u.chunks.map(c => vectorText(c.vector))])
          u.chunks.forEach((c, i) => added.push({ rid: rids[i] as number, collection: u.collection, embedder: embedder.id, vector: c.vector }))
        }
      }
      await db.query('DELETE FROM index_queue WHERE collection = $1 AND id = $2 AND ver = $3', [u.collection, u.id, u.ver])
    }
    return { changes: { added, removed }, created }
  }

  private checkDims (embedder: { id: string, dims: number }): void {
    if (!Number.isInteger(embedder.dims) || embedder.dims < 1 || embedder.dims > 16_000) throw new Error(`embedder ${embedder.id} has ${embedder.dims} dimensions; pgvector takes 1..16000`)
  }

  /** Records vector tables created by a transaction that committed. */
  committed (created: ReadonlyMap<string, { name: string, dims: number }>): void {
    for (const [id, t] of created) this.vecTables.set(id, t)
  }

  async chunkStats (collection: string, embedder: string): Promise<{ count: number, maxRid: number, sumRid: number }> {
    const { rows } = await this.pool.query<{ count: number, maxRid: string, sumRid: string }>('SELECT count(*)::int AS count, coalesce(max(rid), 0) AS "maxRid", coalesce(sum(rid), 0)::text AS "sumRid" FROM chunks WHERE collection = $1 AND embedder = $2', [collection, embedder])
    const r = rows[0] as { count: number, maxRid: string | number, sumRid: string }
    return { count: r.count, maxRid: Number(r.maxRid), sumRid: Number(r.sumRid) }
  }

  /**
   * Matches ranked by ts_rank_cd; each hit's relevance is its BM25 (as FTS5 computes it: term
   * counts and length from the tsvector's positions, IDF over the collection, the average length
   * from up to 1,000 of its documents, both kept until its words change) over the most any
   * document could score.
   */
  async textSearch (collection: string, terms: readonly string[], k: number, filter: Filter | undefined): Promise<TextHit[]> {
    if (terms.length === 0) return []
    const params: unknown[] = [terms.map(lexeme).join(' | '), collection]
    const where = compileFilter(filter, params)
    params.push(k, terms.join(' '))
    // per hit: its length and each query lexeme's count, from the positions in its tsvector
    const { rows } = await this.pool.query<{ id: string, s: number, dl: number, tf: Record<string, number> }>(
      `WITH hits AS (SELECT d.id, f.tsv, ts_rank_cd(f.tsv, q, 1) AS s FROM to_tsquery(${TS_CONFIG}, $1) q, fts f JOIN docs d ON d.rid = f.rid
         WHERE f.tsv @@ q AND d.collection = $2 AND d.body IS NOT NULL AND ${where} ORDER BY s DESC, d.id LIMIT $${params.length - 1})
       SELECT id, s, (SELECT coalesce(sum(cardinality(u.positions)), 0)::int FROM unnest(tsv) u) AS dl,
              (SELECT coalesce(json_object_agg(u.lexeme, cardinality(u.positions)), '{}') FROM unnest(tsv) u WHERE u.lexeme = ANY(tsvector_to_array(to_tsvector(${TS_CONFIG}, $${params.length})))) AS tf
       FROM hits ORDER BY s DESC, id`, params)
    if (rows.length === 0) return []
    const [counts, { total, avgdl }] = await Promise.all([
      this.pool.query<{ lexeme: string, n: number }>(`
        SELECT l.lexeme, (SELECT count(*)::int FROM fts f JOIN docs d ON d.rid = f.rid WHERE d.collection = $2 AND f.tsv @@ quote_literal(l.lexeme)::tsquery) AS n
        FROM (SELECT DISTINCT u.lexeme FROM unnest(to_tsvector(${TS_CONFIG}, $1)) u) l`, [terms.join(' '), collection]),
      this.textStatsOf(collection)
    ])
    const idf = new Map(counts.rows.map(r => [r.lexeme, bm25Idf(total, r.n)]))
    const ceiling = [...idf.values()].reduce((a, x) => a + x * (BM25_K1 + 1), 0)
    return rows.map(r => {
      let bm25 = 0
      for (const [lx, tf] of Object.entries(r.tf)) {
        bm25 += (idf.get(lx) ?? 0) * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * r.dl / avgdl))
      }
      return { id: r.id, score: r.s, relevance: ceiling > 0 ? Math.min(1, bm25 / ceiling) : 0 }
    })
  }

  /** BM25's document count and mean length (in words) of a collection, counted once until its words change. */
  private async textStatsOf (collection: string): Promise<{ total: number, avgdl: number }> {
    const known = this.textStats.get(collection)
    if (known !== undefined) return known
    const { rows } = await this.pool.query<{ total: number, avgdl: number | null }>(`
      SELECT (SELECT count(*)::int FROM docs WHERE collection = $1 AND body IS NOT NULL) AS total,
             (SELECT avg(s.dl)::float8 FROM (SELECT (SELECT sum(cardinality(u.positions)) FROM unnest(f.tsv) u) AS dl FROM docs d JOIN fts f ON f.rid = d.rid WHERE d.collection = $1 LIMIT 1000) s) AS avgdl`, [collection])
    const stats = { total: Math.max(1, rows[0]?.total ?? 1), avgdl: Math.max(1, rows[0]?.avgdl ?? 1) }
    this.textStats.set(collection, stats)
    return stats
  }

  async vectorSearch (collection: string, embedder: string, vector: Float32Array, k: number, filter: Filter | undefined): Promise<Array<{ id: string, distance: number }>> {
    const table = this.vecTables.get(embedder)
    if (table === undefined) return []
    // chunks counted up to COUNT_CAP only: enough to choose the path and to end the widening
    // below, and cheap however large the collection (counting 100,000 took longer than the
    // HNSW search itself)
    const total = (await this.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT 1 FROM chunks WHERE collection = $1 AND embedder = $2 LIMIT ${COUNT_CAP}) c`, [collection, embedder])).rows[0]?.n ?? 0
    if (total === 0) return []
    const params: unknown[] = [vectorText(vector), collection]
    const live = liveDoc(filter, params)
    if (total <= EXACT_MAX_CHUNKS) {
      params.push(k)
      // distances computed in the scan: OFFSET 0 keeps the planner from merging the subquery into
      // the join, which carried every 2 KB vector through the joins and the grouping (spilling to disk)
      const { rows } = await this.pool.query<{ id: string, distance: number }>(
        `SELECT c.id, min(n.distance) AS distance FROM (SELECT rid, embedding <=> $1::vector AS distance FROM ${table.name} WHERE collection = $2 OFFSET 0) n
         JOIN chunks c ON c.rid = n.rid WHERE ${live} GROUP BY c.id ORDER BY distance, c.id LIMIT $${params.length}`, params)
      return rows
    }
    // the HNSW index, widened until k documents pass the filter (iterative scans keep going past filtered rows)
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      await client.query(`SET LOCAL hnsw.ef_search = ${EF_SEARCH}`)
      await client.query("SET LOCAL hnsw.iterative_scan = 'relaxed_order'")
      for (let kk = k * (filter === undefined ? 4 : 40); ; kk *= 4) {
        const { rows } = await client.query<{ id: string, distance: number }>(
          `SELECT c.id, min(n.distance) AS distance FROM (SELECT rid, embedding <=> $1::vector AS distance FROM ${table.name} WHERE collection = $2 ORDER BY embedding <=> $1::vector LIMIT ${kk}) n
           JOIN chunks c ON c.rid = n.rid WHERE ${live} GROUP BY c.id ORDER BY distance, c.id LIMIT ${k}`, params)
        if (rows.length >= k || kk >= total) return rows
      }
    } finally {
      await client.query('COMMIT').catch(() => undefined)
      client.release()
    }
  }

  async vectorsOf (collection: string, embedder: string, after: number, limit: number): Promise<Array<{ rid: number, id: string, vector: Float32Array }>> {
    const table = this.vecTables.get(embedder)
    if (table === undefined) return []
    const { rows } = await this.pool.query<{ rid: number, id: string, v: number[] }>(
      `SELECT c.rid, c.id, v.embedding::real[] AS v FROM chunks c JOIN ${table.name} v ON v.rid = c.rid WHERE c.collection = $1 AND c.embedder = $2 AND c.rid > $3 ORDER BY c.rid LIMIT $4`,
      [collection, embedder, after, limit])
    return rows.map(r => ({ rid: r.rid, id: r.id, vector: Float32Array.from(r.v) }))
  }

  async chunkDocs (collection: string, rids: readonly number[]): Promise<Map<number, string>> {
    const out = new Map<number, string>()
    if (rids.length === 0) return out
    for (const r of (await this.pool.query<{ rid: number, id: string }>('SELECT rid, id FROM chunks WHERE collection = $1 AND rid = ANY($2::bigint[])', [collection, rids])).rows) out.set(r.rid, r.id)
    return out
  }

  /** Removes a collection's queue, settings, words, chunks and vectors (inside the caller's transaction). */
  async dropCollection (db: Queryable, collection: string): Promise<void> {
    this.textStats.delete(collection)
    await db.query('DELETE FROM fts WHERE rid IN (SELECT rid FROM docs WHERE collection = $1)', [collection])
    for (const t of this.vecTables.values()) await db.query(`DELETE FROM ${t.name} WHERE collection = $1`, [collection])
    await db.query('DELETE FROM chunks WHERE collection = $1', [collection])
    await db.query('DELETE FROM index_queue WHERE collection = $1', [collection])
    await this.setSettings(db, collection, undefined)
  }
}
