/**
 * Reads on reader threads (storage/sqlite/read-pool.ts) against reads on the provider's own
 * connection, over N documents `{ n, group, tags, text }` (about 200 bytes each) written as
 * N/50 log entries of about 12 KiB:
 * - event-loop delay (perf_hooks.monitorEventLoopDelay, p99 and max) while a scan-heavy `find`
 *   (no index, equality on a JSON field, 1% of the documents match) runs again and again;
 * - throughput of `find`s issued by 4 concurrent callers;
 * - what a read costs on the connection against the round trip to a reader thread, by kind of
 *   read (the provider keeps the cheap ones on its connection).
 * Each round measures both configurations on the same file; the medians of the rounds are
 * reported.
 *
 *   node dist/bench/read-pool.js [N] [rounds]
 *
 * Prints one JSON object on stdout.
 */
import '../node/polyfills.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { stampOf, type DataOp } from '../crdt/index.js'
import { normaliseQuery, SqliteProvider, type CommitItem } from '../storage/index.js'
import type { ReadConnection, ReadRequest } from '../storage/sqlite/read-connection.js'
import type { ReadPool } from '../storage/sqlite/read-pool.js'
import { compileFind } from '../storage/sqlite/query-sql.js'
import { peakRssMb, percentile, round } from './stats.js'

const N = Number(process.argv[2] ?? 100_000)
const ROUNDS = Number(process.argv[3] ?? 3)
const READERS = 2
const AUTHOR = '12D3KooWBenchBenchBenchBenchBenchBenchBenchBenchBench'
const DOCS_PER_ENTRY = 50
const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima']
/** The scan: equality on a JSON field without an index, 1% of the documents match. */
const SCAN = normaliseQuery({ where: { group: 7 } })
const SCANS_FOR_DELAY = 12
const CLIENTS = 4
const SCANS_FOR_THROUGHPUT = 24

interface Internals { pool: ReadPool | undefined, local: ReadConnection }
const internals = (s: SqliteProvider): Internals => s as unknown as Internals

async function fill (path: string): Promise<void> {
  const s = await SqliteProvider.open({ path, readers: 0 })
  try {
    for (let e = 0; e * DOCS_PER_ENTRY < N; e++) {
      const ops: DataOp[] = []
      for (let i = e * DOCS_PER_ENTRY; i < Math.min(N, (e + 1) * DOCS_PER_ENTRY); i++) {
        const text = Array.from({ length: 24 }, (_, w) => WORDS[(i * 7 + w * 3) % WORDS.length] as string).join(' ')
        ops.push({ t: 'put', c: 'docs' as never, id: `d${String(i).padStart(6, '0')}` as never, f: { n: i, group: i % 100, tags: [WORDS[i % 12] as string, WORDS[(i >> 4) % 12] as string], text } })
      }
      const item: CommitItem = { cid: Uint8Array.from([1, 0x71, 0x12, 0x20, ...randomBytes(32)]), author: AUTHOR, seq: e + 1, bytes: randomBytes(12 * 1024), stamp: stampOf({ ms: e + 1, c: 0 }, AUTHOR), ops, control: [] }
      await s.commit([item])
    }
  } finally {
    await s.close()
  }
}

/** Opens the file; with readers, waits (bounded) until every reader thread is ready. */
async function open (path: string, readers: number): Promise<SqliteProvider> {
  const s = await SqliteProvider.open({ path, readers })
  const pool = internals(s).pool
  const deadline = Date.now() + 30_000
  while (pool !== undefined && pool.ready < readers) {
    if (Date.now() > deadline) throw new Error(`reader threads not ready after 30 s (${pool.ready} of ${readers})`)
    // concurrent reads: the second thread starts once the first is busy
    await Promise.all(Array.from({ length: readers }, async () => await s.count('docs', undefined)))
    await sleep(20)
  }
  return s
}

async function eventLoopDelay (s: SqliteProvider): Promise<{ p99Ms: number, maxMs: number, findP50Ms: number, returned: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 })
  const times: number[] = []
  let returned = 0
  h.enable()
  for (let i = 0; i < SCANS_FOR_DELAY; i++) {
    const t = performance.now()
    returned = (await s.find('docs', SCAN)).length
    times.push(performance.now() - t)
    // as a server answering one request after another: the loop turns between them
    await new Promise(resolve => setImmediate(resolve))
  }
  h.disable()
  return { p99Ms: round(h.percentile(99) / 1e6, 2), maxMs: round(h.max / 1e6, 2), findP50Ms: round(percentile(times, 50), 1), returned }
}

async function throughput (s: SqliteProvider): Promise<number> {
  let left = SCANS_FOR_THROUGHPUT
  const t = performance.now()
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (left > 0) {
      left--
      await s.find('docs', SCAN)
    }
  }))
  return SCANS_FOR_THROUGHPUT / ((performance.now() - t) / 1000)
}

