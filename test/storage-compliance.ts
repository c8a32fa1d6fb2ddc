/**
 * Storage compliance suites, one per role of storage/provider.ts (like automerge-repo's
 * runStorageAdapterTests): every provider runs the suites of the roles it serves. `setup`
 * returns a fresh, empty store (and may be called more than once in a test); `teardown` runs
 * after each test, once the stores are closed.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { stampOf, type DataOp, type JsonObject, type Stamp } from '../crdt/index.js'
import {
  LOCAL_PREFIX, normaliseQuery, normaliseWhere, parseFieldPath,
  type CommitItem, type DocumentStore, type LogStore, type MaterializingStore, type SearchStore, type StorageProvider
} from '../storage/index.js'
import { rejectsNamed } from './helpers/errors.js'

const A = '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
const B = '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'

function cid (): Uint8Array {
  // shaped like a CIDv1 dag-cbor sha2-256: 4-byte prefix + 32-byte digest
  return Uint8Array.from([0x01, 0x71, 0x12, 0x20, ...randomBytes(32)])
}

let clock = 1
function item (author: string, seq: number, ops: DataOp[], stamp?: Stamp): CommitItem {
  return { cid: cid(), author, seq, bytes: randomBytes(50), stamp: stamp ?? stampOf({ ms: clock++, c: 0 }, author), ops, control: [] }
}

const put = (id: string, f: Record<string, unknown>, c = 'notes'): DataOp => ({ t: 'put', c: c as never, id: id as never, f: f as never })
const del = (id: string, c = 'notes'): DataOp => ({ t: 'del', c: c as never, id: id as never })

/** Makes fresh stores of one kind. */
export interface StoreFactory<T> {
  readonly setup: () => Promise<T>
  readonly teardown: () => Promise<void>
}

/** Writes whole documents into a document store the way its provider is fed. */
export type DocWriter<T extends DocumentStore> = (store: T, collection: string, writes: ReadonlyArray<{ id: string, body: JsonObject | null }>) => Promise<void>

/** Feeds a full provider through its log: a put replaces the document, null deletes it. */
export function logWriter (): DocWriter<StorageProvider> {
  let seq = 0
  const author = '12D3KooWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW'
  return async (s, collection, writes) => {
    const ops = writes.map(w => w.body === null ? del(w.id, collection) : put(w.id, w.body, collection))
    await s.commit([item(author, ++seq, ops)])
  }
}

/** Feeds a store through `writeLocal` (device-local collections). */
export const localWriter: DocWriter<DocumentStore> = async (s, collection, writes) => { await s.writeLocal(collection, writes) }

function withStore<T extends { close: () => Promise<void> }> (factory: StoreFactory<T>): { get: () => T } {
  let s: T | undefined
  beforeEach(async () => { s = await factory.setup() })
  afterEach(async () => {
    await s?.close()
    s = undefined
    await factory.teardown()
  })
  return { get: () => s as T }
}

