/**
 * The PostgreSQL provider next to raw node-postgres: same server, same pool settings, same run.
 * - operations: `put` (one document per commit), `putMany` (100 per commit), `get` by id, `find`
 *   with an equality filter on an indexed field; provider and raw alternate, 3 rounds, medians;
 * - pool: 100 concurrent `find`s on a pool of 10: queries/s, and how long a query waits for a
 *   connection (each `pool.connect` timed; `waitingCount` sampled as a cross-check);
 * - vectors (bench/postgres-vectors.ts): top-10 over 512-d vectors in the provider's tables.
 *
 * The provider is driven at its own contract: a `commit` of a ready `CommitItem` (an entry of
 * the size a sealed, signed entry of those documents has), so that signing and sealing, which
 * raw pg does not do either, stay out of the comparison.
 *
 *   node dist/bench/postgres.js [--n 600] [--vectors 100000] [--random-vectors <vectors>]
 *                               [--queries 50] [--parts ops,pool,vectors]
 *   PEAKDB_BENCH_PG=postgres://user@host:port (default postgres://postgres@127.0.0.1:5432)
 *
 * About 3 minutes on 2 cores (4.5 under heavy load), most of it building the two HNSW indexes
 * (isotropic random vectors take about twice as long as clustered ones); `--random-vectors
 * 25000` makes it under 2.
 * The pool part runs on the documents the operations part writes (so `pool` runs both).
 * Creates a database of its own and drops it at the end. Prints one JSON object on stdout.
 */
import { cpus } from 'node:os'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { normaliseQuery, parseFieldPath, type CommitItem } from '../storage/index.js'
import { POOL_DEFAULTS, PostgresProvider } from '../storage/postgres/pg-provider.js'
import { BenchEntries, poolOf, rawPool, withBenchDatabase } from './pg-harness.js'
import { postgresVectorBench } from './postgres-vectors.js'
import { percentile, round } from './stats.js'

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '600' },
    vectors: { type: 'string', default: '100000' },
    'random-vectors': { type: 'string' },
    queries: { type: 'string', default: '50' },
    parts: { type: 'string', default: 'ops,pool,vectors' }
  }
})
/** Documents per round of single puts; putMany, get and find do more (they are faster). */
const N = Number(args.n)
const PARTS = new Set(args.parts.split(','))
const ROUNDS = 3
const BATCH = 100
const CONCURRENCY = 100
const POOL_SECONDS = 2
const BODY = 'x'.repeat(1024)

/** Documents `{ n, tag, body }` with 1 KiB bodies; `tags` values of `tag` over the collection. */
const doc = (i: number, tags: number): { n: number, tag: number, body: string } => ({ n: i, tag: i % tags, body: BODY })

/** Operations per second of `count` sequential calls. */
async function rate (count: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const t = performance.now()
  for (let i = 0; i < count; i++) await fn(i)
  return count / (performance.now() - t) * 1000
}

const median = (v: readonly number[]): number => percentile(v, 50)

/** Raw and provider rates of one operation, round by round, alternating which goes first. */
async function compare (name: string, rounds: number, raw: (r: number) => Promise<number>, provider: (r: number) => Promise<number>): Promise<Record<string, unknown>> {
  const r: number[] = []
  const p: number[] = []
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      r.push(await raw(i))
      p.push(await provider(i))
    } else {
      p.push(await provider(i))
      r.push(await raw(i))
    }
  }
  const ratio = median(p) / median(r)
  process.stderr.write(`  ${name}: raw ${r.map(x => round(x, 0)).join(' / ')}, provider ${p.map(x => round(x, 0)).join(' / ')} ops/s\n`)
  return { rawOpsPerSec: round(median(r), 0), providerOpsPerSec: round(median(p), 0), ratio: round(ratio, 3), goalMet: ratio >= 0.5, rounds: { raw: r.map(x => round(x, 0)), provider: p.map(x => round(x, 0)) } }
}

const RAW_PUT = 'INSERT INTO raw_single (id, body) VALUES ($1, $2::jsonb) ON CONFLICT (id) DO UPDATE SET body = excluded.body'
const RAW_PUT_MANY = 'INSERT INTO raw_batch (id, body) SELECT * FROM unnest($1::text[], $2::jsonb[]) ON CONFLICT (id) DO UPDATE SET body = excluded.body'
const RAW_GET = 'SELECT body FROM raw_single WHERE id = $1'
// the provider returns a find's documents in id order: so does the baseline
const RAW_FIND = "SELECT id, body FROM raw_single WHERE (body->'tag') = $1::jsonb ORDER BY id"

