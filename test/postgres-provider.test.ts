import assert from 'node:assert/strict'
import pg from 'pg'
import { normaliseQuery, parseFieldPath } from '../storage/index.js'
import { PostgresProvider } from '../storage/postgres/pg-provider.js'
import { compileFind } from '../storage/postgres/query-sql.js'
import { MIGRATIONS } from '../storage/postgres/schema.js'
import { runStorageProviderTests } from './storage-compliance.js'
import { rejectsNamed } from './helpers/errors.js'
import { TestDatabase } from './helpers/postgres.js'

const db = new TestDatabase()
const open: PostgresProvider[] = []
after(async () => await db.drop())

runStorageProviderTests('postgres', {
  setup: async () => {
    const p = await PostgresProvider.open({ url: await db.url(), schema: db.schema(), pool: { max: 4 } })
    open.push(p)
    return p
  },
  teardown: async () => {
    for (const p of open.splice(0)) await p.close()
  }
})

describe('storage: PostgreSQL specifics', () => {
  it('keeps each node in its own schema and lets one process open it at a time', async () => {
    const url = await db.url()
    const schema = db.schema()
    const a = await PostgresProvider.open({ url, schema })
    const b = await PostgresProvider.open({ url, schema: db.schema() })
    try {
      await a.setMeta('who', 'a')
      assert.equal(await b.getMeta('who'), undefined)
      await rejectsNamed(() => PostgresProvider.open({ url, schema }), 'StorageBusyError', schema)
    } finally {
      await a.close()
      await b.close()
    }
    const again = await PostgresProvider.open({ url, schema })
    try {
      assert.equal(await again.getMeta('who'), 'a', 'closing releases the schema, and the data stays')
    } finally {
      await again.close()
    }
  })

  it('versions its own schema through the migration engine, taking over a counter-versioned schema once', async () => {
    const url = await db.url()
    const schema = db.schema()
    await (await PostgresProvider.open({ url, schema })).close()
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      const names = async (): Promise<string[]> => (await client.query<{ name: string }>(`SELECT name FROM ${schema}.peakdb_schema ORDER BY name`)).rows.map(r => r.name)
      assert.deepEqual(await names(), MIGRATIONS.map(m => m.name))
      assert.equal((await client.query(`SELECT value FROM ${schema}.meta WHERE key = 'schema_version'`)).rows[0]?.value, String(MIGRATIONS.length), 'the counter older builds read is kept')
      await client.query(`DROP TABLE ${schema}.peakdb_schema`)
      await client.query(`INSERT INTO ${schema}.meta (key, value) VALUES ('kept', 'yes')`)
      const s = await PostgresProvider.open({ url, schema })
      assert.equal(await s.getMeta('kept'), 'yes', 'taking the history over runs no migration again')
      await s.close()
      assert.deepEqual(await names(), MIGRATIONS.map(m => m.name))
      await client.query(`INSERT INTO ${schema}.peakdb_schema (name) VALUES ('9999_from_the_future')`)
      const err = await rejectsNamed(() => PostgresProvider.open({ url, schema }), 'SchemaVersionError', 'upgrade PeakDB')
      assert.match(err.message, /9999_from_the_future/)
    } finally {
      await client.end()
    }
  })

  it('sets every pool option, and names no password in its location', async () => {
    const url = new URL(await db.url())
    url.password = 'not-needed-with-trust'
    const p = await PostgresProvider.open({ url: url.toString(), schema: db.schema(), pool: { max: 3, statementTimeoutMs: 1234, applicationName: 'peakdb-test', idleTimeoutMs: 5000, connectionTimeoutMs: 2000 } })
    try {
      assert.ok(!p.location.includes('not-needed-with-trust'), p.location)
      assert.match(p.location, /schema=node_/)
      const c = new pg.Client({ connectionString: await db.url() })
      await c.connect()
      try {
        const rows = (await c.query("SELECT application_name FROM pg_stat_activity WHERE application_name = 'peakdb-test'")).rows
        assert.ok(rows.length >= 1)
      } finally {
        await c.end()
      }
      const timeout = await (p as unknown as { pool: pg.Pool }).pool.query('SHOW statement_timeout')
      assert.equal(timeout.rows[0].statement_timeout, '1234ms')
      assert.equal(p.health().max, 3)
    } finally {
      await p.close()
    }
  })

  it('stops writing when it loses its schema lock, and another process may then take the schema', async () => {
    const url = await db.url()
    const schema = db.schema()
    const a = await PostgresProvider.open({ url, schema })
    try {
      await a.setMeta('k', 'v')
      const admin = new pg.Client({ connectionString: url })
      await admin.connect()
      try {
        await admin.query("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
      } finally {
        await admin.end()
      }
      // until it notices (the lock's connection reports its end), a write may still land
      const deadline = Date.now() + 10_000
      let err: Error | undefined
      let last = 'v'
      for (let i = 0; err === undefined && Date.now() < deadline; i++) {
        err = await a.setMeta('k', `w${i}`).then(() => { last = `w${i}`; return undefined }, (e: Error) => e)
        if (err === undefined) await new Promise(resolve => setTimeout(resolve, 50))
      }
      assert.equal(err?.name, 'StorageUnavailableError')
      assert.match(err.message, /lost the lock/)
      const b = await PostgresProvider.open({ url, schema })
      try {
        assert.equal(await b.getMeta('k'), last, 'the schema holds the last write that succeeded')
        await rejectsNamed(() => a.setMeta('k', 'after'), 'StorageUnavailableError')
        assert.equal(await b.getMeta('k'), last, 'and nothing the old holder tried since')
      } finally {
        await b.close()
      }
    } finally {
      await a.close()
    }
  })

  it('reports a server it cannot reach with a typed error naming it', async () => {
    await rejectsNamed(() => PostgresProvider.open({ url: 'postgres://postgres@127.0.0.1:1/none', schema: 'x', pool: { connectionTimeoutMs: 2000 } }), 'StorageUnavailableError', '127.0.0.1:1')
    await rejectsNamed(() => PostgresProvider.open({ url: 'postgres://postgres@127.0.0.1/none', schema: 'Bad-Name' }), 'StorageUnavailableError', 'schema name')
  })

  it('answers equality and `in` on an indexed field from its expression index, array members included', async () => {
    const p = await PostgresProvider.open({ url: await db.url(), schema: db.schema() })
    try {
      // enough documents that one scan of the whole collection is not the cheaper plan
      await p.ensureIndex('~notes', parseFieldPath('year'))
      await p.writeLocal('~notes', Array.from({ length: 2000 }, (_, i) => ({ id: `n${i}`, body: { year: 2000 + (i % 30) } })))
      const pool = (p as unknown as { pool: pg.Pool }).pool
      const client = await pool.connect()
      try {
        await client.query('SET enable_seqscan = off')
        for (const where of [{ year: 2020 }, { year: { in: [2020, 2021] } }]) {
          const q = compileFind('~notes', normaliseQuery({ where }))
          const plan = (await client.query(`EXPLAIN ${q.text}`, q.params)).rows.map(r => r['QUERY PLAN'] as string).join('\n')
          // both arms of the OR (a scalar equal, an array holding it) are index conditions on the field, not a filter over the collection
          const conditions = plan.split('\n').filter(l => l.includes('Index Cond:'))
          assert.equal(conditions.length, 2, plan)
          for (const c of conditions) assert.match(c, /collection = '~notes'::text\) AND \(\(j -> 'year'::text\)/, plan)
        }
      } finally {
        await client.query('RESET enable_seqscan')
        client.release()
      }
    } finally {
      await p.close()
    }
  })
})
