/**
 * The DataRouter on real stores: collections routed to PostgreSQL and to a second SQLite file,
 * the log kept in the primary, crash recovery by replay, moves, and cross-provider refusals.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { PeakNode } from '../node/index.js'
import { DataRouter, SqliteProvider, normaliseQuery, type StorageProvider } from '../storage/index.js'
import { PostgresProvider } from '../storage/postgres/pg-provider.js'
import { hashEmbedder } from './helpers/embedders.js'
import { rejectsNamed } from './helpers/errors.js'
import { TestDatabase } from './helpers/postgres.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { withTimeout } from './helpers/wait-for.js'
import { runStorageProviderTests } from './storage-compliance.js'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { runCli, startDaemon } from './helpers/cli.js'

const db = new TestDatabase()
const dirs = new TmpDirs()
after(async () => {
  dirs.cleanup()
  await db.drop()
})

function routerOf (node: PeakNode): DataRouter {
  assert.ok(node.storage instanceof DataRouter, 'the node routes its collections')
  return node.storage
}

// a router passes every compliance suite, whatever it routes where
const made: StorageProvider[] = []
runStorageProviderTests('router (notes in PostgreSQL, the rest in SQLite)', {
  setup: async () => {
    const dir = dirs.make()
    const routed = await PostgresProvider.open({ url: await db.url(), schema: db.schema() })
    const router = new DataRouter(await SqliteProvider.open({ path: join(dir, 'primary.sqlite') }), new Map([['warehouse', routed]]), { notes: 'warehouse' })
    made.push(router)
    return router
  },
  teardown: async () => {
    for (const r of made.splice(0)) await r.close()
  }
})

describe('the DataRouter in a node', function () {
  this.timeout(60_000)

  async function open (dir: string, extra: Partial<Parameters<typeof PeakNode.open>[0]> = {}): Promise<PeakNode> {
    return await PeakNode.open({
      dir,
      providers: { warehouse: { kind: 'postgres', url: await db.url() }, side: { kind: 'sqlite' }, scratch: { kind: 'file' } },
      routes: { events: 'warehouse', 'tmp.*': 'side', 'cache.*': 'scratch' },
      embedder: hashEmbedder(),
      backgroundIndexing: false,
      ...extra
    })
  }

  it('keeps routed documents and their search in their provider and the log in the primary', async () => {
    const node = await open(dirs.make())
    try {
      const router = routerOf(node)
      await node.collection('events').putMany([{ _id: 'e1', kind: 'click', text: 'blue button pressed' }, { _id: 'e2', kind: 'view', text: 'red page shown' }])
      await node.collection('tmp.cache').put({ _id: 't1', v: 1 })
      await node.collection('notes').put({ _id: 'n1', text: 'kept at home' })
      const warehouse = router.providers.get('warehouse') as StorageProvider
      assert.deepEqual((await warehouse.getDocument('events', 'e1'))?.body, { kind: 'click', text: 'blue button pressed' })
      assert.equal(await router.primary.getDocument('events', 'e1'), undefined, 'not materialised in the primary')
      assert.equal(await warehouse.entryCount(), 0, 'no log in the routed provider')
      assert.ok(await router.primary.entryCount() >= 3)
      assert.deepEqual((await (router.providers.get('side') as StorageProvider).getDocument('tmp.cache', 't1'))?.body, { v: 1 })
      assert.deepEqual((await node.collection('events').find({ where: { kind: 'view' } })).map(d => d._id), ['e2'])
      assert.equal(await node.collection('events').count(), 2)
      assert.deepEqual((await node.collection('events').search({ text: 'button', mode: 'text', k: 5 })).map(h => h.id), ['e1'])
      assert.deepEqual((await node.collection('events').search({ text: 'red page', k: 1 })).map(h => h.id), ['e2'])
      const collections = await node.collections()
      assert.deepEqual(collections.map(c => [c.name, (c as { provider?: string }).provider]), [['events', 'warehouse'], ['notes', 'primary'], ['tmp.cache', 'side']])
      const report = await node.verify({ rebuild: true })
      assert.equal(report.ok, true, JSON.stringify(report))
      assert.equal(report.stateMatches, true, 'a replay of the log into one SQLite store has the same digest')
      const providers = await node.providers()
      assert.deepEqual(providers.map(p => [p.name, p.kind, p.healthy]), [['primary', 'sqlite', true], ['warehouse', 'postgres', true], ['side', 'sqlite', true], ['scratch', 'file', true]])
      assert.ok(providers[1]?.pool !== undefined && providers[1].pool.max === 10)
      assert.deepEqual(providers[1]?.routes, ['events'])
    } finally {
      await node.close()
    }
  })

  it('a process killed between the log commit and the routed write loses nothing and applies nothing twice', async () => {
    const dir = dirs.make()
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/routed-writer.ts', dir, await db.url()], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    const signal = await withTimeout(new Promise<NodeJS.Signals | null>(resolve => child.once('exit', (_code, s) => resolve(s))), 45_000, 'the writer to die')
    assert.equal(signal, 'SIGKILL', out)
    assert.match(out, /ready before/)
    assert.doesNotMatch(out, /survived/)
    const node = await open(dir, { routes: { events: 'warehouse' } })
    try {
      const router = routerOf(node)
      const warehouse = router.providers.get('warehouse') as StorageProvider
      assert.deepEqual(await node.collection('events').get('lost-in-between'), { _id: 'lost-in-between', n: 2 }, 'replayed from the log at open')
      assert.equal(await node.collection('events').count(), 2)
      const last = (await router.primary.scanEntries(0, 10_000)).at(-1)?.pos
      assert.equal(await warehouse.appliedPosition(), last, 'the routed provider is up to the end of the log')
      const replayedAgain = await router.catchUp(node.log.entryOpener())
      assert.equal(replayedAgain, 0, 'nothing is applied twice')
      assert.equal((await node.verify({ rebuild: true })).stateMatches, true)
    } finally {
      await node.close()
    }
  })

  it('a provider that fails a hand-over falls behind without failing the write, and catches up at the next open', async () => {
    const dir = dirs.make()
    let node = await open(dir)
    try {
      const side = routerOf(node).providers.get('side') as StorageProvider
      const real = side.materialize.bind(side)
      let failures = 0
      side.materialize = async (...args) => {
        if (failures++ === 0) throw new Error('disk went away')
        return await real(...args)
      }
      await node.collection('tmp.a').put({ _id: 'x', v: 1 })
      await node.collection('tmp.a').put({ _id: 'y', v: 2 })
      assert.equal(routerOf(node).lagging().get('side'), 'disk went away')
      assert.equal(await side.getDocument('tmp.a', 'x'), undefined, 'not handed over while behind')
    } finally {
      await node.close()
    }
    node = await open(dir)
    try {
      assert.equal(routerOf(node).lagging().size, 0)
      assert.deepEqual((await node.collection('tmp.a').find({ orderBy: '_id' })).map(d => d._id), ['x', 'y'], 'closing did not mark it caught up; the open replayed the log')
    } finally {
      await node.close()
    }
  })

  it('a collection whose provider is removed from the config is rebuilt in the primary from the log', async () => {
    const dir = dirs.make()
    let node = await open(dir)
    try {
      await node.collection('tmp.kept').putMany([{ _id: 'a', v: 1 }, { _id: 'b', v: 2 }])
    } finally {
      await node.close()
    }
    node = await PeakNode.open({ dir, embedder: hashEmbedder(), backgroundIndexing: false })
    try {
      assert.equal(await node.collection('tmp.kept').count(), 2)
      assert.deepEqual(await node.collection('tmp.kept').get('b'), { _id: 'b', v: 2 })
    } finally {
      await node.close()
    }
  })

  it('moves a collection to another provider with progress, and back when its route changes', async () => {
    const dir = dirs.make()
    let node = await open(dir)
    try {
      await node.collection('notes').putMany(Array.from({ length: 30 }, (_, i) => ({ _id: `n${i}`, i, text: `note number ${i}` })))
      await node.collection('notes').search({ text: 'note', k: 3 })
      const progress: Array<[number, number]> = []
      await node.moveCollection('notes', 'warehouse', { onProgress: (done, total) => progress.push([done, total]) })
      const router = routerOf(node)
      assert.equal(router.providerOf('notes'), 'warehouse')
      assert.ok(progress.length > 0 && progress.at(-1)![0] === progress.at(-1)![1], JSON.stringify(progress))
      assert.equal(await router.primary.count('notes', undefined), 0, 'removed from the old provider')
      assert.equal(await (router.providers.get('warehouse') as StorageProvider).count('notes', undefined), 30)
      assert.deepEqual((await node.collection('notes').find({ where: { i: { lt: 2 } }, orderBy: 'i' })).map(d => d._id), ['n0', 'n1'])
      assert.equal((await node.collection('notes').search({ text: 'number 7', mode: 'text', k: 1 }))[0]?.id, 'n7', 'indexed again in its new provider')
      await node.collection('notes').put({ _id: 'after-move', i: 99 })
      await rejectsNamed(() => node.moveCollection('notes', 'nowhere'), 'InvalidOptionError', 'nowhere')
    } finally {
      await node.close()
    }
    // the choice is remembered; a config route added later moves the collection it names
    node = await open(dir, { routes: { events: 'warehouse', 'tmp.*': 'side', notes: 'side' } })
    try {
      const router = routerOf(node)
      assert.equal(router.providerOf('notes'), 'warehouse', 'a route chosen with moveCollection wins over config')
      assert.equal(await node.collection('notes').count(), 31)
    } finally {
      await node.close()
    }
  })

  it('keeps device-local collections in the file provider; replicated ones matching its route stay in the primary', async () => {
    const node = await open(dirs.make())
    try {
      const router = routerOf(node)
      const scratch = router.providers.get('scratch') as StorageProvider
      await node.collection('cache.thumbs', { replicate: false }).put({ _id: 'p1', w: 64 })
      assert.deepEqual(await node.collection('cache.thumbs').get('p1'), { _id: 'p1', w: 64 })
      assert.equal(router.providerOf('~cache.thumbs'), 'scratch')
      assert.deepEqual((await scratch.getDocument('~cache.thumbs', 'p1'))?.body, { w: 64 })
      await node.collection('cache.shared').put({ _id: 's1', v: 1 })
      assert.equal(router.providerOf('cache.shared'), 'primary', 'a documents-only provider takes no log ops')
      assert.deepEqual((await router.primary.getDocument('cache.shared', 's1'))?.body, { v: 1 })
      await rejectsNamed(() => node.collection('cache.thumbs').search({ text: 'anything', mode: 'text' }), 'ProviderCapabilityError', 'documents only')
      assert.throws(() => node.collection('fresh-replicated', { provider: 'scratch' }), (err: Error) => err.name === 'InvalidOptionError' && /device-local collections only/.test(err.message))
      // a byte budget evicts the least recently used documents first
      const thumbs = node.collection('cache.thumbs')
      await node.setCollectionPolicy('cache.thumbs', { maxBytes: 1 << 20 })
      await thumbs.putMany([{ _id: 'p2', data: 'x'.repeat(400) }, { _id: 'p3', data: 'y'.repeat(400) }])
      await thumbs.get('p2')
      assert.deepEqual(await node.setCollectionPolicy('cache.thumbs', { maxBytes: 500 }), { removed: 2 })
      assert.deepEqual((await thumbs.find({ orderBy: '_id' })).map(d => d._id), ['p2'], 'p1 and p3 were used least recently (reads count once a budget is set)')
      assert.deepEqual(await node.collectionPolicy('cache.thumbs'), { ttlMs: null, maxBytes: 500 })
      await node.collection('side-local', { replicate: false }).put({ _id: 'x', v: 1 })
      await rejectsNamed(() => node.setCollectionPolicy('side-local', { ttlMs: 60_000 }), 'InvalidOptionError', 'file provider')
    } finally {
      await node.close()
    }
  })

  it('routes a new collection by option, and refuses what would need two providers', async () => {
    const node = await open(dirs.make())
    try {
      const router = routerOf(node)
      await node.collection('fresh', { provider: 'side' }).put({ _id: 'a', v: 1 })
      assert.equal(router.providerOf('fresh'), 'side')
      assert.deepEqual((await (router.providers.get('side') as StorageProvider).getDocument('fresh', 'a'))?.body, { v: 1 })
      await node.collection('kept').put({ _id: 'k', v: 1 })
      assert.throws(() => node.collection('kept', { provider: 'warehouse' }), (err: Error) => err.name === 'InvalidOptionError' && /moveCollection/.test(err.message))
      assert.throws(() => router.providerFor(['events', 'kept']), (err: Error) => err.name === 'CrossProviderError' && /different providers/.test(err.message))
      assert.equal(router.providerFor(['events', 'events']), 'warehouse')
      assert.deepEqual(await router.find('fresh', normaliseQuery({})), [{ id: 'a', body: { v: 1 } }])
    } finally {
      await node.close()
    }
  })
})

describe('providers and routes through the CLI', function () {
  this.timeout(90_000)

  it('config.json names providers and routes; `providers` shows them; `collection --provider` moves a collection, with and without a daemon', async () => {
    const dir = dirs.make()
    assert.equal((await runCli(['init', '--dir', dir, '--json'])).code, 0)
    writeFileSync(join(dir, 'config.json'), JSON.stringify({
      providers: { warehouse: { kind: 'postgres', url: await db.url(), pool: { max: 3 } }, scratch: { kind: 'file' } },
      routes: { events: 'warehouse', 'tmp.*': 'scratch' }
    }))
    const put = await runCli(['put', 'events', '{"_id":"e1","kind":"click"}', '--dir', dir, '--json'])
    assert.equal(put.code, 0, put.stderr)
    assert.equal((await runCli(['put', 'notes', '[{"_id":"n1","t":"one"},{"_id":"n2","t":"two"}]', '--dir', dir, '--json'])).code, 0)
    const badSize = await runCli(['collection', 'notes', '--max-size', 'lots', '--dir', dir])
    assert.equal(badSize.code, 2)
    assert.match(badSize.stderr, /--max-size expected a size such as 500MB/)
    const refused = await runCli(['collection', 'notes', '--ttl', '1h', '--dir', dir])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /InvalidOptionError: collection notes is not device-local/)
    const providers = await runCli(['providers', '--dir', dir, '--json'])
    assert.equal(providers.code, 0, providers.stderr)
    const list = JSON.parse(providers.stdout) as Array<{ name: string, kind: string, healthy: boolean, location: string, pool?: { max: number }, routes: string[] }>
    assert.deepEqual(list.map(p => [p.name, p.kind, p.healthy]), [['primary', 'sqlite', true], ['warehouse', 'postgres', true], ['scratch', 'file', true]])
    assert.equal(list[1]?.pool?.max, 3)
    assert.deepEqual(list[1]?.routes, ['events'])
    const text = await runCli(['providers', '--dir', dir])
    assert.match(text.stdout, /warehouse[\s\S]*Pool: +\d+ open of 3/)
    const moved = await runCli(['collection', 'notes', '--provider', 'warehouse', '--dir', dir, '--json'])
    assert.equal(moved.code, 0, moved.stderr)
    assert.equal(JSON.parse(moved.stdout).provider, 'warehouse')
    assert.equal(JSON.parse(moved.stdout).count, 2)
    const bad = await runCli(['collection', 'notes', '--provider', 'nowhere', '--dir', dir])
    assert.notEqual(bad.code, 0)
    assert.match(bad.stderr, /nowhere/)
    const daemon = await startDaemon(['--dir', dir])
    try {
      const back = await runCli(['collection', 'notes', '--provider', 'primary', '--dir', dir, '--json'])
      assert.equal(back.code, 0, back.stderr)
      assert.equal(JSON.parse(back.stdout).provider, 'primary')
      const got = await runCli(['get', 'notes', 'n2', '--dir', dir, '--json'])
      assert.deepEqual(JSON.parse(got.stdout), { _id: 'n2', t: 'two' })
      const events = await runCli(['get', 'events', 'e1', '--dir', dir, '--json'])
      assert.deepEqual(JSON.parse(events.stdout), { _id: 'e1', kind: 'click' })
    } finally {
      assert.equal(await daemon.stop(), 0, daemon.output())
    }
  })
})
