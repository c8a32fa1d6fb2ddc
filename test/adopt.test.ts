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

describe('an adopted table in a node', function () {
  this.timeout(90_000)

  it('works as a collection through the API, watch sees writes from any client, and the adoption is remembered', async () => {
    const { PeakNode } = await import('../node/index.js')
    const { hashEmbedder } = await import('./helpers/embedders.js')
    const { TmpDirs } = await import('./helpers/tmp-dir.js')
    const dirs = new TmpDirs()
    await sql('CREATE TABLE public.shop_orders (id int4 PRIMARY KEY, item text NOT NULL, qty int4 NOT NULL DEFAULT 1)')
    const dir = dirs.make()
    let node = await PeakNode.open({ dir, storage: await db.url(), embedder: hashEmbedder(), backgroundIndexing: false })
    try {
      const orders = node.collection('orders', { adopt: 'public.shop_orders' })
      const events: Array<[string, string]> = []
      const last = new Map<string, unknown>()
      const stop = orders.watch({ where: { qty: { gte: 2 } } }, ev => {
        for (const c of ev.changes) {
          events.push([c.type, c.id])
          last.set(c.id, c.doc)
        }
      })
      await orders.put({ _id: '1', item: 'apple', qty: 3 })
      assert.deepEqual(await orders.get('1'), { _id: '1', item: 'apple', qty: 3 })
      await orders.patch('1', { qty: 4 })
      assert.deepEqual((await sql('SELECT qty FROM public.shop_orders WHERE id = 1')).rows, [{ qty: 4 }])
      await rejectsNamed(() => orders.put({ _id: '2', item: 'pear', qty: 'lots' }), 'ColumnTypeError', 'column qty')
      await sql("INSERT INTO public.shop_orders (id, item, qty) VALUES (7, 'from psql', 9)")
      await waitFor(() => events.some(([t, id]) => t === 'added' && id === '7'), { timeoutMs: 10_000, message: 'the psql insert in watch' })
      await sql('UPDATE public.shop_orders SET qty = 1 WHERE id = 7')
      await waitFor(() => events.some(([t, id]) => t === 'removed' && id === '7'), { timeoutMs: 10_000, message: 'the psql update leaving the filter' })
      // the put and the patch are one event each, though each is heard twice (its own commit and
      // the table's notification); a notification read after the patch may fold both into one
      const ofOne = events.filter(([, id]) => id === '1').map(([t]) => t)
      assert.ok(JSON.stringify(ofOne) === '["added","updated"]' || JSON.stringify(ofOne) === '["added"]', `events of document 1: ${JSON.stringify(ofOne)}`)
      assert.deepEqual(last.get('1'), { _id: '1', item: 'apple', qty: 4 }, 'the watch ends on the document as it is')
      stop()
      assert.equal(await orders.count(), 2)
      assert.deepEqual((await node.collections()).find(c => c.name === 'orders'), { name: 'orders', count: 2, indexes: [], local: true, provider: 'primary:public.shop_orders' })
      const before = await node.storage.entryCount()
      await orders.put({ _id: '3', item: 'plum' })
      assert.equal(await node.storage.entryCount(), before, 'an adopted table writes no log entry')
    } finally {
      await node.close()
    }
    node = await PeakNode.open({ dir, embedder: hashEmbedder(), backgroundIndexing: false })
    try {
      assert.deepEqual(await node.collection('orders').get('3'), { _id: '3', item: 'plum', qty: 1 })
      await rejectsNamed(() => node.adopt('orders', 'public.other'), 'InvalidOptionError', 'already adopts')
    } finally {
      await node.close()
      dirs.cleanup()
    }
  })

  it('through the CLI: adopt, then watch from one terminal while psql inserts from another', async () => {
    const { runCli, startDaemon, BIN } = await import('./helpers/cli.js')
    const { spawn } = await import('node:child_process')
    const { TmpDirs } = await import('./helpers/tmp-dir.js')
    const { withTimeout } = await import('./helpers/wait-for.js')
    const dirs = new TmpDirs()
    await sql('CREATE TABLE public.cli_orders (id text PRIMARY KEY, item text NOT NULL)')
    const dir = dirs.make()
    assert.equal((await runCli(['init', '--dir', dir, '--storage', await db.url()])).code, 0)
    const daemon = await startDaemon(['--dir', dir])
    const child = spawn(process.execPath, [BIN, 'watch', 'orders', '--dir', dir, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      const adopted = await runCli(['collection', 'orders', '--adopt', 'public.cli_orders', '--dir', dir, '--json'])
      assert.equal(adopted.code, 0, adopted.stderr)
      assert.equal(JSON.parse(adopted.stdout).provider, 'primary:public.cli_orders')
      // the watch started before the adoption watched an empty replicated collection; a new one sees the table
      child.kill('SIGKILL')
      const w = spawn(process.execPath, [BIN, 'watch', 'orders', '--dir', dir, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      w.stdout.on('data', (d: Buffer) => { out += d.toString() })
      await waitFor(() => out.includes('"initial"'), { timeoutMs: 20_000, message: 'the initial result' })
      await sql("INSERT INTO public.cli_orders (id, item) VALUES ('a1', 'typed in psql')")
      await waitFor(() => out.includes('"a1"'), { timeoutMs: 20_000, message: 'the psql insert in peakdb watch' })
      assert.deepEqual(JSON.parse(out.trim().split('\n').at(-1) as string), { type: 'added', id: 'a1', doc: { _id: 'a1', item: 'typed in psql' }, origin: 'local' })
      w.kill('SIGINT')
      assert.equal(await withTimeout(new Promise(resolve => w.once('exit', resolve)), 10_000, 'watch to stop'), 0)
      const got = await runCli(['get', 'orders', 'a1', '--dir', dir, '--json'])
      assert.deepEqual(JSON.parse(got.stdout), { _id: 'a1', item: 'typed in psql' })
      const bad = await runCli(['put', 'orders', '{"_id":"a2","item":5}', '--dir', dir])
      assert.equal(bad.code, 1)
      assert.match(bad.stderr, /ColumnTypeError: .*column item of public.cli_orders expects a string/)
    } finally {
      child.kill('SIGKILL')
      assert.equal(await daemon.stop(), 0, daemon.output())
      dirs.cleanup()
    }
  })
})
