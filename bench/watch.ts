/**
 * Live queries across processes on PostgreSQL: a child process commits rows to an adopted table
 * one at a time; this process hears them through the table's triggers and LISTEN/NOTIFY. Reports
 * commit (in the child) to callback (here) latency, and how a 10,000-row transaction arrives.
 * Prints one JSON line. Needs the PostgreSQL of `npm test` (127.0.0.1:5432).
 *
 *   node dist/bench/watch.js [rows]
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { PostgresProvider } from '../storage/postgres/pg-provider.js'
import { percentile, round } from './stats.js'

const SERVER = process.env.PEAKDB_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432'
const now = (): number => performance.timeOrigin + performance.now()

if (process.argv[2] === 'writer') {
  // the other process: one committed row at a time, each commit time on stdout
  const [url, rows] = [process.argv[3] as string, Number(process.argv[4])]
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  for (let i = 1; i <= rows; i++) {
    await c.query('INSERT INTO public.bench_orders (id, item) VALUES ($1, $2)', [i, 'x'])
    process.stdout.write(`${i} ${now()}\n`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  await c.end()
  process.exit(0)
}

const ROWS = Number(process.argv[2] ?? 300)
const name = `peakdb_bench_${randomBytes(4).toString('hex')}`
const admin = new pg.Client({ connectionString: `${SERVER}/postgres` })
await admin.connect()
await admin.query(`CREATE DATABASE ${name}`)
const url = `${SERVER}/${name}`
try {
  const setup = new pg.Client({ connectionString: url })
  await setup.connect()
  await setup.query('CREATE TABLE public.bench_orders (id int PRIMARY KEY, item text NOT NULL)')
  const provider = await PostgresProvider.open({ url, schema: 'bench_node' })
  const heard = new Map<string, number>()
  const sets: number[] = []
  const { unwatch } = await provider.adopt('~orders', 'public.bench_orders', ids => {
    const t = now()
    sets.push(ids.length)
    for (const id of ids) if (!heard.has(id)) heard.set(id, t)
  })
  const committed = new Map<string, number>()
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'writer', url, String(ROWS)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let buffer = ''
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString()
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    for (const l of lines) {
      const [id, t] = l.split(' ')
      committed.set(id as string, Number(t))
    }
  })
  await new Promise(resolve => child.once('exit', resolve))
  const deadline = Date.now() + 10_000
  while (heard.size < ROWS && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  const latencies = [...committed].map(([id, t]) => (heard.get(id) ?? Number.NaN) - t).filter(Number.isFinite)
  // a 10,000-row transaction from another connection
  sets.length = 0
  heard.clear()
  const started = now()
  await setup.query('INSERT INTO public.bench_orders (id, item) SELECT g, $1 FROM generate_series(100001, 110000) g', ['bulk'])
  const committedAt = now()
  while (heard.size < 10_000 && now() - started < 20_000) await new Promise(resolve => setTimeout(resolve, 5))
  const bulk = { rows: 10_000, heard: heard.size, changeSets: sets.length, commitToCallbackMs: round(Math.max(...heard.values()) - committedAt, 1) }
  unwatch()
  await provider.close()
  await setup.end()
  process.stdout.write(JSON.stringify({
    rows: ROWS,
    heard: latencies.length,
    commitToCallbackMs: { p50: round(percentile(latencies, 50), 2), p95: round(percentile(latencies, 95), 2), max: round(Math.max(...latencies), 2) },
    bulkTransaction: bulk
  }) + '\n')
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await admin.end()
}