async function opsBench (p: PostgresProvider, raw: pg.Pool): Promise<{ result: Record<string, unknown>, tags: number }> {
  await raw.query('CREATE TABLE raw_single (id text COLLATE "C" PRIMARY KEY, body jsonb NOT NULL)')
  await raw.query('CREATE TABLE raw_batch (id text COLLATE "C" PRIMARY KEY, body jsonb NOT NULL)')
  const entries = new BenchEntries()
  // each find matches 10 documents of the single-put collection
  const tags = Math.max(1, Math.floor(N * ROUNDS / 10))
  const put = await compare('put', ROUNDS,
    async r => await rate(N, async i => await raw.query(RAW_PUT, [`s${r * N + i}`, JSON.stringify(doc(r * N + i, tags))])),
    async r => {
      const items = Array.from({ length: N }, (_, i) => entries.item('single', [{ id: `s${r * N + i}`, fields: doc(r * N + i, tags) }]))
      return await rate(N, async i => await p.commit([items[i] as CommitItem]))
    })
  const many = N * 10
  const putMany = await compare('putMany', ROUNDS,
    async r => BATCH * await rate(many / BATCH, async b => {
      const ids = Array.from({ length: BATCH }, (_, j) => `b${r * many + b * BATCH + j}`)
      await raw.query(RAW_PUT_MANY, [ids, ids.map((_, j) => JSON.stringify(doc(r * many + b * BATCH + j, tags)))])
    }),
    async r => {
      const items = Array.from({ length: many / BATCH }, (_, b) => entries.item('batch', Array.from({ length: BATCH }, (_, j) => ({ id: `b${r * many + b * BATCH + j}`, fields: doc(r * many + b * BATCH + j, tags) }))))
      return BATCH * await rate(items.length, async b => await p.commit([items[b] as CommitItem]))
    })
  const total = N * ROUNDS
  const gets = N * 4
  const get = await compare('get', ROUNDS,
    async () => await rate(gets, async i => await raw.query(RAW_GET, [`s${(i * 7919) % total}`])),
    async () => await rate(gets, async i => await p.getDocument('single', `s${(i * 7919) % total}`)))
  // an index on `tag` on both sides, and fresh statistics (as autovacuum would leave them)
  await raw.query("CREATE INDEX raw_single_tag ON raw_single ((body->'tag'))")
  await p.ensureIndex('single', parseFieldPath('tag'))
  await raw.query('ANALYZE raw_single')
  await raw.query(`ANALYZE ${p.schema}.docs`)
  const finds = N * 2
  let rawRows = 0
  let providerRows = 0
  const find = await compare('find', ROUNDS,
    async () => await rate(finds, async i => { rawRows = (await raw.query(RAW_FIND, [String(i % tags)])).rows.length }),
    async () => await rate(finds, async i => { providerRows = (await p.find('single', normaliseQuery({ where: { tag: i % tags } }))).length }))
  return {
    tags,
    result: {
      workload: `documents { n, tag, body } with 1 KiB bodies; put: ${N} per round, one per commit; putMany: ${many} per round in commits of ${BATCH}; get: ${gets} by id per round; find: ${finds} per round, { where: { tag } } with an index on tag, ${providerRows} documents each (raw: ${rawRows})`,
      raw: 'node-postgres on a pool with the same settings: table (id text PRIMARY KEY, body jsonb); put INSERT … ON CONFLICT DO UPDATE; putMany the same over unnest($1::text[], $2::jsonb[]); get SELECT by primary key; find the same WHERE on an expression index on (body->\'tag\'), ORDER BY id',
      provider: 'PostgresProvider.commit of a ready CommitItem (an entry of the size a sealed, signed entry of those documents has; no signing or sealing timed), getDocument, find',
      put,
      putMany,
      get,
      find
    }
  }
}

/** Times every `pool.connect` (the pool's own `query` goes through it too): the acquire wait. */
function timeAcquires (pool: pg.Pool): { waits: number[], restore: () => void } {
  const waits: number[] = []
  const original = pool.connect
  const timed = function (this: pg.Pool, cb?: (err: Error | undefined, client?: pg.PoolClient, done?: (release?: unknown) => void) => void): unknown {
    const t = performance.now()
    if (typeof cb === 'function') {
      return (original as (cb: unknown) => void).call(this, (err: Error | undefined, client?: pg.PoolClient, done?: (release?: unknown) => void) => {
        waits.push(performance.now() - t)
        cb(err, client, done)
      })
    }
    return (original as () => Promise<pg.PoolClient>).call(this).then(client => {
      waits.push(performance.now() - t)
      return client
    })
  }
  pool.connect = timed as typeof pool.connect
  return { waits, restore: () => { pool.connect = original } }
}