/** The log role: entries, heads, membership records, materialisation, Yjs updates, digests. */
export function runLogStoreTests (name: string, factory: StoreFactory<LogStore & DocumentStore>): void {
  describe(`storage compliance, log: ${name}`, () => {
    const store = withStore(factory)

    it('commits entries with their documents and reports heads and changes', async () => {
      const s = store.get()
      const r = await s.commit([item(A, 1, [put('x', { a: 1 }), put('y', { b: 2 })]), item(A, 2, [del('y')])])
      assert.equal(r.positions.length, 2)
      assert.ok(r.positions.every(p => p > 0))
      assert.ok((r.positions[1] as number) > (r.positions[0] as number), 'positions grow in commit order')
      assert.deepEqual(r.changes.map(c => [c.id, c.before, c.after]), [['x', null, { a: 1 }], ['y', null, { b: 2 }], ['y', { b: 2 }, null]])
      const heads = await s.heads()
      assert.deepEqual(heads.map(h => [h.author, h.seq]), [[A, 2]])
      assert.deepEqual((await s.getDocument('notes', 'x'))?.body, { a: 1 })
      assert.equal((await s.getDocument('notes', 'y'))?.body, null)
      assert.equal(await s.entryCount(), 2)
    })

    it('skips entries it already holds (same author and seq) and applies them once', async () => {
      const s = store.get()
      const first = item(A, 1, [put('x', { n: 1 })])
      await s.commit([first])
      const r = await s.commit([first])
      assert.deepEqual(r.positions, [-1])
      assert.equal(r.changes.length, 0)
      assert.equal(await s.entryCount(), 1)
      const twice = await s.commit([item(B, 1, [put('z', { n: 1 })]), item(B, 1, [put('z', { n: 2 })])])
      assert.equal(twice.positions[1], -1, 'a second entry at the same author and seq in one batch is skipped')
      assert.deepEqual((await s.getDocument('notes', 'z'))?.body, { n: 1 })
    })

    it('stores any string a peer may send: NUL and lone surrogates read back as written', async () => {
      const s = store.get()
      const odd = { nul: 'a\u0000b', lone: 'x\ud800y', low: '\udc00', pair: '\ud83d\ude00', tag: 'odd' }
      await s.commit([item(A, 1, [put('odd', odd), put('plain', { tag: 'plain' })])])
      assert.deepEqual((await s.getDocument('notes', 'odd'))?.body, odd)
      assert.deepEqual((await s.find('notes', normaliseQuery({ where: { tag: 'odd' } }))).map(r => r.body), [odd])
      assert.equal(await s.count('notes', normaliseWhere({ pair: '\ud83d\ude00' })), 1)
    })

    it('a failing commit leaves nothing behind', async () => {
      const s = store.get()
      const bad = put('z', { big: 1n as unknown as number })
      await assert.rejects(() => s.commit([item(A, 1, [put('x', { a: 1 })]), item(A, 2, [bad])]))
      assert.equal(await s.entryCount(), 0)
      assert.equal(await s.getDocument('notes', 'x'), undefined)
      assert.deepEqual(await s.heads(), [])
      assert.equal((await s.commit([item(A, 1, [put('x', { a: 2 })])])).positions.length, 1, 'the store still takes commits')
    })

    it('finds entries by CID and by author/seq, scans them, and lists what a peer lacks in log order', async () => {
      const s = store.get()
      const items = [item(A, 1, []), item(B, 1, []), item(A, 2, []), item(B, 2, []), item(A, 3, [])]
      await s.commit(items)
      assert.deepEqual(await s.getEntry(items[2]!.cid), items[2]!.bytes)
      assert.equal(await s.getEntry(cid()), undefined)
      assert.deepEqual(await s.getEntryAt(B, 2), items[3]!.bytes)
      assert.equal(await s.getEntryAt(B, 9), undefined)
      const has = await s.hasEntries([items[0]!.cid, cid()])
      assert.deepEqual([...has], [Buffer.from(items[0]!.cid).toString('base64')])
      const lacking = await s.entriesNotIn(new Map([[A, 1]]), 0, { maxEntries: 100, maxBytes: 1 << 20 })
      assert.deepEqual(lacking.entries.map(e => [e.author, e.seq]), [[B, 1], [A, 2], [B, 2], [A, 3]])
      assert.equal(lacking.next, undefined)
      assert.deepEqual((await s.entriesNotIn(new Map([[A, 3], [B, 2]]), 0, { maxEntries: 100, maxBytes: 1 << 20 })).entries, [])
      const page = await s.entriesNotIn(new Map(), 0, { maxEntries: 2, maxBytes: 1 << 20 })
      assert.deepEqual(page.entries.map(e => [e.author, e.seq]), [[A, 1], [B, 1]])
      const rest = await s.entriesNotIn(new Map(), page.next!, { maxEntries: 100, maxBytes: 1 << 20 })
      assert.deepEqual(rest.entries.map(e => [e.author, e.seq]), [[A, 2], [B, 2], [A, 3]])
      const small = await s.entriesNotIn(new Map(), 0, { maxEntries: 100, maxBytes: 120 })
      assert.equal(small.entries.length, 2, 'byte cap (50-byte entries, 120-byte cap)')
      const scanned = await s.scanEntries(0, 3)
      assert.deepEqual(scanned.map(e => [e.author, e.seq]), [[A, 1], [B, 1], [A, 2]])
      assert.deepEqual(scanned[1]!.bytes, items[1]!.bytes)
      assert.deepEqual(Buffer.from(scanned[1]!.cid), Buffer.from(items[1]!.cid))
      assert.deepEqual((await s.scanEntries(scanned[2]!.pos, 10)).map(e => [e.author, e.seq]), [[B, 2], [A, 3]])
    })

    it('keeps chain signatures beside their entries: given at commit or set later', async () => {
      const s = store.get()
      const sig = (n: number): Uint8Array => new Uint8Array(64).fill(n)
      const items = [item(A, 1, []), { ...item(A, 2, []), sig: sig(2) }, item(B, 1, []), item(A, 3, [])]
      await s.commit(items)
      await s.setEntrySignature(items[3]!.cid, sig(3))
      const stored = async (i: number): Promise<string | undefined> => { const b = await s.entrySignature(items[i]!.cid); return b === undefined ? undefined : Buffer.from(b).toString('hex') }
      assert.equal(await stored(1), Buffer.from(sig(2)).toString('hex'))
      assert.equal(await stored(0), undefined)
      assert.equal(await stored(3), Buffer.from(sig(3)).toString('hex'))
      const scanned = await s.scanEntries(0, 10)
      assert.deepEqual(scanned.map(e => e.sig == null ? null : e.sig[0]), [null, 2, null, 3])
      const lacking = await s.entriesNotIn(new Map(), 0, { maxEntries: 100, maxBytes: 1 << 20 })
      assert.deepEqual(lacking.entries.map(e => e.sig == null ? null : e.sig[0]), [null, 2, null, 3])
    })

    it('merges concurrent writes per field by stamp, whatever the arrival order', async () => {
      const s = store.get()
      const early = stampOf({ ms: 10, c: 0 }, A)
      const late = stampOf({ ms: 20, c: 0 }, B)
      await s.commit([item(B, 1, [{ t: 'patch', c: 'notes' as never, id: 'd' as never, f: { title: 'late' } }], late)])
      await s.commit([item(A, 1, [put('d', { title: 'early', body: 'x' })], early)])
      assert.deepEqual((await s.getDocument('notes', 'd'))?.body, { title: 'late', body: 'x' })
      const both = await s.commit([item(A, 2, [put('e', { v: 1 })]), item(A, 3, [{ t: 'patch', c: 'notes' as never, id: 'e' as never, f: { w: 2 } }])])
      assert.deepEqual(both.changes.map(c => [c.id, c.after]), [['e', { v: 1 }], ['e', { v: 1, w: 2 }]], 'a batch sees its own writes')
      assert.deepEqual((await s.getDocument('notes', 'e'))?.body, { v: 1, w: 2 })
    })

    it('keeps metadata and control records', async () => {
      const s = store.get()
      await s.setMeta('k', 'v1')
      await s.setMeta('k', 'v2')
      assert.equal(await s.getMeta('k'), 'v2')
      assert.equal(await s.getMeta('missing'), undefined)
      const it1 = { ...item(A, 1, []), control: [{ kind: 'cert' as const, key: A, bytes: new Uint8Array([1]) }] }
      const it2 = { ...item(A, 2, []), control: [{ kind: 'epoch' as const, key: 'e1', bytes: new Uint8Array([2, 3]) }, { kind: 'cert' as const, key: A, bytes: new Uint8Array([9]) }] }
      await s.commit([it1, it2])
      assert.deepEqual((await s.controlRecords()).map(r => [r.kind, r.key, [...r.bytes]]), [['cert', A, [1]], ['epoch', 'e1', [2, 3]]], 'in log order, the first record of a key wins')
    })

    it('keeps pending entries out of the documents until they are applied, once', async () => {
      const s = store.get()
      const sealed = { ...item(A, 1, []), pending: true }
      const later = item(A, 2, [{ t: 'patch', c: 'notes' as never, id: 'p' as never, f: { v: 2 } }])
      await s.commit([sealed, later])
      assert.deepEqual((await s.getDocument('notes', 'p'))?.body, { v: 2 })
      const pending = await s.pendingEntries(0, 10)
      assert.deepEqual(pending.map(e => [e.author, e.seq]), [[A, 1]])
      assert.deepEqual(await s.pendingEntries(pending[0]!.pos, 10), [])
      const r = await s.applyPending([{ cid: sealed.cid, stamp: sealed.stamp, ops: [put('p', { v: 1, w: 1 })] }])
      assert.deepEqual(r.positions, [pending[0]!.pos])
      assert.deepEqual((await s.getDocument('notes', 'p'))?.body, { v: 2, w: 1 }, 'the older stamp loses the field it shares')
      assert.deepEqual(await s.pendingEntries(0, 10), [])
      const again = await s.applyPending([{ cid: sealed.cid, stamp: sealed.stamp, ops: [put('q', { v: 1 })] }])
      assert.deepEqual(again.positions, [-1])
      assert.equal(await s.getDocument('notes', 'q'), undefined)
    })

    it('quarantines an author beyond a seq, and rebuilds documents from the log', async () => {
      const s = store.get()
      await s.commit([item(A, 1, [put('a', { v: 1 })]), item(B, 1, [put('b', { v: 1 })]), item(B, 2, [put('b', { v: 2 }), put('c', { v: 1 })])])
      await s.writeLocal(`${LOCAL_PREFIX}cache`, [{ id: 'k', body: { local: true } }])
      assert.equal(await s.quarantine(B, 1), 1, 'one entry past seq 1 was materialised')
      assert.equal(await s.quarantine(B, 1), 0)
      assert.deepEqual((await s.pendingEntries(0, 10)), [], 'quarantined is not pending')
      const seen: Array<[string, number]> = []
      await s.rematerialize(e => {
        seen.push([e.author, e.seq])
        return e.author === A ? { stamp: stampOf({ ms: 1, c: 0 }, A), ops: [put('a', { v: 'rebuilt' })] } : e.seq === 1 ? { stamp: stampOf({ ms: 2, c: 0 }, B), ops: [put('b', { v: 1 })] } : undefined
      })
      // a router reads the log once for the primary and once for its routed providers
      assert.deepEqual([...new Set(seen.map(e => e.join(':')))], [`${A}:1`, `${B}:1`], 'quarantined entries are not offered')
      assert.deepEqual((await s.getDocument('notes', 'a'))?.body, { v: 'rebuilt' })
      assert.deepEqual((await s.getDocument('notes', 'b'))?.body, { v: 1 })
      assert.equal(await s.getDocument('notes', 'c'), undefined)
      assert.deepEqual((await s.getDocument(`${LOCAL_PREFIX}cache`, 'k'))?.body, { local: true }, 'device-local documents are not the log\'s to rebuild')
      assert.equal(await s.entryCount(), 3, 'the log itself is untouched')
    })

    it('stores Yjs updates in order and compacts them', async () => {
      const s = store.get()
      const r = await s.commit([item(A, 1, [{ t: 'yjs', d: 'doc1' as never, u: new Uint8Array([1]) }, { t: 'yjs', d: 'doc1' as never, u: new Uint8Array([2]) }, { t: 'yjs', d: 'doc2' as never, u: new Uint8Array([3]) }])])
      assert.deepEqual(r.yjs.map(y => [y.doc, [...y.update]]), [['doc1', [1]], ['doc1', [2]], ['doc2', [3]]])
      const rows = await s.yjsUpdates('doc1')
      assert.deepEqual(rows.map(u => [...u.data]), [[1], [2]])
      await s.commit([item(A, 2, [{ t: 'yjs', d: 'doc1' as never, u: new Uint8Array([4]) }])])
      await s.compactYjs('doc1', new Uint8Array([1, 2]), rows[1]!.id)
      assert.deepEqual((await s.yjsUpdates('doc1')).map(u => [...u.data]).sort(), [[1, 2], [4]])
      assert.deepEqual((await s.yjsUpdates('doc2')).map(u => [...u.data]), [[3]])
      assert.deepEqual(await s.yjsUpdates('none'), [])
    })

    it('produces equal state digests for equal documents however they were written', async () => {
      const s = store.get()
      const other = await factory.setup()
      try {
        const st = stampOf({ ms: 5, c: 0 }, A)
        await s.commit([item(A, 1, [put('x', { a: 1 })], st), item(A, 2, [put('y', { b: 1 })], stampOf({ ms: 6, c: 0 }, A))])
        await other.commit([item(A, 1, [put('y', { b: 1 })], stampOf({ ms: 6, c: 0 }, A))])
        assert.notEqual(await s.stateDigest(), await other.stateDigest())
        await other.commit([item(A, 2, [put('x', { a: 1 })], st)])
        await other.writeLocal(`${LOCAL_PREFIX}mine`, [{ id: 'only-here', body: { v: 1 } }])
        assert.equal(await s.stateDigest(), await other.stateDigest(), 'device-local documents are left out')
        assert.match(await s.stateDigest(), /^[0-9a-f]{64}$/)
      } finally {
        await other.close()
      }
    })

    it('refuses writeLocal on a replicated collection name', async () => {
      await assert.rejects(() => store.get().writeLocal('notes', [{ id: 'x', body: { a: 1 } }]), /not a device-local collection/)
    })
  })
}

