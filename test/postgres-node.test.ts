/**
 * A node on PostgreSQL, through the API and the CLI: storage chosen at the first open and kept,
 * status naming it without secrets, and search that agrees with SQLite on the same data.
 */
import assert from 'node:assert/strict'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { PeakNode, type Embedder } from '../node/index.js'
import { UseLiteEmbedder } from '../node/embedding/use-lite.js'
import { runCli } from './helpers/cli.js'
import { rejectsNamed } from './helpers/errors.js'
import { hashEmbedder } from './helpers/embedders.js'
import { TestDatabase } from './helpers/postgres.js'
import { TmpDirs } from './helpers/tmp-dir.js'

const db = new TestDatabase()
const dirs = new TmpDirs()
after(async () => {
  dirs.cleanup()
  await db.drop()
})

/** Embeds each distinct text once, however many nodes ask (two nodes, one model run). */
function memoised (inner: Embedder): Embedder {
  const cache = new Map<string, Float32Array>()
  return {
    id: inner.id,
    dims: inner.dims,
    async embed (texts, options) {
      const missing = [...new Set(texts.filter(t => !cache.has(t)))]
      if (missing.length > 0) (await inner.embed(missing, options)).forEach((v, i) => cache.set(missing[i] as string, v))
      return texts.map(t => cache.get(t) as Float32Array)
    }
  }
}

describe('a node on PostgreSQL', function () {
  this.timeout(120_000)

  it('keeps its storage across opens, names it without secrets, and refuses another', async () => {
    const dir = dirs.make()
    const url = new URL(await db.url())
    url.password = 'secret-word'
    const node = await PeakNode.open({ dir, storage: url.toString(), embedder: hashEmbedder() })
    let id: string
    try {
      id = (await node.collection('notes').put({ title: 'on a server' })).id
      const status = await node.status()
      assert.equal(status.storage.kind, 'postgres')
      assert.ok(!status.storage.location.includes('secret-word'), status.storage.location)
      assert.match(status.storage.location, /schema=peakdb_[0-9a-f]{12}/)
    } finally {
      await node.close()
    }
    assert.equal(statSync(join(dir, 'storage.json')).mode & 0o777, 0o600, 'the binding may hold a password')
    assert.match(readFileSync(join(dir, 'storage.json'), 'utf8'), /"kind": "postgres"/)
    const again = await PeakNode.open({ dir, embedder: hashEmbedder() })
    try {
      assert.deepEqual(await again.collection('notes').get(id), { _id: id, title: 'on a server' })
      assert.equal((await again.verify({ rebuild: true })).ok, true)
    } finally {
      await again.close()
    }
    await rejectsNamed(() => PeakNode.open({ dir, storage: 'sqlite', embedder: hashEmbedder() }), 'DataDirError', 'cannot be opened on the embedded SQLite file')
    await rejectsNamed(() => PeakNode.open({ dir, storage: 'mysql://nope', embedder: hashEmbedder() }), 'InvalidOptionError', 'postgres://')
  })

  it('an unreachable server fails the first open with a typed error and leaves no identity behind', async () => {
    const dir = dirs.make()
    await rejectsNamed(() => PeakNode.open({ dir, storage: { kind: 'postgres', url: 'postgres://postgres@127.0.0.1:1/x', pool: { connectionTimeoutMs: 2000 } } }), 'StorageUnavailableError', '127.0.0.1:1')
    const fresh = await PeakNode.open({ dir, embedder: hashEmbedder() })
    try {
      assert.equal(fresh.storageInfo.kind, 'sqlite', 'nothing was recorded: the next open starts over')
      assert.ok(fresh.recoveryPhrase !== undefined)
    } finally {
      await fresh.close()
    }
  })

  it('through the CLI: init --storage, then put, get and status without naming it again', async () => {
    const dir = dirs.make()
    const init = await runCli(['init', '--json', '--dir', dir, '--storage', await db.url()])
    assert.equal(init.code, 0, init.stderr)
    assert.equal(JSON.parse(init.stdout).storage.kind, 'postgres')
    const put = await runCli(['put', 'notes', '{"_id":"n1","title":"hello"}', '--dir', dir, '--json'])
    assert.equal(put.code, 0, put.stderr)
    const got = await runCli(['get', 'notes', 'n1', '--dir', dir, '--json'])
    assert.equal(got.code, 0, got.stderr)
    assert.deepEqual(JSON.parse(got.stdout), { _id: 'n1', title: 'hello' })
    const status = await runCli(['status', '--dir', dir, '--json'])
    assert.equal(JSON.parse(status.stdout).storage.kind, 'postgres')
  })

  it('search on PostgreSQL agrees with SQLite on the same data and embedder (top-10 overlap >= 0.9)', async () => {
    const data = JSON.parse(readFileSync(new URL('../bench/data/ir-eval.json', import.meta.url), 'utf8')) as { docs: Array<{ id: string, title: string, body: string }>, queries: Array<{ text: string }> }
    const model = new UseLiteEmbedder()
    const embedder = memoised(model)
    const lite = await PeakNode.open({ dir: dirs.make(), embedder, backgroundIndexing: false })
    const server = await PeakNode.open({ dir: dirs.make(), storage: await db.url(), embedder, backgroundIndexing: false })
    try {
      for (const node of [lite, server]) await node.collection('notes').putMany(data.docs.map(d => ({ _id: d.id, title: d.title, body: d.body })))
      const overlaps: Record<string, number[]> = { hybrid: [], text: [], vector: [] }
      for (const q of data.queries) {
        for (const mode of ['hybrid', 'text', 'vector'] as const) {
          const [a, b] = await Promise.all([lite, server].map(async n => (await n.collection('notes').search({ text: q.text, mode, k: 10 })).map(h => h.id)))
          const shared = (a as string[]).filter(id => (b as string[]).includes(id)).length
          overlaps[mode]!.push(shared / Math.max(1, Math.min(10, (a as string[]).length)))
        }
      }
      const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length
      assert.ok(mean(overlaps.hybrid!) >= 0.9, `hybrid top-10 overlap ${mean(overlaps.hybrid!)}`)
      assert.ok(mean(overlaps.vector!) >= 0.99, `vector top-10 overlap ${mean(overlaps.vector!)}: exact cosine on both`)
      assert.ok(mean(overlaps.text!) >= 0.6, `text top-10 overlap ${mean(overlaps.text!)} (BM25 and ts_rank_cd rank differently)`)
    } finally {
      await lite.close()
      await server.close()
      await model.close()
    }
  })
})
