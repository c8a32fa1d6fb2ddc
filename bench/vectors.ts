/**
 * Vector search at scale: N unit vectors (512-d, a random and a clustered set) saved as documents
 * through the node, searched through `collection.search` exactly (sqlite-vec), through the HNSW
 * graph and through the int8 scan (the one the node's self-check picks, then the other, forced),
 * each also with a 10% filter. Ground truth is brute force over the same vectors, computed in
 * the same run with usearch's SIMD exact search; a raw better-sqlite3 + sqlite-vec table is the
 * baseline for the exact path.
 *
 *   node dist/bench/vectors.js random|clustered [N] [queries]
 *
 * Prints one JSON object on stdout.
 */
import '../node/polyfills.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import * as sqliteVec from 'sqlite-vec'
import { PeakNode, type Embedder } from '../node/index.js'
import { peakRssMb, percentile, round } from './stats.js'
import { exactNeighbours, recall, vectorSet } from './vector-sets.js'

const kind = process.argv[2] === 'clustered' ? 'clustered' : 'random'
const N = Number(process.argv[3] ?? 100_000)
const Q = Number(process.argv[4] ?? 200)
const D = 512
const K = 10

const set = vectorSet(kind, N, Q, D)
const { flat, queries, vectorOf } = set

/** The documents are `{ body: "v<i>", bucket: i % 10 }`; this embedder maps "v<i>" to vector i. */
const tableEmbedder: Embedder = {
  id: `bench-${kind}-${D}`,
  dims: D,
  async embed (texts) {
    return texts.map(t => Float32Array.from(vectorOf(Number(/v(\d+)/.exec(t)?.[1] ?? 0))))
  }
}

/** Brute force top-k ids (cosine), over all vectors or the ones passing `keep`. */
function truth (q: Float32Array, keep?: (i: number) => boolean): string[] {
  if (keep === undefined) return exactNeighbours(set, q, K).map(i => `d${i}`)
  const scored: Array<[number, number]> = []
  for (let i = 0; i < N; i++) {
    if (!keep(i)) continue
    let dot = 0
    const o = i * D
    for (let j = 0; j < D; j++) dot += (flat[o + j] as number) * (q[j] as number)
    scored.push([i, dot])
  }
  return scored.sort((a, b) => b[1] - a[1]).slice(0, K).map(([i]) => `d${i}`)
}

function latency (ms: number[]): { p50Ms: number, p95Ms: number } {
  return { p50Ms: round(percentile(ms, 50), 2), p95Ms: round(percentile(ms, 95), 2) }
}

async function measure (fn: (q: Float32Array) => Promise<string[]> | string[], want: (qi: number) => string[]): Promise<Record<string, number>> {
  await fn(queries[0] as Float32Array) // warm-up
  const ms: number[] = []
  let r = 0
  for (let qi = 0; qi < Q; qi++) {
    const t = performance.now()
    const got = await fn(queries[qi] as Float32Array)
    ms.push(performance.now() - t)
    r += recall(got, want(qi))
  }
  return { ...latency(ms), recallAt10: round(r / Q, 4) }
}

const dir = mkdtempSync(join(tmpdir(), `peakdb-bench-vectors-${kind}-`))
try {
  // ground truth, and how long SIMD brute force takes over f32 vectors
  const bruteMs: number[] = []
  const want: string[][] = []
  for (const q of queries) {
    const t = performance.now()
    want.push(truth(q))
    bruteMs.push(performance.now() - t)
  }
  const bucket3 = (i: number): boolean => i % 10 === 3
  const wantFiltered = queries.map(q => truth(q, bucket3))

  // raw baseline: one sqlite-vec table, no documents
  const db = new Database(join(dir, 'raw.sqlite'))
  sqliteVec.load(db)
  db.pragma('journal_mode = WAL')
  db.exec(`CREATE VIRTUAL TABLE v USING vec0(embedding float[${D}] distance_metric=cosine)`)
  const ins = db.prepare('INSERT INTO v (rowid, embedding) VALUES (?, ?)')
  let t = performance.now()
  db.transaction(() => { for (let i = 0; i < N; i++) ins.run(BigInt(i), Buffer.from(vectorOf(i).buffer, vectorOf(i).byteOffset, D * 4)) })()
  const rawInsertSeconds = (performance.now() - t) / 1000
  const knn = db.prepare('SELECT rowid FROM v WHERE embedding MATCH ? AND k = ?').pluck()
  const raw = await measure(q => (knn.all(Buffer.from(q.buffer), K) as number[]).map(i => `d${i}`), qi => want[qi] as string[])
  db.close()

  // the node: documents saved in batches, indexed through the durable queue
  let node = await PeakNode.open({ dir: join(dir, 'node'), embedder: tableEmbedder, backgroundIndexing: false })
  let c = node.collection('vectors', { embed: ['body'] })
  t = performance.now()
  for (let i = 0; i < N; i += 10_000) {
    await c.putMany(Array.from({ length: Math.min(10_000, N - i) }, (_, j) => ({ _id: `d${i + j}`, body: `v${i + j}`, bucket: (i + j) % 10 })))
  }
  const saveSeconds = (performance.now() - t) / 1000
  t = performance.now()
  await c.indexed()
  const indexSeconds = (performance.now() - t) / 1000

  const search = async (q: Float32Array, extra: Record<string, unknown> = {}): Promise<string[]> =>
    (await c.search({ vector: q, mode: 'vector', k: K, drain: false, ...extra })).map(h => h.id)
  const exact = await measure(q => search(q, { exact: true }), qi => want[qi] as string[])
  const filteredExact = await measure(q => search(q, { exact: true, where: { bucket: 3 } }), qi => wantFiltered[qi] as string[])

  t = performance.now()
  await search(queries[0] as Float32Array) // starts the index build
  await node.ann.settled()
  const annBuildSeconds = (performance.now() - t) / 1000
  const [status] = node.ann.status()
  const paths: Record<string, unknown> = {}
  const measurePath = async (): Promise<Record<string, unknown>> => ({
    ...await measure(q => search(q), qi => want[qi] as string[]),
    filtered10pct: await measure(q => search(q, { where: { bucket: 3 } }), qi => wantFiltered[qi] as string[])
  })
  const auto = status?.search === 'scan' ? 'int8Scan' : 'hnsw'
  paths[auto] = await measurePath()
  await node.close()
  // the other path, forced: the indexes are saved, so this reopen loads them from disk
  node = await PeakNode.open({ dir: join(dir, 'node'), embedder: tableEmbedder, backgroundIndexing: false, annMinRecall: auto === 'hnsw' ? 1.01 : 0 })
  c = node.collection('vectors')
  await search(queries[0] as Float32Array)
  paths[auto === 'hnsw' ? 'int8Scan' : 'hnsw'] = await measurePath()
  await node.close()

  process.stdout.write(JSON.stringify({
    set: kind,
    vectors: N,
    dims: D,
    queries: Q,
    bruteForceSimdF32: latency(bruteMs),
    raw: { engine: 'better-sqlite3 + sqlite-vec vec0 (cosine), exact KNN', insertSeconds: round(rawInsertSeconds, 2), ...raw },
    peakdb: {
      saveSeconds: round(saveSeconds, 2),
      indexSeconds: round(indexSeconds, 2),
      indexBuildSeconds: round(annBuildSeconds, 2),
      graphSelfCheckRecall: status?.recall === undefined ? null : round(status.recall, 3),
      searchUses: auto,
      exact: { ...exact, filtered10pct: filteredExact },
      ...paths
    },
    peakRssMb: peakRssMb()
  }) + '\n')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
