/**
 * Adopted PostgreSQL tables: an existing table as a collection (primary key as _id, values
 * checked against column types), and its changes, made by any client, reaching this process
 * through triggers and LISTEN/NOTIFY, with nothing lost when the listening connection drops.
 */
import assert from 'node:assert/strict'
import pg from 'pg'
import { normaliseQuery, normaliseWhere } from '../storage/index.js'
import { PostgresProvider } from '../storage/postgres/pg-provider.js'
import { rejectsNamed } from './helpers/errors.js'
import { TestDatabase } from './helpers/postgres.js'
import { waitFor } from './helpers/wait-for.js'

const db = new TestDatabase()
after(async () => await db.drop())

async function sql (text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: await db.url() })
  await c.connect()
  try {
    return await c.query(text, params)
  } finally {
    await c.end()
  }
}

describe('adopted PostgreSQL tables', function () {
  this.timeout(60_000)
  let provider: PostgresProvider
  let table = 0
  let name: string
  beforeEach(async () => {
    name = `orders_${++table}`
    await sql(`CREATE TABLE public.${name} (id serial PRIMARY KEY, item text NOT NULL, qty int4 DEFAULT 1, price float8, note varchar(10), tags text[], meta jsonb, created timestamptz DEFAULT now())`)
    provider = await PostgresProvider.open({ url: await db.url(), schema: db.schema() })
  })
  afterEach(async () => { await provider.close() })

  it('reads, writes and queries rows as documents, checking values against column types', async () => {
    const { store, unwatch } = await provider.adopt(`~${name}`, `public.${name}`, () => {})
    try {
      const changes = await store.writeLocal(`~${name}`, [{ id: '1', body: { item: 'apple', qty: 3, tags: ['fruit'], meta: { origin: 'farm' } } }, { id: '2', body: { item: 'pear', price: 1.5 } }])
      assert.deepEqual(changes.map(c => [c.id, c.before]), [['1', null], ['2', null]])
      const one = await store.getDocument(`~${name}`, '1')
      assert.equal(one?.body?.item, 'apple')
      assert.equal(one?.body?.qty, 3)
      assert.deepEqual(one?.body?.tags, ['fruit'])
      assert.deepEqual(one?.body?.meta, { origin: 'farm' })
      assert.match(String(one?.body?.created), /^\d{4}-\d\d-\d\dT/, 'a default column filled by the server, as an ISO string')
      assert.equal((await store.getDocument(`~${name}`, '2'))?.body?.qty, 1, 'an absent column takes its default')
      assert.deepEqual((await store.find(`~${name}`, normaliseQuery({ where: { qty: { gte: 2 } } }))).map(r => r.id), ['1'])
      assert.deepEqual((await store.find(`~${name}`, normaliseQuery({ where: { tags: { contains: 'fruit' } } }))).map(r => r.id), ['1'])
      assert.deepEqual((await store.find(`~${name}`, normaliseQuery({ orderBy: '-price', limit: 1 }))).map(r => r.id), ['1'], 'nulls first, descending')
      assert.equal(await store.count(`~${name}`, normaliseWhere({ item: { prefix: 'pe' } })), 1)
      assert.equal(await store.getDocument(`~${name}`, 'not-a-number'), undefined)
      await rejectsNamed(() => store.writeLocal(`~${name}`, [{ id: '3', body: { item: 'plum', qty: 'three' } }]), 'ColumnTypeError', 'column qty')
      await rejectsNamed(() => store.writeLocal(`~${name}`, [{ id: '3', body: { item: 'plum', note: 'far too long a note' } }]), 'ColumnTypeError', 'at most 10 characters')
      await rejectsNamed(() => store.writeLocal(`~${name}`, [{ id: '3', body: { item: 'plum', colour: 'red' } }]), 'ColumnTypeError', 'no column "colour"')
      await rejectsNamed(() => store.writeLocal(`~${name}`, [{ id: '3', body: { qty: 1 } }]), 'ColumnTypeError', 'item')
      await rejectsNamed(() => store.writeLocal(`~${name}`, [{ id: 'x', body: { item: 'plum' } }]), 'ColumnTypeError', 'primary key id')
      await rejectsNamed(() => store.find(`~${name}`, normaliseQuery({ where: { qty: 'many' } })), 'ColumnTypeError', 'column qty')
      await rejectsNamed(() => store.find(`~${name}`, normaliseQuery({ where: { 'meta.origin': 'farm' } })), 'InvalidQueryError', 'name columns')
      assert.equal(await store.count(`~${name}`, undefined), 2, 'refused writes wrote nothing')
      await store.writeLocal(`~${name}`, [{ id: '2', body: null }])
      assert.equal(await store.count(`~${name}`, undefined), 1)
    } finally {
      unwatch()
    }
  })

  it('hears changes any client makes, a large transaction as one set, and nothing is lost when its connection drops', async () => {
    const heard: string[][] = []
    const { unwatch } = await provider.adopt(`~${name}`, `public.${name}`, ids => heard.push(ids))
    try {
      await sql(`INSERT INTO public.${name} (id, item) VALUES (10, 'psql'), (11, 'psql')`)
      await waitFor(() => heard.flat().includes('11'), { timeoutMs: 10_000, message: 'the insert to be heard' })
      await sql(`UPDATE public.${name} SET qty = 5 WHERE id = 10`)
      await waitFor(() => heard.at(-1)?.includes('10') === true, { timeoutMs: 10_000, message: 'the update to be heard' })
      await sql(`DELETE FROM public.${name} WHERE id = 11`)
      await waitFor(() => heard.at(-1)?.includes('11') === true, { timeoutMs: 10_000, message: 'the delete to be heard' })
      heard.length = 0
      await sql(`INSERT INTO public.${name} (id, item) SELECT g, 'bulk' FROM generate_series(1000, 10999) g`)
      await waitFor(() => heard.flat().length >= 10_000, { timeoutMs: 20_000, message: '10,000 rows to be heard' })
      assert.equal(heard.length, 1, 'one transaction arrives as one coalesced change set')
      heard.length = 0
      // drop the listening connection, write while it is away: the change table keeps it
      await sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'peakdb-watch' AND datname = current_database()")
      await sql(`INSERT INTO public.${name} (id, item) VALUES (20, 'while away')`)
      await waitFor(() => heard.flat().includes('20'), { timeoutMs: 20_000, message: 'the change made while the listener was away' })
    } finally {
      unwatch()
    }
  })
})
