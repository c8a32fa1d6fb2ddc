import assert from 'node:assert/strict'
import { readFileSync, statSync, writeFileSync, unlinkSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { PeakNode, MAX_DOC_BYTES } from '../node/index.js'
import { rejectsNamed } from './helpers/errors.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { hashEmbedder } from './helpers/embedders.js'

describe('node: PeakNode and collections', () => {
  const dirs = new TmpDirs()
  const nodes: PeakNode[] = []
  async function open (dir: string, opts: Record<string, unknown> = {}): Promise<PeakNode> {
    const n = await PeakNode.open({ dir, embedder: hashEmbedder(), ...opts })
    nodes.push(n)
    return n
  }
  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.close()
    dirs.cleanup()
  })

  it('creates an identity on first open, shows the phrase once, and keeps ids across reopen', async () => {
    const dir = dirs.make()
    const a = await open(dir, { deviceName: 'laptop' })
    assert.equal(a.recoveryPhrase?.split(' ').length, 24)
    assert.match(a.deviceId, /^12D3KooW/)
    assert.equal(a.deviceName, 'laptop')
    const { deviceId, swarmId } = a
    await a.close()
    assert.equal(statSync(join(dir, 'keystore.json')).mode & 0o777, 0o600)
    const keystore = readFileSync(join(dir, 'keystore.json'), 'utf8')
    for (const word of (a.recoveryPhrase as string).split(' ').slice(0, 4)) assert.ok(!keystore.includes(` ${word} `))
    const b = await open(dir)
    assert.equal(b.recoveryPhrase, undefined)
    assert.equal(b.deviceId, deviceId)
    assert.equal(b.swarmId, swarmId)
  })

  it('the package entry goes on the network on the Node versions it supports (no polyfill loaded by the caller)', async () => {
    const dir = dirs.make()
    const script = `
      import { PeakNode } from './node/index.ts'
      const node = await PeakNode.open({ dir: ${JSON.stringify(dir)}, network: { listen: ['/ip4/127.0.0.1/tcp/0'], dht: false } })
      console.log(JSON.stringify({ addrs: node.network.multiaddrs().length, phrase: node.recoveryPhrase !== undefined }))
      await node.close()`
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { addrs: 1, phrase: true })
  })

  it('a first open that fails leaves no identity behind: the next open creates one and shows its phrase', async () => {
    const dir = dirs.make()
    const busy = createServer()
    await new Promise<void>(resolve => busy.listen(0, '127.0.0.1', resolve))
    const port = (busy.address() as AddressInfo).port
    try {
      await assert.rejects(PeakNode.open({ dir, embedder: hashEmbedder(), network: { listen: [`/ip4/127.0.0.1/tcp/${port}`], dht: false } }))
    } finally {
      busy.close()
    }
    assert.equal(existsSync(join(dir, 'keystore.json')), false, 'no keystore whose phrase nobody saw')
    const a = await open(dir)
    assert.equal(a.recoveryPhrase?.split(' ').length, 24)
  })

  it('restoring from the phrase in another data dir gives the same swarm and a new device', async () => {
    const a = await open(dirs.make())
    const b = await open(dirs.make(), { recoveryPhrase: a.recoveryPhrase })
    assert.equal(b.swarmId, a.swarmId)
    assert.notEqual(b.deviceId, a.deviceId)
    assert.equal(b.recoveryPhrase, undefined)
    await rejectsNamed(() => PeakNode.open({ dir: dirs.make(), recoveryPhrase: 'one two three' }), 'InvalidRecoveryPhraseError')
  })

  it('puts, gets, patches, deletes and finds documents', async () => {
    const node = await open(dirs.make())
    const notes = node.collection('notes')
    const w = await notes.put({ title: 'hi', tags: ['a'], year: 2021 })
    assert.match(w.id, /^[0-9a-z]{26}$/)
    assert.match(w.entry ?? '', /^bafyrei/)
    assert.deepEqual(await notes.get(w.id), { _id: w.id, title: 'hi', tags: ['a'], year: 2021 })
    await notes.put({ _id: 'fixed', title: 'b', year: 2019 })
    await notes.patch('fixed', { year: 2023 })
    assert.deepEqual(await notes.get('fixed'), { _id: 'fixed', title: 'b', year: 2023 })
    await notes.put({ _id: 'fixed', title: 'replaced' })
    assert.deepEqual(await notes.get('fixed'), { _id: 'fixed', title: 'replaced' })
    const found = await notes.find({ where: { tags: 'a', year: { gte: 2020 } }, orderBy: 'title', limit: 20 })
    assert.deepEqual(found.map(d => d._id), [w.id])
    assert.equal(await notes.count(), 2)
    const del = await notes.delete(w.id)
    assert.equal(del.existed, true)
    assert.equal(await notes.get(w.id), null)
    assert.equal((await notes.delete('never-existed')).existed, false)
    await rejectsNamed(() => notes.patch('nope', { a: 1 }), 'DocumentNotFoundError')
    assert.deepEqual((await node.collections()).map(c => [c.name, c.count]), [['notes', 1]])
  })

  it('putMany writes one entry in one transaction, and nothing when one document is invalid', async () => {
    const node = await open(dirs.make())
    const c = node.collection('docs')
    const before = (await node.status()).entries
    const r = await c.putMany(Array.from({ length: 500 }, (_, i) => ({ _id: `d${i}`, n: i })))
    assert.equal(r.ids.length, 500)
    assert.equal(r.entries.length, 1)
    assert.equal((await node.status()).entries, before + 1)
    await rejectsNamed(() => c.putMany([{ n: 1 }, { bad: () => 1 }]), 'InvalidDocumentError', 'document 1')
    assert.equal((await node.status()).entries, before + 1)
    assert.equal(await c.count(), 500)
  })

  it('rejects bad collection names, bad documents and oversized documents with typed errors, writing nothing', async () => {
    const node = await open(dirs.make())
    const entries = (await node.status()).entries
    for (const name of ['', '1abc', 'has space', 'a/b', '_system', 'x'.repeat(65)]) {
      await rejectsNamed(() => node.collection(name), 'InvalidCollectionNameError')
    }
    const c = node.collection('notes')
    await rejectsNamed(() => c.put([1, 2] as unknown as object), 'InvalidDocumentError', 'JSON object')
    await rejectsNamed(() => c.put(null as unknown as object), 'InvalidDocumentError')
    await rejectsNamed(() => c.put({ a: Number.NaN }), 'InvalidDocumentError', 'NaN')
    await rejectsNamed(() => c.put({ a: new Date() }), 'InvalidDocumentError', 'Date')
    await rejectsNamed(() => c.put({ a: undefined }), 'InvalidDocumentError', 'undefined')
    await rejectsNamed(() => c.put({ _id: '' }), 'InvalidDocumentError', '"_id"')
    await rejectsNamed(() => c.put({ _id: 5 }), 'InvalidDocumentError', '"_id"')
    await rejectsNamed(() => c.put(JSON.parse('{"__proto__": {"x": 1}}') as object), 'InvalidDocumentError', '__proto__')
    await rejectsNamed(() => c.put({ body: 'x'.repeat(MAX_DOC_BYTES) }), 'DocumentTooLargeError')
    await rejectsNamed(() => c.find({ where: { a: { like: 'x' } } }), 'InvalidQueryError')
    const aborted = new AbortController()
    aborted.abort()
    await rejectsNamed(() => c.put({ a: 1 }, { signal: aborted.signal }), 'AbortError')
    assert.equal((await node.status()).entries, entries)
    assert.equal(await c.count(), 0)
  })

  it('one process per data dir: a second open is refused while the first is open', async () => {
    const dir = dirs.make()
    const a = await open(dir)
    await rejectsNamed(() => PeakNode.open({ dir }), 'DataDirLockedError', String(process.pid))
    await a.close()
    const b = await open(dir)
    assert.equal(b.deviceId, a.deviceId)
    await b.close()
    await rejectsNamed(() => b.collection('x').get('y'), 'NodeClosedError')
  })

  it('never re-initialises over a corrupt or missing keystore, naming the file', async () => {
    const dir = dirs.make()
    const a = await open(dir)
    await a.collection('notes').put({ a: 1 })
    await a.close()
    const path = join(dir, 'keystore.json')
    const original = readFileSync(path, 'utf8')
    writeFileSync(path, original.slice(0, 40))
    await rejectsNamed(() => PeakNode.open({ dir }), 'KeystoreCorruptError', path)
    assert.equal(readFileSync(path, 'utf8'), original.slice(0, 40))
    unlinkSync(path)
    await rejectsNamed(() => PeakNode.open({ dir }), 'DataDirError', 'keystore.json is missing')
    assert.equal(existsSync(path), false)
  })

  it('reports a corrupt database by name and does not replace it', async () => {
    const dir = dirs.make()
    const a = await open(dir)
    await a.close()
    const db = join(dir, 'peakdb.sqlite')
    writeFileSync(db, Buffer.alloc(8192, 7))
    await rejectsNamed(() => PeakNode.open({ dir }), 'StorageCorruptError', db)
    assert.equal(readFileSync(db).every(b => b === 7), true)
  })

  it('refuses to open a data dir without an identity when asked not to create one', async () => {
    const dir = join(dirs.make(), 'nothing-here')
    await rejectsNamed(() => PeakNode.open({ dir, create: false }), 'NotInitializedError')
    assert.equal(existsSync(dir), false)
  })

  it('device-local collections keep documents out of the log, are remembered, and are searchable', async () => {
    const dir = dirs.make()
    let a = await open(dir)
    const entries = (await a.status()).entries
    const files = a.collection('files', { replicate: false })
    const changes: string[] = []
    a.on('change', ev => { for (const c of ev.changes) changes.push(`${c.collection}/${c.id}`) })
    const w = await files.put({ _id: 'f1', path: '/home/u/tax-2025.txt', text: 'tax return 2025 receipts' })
    assert.equal(w.entry, null)
    assert.equal(w.status, 'confirmed')
    await files.putMany([{ _id: 'f2', path: '/home/u/cat.md', text: 'the cat sits on the mat' }, { _id: 'f3', path: '/x', text: 'x' }])
    await files.patch('f3', { text: 'patched' })
    assert.deepEqual(await files.get('f3'), { _id: 'f3', path: '/x', text: 'patched' })
    assert.equal((await files.delete('f3')).existed, true)
    assert.equal(await files.count(), 2)
    assert.deepEqual((await files.find({ where: { path: { prefix: '/home/u/' } }, orderBy: 'path' })).map(d => d._id), ['f2', 'f1'])
    assert.equal((await files.search({ text: 'tax return', mode: 'text', k: 1 }))[0]?.id, 'f1')
    assert.equal((await a.status()).entries, entries, 'no log entry for device-local writes')
    assert.ok(changes.includes('~files/f1') && changes.includes('~files/f3'))
    assert.equal((await a.verify({ rebuild: true })).stateMatches, true, 'a replay of the log leaves device-local documents out of the comparison')
    assert.deepEqual((await a.collections()).map(c => [c.name, c.count, c.local ?? false]), [['files', 2, true]])
    assert.equal(await a.collection('files2').count(), 0)
    await a.close()
    a = await open(dir)
    assert.equal(await a.collection('files').count(), 2, 'remembered as device-local')
    assert.throws(() => a.collection('files', { replicate: true }), { name: 'InvalidOptionError' })
    await a.collection('notes').put({ title: 'replicated' })
    await rejectsNamed(() => a.collection('notes', { replicate: false }).count(), 'InvalidOptionError')
  })

  it('emits change events for local writes and verifies its own log', async () => {
    const node = await open(dirs.make())
    const seen: string[] = []
    node.on('change', ev => { for (const c of ev.changes) seen.push(`${ev.origin}:${c.id}:${c.after === null ? 'deleted' : 'set'}`) })
    await node.collection('n').put({ _id: 'a', v: 1 })
    await node.collection('n').delete('a')
    assert.deepEqual(seen, ['local:a:set', 'local:a:deleted'])
    const report = await node.verify({ rebuild: true })
    assert.equal(report.ok, true, JSON.stringify(report))
    assert.equal(report.stateMatches, true)
  })
})
