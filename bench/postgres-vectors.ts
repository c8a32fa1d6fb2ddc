/**
 * pgvector in the PostgreSQL provider's own tables: N documents `{ body: "v<i>", bucket }`
 * committed through the provider, one 512-d chunk vector each; the provider makes the vector
 * table (its first index update), the rest is bulk-loaded into that table and its HNSW index is
 * built afterwards with the provider's definition (what a load followed by the index costs,
 * timed). Then top-10 searches: the provider's `vectorSearch` (the HNSW path above
 * EXACT_MAX_CHUNKS chunks, at its ef_search), the same HNSW scan alone in SQL (at the
 * provider's ef_search and at pgvector's default of 40), and exact search (the provider's own
 * exact query, which it runs up to EXACT_MAX_CHUNKS, and a bare sequential scan). Recall@10 is
 * against brute force over the same float32 vectors (usearch), computed in the same run. Last,
 * the provider's own path into the built index: `applyIndexUpdates` of re-indexed documents.
 */
import pg from 'pg'
import { PostgresProvider } from '../storage/postgres/pg-provider.js'
import { EXACT_MAX_CHUNKS, vectorText } from '../storage/postgres/pg-search.js'
import { BenchEntries, poolOf } from './pg-harness.js'
import { percentile, round } from './stats.js'
import { exactNeighbours, recall, vectorSet, type VectorSet, type VectorSetKind } from './vector-sets.js'

const K = 10
const COLLECTION = 'vectors'
/** The provider's HNSW breadth (storage/postgres/pg-search.ts EF_SEARCH). */
const PROVIDER_EF_SEARCH = 200
const PASSES = 3
/** Exact searches scan every vector: fewer queries per pass. */
const EXACT_QUERIES = 5
const LOAD_BATCH = 2000

/** pgvector's binary form of an array of vectors (array_recv of vector_recv elements), sent as one bind parameter. */
function vectorArray (set: VectorSet, from: number, count: number, oid: number): Buffer {
  const element = 4 + set.dims * 4
  const out = Buffer.alloc(20 + count * (4 + element))
  out.writeInt32BE(1, 0) // dimensions of the array
  out.writeInt32BE(0, 4) // no nulls
  out.writeUInt32BE(oid, 8)
  out.writeInt32BE(count, 12)
  out.writeInt32BE(1, 16) // lower bound
  let o = 20
  for (let i = 0; i < count; i++) {
    out.writeInt32BE(element, o)
    out.writeInt16BE(set.dims, o + 4)
    out.writeInt16BE(0, o + 6)
    o += 8
    for (const x of set.vectorOf(from + i)) {
      out.writeFloatBE(x, o)
      o += 4
    }
  }
  return out
}

/** Per-query latency and recall of one search path, over PASSES passes; medians of the passes. */
async function measure (queries: readonly Float32Array[], want: readonly string[][], search: (q: Float32Array) => Promise<string[]>): Promise<Record<string, number>> {
  await search(queries[0] as Float32Array)
  const p50s: number[] = []
  const p95s: number[] = []
  let hits = 0
  for (let pass = 0; pass < PASSES; pass++) {
    const ms: number[] = []
    hits = 0
    for (const [i, q] of queries.entries()) {
      const t = performance.now()
      const got = await search(q)
      ms.push(performance.now() - t)
      hits += recall(got, want[i] as string[])
    }
    p50s.push(percentile(ms, 50))
    p95s.push(percentile(ms, 95))
  }
  return { p50Ms: round(percentile(p50s, 50), 2), p95Ms: round(percentile(p95s, 50), 2), recallAt10: round(hits / queries.length, 4), queries: queries.length }
}