/** The document role: reads, queries, indexes, device-local writes. */
export function runDocumentStoreTests<T extends DocumentStore> (name: string, factory: StoreFactory<T>, options: { write: DocWriter<T>, local: boolean }): void {
  const C = options.local ? `${LOCAL_PREFIX}notes` : 'notes'
  const O = options.local ? `${LOCAL_PREFIX}other` : 'other'
  describe(`storage compliance, documents: ${name}`, () => {
    const store = withStore(factory)
    const write = async (collection: string, writes: Array<{ id: string, body: JsonObject | null }>): Promise<void> => await options.write(store.get(), collection, writes)

    it('reads back what was written; deleted and unknown documents read as such', async () => {
      const s = store.get()
      await write(C, [{ id: 'a', body: { n: 1, s: 'é\u0000x', deep: { list: [1, 'two', null, { three: 3 }] } } }, { id: 'b', body: { n: 2 } }])
      assert.deepEqual((await s.getDocument(C, 'a'))?.body, { n: 1, s: 'é\u0000x', deep: { list: [1, 'two', null, { three: 3 }] } })
      await write(C, [{ id: 'b', body: null }])
      const b = await s.getDocument(C, 'b')
      assert.ok(b === undefined || b.body === null, 'a deleted document has no body')
      assert.equal(await s.getDocument(C, 'none'), undefined)
      assert.equal(await s.getDocument(O, 'a'), undefined)
    })

    it('writes device-local documents and reports only real changes', async () => {
      const s = store.get()
      const L = `${LOCAL_PREFIX}scratch`
      const first = await s.writeLocal(L, [{ id: 'x', body: { v: 1 } }, { id: 'y', body: { v: 2 } }])
      assert.deepEqual(first.map(c => [c.collection, c.id, c.before, c.after]), [[L, 'x', null, { v: 1 }], [L, 'y', null, { v: 2 }]])
      assert.deepEqual(await s.writeLocal(L, [{ id: 'x', body: { v: 1 } }, { id: 'gone', body: null }]), [], 'same body and deleting nothing change nothing')
      const second = await s.writeLocal(L, [{ id: 'x', body: null }, { id: 'y', body: { v: 3 } }])
      assert.deepEqual(second.map(c => [c.id, c.before, c.after]), [['x', { v: 1 }, null], ['y', { v: 2 }, { v: 3 }]])
      assert.deepEqual((await s.find(L, normaliseQuery({}))).map(r => [r.id, r.body]), [['y', { v: 3 }]])
      const info = (await s.collections()).find(c => c.name === L)
      assert.equal(info?.count, 1)
    })

    describe('find', () => {
      beforeEach(async () => {
        await write(C, [
          { id: '1', body: { title: 'b', year: 2019, tags: ['a', 'x'], n: 1, flag: true, nested: { city: 'Oslo' } } },
          { id: '2', body: { title: 'a', year: 2021, tags: ['b'], n: 2, flag: false, nested: { city: 'Rome' } } },
          { id: '3', body: { title: 'c', year: 2024, tags: 'a', n: 3, note: null } },
          { id: '4', body: { title: 'd', year: '2020', n: 4, list: ['z'] } }
        ])
        await write(O, [{ id: '5', body: { title: 'e', year: 2022, tags: ['a'], n: 5 } }])
      })
      const ids = async (where: unknown, extra: Record<string, unknown> = {}): Promise<string[]> =>
        (await store.get().find(C, normaliseQuery({ where, orderBy: '_id', ...extra }))).map(r => r.id)

      it('equality matches scalars and array members', async () => {
        assert.deepEqual(await ids({ tags: 'a' }), ['1', '3'])
        assert.deepEqual(await ids({ title: 'a' }), ['2'])
        assert.deepEqual(await ids({ flag: true }), ['1'])
        assert.deepEqual(await ids({ flag: false }), ['2'])
        assert.deepEqual(await ids({ note: null }), ['3'])
        assert.deepEqual(await ids({ 'nested.city': 'Rome' }), ['2'])
        assert.deepEqual(await ids({ _id: '4' }), ['4'])
        assert.deepEqual(await ids({ n: 2.0 }), ['2'])
        assert.deepEqual(await ids({ year: 2020 }), [], 'a number never equals a string')
        assert.deepEqual(await ids({ 'list.0': 'z' }), [], 'a path segment names an object key, never an array index')
      })

      it('ranges compare within one type only', async () => {
        assert.deepEqual(await ids({ year: { gte: 2020 } }), ['2', '3'])
        assert.deepEqual(await ids({ year: { lt: 2022 } }), ['1', '2'])
        assert.deepEqual(await ids({ year: { gte: '2000' } }), ['4'])
        assert.deepEqual(await ids({ n: { gt: 1, lte: 3 } }), ['2', '3'])
        assert.deepEqual(await ids({ _id: { gt: '2' } }), ['3', '4'])
        assert.deepEqual(await ids({ title: { lt: 'c' } }), ['1', '2'])
      })

      it('in, nin, ne, exists, contains, prefix, $or, $and, $not', async () => {
        assert.deepEqual(await ids({ n: { in: [1, 4, 9] } }), ['1', '4'])
        assert.deepEqual(await ids({ tags: { in: ['x', 'b'] } }), ['1', '2'])
        assert.deepEqual(await ids({ _id: { in: ['2', '3', 'nine'] } }), ['2', '3'])
        assert.deepEqual(await ids({ note: { in: [null] } }), ['1', '2', '3', '4'], 'null in a list matches a null or missing field')
        assert.deepEqual(await ids({ n: { in: [] } }), [])
        assert.deepEqual(await ids({ n: { nin: [1, 4] } }), ['2', '3'])
        assert.deepEqual(await ids({ title: { ne: 'a' } }), ['1', '3', '4'])
        assert.deepEqual(await ids({ tags: { exists: false } }), ['4'])
        assert.deepEqual(await ids({ note: { exists: true } }), ['3'])
        assert.deepEqual(await ids({ tags: { contains: 'x' } }), ['1'])
        assert.deepEqual(await ids({ title: { contains: 'b' } }), ['1'], 'a substring of a string field')
        assert.deepEqual(await ids({ _id: { contains: '3' } }), ['3'])
        assert.deepEqual(await ids({ title: { prefix: 'c' } }), ['3'])
        assert.deepEqual(await ids({ 'nested.city': { prefix: 'Os' } }), ['1'])
        assert.deepEqual(await ids({ $or: [{ n: 1 }, { title: 'd' }] }), ['1', '4'])
        assert.deepEqual(await ids({ $and: [{ n: { gte: 2 } }, { n: { lte: 3 } }] }), ['2', '3'])
        assert.deepEqual(await ids({ $not: { tags: 'a' } }), ['2', '4'])
        assert.deepEqual(await ids({ $not: { 'nested.city': 'Oslo' } }), ['2', '3', '4'], '$not of a missing field is true')
      })

      it('orders (numbers before strings, then by id), limits and offsets; counts; never leaks other collections or deleted documents', async () => {
        const s = store.get()
        assert.deepEqual((await s.find(C, normaliseQuery({ orderBy: '-n', limit: 2 }))).map(r => r.id), ['4', '3'])
        assert.deepEqual((await s.find(C, normaliseQuery({ orderBy: 'title', limit: 2, offset: 1 }))).map(r => r.id), ['1', '3'])
        assert.deepEqual((await s.find(C, normaliseQuery({ orderBy: 'year' }))).map(r => r.id), ['1', '2', '3', '4'])
        assert.deepEqual((await s.find(C, normaliseQuery({ orderBy: '-year' }))).map(r => r.id), ['4', '3', '2', '1'])
        assert.deepEqual((await s.find(C, normaliseQuery({ orderBy: 'note' }))).map(r => r.id), ['1', '2', '3', '4'], 'missing and null tie, then by id')
        assert.deepEqual((await s.find(C, normaliseQuery({ offset: 3 }))).map(r => r.id), ['4'])
        assert.deepEqual((await s.find(C, normaliseQuery({ where: { n: 2 } })))[0]?.body, { title: 'a', year: 2021, tags: ['b'], n: 2, flag: false, nested: { city: 'Rome' } })
        assert.equal(await s.count(C, normaliseWhere({ tags: 'a' })), 2)
        assert.equal(await s.count(C, undefined), 4)
        assert.equal(await s.count(C, normaliseWhere({})), 4, 'an empty where matches every document')
        assert.equal((await s.find(C, normaliseQuery({ where: {} }))).length, 4)
        assert.equal(await s.count(O, undefined), 1)
        assert.equal(await s.count('nothing-here', undefined), 0)
        await write(C, [{ id: '1', body: null }])
        assert.deepEqual(await ids({ tags: 'a' }), ['3'])
        assert.equal(await s.count(C, undefined), 3)
      })

      it('rejects malformed queries with InvalidQueryError', async () => {
        await rejectsNamed(() => normaliseQuery({ where: { n: { between: [1, 2] } } }), 'InvalidQueryError', 'unknown operator')
        await rejectsNamed(() => normaliseQuery({ where: { 'a..b': 1 } }), 'InvalidQueryError', 'invalid segment')
        await rejectsNamed(() => normaliseQuery({ where: { "a'b": 1 } }), 'InvalidQueryError')
        await rejectsNamed(() => normaliseQuery({ limit: 0 }), 'InvalidQueryError', '"limit"')
        await rejectsNamed(() => normaliseQuery({ sort: 'x' }), 'InvalidQueryError', 'unknown query option')
        await rejectsNamed(() => normaliseQuery({ where: { n: { gt: [1] } } }), 'InvalidQueryError')
        await rejectsNamed(() => normaliseQuery({ where: { $nor: [] } }), 'InvalidQueryError')
      })

      it('indexes a field and keeps answering the same', async () => {
        const s = store.get()
        await s.ensureIndex(C, parseFieldPath('year'))
        await s.ensureIndex(C, parseFieldPath('year'))
        await s.ensureIndex(C, parseFieldPath('nested.city'))
        assert.deepEqual(await ids({ year: { gte: 2020 } }), ['2', '3'])
        assert.deepEqual(await ids({ 'nested.city': 'Oslo' }), ['1'])
        const info = (await s.collections()).find(c => c.name === C)
        assert.deepEqual([info?.name, info?.count, info?.indexes], [C, 4, ['nested.city', 'year']])
      })
    })

    it('checks its integrity, closes idempotently, and refuses use after close', async () => {
      const s = await factory.setup()
      assert.deepEqual(await s.checkIntegrity(), [])
      assert.equal(typeof s.kind, 'string')
      assert.equal(typeof s.location, 'string')
      await s.close()
      await s.close()
      await rejectsNamed(() => s.getDocument(C, 'x'), 'StorageClosedError')
    })
  })
}

