import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  applyDelete, applyPatch, applyPut, canonicalDocState, docStateFromRow, docStateToRow, EMPTY_DOC, HybridClock, mergeDocStates,
  stampOf, visibleFields, compareHlc, hlcFromString, hlcToString, type DocState, type JsonObject, type Stamp
} from '../crdt/index.js'
import { rejectsNamed } from './helpers/errors.js'

// fast-check prints the seed and path of any counterexample; PEAKDB_SEED replays one.
const seed = process.env.PEAKDB_SEED === undefined ? undefined : Number(process.env.PEAKDB_SEED)
const params = seed === undefined ? { numRuns: 300 } : { numRuns: 300, seed }

type Op = { t: 'put' | 'patch', f: JsonObject, s: Stamp } | { t: 'del', s: Stamp }

const authors = ['12D3KooWA', '12D3KooWB', '12D3KooWC']
const stampArb = fc.record({ ms: fc.integer({ min: 0, max: 20 }), c: fc.integer({ min: 0, max: 3 }), a: fc.constantFrom(...authors) })
  .map(({ ms, c, a }) => stampOf({ ms, c }, a))
const fieldsArb = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 })), { maxKeys: 3 }) as fc.Arbitrary<JsonObject>
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('put' as const), f: fieldsArb, s: stampArb }),
  fc.record({ t: fc.constant('patch' as const), f: fieldsArb, s: stampArb }),
  fc.record({ t: fc.constant('del' as const), s: stampArb })
)

// Stamps identify a write: give every op a unique stamp by appending its index, as real entries do.
function uniq (ops: Op[]): Op[] {
  return ops.map((op, i) => ({ ...op, s: `${op.s}#${String(i).padStart(3, '0')}` as Stamp }))
}

function apply (state: DocState, op: Op): DocState {
  return op.t === 'put' ? applyPut(state, op.f, op.s) : op.t === 'patch' ? applyPatch(state, op.f, op.s) : applyDelete(state, op.s)
}

const fold = (ops: Op[]): DocState => ops.reduce(apply, EMPTY_DOC)
const eq = (a: DocState, b: DocState): void => assert.equal(canonicalDocState(a), canonicalDocState(b))

describe('crdt: per-field LWW documents (property tests)', () => {
  it('merge is commutative, associative and idempotent', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 8 }), fc.array(opArb, { maxLength: 8 }), fc.array(opArb, { maxLength: 8 }), (x, y, z) => {
      const all = uniq([...x, ...y, ...z])
      const a = fold(all.slice(0, x.length))
      const b = fold(all.slice(x.length, x.length + y.length))
      const c = fold(all.slice(x.length + y.length))
      eq(mergeDocStates(a, b), mergeDocStates(b, a))
      eq(mergeDocStates(mergeDocStates(a, b), c), mergeDocStates(a, mergeDocStates(b, c)))
      eq(mergeDocStates(a, a), a)
    }), params)
  })

  it('applying the same ops in any order gives the same state, and equals merging partial states', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 10 }).chain(ops => fc.tuple(fc.constant(uniq(ops)), fc.shuffledSubarray(uniq(ops), { minLength: ops.length, maxLength: ops.length }))), ([ops, shuffled]) => {
      eq(fold(ops), fold(shuffled))
      const half = Math.floor(ops.length / 2)
      eq(fold(ops), mergeDocStates(fold(ops.slice(0, half)), fold(ops.slice(half))))
      // applying an op twice changes nothing
      eq(fold(ops), fold([...ops, ...ops]))
    }), params)
  })

  it('the storage form round-trips every reachable state', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 10 }), ops => {
      const s = fold(uniq(ops))
      const row = JSON.parse(JSON.stringify(docStateToRow(s))) as ReturnType<typeof docStateToRow>
      eq(docStateFromRow(row), s)
      assert.deepEqual(row.body, visibleFields(s))
    }), params)
  })
})

