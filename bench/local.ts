/**
 * Local write/read benchmark (one engine per process, so peak RSS is the engine's own).
 * Workload: N documents `{ _id, n, body }` with 1 KiB bodies, after 1,000 untimed writes.
 *
 *   node --import tsx bench/local.ts raw|peakdb [N]
 *
 * Prints one JSON object on stdout.
 */
import '../node/polyfills.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { PeakNode } from '../node/index.js'
import { peakRssMb, percentile, round } from './stats.js'

const engine = process.argv[2]
const N = Number(process.argv[3] ?? 5000)
const BODY = 'x'.repeat(1024)
/** Writes before the timed ones, in both engines. */
const WARM_UP = 1000
const doc = (i: number, prefix: string): { _id: string, n: number, body: string } => ({ _id: `${prefix}${i}`, n: i, body: BODY })

function timeSync (fn: () => void): number {
  const t = performance.now()
  fn()
  return performance.now() - t
}

async function timeAsync (fn: () => Promise<void>): Promise<number> {
  const t = performance.now()
  await fn()
  return performance.now() - t
}

function raw (dir: string): Record<string, unknown> {
  const db = new Database(join(dir, 'raw.sqlite'))
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.exec('CREATE TABLE docs (id TEXT PRIMARY KEY, body BLOB)')
  const insert = db.prepare('INSERT INTO docs (id, body) VALUES (?, ?)')
  const get = db.prepare('SELECT body FROM docs WHERE id = ?')
  const encode = (d: ReturnType<typeof doc>): Buffer => Buffer.from(JSON.stringify(d))
  for (let i = 0; i < WARM_UP; i++) insert.run(`w${i}`, encode(doc(i, 'w')))
  const autocommitMs = timeSync(() => { for (let i = 0; i < N; i++) insert.run(`a${i}`, encode(doc(i, 'a'))) })
  const txMs = timeSync(() => db.transaction(() => { for (let i = 0; i < N; i++) insert.run(`t${i}`, encode(doc(i, 't'))) })())
  const gets: number[] = []
  for (let i = 0; i < N; i++) {
    const id = `a${(i * 7919) % N}`
    const t = performance.now()
    JSON.parse((get.get(id) as { body: Buffer }).body.toString())
    gets.push(performance.now() - t)
  }
  db.close()
  return {
    engine: 'raw better-sqlite3 (id TEXT PRIMARY KEY, body BLOB; WAL, synchronous=NORMAL)',
    autocommitDocsPerSec: round(N / autocommitMs * 1000, 0),
    transactionDocsPerSec: round(N / txMs * 1000, 0),
    getP50Ms: round(percentile(gets, 50), 4),
    peakRssMb: peakRssMb()
  }
}

async function peak (dir: string): Promise<Record<string, unknown>> {
  // the storage and log engine: the index queue is filled, but indexing (measured in
  // embedding.ts) does not run alongside
  const node = await PeakNode.open({ dir: join(dir, 'node'), backgroundIndexing: false })
  const single = node.collection('single')
  const batch = node.collection('batch')
  // as raw: compiled code and started threads (the WAL checkpointer), as in a running daemon
  const warm = node.collection('warm')
  for (let i = 0; i < WARM_UP; i++) await warm.put(doc(i, 'w'))
  const putMs = await timeAsync(async () => { for (let i = 0; i < N; i++) await single.put(doc(i, 's')) })
  const putManyMs = await timeAsync(async () => { await batch.putMany(Array.from({ length: N }, (_, i) => doc(i, 'b'))) })
  const gets: number[] = []
  for (let i = 0; i < N; i++) {
    const id = `s${(i * 7919) % N}`
    const t = performance.now()
    await single.get(id)
    gets.push(performance.now() - t)
  }
  const where = { n: { lt: Math.floor(N / 10) } }
  const findRuns = async (): Promise<{ p50: number, count: number }> => {
    const times: number[] = []
    let count = 0
    for (let r = 0; r < 30; r++) {
      const t = performance.now()
      count = (await single.find({ where })).length
      times.push(performance.now() - t)
    }
    return { p50: percentile(times, 50), count }
  }
  const scan = await findRuns()
  await single.createIndex('n')
  const indexed = await findRuns()
  const result = {
    engine: 'PeakDB SQLite provider (signed, encrypted log + materialised documents)',
    putDocsPerSec: round(N / putMs * 1000, 0),
    putUsPerDoc: round(putMs / N * 1000, 1),
    putManyDocsPerSec: round(N / putManyMs * 1000, 0),
    getP50Ms: round(percentile(gets, 50), 4),
    getP95Ms: round(percentile(gets, 95), 4),
    findReturned: scan.count,
    findScanP50Ms: round(scan.p50, 3),
    findIndexedP50Ms: round(indexed.p50, 3),
    peakRssMb: peakRssMb()
  }
  await node.close()
  return result
}

const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-'))
try {
  const result = engine === 'raw' ? raw(dir) : engine === 'peakdb' ? await peak(dir) : undefined
  if (result === undefined) throw new Error('usage: local.ts raw|peakdb [N]')
  process.stdout.write(JSON.stringify({ N, ...result }) + '\n')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