/** The search role: queue, settings, keyword and vector indexes. */
export function runSearchStoreTests (name: string, factory: StoreFactory<StorageProvider>): void {
  describe(`storage compliance, search: ${name}`, () => {
    const store = withStore(factory)
    const write = logWriter()
    const E = { id: 'test-embedder', dims: 3 }
    const unit = (...v: number[]): Float32Array => {
      const n = Math.hypot(...v)
      return Float32Array.from(v.map(x => x / n))
    }
    async function index (collection: string, docs: Array<{ id: string, text: string, vectors: number[][] }>): Promise<void> {
      const s = store.get()
      const tasks = new Map((await s.indexQueue(1000, collection)).map(t => [t.id, t]))
      await s.applyIndexUpdates(docs.map(d => ({
        collection,
        id: d.id,
        ver: tasks.get(d.id)?.ver ?? 1,
        text: d.text,
        chunks: d.vectors.map((v, i) => ({ text: `${d.id}#${i}`, vector: unit(...v) })),
        embedder: E
      })))
    }

    it('queues changed documents (never `_` collections), requeues a collection, and keeps settings', async () => {
      const s = store.get()
      await write(s, 'notes', [{ id: 'a', body: { t: 'x' } }, { id: 'b', body: { t: 'y' } }])
      await write(s, '_profile', [{ id: 'p', body: { name: 'me' } }])
      await write(s, 'other', [{ id: 'c', body: { t: 'z' } }])
      assert.equal(await s.indexQueueCount(), 3)
      assert.equal(await s.indexQueueCount('notes'), 2)
      assert.deepEqual((await s.indexQueue(10, 'notes')).map(t => t.id).sort(), ['a', 'b'])
      assert.equal((await s.indexQueue(1)).length, 1)
      await index('notes', [{ id: 'a', text: 'x', vectors: [[1, 0, 0]] }, { id: 'b', text: 'y', vectors: [] }])
      assert.equal(await s.indexQueueCount('notes'), 0)
      assert.equal(await s.requeueCollection('notes'), 2)
      assert.equal(await s.indexQueueCount('notes'), 2)
      assert.equal(await s.collectionSettings('notes'), undefined)
      await s.setCollectionSettings('notes', { embed: ['title', 'body.text'] })
      assert.deepEqual(await s.collectionSettings('notes'), { embed: ['title', 'body.text'] })
      await s.setCollectionSettings('notes', { embed: false })
      assert.deepEqual(await s.collectionSettings('notes'), { embed: false })
      await s.setCollectionSettings('notes', undefined)
      assert.equal(await s.collectionSettings('notes'), undefined)
    })

    it('keeps a task queued when its document changed while it was being indexed', async () => {
      const s = store.get()
      // counted before the writes: the lengths follow them from here
      assert.equal(await s.indexQueueCount('notes'), 0)
      assert.equal(await s.indexQueueCount(), 0)
      await write(s, 'notes', [{ id: 'a', body: { t: 'x' } }])
      const [task] = await s.indexQueue(10, 'notes')
      await write(s, 'notes', [{ id: 'a', body: { t: 'changed' } }])
      assert.equal(await s.indexQueueCount('notes'), 1, 'a document changed twice is one task')
      await s.applyIndexUpdates([{ collection: 'notes', id: 'a', ver: task!.ver, text: 'x' }])
      assert.equal(await s.indexQueueCount('notes'), 1, 'the stale update does not clear the newer task')
      const [newer] = await s.indexQueue(10, 'notes')
      await write(s, 'other', [{ id: 'b', body: { t: 'y' } }])
      await s.applyIndexUpdates([{ collection: 'notes', id: 'a', ver: newer!.ver, text: 'changed' }])
      assert.equal(await s.indexQueueCount('notes'), 0)
      assert.equal(await s.indexQueueCount(), 1)
    })

    it('stores chunks and vectors, reports what changed, and replaces them', async () => {
      const s = store.get()
      await write(s, 'notes', [{ id: 'a', body: { t: 'x' } }])
      const [task] = await s.indexQueue(10, 'notes')
      const first = await s.applyIndexUpdates([{ collection: 'notes', id: 'a', ver: task!.ver, text: 'x', chunks: [{ text: 'one', vector: unit(1, 0, 0) }, { text: 'two', vector: unit(0, 1, 0) }], embedder: E }])
      assert.equal(first.added.length, 2)
      assert.deepEqual(first.removed, [])
      assert.deepEqual(first.added.map(a => [a.collection, a.embedder]), [['notes', E.id], ['notes', E.id]])
      assert.deepEqual(await s.indexedChunks('notes', 'a'), [{ text: 'one', embedder: E.id }, { text: 'two', embedder: E.id }])
      assert.deepEqual(await s.embeddersOf('notes'), [E.id])
      const rids = first.added.map(a => a.rid)
      assert.deepEqual(await s.chunkStats('notes', E.id), { count: 2, maxRid: Math.max(...rids), sumRid: rids[0]! + rids[1]! })
      assert.deepEqual(await s.chunkDocs('notes', [...rids, 999_999]), new Map([[rids[0]!, 'a'], [rids[1]!, 'a']]))
      assert.deepEqual(await s.chunkDocs('other', rids), new Map(), 'row ids of another collection')
      const vectors = await s.vectorsOf('notes', E.id, 0, 10)
      assert.deepEqual(vectors.map(v => [v.rid, v.id]), rids.map(r => [r, 'a']))
      assert.ok(Math.abs(vectors[0]!.vector[0]! - 1) < 1e-6)
      assert.deepEqual((await s.vectorsOf('notes', E.id, rids[0]!, 10)).map(v => v.rid), [rids[1]])
      const second = await s.applyIndexUpdates([{ collection: 'notes', id: 'a', ver: task!.ver, text: 'x', chunks: [{ text: 'three', vector: unit(0, 0, 1) }], embedder: E }])
      assert.deepEqual(second.removed.map(r => r.rid).sort((x, y) => x - y), rids)
      assert.equal(second.added.length, 1)
      assert.deepEqual(await s.indexedChunks('notes', 'a'), [{ text: 'three', embedder: E.id }])
      const cleared = await s.applyIndexUpdates([{ collection: 'notes', id: 'a', ver: task!.ver, text: undefined, chunks: [] }])
      assert.equal(cleared.removed.length, 1)
      assert.deepEqual(await s.indexedChunks('notes', 'a'), [])
      assert.deepEqual(await s.chunkStats('notes', E.id), { count: 0, maxRid: 0, sumRid: 0 })
      await assert.rejects(() => s.applyIndexUpdates([{ collection: 'notes', id: 'a', ver: 1, text: 'x', chunks: [{ text: 'four', vector: unit(1, 1, 1, 1) }], embedder: { id: E.id, dims: 4 } }]), /dimensions/)
    })

    it('takes two new embedders in one batch', async () => {
      const s = store.get()
      await write(s, 'notes', [{ id: 'a', body: { t: 'x' } }, { id: 'b', body: { t: 'y' } }])
      const tasks = new Map((await s.indexQueue(10, 'notes')).map(t => [t.id, t.ver]))
      const r = await s.applyIndexUpdates([
        { collection: 'notes', id: 'a', ver: tasks.get('a')!, text: 'x', chunks: [{ text: 'x', vector: unit(1, 0, 0) }], embedder: { id: 'first', dims: 3 } },
        { collection: 'notes', id: 'b', ver: tasks.get('b')!, text: 'y', chunks: [{ text: 'y', vector: unit(1, 0) }], embedder: { id: 'second', dims: 2 } }
      ])
      assert.equal(r.added.length, 2)
      assert.deepEqual((await s.vectorSearch('notes', 'second', unit(1, 0), 5, undefined)).map(h => h.id), ['b'])
      assert.deepEqual((await s.embeddersOf('notes')).sort(), ['first', 'second'])
    })

    it('searches words: any of the terms, filtered, best first, deleted documents never', async () => {
      const s = store.get()
      await write(s, 'notes', [{ id: 'a', body: { kind: 'x' } }, { id: 'b', body: { kind: 'y' } }, { id: 'c', body: { kind: 'x' } }, { id: 'd', body: { kind: 'x' } }])
      await index('notes', [
        { id: 'a', text: 'the toaster warranty card is in the kitchen drawer', vectors: [] },
        { id: 'b', text: 'toaster toaster toaster warranty', vectors: [] },
        { id: 'c', text: 'bread recipe with flour and water', vectors: [] },
        { id: 'd', text: 'the warranties of toasters', vectors: [] }
      ])
      const hits = await s.textSearch('notes', ['toaster', 'warranty'], 10, undefined)
      assert.deepEqual(hits.map(h => h.id).sort(), ['a', 'b', 'd'], 'stemmed: toasters and warranties match')
      assert.ok(hits.every(h => Number.isFinite(h.score)))
      assert.ok(hits.every((h, i) => i === 0 || hits[i - 1]!.score >= h.score), 'best first')
      assert.deepEqual((await s.textSearch('notes', ['toaster'], 10, normaliseWhere({ kind: 'x' }))).map(h => h.id).sort(), ['a', 'd'])
      assert.equal((await s.textSearch('notes', ['toaster'], 1, undefined)).length, 1)
      assert.deepEqual(await s.textSearch('notes', ['nowhere'], 10, undefined), [])
      assert.deepEqual(await s.textSearch('notes', [], 10, undefined), [])
      assert.deepEqual(await s.textSearch('other', ['toaster'], 10, undefined), [])
      await write(s, 'notes', [{ id: 'b', body: null }])
      assert.deepEqual((await s.textSearch('notes', ['toaster'], 10, undefined)).map(h => h.id).sort(), ['a', 'd'])
    })

    it('keyword relevance is BM25 over its ceiling: in [0, 1], rare words weigh most', async () => {
      const s = store.get()
      const docs = Array.from({ length: 12 }, (_, i) => ({ id: `n${i}`, body: { i } }))
      await write(s, 'notes', docs)
      await index('notes', docs.map((d, i) => ({ id: d.id, text: i === 0 ? 'common rare' : i < 10 ? 'common filler' : 'filler', vectors: [] })))
      const hits = await s.textSearch('notes', ['common', 'rare'], 20, undefined)
      const r = new Map(hits.map(h => [h.id, h.relevance]))
      // one word alone: IDF cancels, relevance = tf / (tf + k1 (1 - b + b dl / avgdl)); both words
      // in one document of the same length score the same share. Lengths: ten of 2 words, two of 1.
      const share = 1 / (1 + 1.2 * (0.25 + 0.75 * 2 / (22 / 12)))
      assert.ok(Math.abs(r.get('n0')! - share) < 1e-6, `n0 ${r.get('n0')} vs ${share}`)
      const rare = await s.textSearch('notes', ['rare'], 20, undefined)
      assert.ok(Math.abs(rare[0]!.relevance - share) < 1e-6, `rare alone ${rare[0]!.relevance}`)
      // 'common' is in 10 of 12 documents: BM25's IDF is (almost) nothing
      assert.ok(r.get('n1')! >= 0 && r.get('n1')! < 0.01, `the common word alone: ${r.get('n1')}`)
      assert.equal(hits[0]!.id, 'n0')
      assert.ok(hits.every(h => h.relevance >= 0 && h.relevance <= 1))
    })

    it('finds nearest documents by their best chunk, with filters', async () => {
      const s = store.get()
      await write(s, 'notes', [{ id: 'a', body: { kind: 'x' } }, { id: 'b', body: { kind: 'y' } }, { id: 'c', body: { kind: 'x' } }])
      await write(s, 'other', [{ id: 'z', body: { kind: 'x' } }])
      await index('notes', [
        { id: 'a', text: 'a', vectors: [[1, 0, 0], [0, 0, 1]] },
        { id: 'b', text: 'b', vectors: [[0.9, 0.1, 0]] },
        { id: 'c', text: 'c', vectors: [[0, 1, 0]] }
      ])
      await index('other', [{ id: 'z', text: 'z', vectors: [[1, 0, 0]] }])
      const near = await s.vectorSearch('notes', E.id, unit(0.1, 0, 1), 3, undefined)
      assert.deepEqual(near.map(h => h.id), ['a', 'b', 'c'], 'a by its second chunk')
      assert.ok(near[0]!.distance >= 0 && near[0]!.distance < 0.01)
      assert.ok(near.every((h, i) => i === 0 || near[i - 1]!.distance <= h.distance))
      assert.deepEqual((await s.vectorSearch('notes', E.id, unit(1, 0, 0), 2, normaliseWhere({ kind: 'x' }))).map(h => h.id), ['a', 'c'])
      assert.deepEqual((await s.vectorSearch('notes', E.id, unit(1, 0, 0), 1, undefined)).map(h => h.id), ['a'])
      assert.deepEqual(await s.vectorSearch('notes', 'unknown-embedder', unit(1, 0, 0), 3, undefined), [])
      await write(s, 'notes', [{ id: 'a', body: null }])
      assert.deepEqual((await s.vectorSearch('notes', E.id, unit(1, 0, 0), 3, undefined)).map(h => h.id), ['b', 'c'], 'deleted documents are never found')
    })
  })
}