describe('crdt: LWW semantics', () => {
  const s = (ms: number, a = 'A'): Stamp => stampOf({ ms, c: 0 }, a)

  it('put replaces, patch merges, delete hides until a later put', () => {
    let st = applyPut(EMPTY_DOC, { a: 1, b: 2 }, s(1))
    st = applyPatch(st, { b: 3, c: 4 }, s(2))
    assert.deepEqual(visibleFields(st), { a: 1, b: 3, c: 4 })
    st = applyPut(st, { z: 9 }, s(3))
    assert.deepEqual(visibleFields(st), { z: 9 })
    st = applyDelete(st, s(4))
    assert.equal(visibleFields(st), null)
    st = applyPut(st, { y: 1 }, s(5))
    assert.deepEqual(visibleFields(st), { y: 1 })
  })

  it('a delete wins over an older put, a newer put wins over a delete, ties break by author', () => {
    const del = applyDelete(EMPTY_DOC, s(5))
    assert.equal(visibleFields(applyPut(del, { a: 1 }, s(4))), null)
    assert.deepEqual(visibleFields(applyPut(del, { a: 1 }, s(6))), { a: 1 })
    const a = applyPut(EMPTY_DOC, { v: 'from A' }, s(7, 'A'))
    const b = applyPut(EMPTY_DOC, { v: 'from B' }, s(7, 'B'))
    assert.deepEqual(visibleFields(mergeDocStates(a, b)), { v: 'from B' })
    assert.deepEqual(visibleFields(mergeDocStates(b, a)), { v: 'from B' })
  })

  it('patches alone make a document (an upsert): concurrent first patches keep every field; a put or delete then rules', () => {
    const a = applyPatch(EMPTY_DOC, { name: 'Ada' }, s(1, 'A'))
    const b = applyPatch(EMPTY_DOC, { theme: 'dark' }, s(2, 'B'))
    assert.deepEqual(visibleFields(mergeDocStates(a, b)), { name: 'Ada', theme: 'dark' })
    assert.deepEqual(visibleFields(docStateFromRow(docStateToRow(mergeDocStates(b, a)))), { name: 'Ada', theme: 'dark' }, 'survives the storage form')
    assert.equal(visibleFields(applyDelete(a, s(3))), null)
    assert.deepEqual(visibleFields(applyPut(a, { z: 1 }, s(3))), { z: 1 })
  })

  it('a patch concurrent with a delete stays hidden; a later put clears it', () => {
    let st = applyPut(EMPTY_DOC, { a: 1 }, s(1))
    st = applyDelete(st, s(3))
    st = applyPatch(st, { b: 2 }, s(4))
    assert.equal(visibleFields(st), null)
    st = applyPut(st, { c: 3 }, s(5))
    assert.deepEqual(visibleFields(st), { c: 3 })
  })
})

describe('crdt: hybrid logical clock', () => {
  it('is strictly increasing even when the wall clock stalls or goes back', () => {
    let wall = 1000
    const clock = new HybridClock(() => wall)
    const seen = [clock.now(), clock.now()]
    wall = 500
    seen.push(clock.now(), clock.now())
    wall = 2000
    seen.push(clock.now())
    for (let i = 1; i < seen.length; i++) assert.ok(compareHlc(seen[i - 1]!, seen[i]!) < 0)
  })

  it('orders after observed remote readings and rejects far-future ones', async () => {
    const clock = new HybridClock(() => 1000, 60_000)
    clock.observe({ ms: 5000, c: 7 })
    const next = clock.now()
    assert.deepEqual(next, { ms: 5000, c: 8 })
    await rejectsNamed(() => clock.observe({ ms: 1000 + 61_000, c: 0 }), 'ClockDriftError')
  })

  it('string form sorts like the clock', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 47 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 2 ** 47 }), fc.integer({ min: 0, max: 0xffff }), (m1, c1, m2, c2) => {
      const a = { ms: m1, c: c1 }
      const b = { ms: m2, c: c2 }
      assert.equal(Math.sign(compareHlc(a, b)), Math.sign(hlcToString(a) < hlcToString(b) ? -1 : hlcToString(a) > hlcToString(b) ? 1 : 0))
      assert.deepEqual(hlcFromString(hlcToString(a)), a)
    }), params)
  })
})