interface Cost {
  /** Mean time of the read on the provider's connection (all of it blocks the event loop). */
  connectionMs: number
  /** Mean time until the answer through a reader thread. */
  threadMs: number
  /** Of that, the time the event loop was busy (sending, receiving, resolving). */
  threadLoopBusyMs: number
}

/** What a read costs on the provider's connection and through a reader thread. */
async function routing (s: SqliteProvider): Promise<Record<string, Cost>> {
  const { pool, local } = internals(s)
  if (pool === undefined) throw new Error('routing needs reader threads')
  const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `d${String((i * 7919) % N).padStart(6, '0')}`)
  const find = (where: Record<string, unknown> | undefined, limit?: number): ReadRequest => {
    const { text, params } = compileFind('docs', normaliseQuery({ ...(where !== undefined ? { where } : {}), ...(limit !== undefined ? { limit } : {}) }))
    return { kind: 'rows', sql: text, params, mode: 'all' }
  }
  const kinds: Record<string, ReadRequest> = {
    'find by one id': find({ _id: ids(1)[0] }),
    'find by 64 ids': find({ _id: { in: ids(64) } }),
    'find by 500 ids': find({ _id: { in: ids(500) } }),
    'find, first 20 by id': find(undefined, 20),
    'scanEntries page (500 entries of 12 KiB)': { kind: 'rows', sql: 'SELECT pos, cid, author, seq, bytes FROM entries WHERE pos > ? ORDER BY pos LIMIT ?', params: [0, 500], mode: 'all' },
    'count of the collection': { kind: 'rows', sql: 'SELECT count(*) AS n FROM docs WHERE collection = ? AND body IS NOT NULL', params: ['docs'], mode: 'get' }
  }
  const out: Record<string, Cost> = {}
  for (const [name, req] of Object.entries(kinds)) {
    const reps = 50
    local.run(req)
    await pool.run(req)
    let t = performance.now()
    for (let i = 0; i < reps; i++) local.run(req)
    const connectionMs = (performance.now() - t) / reps
    t = performance.now()
    const elu = performance.eventLoopUtilization()
    for (let i = 0; i < reps; i++) await pool.run(req)
    const busy = performance.eventLoopUtilization(elu)
    const threadMs = (performance.now() - t) / reps
    out[name] = { connectionMs: round(connectionMs, 4), threadMs: round(threadMs, 4), threadLoopBusyMs: round(busy.active / reps, 4) }
  }
  return out
}

const median = (xs: number[]): number => round(percentile(xs, 50), 2)

const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-'))
try {
  const path = join(dir, 'db.sqlite')
  const t = performance.now()
  await fill(path)
  process.stderr.write(`read-pool: ${N} documents written in ${round((performance.now() - t) / 1000, 1)} s\n`)
  const rounds: Array<{ delay: { connection: Awaited<ReturnType<typeof eventLoopDelay>>, pool: Awaited<ReturnType<typeof eventLoopDelay>> }, throughput: { connection: number, pool: number } }> = []
  let costs: Record<string, Cost> = {}
  for (let r = 0; r < ROUNDS; r++) {
    const one = await open(path, 0)
    const delayOne = await eventLoopDelay(one)
    const tputOne = await throughput(one)
    await one.close()
    const pooled = await open(path, READERS)
    const delayPool = await eventLoopDelay(pooled)
    const tputPool = await throughput(pooled)
    if (r === 0) costs = await routing(pooled)
    await pooled.close()
    rounds.push({ delay: { connection: delayOne, pool: delayPool }, throughput: { connection: tputOne, pool: tputPool } })
    process.stderr.write(`read-pool: round ${r + 1}: p99 ${delayOne.p99Ms} -> ${delayPool.p99Ms} ms, ${round(tputOne, 2)} -> ${round(tputPool, 2)} finds/s\n`)
  }
  const ratios = rounds.map(r => r.throughput.pool / r.throughput.connection)
  process.stdout.write(JSON.stringify({
    N,
    rounds: ROUNDS,
    cores: availableParallelism(),
    readers: READERS,
    scan: { where: { group: 7 }, returned: rounds[0]?.delay.pool.returned },
    eventLoopDelay: {
      connection: { p99Ms: median(rounds.map(r => r.delay.connection.p99Ms)), maxMs: median(rounds.map(r => r.delay.connection.maxMs)), findP50Ms: median(rounds.map(r => r.delay.connection.findP50Ms)) },
      pool: { p99Ms: median(rounds.map(r => r.delay.pool.p99Ms)), maxMs: median(rounds.map(r => r.delay.pool.maxMs)), findP50Ms: median(rounds.map(r => r.delay.pool.findP50Ms)) }
    },
    throughput: {
      clients: CLIENTS,
      connectionFindsPerSec: median(rounds.map(r => r.throughput.connection)),
      poolFindsPerSec: median(rounds.map(r => r.throughput.pool)),
      ratio: median(ratios),
      ratios: ratios.map(x => round(x, 2))
    },
    costs,
    peakRssMb: peakRssMb()
  }) + '\n')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