/** The materialising role: log ops routed to a store, applied once, from a recorded position. */
export function runMaterializingStoreTests (name: string, factory: StoreFactory<MaterializingStore & Partial<SearchStore>>): void {
  describe(`storage compliance, materialising: ${name}`, () => {
    const store = withStore(factory)
    const at = (pos: number, ops: DataOp[], ms = pos): { pos: number, stamp: Stamp, ops: DataOp[] } => ({ pos, stamp: stampOf({ ms, c: 0 }, A), ops })

    it('applies ops past its position once, records the position, and replays on request', async () => {
      const s = store.get()
      assert.equal(await s.appliedPosition(), 0)
      const first = await s.materialize([at(3, [put('a', { v: 1 })]), at(5, [put('b', { v: 1 }), { t: 'patch', c: 'notes' as never, id: 'a' as never, f: { w: 1 } }])])
      assert.deepEqual(first.map(c => [c.id, c.after]), [['a', { v: 1 }], ['b', { v: 1 }], ['a', { v: 1, w: 1 }]])
      assert.equal(await s.appliedPosition(), 5)
      assert.deepEqual(await s.materialize([at(4, [put('c', { v: 1 })]), at(5, [put('b', { v: 2 }, 'notes')], 99)]), [], 'positions already applied are skipped')
      assert.equal(await s.getDocument('notes', 'c'), undefined)
      const replayed = await s.materialize([at(4, [put('c', { v: 1 })])], { replay: true })
      assert.deepEqual(replayed.map(c => c.id), ['c'])
      assert.equal(await s.appliedPosition(), 5, 'a replay never moves the position back')
      await s.materialize([at(8, [put('d', { v: 1 })])], { replay: true })
      assert.equal(await s.appliedPosition(), 5, 'nor forward: only upTo does')
      await s.materialize([], { upTo: 9 })
      assert.equal(await s.appliedPosition(), 9)
      assert.deepEqual((await s.find('notes', normaliseQuery({ orderBy: '_id' }))).map(r => [r.id, r.body]), [['a', { v: 1, w: 1 }], ['b', { v: 1 }], ['c', { v: 1 }], ['d', { v: 1 }]])
    })

    it('a failed materialize applies nothing and keeps its position', async () => {
      const s = store.get()
      await s.materialize([at(1, [put('a', { v: 1 })])])
      await assert.rejects(() => s.materialize([at(2, [put('b', { v: 1 })]), at(3, [put('c', { big: 1n as unknown as number })])]))
      assert.equal(await s.appliedPosition(), 1)
      assert.equal(await s.getDocument('notes', 'b'), undefined)
    })

    it('drops a collection with its indexes and search rows, leaving the others', async () => {
      const s = store.get()
      await s.materialize([at(1, [put('a', { v: 1 }), put('z', { v: 1 }, 'other')])])
      await s.ensureIndex('notes', parseFieldPath('v'))
      if (s.applyIndexUpdates !== undefined && s.indexQueue !== undefined && s.setCollectionSettings !== undefined) {
        const [task] = await s.indexQueue(10, 'notes')
        await s.applyIndexUpdates([{ collection: 'notes', id: 'a', ver: task!.ver, text: 'hello', chunks: [{ text: 'hello', vector: Float32Array.from([1, 0]) }], embedder: { id: 'e', dims: 2 } }])
        await s.setCollectionSettings('notes', { embed: false })
      }
      await s.dropCollection('notes')
      assert.equal(await s.getDocument('notes', 'a'), undefined)
      assert.deepEqual((await s.collections()).map(c => c.name), ['other'])
      assert.deepEqual((await s.find('other', normaliseQuery({}))).map(r => r.id), ['z'])
      if (s.indexQueueCount !== undefined && s.textSearch !== undefined && s.collectionSettings !== undefined && s.indexedChunks !== undefined) {
        assert.equal(await s.indexQueueCount('notes'), 0)
        assert.deepEqual(await s.textSearch('notes', ['hello'], 10, undefined), [])
        assert.deepEqual(await s.indexedChunks('notes', 'a'), [])
        assert.equal(await s.collectionSettings('notes'), undefined)
      }
    })
  })
}

/** Every role: for providers a node can run wholly on. */
export function runStorageProviderTests (name: string, factory: StoreFactory<StorageProvider>): void {
  runLogStoreTests(name, factory)
  runMaterializingStoreTests(name, factory)
  runDocumentStoreTests(name, factory, { write: logWriter(), local: false })
  runDocumentStoreTests(`${name}, device-local`, factory, { write: localWriter, local: true })
  runSearchStoreTests(name, factory)
}
