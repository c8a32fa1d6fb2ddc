/**
 * What the PostgreSQL benchmarks share: a database of their own on the server (created, then
 * dropped with everything in it), a raw pool with the provider's settings, and commit items
 * shaped like the entries a node writes.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { stampOf, type DataOp } from '../crdt/index.js'
import type { CommitItem } from '../storage/index.js'
import { POOL_DEFAULTS, type PostgresProvider } from '../storage/postgres/pg-provider.js'

/** The server (`PEAKDB_BENCH_PG`, default the local one `scripts/test-setup.sh` readies). */
const SERVER = process.env.PEAKDB_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432'

function urlOf (database: string): string {
  const u = new URL(SERVER)
  u.pathname = `/${database}`
  return u.toString()
}

/** Runs one statement on the server's maintenance database. */
async function onServer (sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: urlOf('postgres'), connectionTimeoutMillis: 10_000 })
  await c.connect()
  try {
    await c.query(sql)
  } finally {
    await c.end()
  }
}

/** Creates a fresh database, runs `fn` with its URL, and drops the database whatever happens. */
export async function withBenchDatabase<T> (fn: (url: string) => Promise<T>): Promise<T> {
  const name = `peakdb_bench_${process.pid}_${randomBytes(3).toString('hex')}`
  await onServer(`CREATE DATABASE ${name}`)
  try {
    return await fn(urlOf(name))
  } finally {
    // WITH (FORCE) ends connections a failed run left open
    await onServer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
}

/** A pool with the provider's default settings, for the raw baselines. */
export function rawPool (url: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: POOL_DEFAULTS.max,
    connectionTimeoutMillis: POOL_DEFAULTS.connectionTimeoutMs,
    idleTimeoutMillis: POOL_DEFAULTS.idleTimeoutMs,
    statement_timeout: POOL_DEFAULTS.statementTimeoutMs,
    application_name: 'peakdb-bench-raw'
  })
  // a connection the server drops is replaced; its error must not end the benchmark
  pool.on('error', () => undefined)
  return pool
}

/** The provider's pool (private; read here as its tests read it). */
export function poolOf (p: PostgresProvider): pg.Pool {
  return (p as unknown as { pool: pg.Pool }).pool
}

const AUTHOR = '12D3KooWBenchBenchBenchBenchBenchBenchBenchBenchBenc'

/** Commit items of one author, each with an entry of the size the node would write for its ops. */
export class BenchEntries {
  private seq = 0

  item (collection: string, docs: ReadonlyArray<{ readonly id: string, readonly fields: Record<string, unknown> }>): CommitItem {
    const seq = ++this.seq
    const ops: DataOp[] = docs.map(d => ({ t: 'put', c: collection as never, id: d.id as never, f: d.fields as never, j: JSON.stringify(d.fields) }))
    // sealed ops (their JSON with op framing, nonce, tag), header and signature; random like ciphertext
    const size = docs.reduce((s, d) => s + JSON.stringify(d.fields).length + d.id.length + 30, 0) + 250
    return {
      cid: Uint8Array.from([0x01, 0x71, 0x12, 0x20, ...randomBytes(32)]),
      author: AUTHOR,
      seq,
      bytes: randomBytes(size),
      stamp: stampOf({ ms: 1_750_000_000_000 + seq, c: 0 }, AUTHOR),
      ops,
      control: []
    }
  }
}
