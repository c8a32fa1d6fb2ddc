/**
 * The file provider (storage/file/): the document compliance suite on device-local collections,
 * its queries checked against the SQLite provider on random documents and filters, index key
 * order, TTL on an injected clock, LRU eviction under a byte budget, reopening, bad input and
 * damaged files.
 */
import assert from 'node:assert/strict'
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { open as openLmdb } from 'lmdb'
import type { JsonObject } from '../crdt/index.js'
import { normaliseQuery, normaliseWhere, parseFieldPath, SqliteProvider, type FileProviderOptions } from '../storage/index.js'
import { FileProvider } from '../storage/file/file-provider.js'
import { compareSql, compareText } from '../storage/file/filter-eval.js'
import { betweenRange, entryKeys, equalRange, idOfKey, prefixRange } from '../storage/file/index-keys.js'
import { localWriter, runDocumentStoreTests } from './storage-compliance.js'
import { rejectsNamed } from './helpers/errors.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { waitFor } from './helpers/wait-for.js'

const dirs = new TmpDirs()
runDocumentStoreTests('file', { setup: async () => await FileProvider.open({ path: dirs.make(), sweepIntervalMs: 0 }), teardown: async () => dirs.cleanup() }, { write: localWriter, local: true })

// fast-check prints the seed and path of any counterexample; PEAKDB_SEED replays one.
const seed = process.env.PEAKDB_SEED === undefined ? {} : { seed: Number(process.env.PEAKDB_SEED) }

