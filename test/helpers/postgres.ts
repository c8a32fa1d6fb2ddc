/**
 * A fresh PostgreSQL database per test run (dropped when the run ends), and a fresh schema per
 * store. The server is the machine's own (started, with pgvector, by scripts/test-setup.sh):
 * `PEAKDB_TEST_PG` overrides the server URL (default postgres://postgres@127.0.0.1:5432).
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'

const SERVER = process.env.PEAKDB_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432'

function urlOf (database: string): string {
  const u = new URL(SERVER)
  u.pathname = `/${database}`
  return u.toString()
}

async function admin<T> (fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: urlOf('postgres'), connectionTimeoutMillis: 10_000 })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/** A database of its own for this test file, created on first use. */
export class TestDatabase {
  private name: string | undefined
  private schemas = 0

  /** The database URL (creating the database on first call). */
  async url (): Promise<string> {
    if (this.name === undefined) {
      const name = `peakdb_test_${process.pid}_${randomBytes(4).toString('hex')}`
      await admin(async c => await c.query(`CREATE DATABASE ${name}`))
      this.name = name
    }
    return urlOf(this.name)
  }

  /** A schema name not used before in this database. */
  schema (): string {
    return `node_${++this.schemas}_${randomBytes(3).toString('hex')}`
  }

  /** Drops the database (connections still open in it are ended first). */
  async drop (): Promise<void> {
    const name = this.name
    if (name === undefined) return
    this.name = undefined
    await admin(async c => await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  }
}
