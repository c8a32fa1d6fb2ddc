/**
 * Building blocks for fuzzing decoders with fast-check: replayable run parameters, a check that a
 * call ends in a value or a typed error within a time bound, byte-level mutations of valid
 * encodings, and hostile values (wrong types, extreme numbers, keys that shadow Object methods).
 */
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'

/**
 * fast-check parameters: `numRuns` runs (times `PEAKDB_FUZZ_SCALE` for a longer campaign), or
 * the failing run again when `PEAKDB_SEED` (and optionally `PEAKDB_PATH`) are set from the seed
 * and path fast-check printed.
 */
export function fuzzParams (numRuns: number): fc.Parameters<unknown> {
  const runs = Math.max(1, Math.round(numRuns * Number(process.env.PEAKDB_FUZZ_SCALE ?? 1)))
  const seed = process.env.PEAKDB_SEED
  const path = process.env.PEAKDB_PATH
  if (seed === undefined) return { numRuns: runs }
  return { numRuns: runs, seed: Number(seed), ...(path !== undefined ? { path } : {}) }
}

/**
 * Longest a single decode may take. Generous: inputs are at most a few MiB and the machine may
 * be busy; a decoder that does work out of proportion to its input is far beyond it.
 */
export const MAX_DECODE_MS = 1000

/** How a decode ended. */
export type Outcome<T> = { readonly ok: true, readonly value: T } | { readonly ok: false, readonly error: Error }

/**
 * Runs a decoder and checks that it returns or throws one of the `allowed` typed errors (by
 * `name`, with a string `code`), within {@link MAX_DECODE_MS}. Anything else (a plain Error, a
 * TypeError or RangeError from a library, a slow decode) fails the property.
 */
export function decodes<T> (what: string, allowed: readonly string[], fn: () => T, maxMs = MAX_DECODE_MS): Outcome<T> {
  const started = performance.now()
  let result: Outcome<T>
  try {
    result = { ok: true, value: fn() }
  } catch (err) {
    if (!(err instanceof Error) || !allowed.includes(err.name)) {
      const e = err as Error
      assert.fail(`${what} threw ${e?.name ?? typeof err} (allowed: ${allowed.join(', ')}): ${e?.stack ?? String(err)}`)
    }
    assert.equal(typeof (err as Error & { code?: unknown }).code, 'string', `${what}: ${err.name} has no code`)
    result = { ok: false, error: err }
  }
  const ms = performance.now() - started
  assert.ok(ms < maxMs, `${what} took ${ms.toFixed(0)} ms (bound ${maxMs} ms)`)
  return result
}

/** Bytes worth planting in CBOR: type bytes with huge lengths, indefinite forms, tags, floats. */
const CBOR_BYTES = [
  0x00, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x3b, 0x40, 0x58, 0x59, 0x5a, 0x5b, 0x5f, 0x60, 0x78, 0x7b, 0x7f,
  0x80, 0x81, 0x98, 0x9a, 0x9b, 0x9f, 0xa0, 0xa1, 0xba, 0xbb, 0xbf, 0xc0, 0xc2, 0xd8, 0x2a, 0xf4, 0xf5, 0xf6, 0xf7,
  0xf9, 0xfa, 0xfb, 0xff
]

/** One edit of a byte string; positions are taken modulo the length. */
export type ByteMutation =
  | { readonly k: 'flip', readonly at: number, readonly bit: number }
  | { readonly k: 'set', readonly at: number, readonly byte: number }
  | { readonly k: 'truncate', readonly at: number }
  | { readonly k: 'insert', readonly at: number, readonly bytes: Uint8Array }
  | { readonly k: 'delete', readonly at: number, readonly len: number }
  | { readonly k: 'duplicate', readonly at: number, readonly len: number }

const position = fc.nat({ max: 1 << 24 })

