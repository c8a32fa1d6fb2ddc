/**
 * The storage provider compliance suite: every implementation of storage/provider.ts runs it
 * (like automerge-repo's runStorageAdapterTests). `setup` returns a fresh, empty provider.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { stampOf, type DataOp, type Stamp } from '../crdt/index.js'
import { normaliseQuery, normaliseWhere, parseFieldPath, type CommitItem, type StorageProvider } from '../storage/index.js'
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

/** Runs the compliance suite against providers made by `setup`. */
export function runStorageProviderTests (name: string, setup: () => Promise<StorageProvider>, teardown: () => Promise<void>): void {
  describe(`storage provider compliance: ${name}`, () => {
    let s: StorageProvider
    beforeEach(async () => { s = await setup() })
    afterEach(async () => {
      await s.close()
      await teardown()
    })

    it('commits entries with their documents and reports heads and changes', async () => {
      const r = await s.commit([item(A, 1, [put('x', { a: 1 }), put('y', { b: 2 })]), item(A, 2, [{ t: 'del', c: 'notes' as never, id: 'y' as never }])])
      assert.equal(r.positions.length, 2)
      assert.ok(r.positions.every(p => p > 0))
      assert.deepEqual(r.changes.map(c => [c.id, c.before, c.after]), [['x', null, { a: 1 }], ['y', null, { b: 2 }], ['y', { b: 2 }, null]])
      const heads = await s.heads()
      assert.deepEqual(heads.map(h => [h.author, h.seq]), [[A, 2]])
      assert.deepEqual((await s.getDocument('notes', 'x'))?.body, { a: 1 })
      assert.equal((await s.getDocument('notes', 'y'))?.body, null)
      assert.equal(await s.entryCount(), 2)
    })

    it('skips entries it already holds (same author and seq) and applies them once', async () => {
      const first = item(A, 1, [put('x', { n: 1 })])
      await s.commit([first])
      const r = await s.commit([first])
      assert.deepEqual(r.positions, [-1])
      assert.equal(r.changes.length, 0)
      assert.equal(await s.entryCount(), 1)
    })

    it('a failing commit leaves nothing behind', async () => {
      const bad = put('z', { big: 1n as unknown as number })
      await assert.rejects(() => s.commit([item(A, 1, [put('x', { a: 1 })]), item(A, 2, [bad])]))
      assert.equal(await s.entryCount(), 0)
      assert.equal(await s.getDocument('notes', 'x'), undefined)
      assert.deepEqual(await s.heads(), [])
    })

    it('finds entries by CID and by author/seq, and lists what a peer lacks in log order', async () => {
      const items = [item(A, 1, []), item(B, 1, []), item(A, 2, []), item(B, 2, []), item(A, 3, [])]
      await s.commit(items)
      assert.deepEqual(await s.getEntry(items[2]!.cid), items[2]!.bytes)
      assert.equal(await s.getEntry(cid()), undefined)
      assert.deepEqual(await s.getEntryAt(B, 2), items[3]!.bytes)
      const has = await s.hasEntries([items[0]!.cid, cid()])
      assert.equal(has.size, 1)
      const lacking = await s.entriesNotIn(new Map([[A, 1]]), 0, { maxEntries: 100, maxBytes: 1 << 20 })
      assert.deepEqual(lacking.entries.map(e => [e.author, e.seq]), [[B, 1], [A, 2], [B, 2], [A, 3]])
      assert.equal(lacking.next, undefined)
      const page = await s.entriesNotIn(new Map(), 0, { maxEntries: 2, maxBytes: 1 << 20 })
      assert.deepEqual(page.entries.map(e => [e.author, e.seq]), [[A, 1], [B, 1]])
      const rest = await s.entriesNotIn(new Map(), page.next!, { maxEntries: 100, maxBytes: 1 << 20 })
      assert.deepEqual(rest.entries.map(e => [e.author, e.seq]), [[A, 2], [B, 2], [A, 3]])
      const small = await s.entriesNotIn(new Map(), 0, { maxEntries: 100, maxBytes: 120 })
      assert.equal(small.entries.length, 2, 'byte cap (50-byte entries, 120-byte cap)')
    })

    it('merges concurrent writes per field by stamp, whatever the arrival order', async () => {
      const early = stampOf({ ms: 10, c: 0 }, A)
      const late = stampOf({ ms: 20, c: 0 }, B)
      await s.commit([item(B, 1, [{ t: 'patch', c: 'notes' as never, id: 'd' as never, f: { title: 'late' } }], late)])
      await s.commit([item(A, 1, [put('d', { title: 'early', body: 'x' })], early)])
      assert.deepEqual((await s.getDocument('notes', 'd'))?.body, { title: 'late', body: 'x' })
    })

    describe('find', () => {
      beforeEach(async () => {
        await s.commit([item(A, 1, [
          put('1', { title: 'b', year: 2019, tags: ['a', 'x'], n: 1, flag: true, nested: { city: 'Oslo' } }),
          put('2', { title: 'a', year: 2021, tags: ['b'], n: 2, flag: false, nested: { city: 'Rome' } }),
          put('3', { title: 'c', year: 2024, tags: 'a', n: 3, note: null }),
          put('4', { title: 'd', year: '2020', n: 4 }),
          put('5', { title: 'e', year: 2022, tags: ['a'], n: 5 }, 'other')
        ])])
      })
      const ids = async (where: unknown, extra: Record<string, unknown> = {}): Promise<string[]> =>
        (await s.find('notes', normaliseQuery({ where, orderBy: '_id', ...extra }))).map(r => r.id)

      it('equality matches scalars and array members', async () => {
        assert.deepEqual(await ids({ tags: 'a' }), ['1', '3'])
        assert.deepEqual(await ids({ title: 'a' }), ['2'])
        assert.deepEqual(await ids({ flag: true }), ['1'])
        assert.deepEqual(await ids({ flag: false }), ['2'])
        assert.deepEqual(await ids({ note: null }), ['3'])
        assert.deepEqual(await ids({ 'nested.city': 'Rome' }), ['2'])
        assert.deepEqual(await ids({ _id: '4' }), ['4'])
      })

      it('ranges compare within one type only', async () => {
        assert.deepEqual(await ids({ year: { gte: 2020 } }), ['2', '3'])
        assert.deepEqual(await ids({ year: { lt: 2022 } }), ['1', '2'])
        assert.deepEqual(await ids({ year: { gte: '2000' } }), ['4'])
        assert.deepEqual(await ids({ n: { gt: 1, lte: 3 } }), ['2', '3'])
      })

      it('in, nin, ne, exists, contains, prefix, $or, $and, $not', async () => {
        assert.deepEqual(await ids({ n: { in: [1, 4, 9] } }), ['1', '4'])
        assert.deepEqual(await ids({ tags: { in: ['x', 'b'] } }), ['1', '2'])
        assert.deepEqual(await ids({ n: { nin: [1, 4] } }), ['2', '3'])
        assert.deepEqual(await ids({ title: { ne: 'a' } }), ['1', '3', '4'])
        assert.deepEqual(await ids({ tags: { exists: false } }), ['4'])
        assert.deepEqual(await ids({ note: { exists: true } }), ['3'])
        assert.deepEqual(await ids({ tags: { contains: 'x' } }), ['1'])
        assert.deepEqual(await ids({ title: { prefix: 'c' } }), ['3'])
        assert.deepEqual(await ids({ $or: [{ n: 1 }, { title: 'd' }] }), ['1', '4'])
        assert.deepEqual(await ids({ $and: [{ n: { gte: 2 } }, { n: { lte: 3 } }] }), ['2', '3'])
        assert.deepEqual(await ids({ $not: { tags: 'a' } }), ['2', '4'])
      })

      it('orders, limits and offsets; counts; never leaks other collections or deleted documents', async () => {
        assert.deepEqual((await s.find('notes', normaliseQuery({ orderBy: '-n', limit: 2 }))).map(r => r.id), ['4', '3'])
        assert.deepEqual((await s.find('notes', normaliseQuery({ orderBy: 'title', limit: 2, offset: 1 }))).map(r => r.id), ['1', '3'])
        assert.equal(await s.count('notes', normaliseWhere({ tags: 'a' })), 2)
        assert.equal(await s.count('other', undefined), 1)
        await s.commit([item(B, 1, [{ t: 'del', c: 'notes' as never, id: '1' as never }])])
        assert.deepEqual(await ids({ tags: 'a' }), ['3'])
        assert.equal(await s.count('notes', undefined), 3)
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
        await s.ensureIndex('notes', parseFieldPath('year'))
        await s.ensureIndex('notes', parseFieldPath('year'))
        assert.deepEqual(await ids({ year: { gte: 2020 } }), ['2', '3'])
        const info = (await s.collections()).find(c => c.name === 'notes')
        assert.deepEqual(info, { name: 'notes', count: 4, indexes: ['year'] })
      })
    })

    it('keeps metadata and control records', async () => {
      await s.setMeta('k', 'v1')
      await s.setMeta('k', 'v2')
      assert.equal(await s.getMeta('k'), 'v2')
      assert.equal(await s.getMeta('missing'), undefined)
      const it1 = { ...item(A, 1, []), control: [{ kind: 'cert' as const, key: A, bytes: new Uint8Array([1]) }] }
      await s.commit([it1])
      assert.deepEqual((await s.controlRecords()).map(r => [r.kind, r.key]), [['cert', A]])
    })

    it('produces equal state digests for equal documents however they were written', async () => {
      const other = await setup()
      try {
        const st = stampOf({ ms: 5, c: 0 }, A)
        await s.commit([item(A, 1, [put('x', { a: 1 })], st), item(A, 2, [put('y', { b: 1 })], stampOf({ ms: 6, c: 0 }, A))])
        await other.commit([item(A, 1, [put('y', { b: 1 })], stampOf({ ms: 6, c: 0 }, A))])
        assert.notEqual(await s.stateDigest(), await other.stateDigest())
        await other.commit([item(A, 2, [put('x', { a: 1 })], st)])
        assert.equal(await s.stateDigest(), await other.stateDigest())
      } finally {
        await other.close()
      }
    })
  })
}