describe('storage: file provider specifics', () => {
  const open: FileProvider[] = []
  let now = 1_700_000_000_000
  async function store (options: Partial<FileProviderOptions> = {}): Promise<FileProvider> {
    const s = await FileProvider.open({ path: options.path ?? dirs.make(), sweepIntervalMs: 0, now: () => now, ...options })
    open.push(s)
    return s
  }
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close()
    dirs.cleanup()
  })
  const ids = async (s: FileProvider, c: string, where?: unknown): Promise<string[]> =>
    (await s.find(c, normaliseQuery({ where, orderBy: '_id' }))).map(r => r.id)
  /** Which of these ids a collection holds, by count (a find would count as a read). */
  const held = async (s: FileProvider, c: string, names: string[]): Promise<string[]> => {
    const out: string[] = []
    for (const id of names) if (await s.count(c, normaliseWhere({ _id: id })) > 0) out.push(id)
    return out
  }
  const C = '~cache'

  describe('index keys', () => {
    const key = (v: string | number): Buffer => entryKeys(7, v, 'id')[0] as Buffer
    const sign = (n: number): number => Math.sign(n)
    const shortText = fc.string({ unit: 'binary', maxLength: 40 })

    it('sort as SQLite compares their values: numbers, then text by code point', () => {
      fc.assert(fc.property(fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), shortText), fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), shortText), (x, y) => {
        assert.equal(sign(Buffer.compare(key(x), key(y))), sign(compareSql(x, y)), `${JSON.stringify(x)} vs ${JSON.stringify(y)}`)
      }), { numRuns: 2000, ...seed })
    })

    it('keep a cut text value inside every range that holds the whole value', () => {
      const long = fc.string({ unit: 'binary', minLength: 200, maxLength: 400 })
      fc.assert(fc.property(long, long, (s, bound) => {
        const k = entryKeys(7, s, 'id')[0] as Buffer
        const order = compareText(s, bound)
        const within = (r: { start: Buffer, end: Buffer }): boolean => Buffer.compare(k, r.start) >= 0 && Buffer.compare(k, r.end) < 0
        if (order >= 0) assert.ok(within(betweenRange(7, bound, null, 'string')), 'gte')
        if (order <= 0) assert.ok(within(betweenRange(7, null, bound, 'string')), 'lte')
        assert.ok(within(equalRange(7, s)), 'eq')
        // a prefix ends on a whole character: half a surrogate pair is not a prefix of the UTF-8 text
        const cut = s.slice(0, 150)
        assert.ok(within(prefixRange(7, /[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut)), 'prefix')
        assert.equal(idOfKey(k), 'id')
      }), { numRuns: 1000, ...seed })
    })
  })

  describe('finds what the SQLite provider finds', () => {
    // small alphabets make equal values, shared prefixes and code-point-order traps likely
    const text = fc.constantFrom('', 'a', 'ab', 'b', 'B', 'é', 'a\u0000', '\uffff', '\u{1f600}', 'x y', '1')
    const scalar = fc.oneof(fc.constant(null), fc.boolean(), fc.integer({ min: -3, max: 3 }), fc.constantFrom(0.5, -1.5, 1e21, 2 ** 52), text)
    const member = fc.oneof(scalar, fc.array(scalar, { maxLength: 2 }), fc.record({ x: scalar }, { requiredKeys: [] }))
    const value = fc.oneof({ weight: 3, arbitrary: scalar }, { weight: 1, arbitrary: fc.array(member, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.record({ x: member, y: scalar }, { requiredKeys: [] }) })
    const docId = fc.constantFrom('a', 'b', 'B', 'a1', 'é', 'x\u{1f600}', 'x\ufffd', '10', '9')
    const docs = fc.uniqueArray(fc.record({ id: docId, body: fc.record({ a: value, b: value, n: fc.oneof(value, fc.record({ x: member, y: scalar })), arr: fc.array(member, { maxLength: 3 }) }, { requiredKeys: ['a', 'n'] }) }), { selector: d => d.id, minLength: 4, maxLength: 9 })
    const paths = ['a', 'b', 'n.x', 'n.y', 'arr', 'missing']
    const rangeValue = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constant(0.5), text)
    const condition = fc.oneof(
      fc.record({ path: fc.constantFrom(...paths), op: fc.constantFrom('eq', 'ne', 'contains'), v: scalar }),
      fc.record({ path: fc.constantFrom(...paths, '_id'), op: fc.constantFrom('gt', 'gte', 'lt', 'lte'), v: rangeValue }),
      fc.record({ path: fc.constantFrom(...paths), op: fc.constantFrom('in', 'nin'), v: fc.array(scalar, { maxLength: 3 }) }),
      fc.record({ path: fc.constantFrom(...paths, '_id'), op: fc.constant('exists'), v: fc.boolean() }),
      fc.record({ path: fc.constantFrom(...paths, '_id'), op: fc.constant('prefix'), v: text }),
      // on _id, SQLite cannot bind a boolean to `=`: ids are compared with text and numbers only
      fc.record({ path: fc.constant('_id'), op: fc.constantFrom('eq', 'ne', 'contains'), v: fc.oneof(docId, fc.integer({ min: 0, max: 10 }), fc.constant(null)) }),
      fc.record({ path: fc.constant('_id'), op: fc.constantFrom('in', 'nin'), v: fc.array(fc.oneof(docId, fc.integer({ min: 0, max: 10 })), { maxLength: 3 }) })
    ).map(c => ({ [c.path]: { [c.op]: c.v } }))
    const where: fc.Arbitrary<Record<string, unknown>> = fc.letrec<{ w: Record<string, unknown> }>(tie => ({
      w: fc.oneof({ depthSize: 'small', withCrossShrink: true },
        condition,
        fc.array(tie('w'), { minLength: 1, maxLength: 3 }).map(items => ({ $and: items })),
        fc.array(tie('w'), { minLength: 1, maxLength: 3 }).map(items => ({ $or: items })),
        tie('w').map(w => ({ $not: w })))
    })).w
    const order = fc.array(fc.constantFrom(...paths, '_id').chain(p => fc.constantFrom(p, `-${p}`)), { maxLength: 2 })

    it('for random documents, filters and orders, with and without indexes', async () => {
      const file = await store()
      const sqlite = await SqliteProvider.open({ path: join(dirs.make(), 'db.sqlite') })
      try {
        let run = 0
        await fc.assert(fc.asyncProperty(docs, where, order, fc.nat(3), async (ds, w, orderBy, offset) => {
          run++
          const plain = `~p${run}`
          const indexed = `~i${run}`
          for (const p of paths) await file.ensureIndex(indexed, parseFieldPath(p))
          const writes = ds.map(d => ({ id: d.id, body: d.body as JsonObject }))
          await sqlite.writeLocal(plain, writes)
          await file.writeLocal(plain, writes)
          await file.writeLocal(indexed, writes)
          const q = normaliseQuery({ where: w, orderBy, offset, limit: 5 })
          const expected = (await sqlite.find(plain, q)).map(r => [r.id, r.body])
          assert.deepEqual((await file.find(plain, q)).map(r => [r.id, r.body]), expected, 'scan')
          assert.deepEqual((await file.find(indexed, q)).map(r => [r.id, r.body]), expected, 'index')
          const n = await sqlite.count(plain, q.filter)
          assert.equal(await file.count(plain, q.filter), n, 'count')
          assert.equal(await file.count(indexed, q.filter), n, 'count by index')
        }), { numRuns: 300, ...seed })
        assert.deepEqual(await file.checkIntegrity(), [])
      } finally {
        await sqlite.close()
      }
    }).timeout(120_000)
  })

  it('hides documents once their collection\'s TTL has passed, on an injected clock, and sweeps them', async () => {
    const s = await store()
    const t0 = now
    await s.setCollectionPolicy(C, { ttlMs: 1000 })
    await s.ensureIndex(C, parseFieldPath('k'))
    await s.writeLocal(C, [{ id: 'a', body: { k: 1 } }])
    now = t0 + 500
    await s.writeLocal(C, [{ id: 'b', body: { k: 1 } }])
    now = t0 + 999
    assert.deepEqual((await s.getDocument(C, 'a'))?.body, { k: 1 })
    assert.equal(await s.count(C, undefined), 2)
    now = t0 + 1000
    assert.equal(await s.getDocument(C, 'a'), undefined, 'expired exactly at write time + TTL')
    assert.deepEqual(await ids(s, C), ['b'])
    assert.deepEqual(await ids(s, C, { k: 1 }), ['b'], 'through the index too')
    assert.equal(await s.count(C, undefined), 1)
    assert.equal(await s.count(C, normaliseWhere({ k: 1 })), 1)
    assert.deepEqual((await s.collections()).map(c => [c.name, c.count]), [[C, 1]])
    assert.equal(await s.sweep(), 1)
    assert.equal(await s.sweep(), 0)
    assert.deepEqual(await s.checkIntegrity(), [])
    const changes = await s.writeLocal(C, [{ id: 'a', body: { k: 2 } }])
    assert.deepEqual(changes.map(c => [c.id, c.before, c.after]), [['a', null, { k: 2 }]], 'an expired document was gone: writing it again creates it')
    now = t0 + 1500
    assert.deepEqual(await ids(s, C), ['a'])
    assert.deepEqual(await s.writeLocal(C, [{ id: 'b', body: null }]), [], 'deleting an expired document changes nothing visible')
    assert.deepEqual(await s.checkIntegrity(), [])
  })

  it('sweeps expired documents and saves read recency in the background', async () => {
    const s = await store({ sweepIntervalMs: 10 })
    const t0 = now
    await s.setCollectionPolicy(C, { ttlMs: 1000, maxBytes: 350 })
    await s.writeLocal(C, put('a', 'b', 'c'))
    assert.ok(await s.getDocument(C, 'a'))
    // the timer's sweep removes what expired: turning the clock back then shows it gone for good
    now = t0 + 1000
    await waitFor(async () => {
      now = t0
      const gone = (await s.count(C, undefined)) === 0
      now = t0 + 1000
      return gone
    }, { message: 'the background sweep' })
    assert.deepEqual(await s.checkIntegrity(), [])
    now = t0 + 2000
    await s.writeLocal(C, put('a', 'b', 'c'))
    assert.ok(await s.getDocument(C, 'a'))
    // reads are saved by the timer, not only by the next write (peeking at the count of reads held in memory)
    await waitFor(() => (s as unknown as { touchCount: number }).touchCount === 0, { message: 'the background recency flush' })
    const changes = await s.writeLocal(C, put('d'))
    assert.deepEqual(changes.filter(c => c.after === null).map(c => c.id), ['b'])
  })

  it('restarts a document\'s TTL when it is written again, and lets a collection override the store default', async () => {
    const s = await store({ ttlMs: 1000 })
    const t0 = now
    await s.writeLocal(C, [{ id: 'a', body: { v: 1 } }])
    await s.setCollectionPolicy('~keep', { ttlMs: null })
    await s.writeLocal('~keep', [{ id: 'k', body: { v: 1 } }])
    now = t0 + 900
    assert.deepEqual(await s.writeLocal(C, [{ id: 'a', body: { v: 1 } }]), [], 'the same body is no change')
    now = t0 + 1500
    assert.deepEqual((await s.getDocument(C, 'a'))?.body, { v: 1 }, 'its TTL restarted at the second write')
    now = t0 + 1900
    assert.equal(await s.getDocument(C, 'a'), undefined)
    now = t0 + 1_000_000
    assert.deepEqual((await s.getDocument('~keep', 'k'))?.body, { v: 1 })
    assert.deepEqual(await s.collectionPolicy(C), { ttlMs: 1000, maxBytes: null })
    assert.deepEqual(await s.collectionPolicy('~keep'), { ttlMs: null, maxBytes: null })
    await s.setCollectionPolicy('~keep', undefined)
    assert.equal(await s.getDocument('~keep', 'k'), undefined, 'back on the default, it has long expired')
    assert.equal(await s.count('~keep', undefined), 0, 'and the new policy swept it at once')
    assert.equal(await s.sweep(), 1)
    assert.deepEqual(await s.checkIntegrity(), [])
  })

  // 106 bytes each: [write time, { v: 90 x }] is 105 bytes of MessagePack (1 + 9 + 1 + 2 + 2 + 90), plus a 1-byte id
  const body = { v: 'x'.repeat(90) }
  const put = (...names: string[]): Array<{ id: string, body: JsonObject }> => names.map(id => ({ id, body }))

  it('evicts the least recently used documents to stay within a byte budget; reads count as use', async () => {
    const s = await store()
    await s.setCollectionPolicy(C, { maxBytes: 350 })
    await s.writeLocal(C, put('a', 'b', 'c'))
    assert.ok(await s.getDocument(C, 'a'))
    const first = await s.writeLocal(C, put('d'))
    assert.deepEqual(first.map(c => [c.id, c.after === null ? 'evicted' : 'written']), [['d', 'written'], ['b', 'evicted']], 'b was the least recently used: a was read after it')
    assert.deepEqual(await held(s, C, ['a', 'b', 'c', 'd']), ['a', 'c', 'd'], 'counting is not reading')
    assert.equal((await s.find(C, normaliseQuery({ where: { _id: 'c' } }))).length, 1, 'a find reads c')
    const second = await s.writeLocal(C, put('e'))
    assert.deepEqual(second.filter(c => c.after === null).map(c => c.id), ['a'])
    assert.deepEqual(await held(s, C, ['a', 'b', 'c', 'd', 'e']), ['c', 'd', 'e'])
    const shrink = await s.setCollectionPolicy(C, { maxBytes: 220 })
    assert.deepEqual(shrink.map(c => c.id), ['d'], 'a smaller budget evicts at once')
    assert.deepEqual(await s.checkIntegrity(), [])
    const info = (await s.collections()).find(c => c.name === C)
    assert.equal(info?.count, 2)
  })

  it('refuses a document larger than its collection\'s whole budget, writing nothing of the batch', async () => {
    const s = await store()
    await s.setCollectionPolicy(C, { maxBytes: 150 })
    await s.writeLocal(C, put('a'))
    await rejectsNamed(() => s.writeLocal(C, [{ id: 'b', body: { v: 1 } }, { id: 'big', body: { v: 'x'.repeat(200) } }]), 'OverBudgetError', '150-byte budget')
    assert.deepEqual(await ids(s, C), ['a'])
    assert.deepEqual(await s.checkIntegrity(), [])
  })

  it('keeps documents, policies, indexes and read recency across a reopen, and applies a changed default', async () => {
    const path = dirs.make()
    const s = await store({ path })
    await s.setCollectionPolicy(C, { maxBytes: 350 })
    await s.ensureIndex(C, parseFieldPath('v'))
    await s.writeLocal(C, put('a', 'b', 'c'))
    assert.ok(await s.getDocument(C, 'a'))
    await s.close()
    const again = await store({ path })
    assert.deepEqual(await again.collectionPolicy(C), { ttlMs: null, maxBytes: 350 })
    assert.deepEqual(await again.collections(), [{ name: C, count: 3, indexes: ['v'] }])
    assert.equal(await again.count(C, normaliseWhere({ v: body.v })), 3)
    const changes = await again.writeLocal(C, put('d'))
    assert.deepEqual(changes.filter(c => c.after === null).map(c => c.id), ['b'], 'the read of a before closing was kept')
    await again.close()
    const t0 = now
    const third = await store({ path, ttlMs: 1000 })
    await third.writeLocal('~other', put('x'))
    assert.deepEqual(await third.checkIntegrity(), [], 'expiry keys were built for the new default TTL')
    now = t0 + 1000
    assert.deepEqual(await ids(third, C), [])
    assert.equal(await third.sweep(), 4)
    assert.deepEqual(await third.checkIntegrity(), [])
  })

  it('rejects ids and bodies that are not plain JSON with InvalidBodyError, writing nothing of the batch', async () => {
    const s = await store()
    const cycle: Record<string, unknown> = { a: 1 }
    cycle.self = cycle
    const bad: unknown[] = [
      { n: 1n }, { f: () => 1 }, { x: Number.NaN }, { x: Infinity }, { d: new Date(0) }, { m: new Map() }, { u: undefined },
      cycle, [1, 2], 'text', 42, { deep: JSON.parse('['.repeat(40) + ']'.repeat(40)) as unknown },
      // stored as UTF-8, a lone surrogate would come back changed
      { s: 'a\ud800' }, { list: ['\udc00'] }, { ['k\ud800']: 1 }
    ]
    for (const body of bad) {
      await rejectsNamed(() => s.writeLocal(C, [{ id: 'ok', body: { fine: true } }, { id: 'bad', body: body as JsonObject }]), 'InvalidBodyError', 'write 1')
    }
    for (const id of ['', 5, 'x'.repeat(300), 'a\u0001b', undefined]) {
      await rejectsNamed(() => s.writeLocal(C, [{ id: 'ok', body: { fine: true } }, { id: id as string, body: { v: 1 } }]), 'InvalidBodyError', '"id"')
    }
    assert.equal(await s.getDocument(C, 'ok'), undefined)
    assert.deepEqual(await s.collections(), [])
    assert.deepEqual(await s.writeLocal(C, [{ id: 'ok', body: { fine: true } }]).then(c => c.length), 1, 'the store still takes writes')
    assert.deepEqual(await s.checkIntegrity(), [])
  })

  it('serves device-local collections only, and rejects bad options and policies', async () => {
    const s = await store()
    await rejectsNamed(() => s.writeLocal('notes', [{ id: 'x', body: {} }]), 'NotDeviceLocalError', 'not a device-local collection')
    await rejectsNamed(() => s.setCollectionPolicy('notes', { ttlMs: 1 }), 'NotDeviceLocalError')
    await rejectsNamed(() => s.ensureIndex('notes', parseFieldPath('a')), 'NotDeviceLocalError')
    await rejectsNamed(() => s.writeLocal(`~${'c'.repeat(200)}`, [{ id: 'x', body: {} }]), 'NotDeviceLocalError')
    assert.equal(await s.getDocument('notes', 'x'), undefined)
    await s.writeLocal(C, put('a'))
    assert.deepEqual(await s.collectionDigests(), new Map(), 'device-local collections are left out of state digests')
    for (const policy of [{ ttlMs: 0 }, { maxBytes: -1 }, { ttlMs: 1.5 }, { ttlMs: '10' }, { size: 1 }, null]) {
      await rejectsNamed(() => s.setCollectionPolicy(C, policy as never), 'InvalidOptionError')
    }
    await rejectsNamed(() => FileProvider.open({ path: dirs.make(), ttlMs: 0 }), 'InvalidOptionError', '"ttlMs"')
    await rejectsNamed(() => FileProvider.open({ path: dirs.make(), sweepIntervalMs: -1 }), 'InvalidOptionError')
    await rejectsNamed(() => FileProvider.open({ path: '' }), 'InvalidOptionError')
  })

  it('refuses a data file that is not an LMDB file, or is truncated, without opening it', async () => {
    const path = dirs.make()
    writeFileSync(join(path, 'data.mdb'), 'this is not a database at all, just some text that is long enough to be read'.repeat(100))
    const before = readFileSync(join(path, 'data.mdb'))
    await rejectsNamed(() => FileProvider.open({ path }), 'StorageCorruptError', 'bad magic')
    assert.deepEqual(readFileSync(join(path, 'data.mdb')), before, 'left untouched')
    const other = dirs.make()
    const s = await store({ path: other })
    await s.writeLocal(C, Array.from({ length: 300 }, (_, i) => ({ id: `d${i}`, body: { v: 'x'.repeat(500) } })))
    await s.close()
    const file = join(other, 'data.mdb')
    truncateSync(file, Math.floor(statSync(file).size / 2))
    await rejectsNamed(() => FileProvider.open({ path: other }), 'StorageCorruptError', 'truncated')
  })

  it('refuses a store of a newer format, or with a malformed collection record', async () => {
    const path = dirs.make()
    await (await store({ path })).writeLocal(C, put('a'))
    await open.pop()?.close()
    const raw = openLmdb({ path, noSubdir: false, maxDbs: 8 })
    await raw.openDB('meta', {}).put('format', 2)
    await raw.close()
    await rejectsNamed(() => FileProvider.open({ path }), 'SchemaVersionError', 'format 2')
    const raw2 = openLmdb({ path, noSubdir: false, maxDbs: 8 })
    await raw2.openDB('meta', {}).put('format', 1)
    await raw2.openDB('colls', {}).put(C, { count: 'many' })
    await raw2.close()
    await rejectsNamed(() => FileProvider.open({ path }), 'StorageCorruptError', 'malformed')
  })

  it('finds records and keys out of step with the documents', async () => {
    const path = dirs.make()
    const s = await store({ path })
    await s.setCollectionPolicy(C, { ttlMs: 60_000, maxBytes: 10_000 })
    await s.ensureIndex(C, parseFieldPath('v'))
    await s.writeLocal(C, put('a', 'b'))
    assert.deepEqual(await s.checkIntegrity(), [])
    await s.close()
    const raw = openLmdb({ path, noSubdir: false, maxDbs: 8 })
    const colls = raw.openDB('colls', {})
    const rec = colls.get(C) as { count: number }
    await colls.put(C, { ...rec, count: 5 })
    const index = raw.openDB('index', { keyEncoding: 'binary', encoding: 'binary' })
    const first = index.getKeys({ limit: 1 }).asArray
    for (const k of await first) await index.remove(k)
    await raw.close()
    const again = await store({ path })
    const problems = await again.checkIntegrity()
    assert.ok(problems.some(p => /record says 5 documents/.test(p)), problems.join('\n'))
    assert.ok(problems.some(p => /missing from the index on v/.test(p)), problems.join('\n'))
  })

  it('refuses every call after close', async () => {
    const s = await store()
    await s.close()
    await rejectsNamed(() => s.writeLocal(C, put('a')), 'StorageClosedError')
    await rejectsNamed(() => s.find(C, normaliseQuery({})), 'StorageClosedError')
    await rejectsNamed(() => s.count(C, undefined), 'StorageClosedError')
    await rejectsNamed(() => s.collections(), 'StorageClosedError')
    await rejectsNamed(() => s.setCollectionPolicy(C, { ttlMs: 5 }), 'StorageClosedError')
    await rejectsNamed(() => s.sweep(), 'StorageClosedError')
    await rejectsNamed(() => s.checkIntegrity(), 'StorageClosedError')
  })
})