/** CONCURRENCY callers issuing one query after another for POOL_SECONDS. */
async function saturate (pool: pg.Pool, query: (i: number) => Promise<unknown>): Promise<Record<string, number>> {
  const { waits, restore } = timeAcquires(pool)
  const latencies: number[] = []
  let waitingSum = 0
  let samples = 0
  const sampler = setInterval(() => {
    waitingSum += pool.waitingCount
    samples++
  }, 1)
  const end = performance.now() + POOL_SECONDS * 1000
  const t0 = performance.now()
  let n = 0
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t = performance.now()
        await query(n++)
        latencies.push(performance.now() - t)
      }
    }))
  } finally {
    clearInterval(sampler)
    restore()
  }
  const seconds = (performance.now() - t0) / 1000
  const qps = latencies.length / seconds
  const meanWaiting = waitingSum / Math.max(1, samples)
  return {
    queriesPerSec: round(qps, 0),
    acquireWaitP50Ms: round(percentile(waits, 50), 2),
    acquireWaitP99Ms: round(percentile(waits, 99), 2),
    acquireWaitMeanMs: round(waits.reduce((a, b) => a + b, 0) / waits.length, 2),
    // Little's law: mean wait = mean queue length / arrival rate
    sampledWaitingMean: round(meanWaiting, 1),
    littleWaitMeanMs: round(meanWaiting / qps * 1000, 2),
    queryP50Ms: round(percentile(latencies, 50), 2),
    queryP99Ms: round(percentile(latencies, 99), 2)
  }
}

async function poolBench (p: PostgresProvider, raw: pg.Pool, tags: number): Promise<Record<string, unknown>> {
  // the provider's and the raw pool are both full (10 connections open) before timing starts
  await Promise.all(Array.from({ length: POOL_DEFAULTS.max * 2 }, async (_, i) => await Promise.all([p.find('single', normaliseQuery({ where: { tag: i % tags } })), raw.query(RAW_FIND, [String(i % tags)])])))
  const rounds: Array<{ raw: Record<string, number>, provider: Record<string, number> }> = []
  for (let r = 0; r < ROUNDS; r++) {
    const rawRun = async (): Promise<Record<string, number>> => await saturate(raw, async i => await raw.query(RAW_FIND, [String(i % tags)]))
    const providerRun = async (): Promise<Record<string, number>> => await saturate(poolOf(p), async i => await p.find('single', normaliseQuery({ where: { tag: i % tags } })))
    if (r % 2 === 0) {
      const a = await rawRun()
      rounds.push({ raw: a, provider: await providerRun() })
    } else {
      const b = await providerRun()
      rounds.push({ provider: b, raw: await rawRun() })
    }
    process.stderr.write(`  pool round ${r + 1}: raw ${rounds[r]?.raw.queriesPerSec} q/s, provider ${rounds[r]?.provider.queriesPerSec} q/s (acquire p99 ${rounds[r]?.provider.acquireWaitP99Ms} ms)\n`)
  }
  const med = (side: 'raw' | 'provider'): Record<string, number> => Object.fromEntries(Object.keys(rounds[0]?.[side] ?? {}).map(k => [k, median(rounds.map(x => x[side][k] as number))]))
  const providerMed = med('provider')
  const rawMed = med('raw')
  return {
    workload: `${CONCURRENCY} callers, each issuing the next find as soon as its last one returns, for ${POOL_SECONDS} s; pool of ${POOL_DEFAULTS.max}`,
    method: 'acquire wait: every pool.connect is timed from the call to the client handed over (pool.query acquires through it); cross-check: pool.waitingCount sampled every 1 ms, mean wait by Little\'s law (mean queue / throughput)',
    provider: providerMed,
    raw: rawMed,
    ratio: round((providerMed.queriesPerSec ?? 0) / (rawMed.queriesPerSec ?? 1), 3),
    rounds
  }
}

const started = performance.now()
await withBenchDatabase(async url => {
  const info = new pg.Client({ connectionString: url })
  await info.connect()
  const version = (await info.query<{ v: string }>("SELECT current_setting('server_version') || ', pgvector ' || (SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS v")).rows[0]?.v
  await info.end()
  const out: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, postgres: version },
    pool: POOL_DEFAULTS
  }
  if (PARTS.has('ops') || PARTS.has('pool')) {
    const p = await PostgresProvider.open({ url, schema: 'peak_ops', pool: POOL_DEFAULTS })
    const raw = rawPool(url)
    try {
      process.stderr.write(`bench postgres: operations, provider vs raw pg (N = ${N})\n`)
      const ops = await opsBench(p, raw)
      if (PARTS.has('ops')) out.ops = ops.result
      if (PARTS.has('pool')) {
        process.stderr.write(`bench postgres: pool, ${CONCURRENCY} concurrent finds\n`)
        out.pool = await poolBench(p, raw, ops.tags)
      }
    } finally {
      await raw.end()
      await p.close()
    }
  }
  if (PARTS.has('vectors')) {
    const sizes = { clustered: Number(args.vectors), random: Number(args['random-vectors'] ?? args.vectors) }
    const vectors: Record<string, unknown> = {}
    for (const kind of ['clustered', 'random'] as const) {
      if (sizes[kind] <= 0) continue
      process.stderr.write(`bench postgres: pgvector, ${sizes[kind]} ${kind} vectors\n`)
      vectors[kind] = await postgresVectorBench(url, kind, sizes[kind], Number(args.queries))
    }
    out.vectors = vectors
  }
  out.seconds = round((performance.now() - started) / 1000, 1)
  process.stdout.write(JSON.stringify(out) + '\n')
})
process.stderr.write(`bench postgres: done in ${round((performance.now() - started) / 1000, 1)} s, database dropped\n`)