export const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('flip' as const), at: position, bit: fc.nat({ max: 7 }) }), weight: 4 },
  { arbitrary: fc.record({ k: fc.constant('set' as const), at: position, byte: fc.oneof(fc.constantFrom(...CBOR_BYTES), fc.nat({ max: 255 })) }), weight: 3 },
  fc.record({ k: fc.constant('truncate' as const), at: position }),
  fc.record({ k: fc.constant('insert' as const), at: position, bytes: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 9 }), fc.array(fc.constantFrom(...CBOR_BYTES), { minLength: 1, maxLength: 4 }).map(a => Uint8Array.from(a))) }),
  fc.record({ k: fc.constant('delete' as const), at: position, len: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ k: fc.constant('duplicate' as const), at: position, len: fc.integer({ min: 1, max: 64 }) })
)

/** Applies one mutation. */
export function mutateBytes (input: Uint8Array, m: ByteMutation): Uint8Array {
  const n = input.length
  const at = n === 0 ? 0 : m.at % n
  switch (m.k) {
    case 'flip': {
      if (n === 0) return input
      const out = input.slice()
      out[at] = (out[at] as number) ^ (1 << m.bit)
      return out
    }
    case 'set': {
      if (n === 0) return Uint8Array.of(m.byte)
      const out = input.slice()
      out[at] = m.byte
      return out
    }
    case 'truncate': return input.slice(0, at)
    case 'insert': return concat(input.subarray(0, at), m.bytes, input.subarray(at))
    case 'delete': return concat(input.subarray(0, at), input.subarray(at + m.len))
    case 'duplicate': return concat(input.subarray(0, at + m.len), input.subarray(at))
  }
}

/** A valid encoding with 1..4 mutations applied. */
export function mutatedArb (valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(valid, fc.array(byteMutationArb, { minLength: 1, maxLength: 4 }))
    .map(([bytes, ms]) => ms.reduce(mutateBytes, bytes))
}

export function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}

/** Keys that shadow Object.prototype members, or that decoders look for. */
const KEY_NAMES = ['toString', 'valueOf', '__proto__', 'constructor', 'toJSON', 'hasOwnProperty', 'then', 'length', 't', 'v', 'h', 'p', 's', 'id', 'd', 'u', 'f', 'c', '']
export const hostileKeyArb: fc.Arbitrary<string> = fc.oneof(fc.constantFrom(...KEY_NAMES), fc.string({ maxLength: 8 }))

/** An object with exactly these own properties, `__proto__` included (as JSON.parse and cborg make them). */
export function objectOf (entries: ReadonlyArray<readonly [string, unknown]>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true, configurable: true, writable: true })
  return out
}

const EXTREME_NUMBERS = [0, -0, -1, 1, 0.5, 255, 256, 65535, 65536, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 48, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1e300, -1e300, Number.MIN_VALUE]

/** Numbers at the edges of the ranges decoders check. */
export const extremeNumberArb: fc.Arbitrary<number> = fc.oneof(fc.constantFrom(...EXTREME_NUMBERS), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }))

/** An entry-like CID (dag-cbor, sha2-256) or one of another kind. */
export const cidArb: fc.Arbitrary<CID> = fc.tuple(fc.constantFrom(0x71, 0x55, 0x70), fc.constantFrom(0x12, 0x13, 0x00), fc.uint8Array({ minLength: 0, maxLength: 40 }))
  .map(([codec, hash, digest]) => CID.createV1(codec, Digest.create(hash, digest)))

/** Leaves of hostile DAG-CBOR values (everything dagCbor.encode accepts). */
const cborLeafArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null), fc.boolean(), extremeNumberArb,
  fc.bigInt({ min: -(2n ** 64n) + 1n, max: 2n ** 64n - 1n }),
  fc.string({ maxLength: 24 }), fc.constantFrom('', 'hello', 'put', 'entries', 'error', '12D3KooW', 'x'.repeat(300)),
  fc.uint8Array({ maxLength: 80 }), cidArb
)

/** A hostile DAG-CBOR value: leaves, short arrays, maps with shadowing keys, a little nesting. */
export const hostileCborArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>(tie => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    cborLeafArb,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.array(fc.tuple(hostileKeyArb, tie('value')), { maxLength: 4 }).map(objectOf)
  )
})).value