export async function postgresVectorBench (url: string, kind: VectorSetKind, size: number, queryCount: number): Promise<Record<string, unknown>> {
  let t = performance.now()
  const set = vectorSet(kind, size, queryCount)
  const want = set.queries.map(q => exactNeighbours(set, q, K).map(i => `d${i}`))
  const generateSeconds = (performance.now() - t) / 1000
  const embedder = { id: `bench-${kind}-${set.dims}`, dims: set.dims }
  const p = await PostgresProvider.open({ url, schema: `peak_vectors_${kind}` })
  const pool = poolOf(p)
  const admin = new pg.Client({ connectionString: url, options: `-c search_path=${p.schema},public` })
  await admin.connect()
  try {
    // the documents, through the provider, 10,000 per commit
    t = performance.now()
    const entries = new BenchEntries()
    for (let i = 0; i < size; i += 10_000) {
      const docs = Array.from({ length: Math.min(10_000, size - i) }, (_, j) => ({ id: `d${i + j}`, fields: { body: `v${i + j}`, bucket: (i + j) % 10 } }))
      await p.commit([entries.item(COLLECTION, docs)])
    }
    const commitSeconds = (performance.now() - t) / 1000

    // the provider makes its vector table and HNSW index with the first document's chunk
    await p.applyIndexUpdates([{ collection: COLLECTION, id: 'd0', ver: 1, text: 'v0', chunks: [{ text: 'v0', vector: set.vectorOf(0) }], embedder }])
    const table = (await admin.query<{ name: string }>('SELECT name FROM vector_tables WHERE embedder = $1', [embedder.id])).rows[0]?.name as string
    const index = `${table}_hnsw`
    const definition = (await admin.query<{ def: string }>('SELECT indexdef AS def FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1', [index])).rows[0]?.def as string
    await admin.query(`DROP INDEX ${index}`)

    // the other chunks and vectors in bulk, as binary vectors
    t = performance.now()
    await admin.query('DELETE FROM index_queue')
    await admin.query(`INSERT INTO chunks (collection, id, seq, embedder, text) SELECT $1, 'd' || i, 1, $2, 'v' || i FROM generate_series(1, $3::int - 1) AS i ORDER BY i`, [COLLECTION, embedder.id, size])
    const rids = new Map<number, number>()
    const ridToDoc = new Map<number, string>()
    for (const r of (await admin.query<{ rid: string, id: string }>('SELECT rid::text, id FROM chunks WHERE collection = $1', [COLLECTION])).rows) {
      rids.set(Number(r.id.slice(1)), Number(r.rid))
      ridToDoc.set(Number(r.rid), r.id)
    }
    const oid = Number((await admin.query<{ oid: number }>("SELECT 'vector'::regtype::oid AS oid")).rows[0]?.oid)
    for (let i = 1; i < size; i += LOAD_BATCH) {
      const n = Math.min(LOAD_BATCH, size - i)
      await admin.query(`INSERT INTO ${table} (rid, collection, embedding) SELECT r, $2, e FROM unnest($1::bigint[], $3::vector[]) AS u (r, e)`,
        [Array.from({ length: n }, (_, j) => rids.get(i + j)), COLLECTION, vectorArray(set, i, n, oid)])
    }
    // as autovacuum would leave the tables: visibility map set, statistics fresh
    await admin.query(`VACUUM ANALYZE chunks, docs, ${table}`)
    const loadSeconds = (performance.now() - t) / 1000

    // the provider's HNSW index, built over the loaded table (in memory: maintenance_work_mem raised for this session)
    await admin.query("SET maintenance_work_mem = '1GB'")
    t = performance.now()
    await admin.query(definition)
    const buildSeconds = (performance.now() - t) / 1000
    await admin.query('RESET maintenance_work_mem')

    const ids = (rows: Array<{ rid: number | string }>): string[] => rows.map(r => ridToDoc.get(Number(r.rid)) as string)
    const knn = `SELECT rid FROM ${table} WHERE collection = $2 ORDER BY embedding <=> $1::vector LIMIT ${K}`
    const hnsw = async (ef: number): Promise<Record<string, number>> => {
      const c = await pool.connect()
      try {
        await c.query(`SET hnsw.ef_search = ${ef}`)
        await c.query("SET hnsw.iterative_scan = 'relaxed_order'")
        return await measure(set.queries, want, async q => ids((await c.query(knn, [vectorText(q), COLLECTION])).rows))
      } finally {
        await c.query('RESET hnsw.ef_search')
        await c.query('RESET hnsw.iterative_scan')
        c.release()
      }
    }
    const providerHnsw = await measure(set.queries, want, async q => (await p.vectorSearch(COLLECTION, embedder.id, q, K, undefined)).map(h => h.id))
    const sqlHnsw = await hnsw(PROVIDER_EF_SEARCH)
    const sqlHnswDefault = await hnsw(40)

    const exactQueries = set.queries.slice(0, EXACT_QUERIES)
    const exactWant = want.slice(0, EXACT_QUERIES)
    // the provider's exact query (storage/postgres/pg-search.ts), run directly: above EXACT_MAX_CHUNKS it takes HNSW instead
    const providerExactSql = `SELECT c.id, min(n.distance) AS distance FROM (SELECT rid, embedding <=> $1::vector AS distance FROM ${table} WHERE collection = $2 OFFSET 0) n
      JOIN chunks c ON c.rid = n.rid WHERE EXISTS (SELECT 1 FROM docs WHERE docs.collection = c.collection AND docs.id = c.id AND docs.body IS NOT NULL AND true)
      GROUP BY c.id ORDER BY distance, c.id LIMIT $3`
    const providerExact = await measure(exactQueries, exactWant, async q => (await pool.query<{ id: string }>(providerExactSql, [vectorText(q), COLLECTION, K])).rows.map(r => r.id))
    const scan = await pool.connect()
    let sqlExact: Record<string, number>
    try {
      await scan.query('SET enable_indexscan = off')
      sqlExact = await measure(exactQueries, exactWant, async q => ids((await scan.query(knn, [vectorText(q), COLLECTION])).rows))
    } finally {
      await scan.query('RESET enable_indexscan')
      scan.release()
    }
    // the provider's own write path into the built index (a document re-indexed: its chunk and
    // vector replaced), in batches of 50 as the node's indexer sends them
    const reindexed = Math.min(200, size - 1)
    t = performance.now()
    for (let from = 1; from <= reindexed; from += 50) {
      const ids = Array.from({ length: Math.min(50, reindexed - from + 1) }, (_, j) => from + j)
      await p.applyIndexUpdates(ids.map(i => ({ collection: COLLECTION, id: `d${i}`, ver: 0, text: `v${i}`, chunks: [{ text: `v${i}`, vector: set.vectorOf(i) }], embedder })))
    }
    const indexUpdatesPerSec = reindexed / ((performance.now() - t) / 1000)
    const result = {
      set: kind,
      vectors: size,
      dims: set.dims,
      queries: queryCount,
      generateAndTruthSeconds: round(generateSeconds, 1),
      commitDocumentsSeconds: round(commitSeconds, 1),
      loadVectorsSeconds: round(loadSeconds, 1),
      hnswBuildSeconds: round(buildSeconds, 1),
      hnswIndex: definition.replace(/^CREATE INDEX \S+ ON /, ''),
      providerIndexUpdatesPerSec: round(indexUpdatesPerSec, 0),
      providerVectorSearch: { path: size > EXACT_MAX_CHUNKS ? `hnsw, ef_search ${PROVIDER_EF_SEARCH}, iterative scan` : 'exact', ...providerHnsw },
      sqlHnswEfSearch200: sqlHnsw,
      sqlHnswEfSearch40: sqlHnswDefault,
      providerExactQuery: providerExact,
      sqlExactSeqScan: sqlExact
    }
    process.stderr.write(`  ${kind}: build ${result.hnswBuildSeconds} s; provider p50 ${providerHnsw.p50Ms} ms recall ${providerHnsw.recallAt10}; exact p50 ${providerExact.p50Ms} ms recall ${providerExact.recallAt10}\n`)
    return result
  } finally {
    await admin.end()
    await p.close()
  }
}