/** Leaves of hostile JSON values, written as JSON text. */
const jsonLeafTextArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('null', 'true', 'false', '0', '-0', '1e999', '-1e999', '1e-999', '9007199254740993', '0.1', '""', '"\\u0000"', '"\\ud800"', '"__proto__"', '{}', '[]'),
  fc.string({ maxLength: 16 }).map(s => JSON.stringify(s)),
  fc.integer().map(String)
)

/** Hostile JSON text: leaves, arrays, objects with shadowing keys. */
export const hostileJsonTextArb: fc.Arbitrary<string> = fc.letrec<{ value: string }>(tie => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    jsonLeafTextArb,
    fc.array(tie('value'), { maxLength: 4 }).map(a => `[${a.join(',')}]`),
    fc.array(fc.tuple(hostileKeyArb, tie('value')), { maxLength: 4 }).map(kv => `{${kv.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`)
  )
})).value

/** JSON text nested `depth` levels deep: `[[[...]]]` or `{"a":{"a":...}}`. */
export function deepJson (depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
}

/** CBOR bytes of an array nested `depth` levels deep around `0`. */
export function deepCbor (depth: number): Uint8Array {
  const out = new Uint8Array(depth + 1).fill(0x81)
  out[depth] = 0
  return out
}

/** Paths to every node of a plain value (map keys and array indexes). */
export function pathsOf (value: unknown, prefix: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  out.push(prefix)
  if (Array.isArray(value)) value.forEach((v, i) => pathsOf(v, [...prefix, i], out))
  else if (isMap(value)) for (const k of Object.keys(value)) pathsOf(value[k], [...prefix, k], out)
  return out
}

function isMap (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) && CID.asCID(v) === null
}

/** A structural edit of a decoded value: replace a node, delete a map key, or add one. */
export type ValueEdit =
  | { readonly k: 'replace', readonly pick: number, readonly with: unknown }
  | { readonly k: 'remove', readonly pick: number }
  | { readonly k: 'add', readonly pick: number, readonly key: string, readonly with: unknown }

export function valueEditArb (leaf: fc.Arbitrary<unknown>): fc.Arbitrary<ValueEdit> {
  return fc.oneof(
    { arbitrary: fc.record({ k: fc.constant('replace' as const), pick: fc.nat(), with: leaf }), weight: 4 },
    fc.record({ k: fc.constant('remove' as const), pick: fc.nat() }),
    fc.record({ k: fc.constant('add' as const), pick: fc.nat(), key: hostileKeyArb, with: leaf })
  )
}

/** Applies an edit to a deep copy of `value` (the node is picked among all nodes, root included). */
export function editValue (value: unknown, edit: ValueEdit): unknown {
  const paths = pathsOf(value)
  const path = paths[edit.pick % paths.length] as Array<string | number>
  const root = clone(value)
  if (path.length === 0) {
    if (edit.k === 'replace') return edit.with
    if (edit.k === 'add' && isMap(root)) return objectOf([...Object.entries(root), [edit.key, edit.with]])
    return root
  }
  let parent = root as Record<string | number, unknown>
  for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>
  const last = path[path.length - 1] as string | number
  if (edit.k === 'replace') Object.defineProperty(parent, last, { value: edit.with, enumerable: true, configurable: true, writable: true })
  else if (edit.k === 'remove') {
    if (Array.isArray(parent)) parent.splice(last as number, 1)
    else delete parent[last]
  } else {
    const node = parent[last]
    if (isMap(node)) parent[last] = objectOf([...Object.entries(node), [edit.key, edit.with]])
  }
  return root
}

function clone (v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clone)
  if (isMap(v)) return objectOf(Object.entries(v).map(([k, x]) => [k, clone(x)]))
  return v
}

/** DAG-CBOR of a value with structural edits applied; undefined when the result cannot be encoded. */
export function encodeEdited (value: unknown, edits: readonly ValueEdit[]): Uint8Array | undefined {
  const edited = edits.reduce(editValue, value)
  try {
    return dagCbor.encode(edited)
  } catch {
    return undefined
  }
}
