/**
 * Operations carried by log entries, and the payload codec (DAG-CBOR) that validates untrusted
 * payloads before anything is applied.
 *
 * Data ops (sealed under a data-key epoch): `put` (replace a document), `patch` (set some
 * fields), `del` (delete), `yjs` (an update of a Yjs document). A data payload is the DAG-CBOR
 * map `{ d: <JSON text of the document ops>, y: [{ d: docId, u: update bytes }] }`: documents
 * are JSON, so their ops travel as JSON text (native to encode and parse, JSON number semantics
 * intact, and what SQLite stores), while Yjs updates stay binary. Control ops (plaintext, epoch 0):
 * `cert` (a device certificate), `revoke` (a revocation), `epoch` (a data-key epoch record).
 */
import * as dagCbor from '@ipld/dag-cbor'
import { decodeDagCbor } from './capped-dag-cbor.js'
import { MalformedError, TooLargeError } from './errors.js'
import { isPlainObject, jsonProblem, MAX_FIELD_NAME, type JsonObject } from './json-value.js'
import { checkYjsUpdate } from './yjs.js'

/** A collection name: a letter, then up to 63 letters, digits, `_`, `-` or `.`. */
export type CollectionName = string & { readonly __brand: 'CollectionName' }
/** A document id: 1..256 printable characters. */
export type DocId = string & { readonly __brand: 'DocId' }

export const COLLECTION_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/
/** System collections (profile, …) start with `_`; user collections may not. */
export const SYSTEM_COLLECTION_NAME = /^_[a-z][a-z0-9_]{0,62}$/
export const MAX_DOC_ID = 256
export const MAX_OPS_PER_ENTRY = 100_000
export const MAX_YJS_UPDATE = 8 * 1024 * 1024
/** Most DAG-CBOR items of a data payload: five per Yjs op (document ops are one JSON string). */
const MAX_DATA_ITEMS = 5 * MAX_OPS_PER_ENTRY + 16
/**
 * Most DAG-CBOR items of a control payload: room for 13,000 certificates, or for the boxes of
 * a dozen epoch records shared with 10,000 devices each.
 */
export const MAX_CONTROL_ITEMS = 1 << 18

/** Replace a document. `j`, when present, is `JSON.stringify(f)` computed earlier (saves redoing it). */
export interface PutOp { readonly t: 'put', readonly c: CollectionName, readonly id: DocId, readonly f: JsonObject, readonly j?: string }
/** Set some fields of a document. */
export interface PatchOp { readonly t: 'patch', readonly c: CollectionName, readonly id: DocId, readonly f: JsonObject, readonly j?: string }
export interface DeleteOp { readonly t: 'del', readonly c: CollectionName, readonly id: DocId }
export interface YjsOp { readonly t: 'yjs', readonly d: DocId, readonly u: Uint8Array }
/** An operation on replicated data. */
export type DataOp = PutOp | PatchOp | DeleteOp | YjsOp

export interface CertOp { readonly t: 'cert', readonly cert: unknown }
export interface RevokeOp { readonly t: 'revoke', readonly rev: unknown }
export interface EpochOp { readonly t: 'epoch', readonly id: number, readonly gen: number, readonly kc: Uint8Array, readonly boxes: Record<string, Uint8Array> }
/** An operation on membership and keys; verified by the identity layer when applied. */
export type ControlOp = CertOp | RevokeOp | EpochOp

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/

/** True when `name` is a valid user collection name. */
export function isCollectionName (name: unknown): name is CollectionName {
  return typeof name === 'string' && (COLLECTION_NAME.test(name) || SYSTEM_COLLECTION_NAME.test(name))
}

/** Returns why `id` is not a valid document id, or undefined. */
export function docIdProblem (id: unknown): string | undefined {
  if (typeof id !== 'string') return `expected a string, got ${typeof id}`
  if (id.length === 0 || id.length > MAX_DOC_ID) return `expected 1..${MAX_DOC_ID} characters, got ${id.length}`
  if (CONTROL_CHARS.test(id)) return 'contains control characters'
  return undefined
}

/** Returns why `name` is not a valid top-level field name, or undefined. */
export function fieldNameProblem (name: string): string | undefined {
  if (name.length === 0 || name.length > MAX_FIELD_NAME) return `field name expected 1..${MAX_FIELD_NAME} characters`
  if (name === '_id') return 'field "_id" is the document id'
  if (name === '__proto__') return 'field name "__proto__" is not allowed'
  if (CONTROL_CHARS.test(name)) return 'field name contains control characters'
  return undefined
}

function bad (message: string): never {
  throw new MalformedError(message)
}

function checkFields (f: unknown, where: string): JsonObject {
  if (!isPlainObject(f)) bad(`${where}: "f" expected a map`)
  for (const name of Object.keys(f)) {
    const p = fieldNameProblem(name)
    if (p !== undefined) bad(`${where}: ${p}`)
  }
  const problem = jsonProblem(f)
  if (problem !== undefined) bad(`${where}: ${problem}`)
  return f as JsonObject
}

function checkYjsOp (raw: unknown, i: number): YjsOp {
  const where = `yjs op ${i}`
  if (!isPlainObject(raw)) bad(`${where}: expected a map`)
  const p = docIdProblem(raw.d)
  if (p !== undefined) bad(`${where}: "d" ${p}`)
  if (!(raw.u instanceof Uint8Array) || raw.u.length === 0) bad(`${where}: "u" expected non-empty bytes`)
  if (raw.u.length > MAX_YJS_UPDATE) throw new TooLargeError(`${where}: Yjs update of ${raw.u.length} bytes is over ${MAX_YJS_UPDATE}`)
  checkYjsUpdate(raw.u)
  return { t: 'yjs', d: raw.d as DocId, u: raw.u }
}

function checkDocOp (raw: unknown, i: number): PutOp | PatchOp | DeleteOp {
  const where = `op ${i}`
  if (!isPlainObject(raw)) bad(`${where}: expected an object`)
  const t = raw.t
  // String() would throw on a map such as {"toString":0}: describe what is not a string by its type
  if (t !== 'put' && t !== 'patch' && t !== 'del') bad(`${where}: unknown op type ${typeof t === 'string' ? JSON.stringify(t.slice(0, 16)) : typeof t}`)
  if (!isCollectionName(raw.c)) bad(`${where}: "c" is not a valid collection name`)
  const p = docIdProblem(raw.id)
  if (p !== undefined) bad(`${where}: "id" ${p}`)
  if (t === 'del') return { t, c: raw.c, id: raw.id as DocId }
  return { t, c: raw.c, id: raw.id as DocId, f: checkFields(raw.f, where) }
}

function checkControlOp (raw: unknown, i: number): ControlOp {
  const where = `control op ${i}`
  if (!isPlainObject(raw)) bad(`${where}: expected a map`)
  switch (raw.t) {
    case 'cert': return { t: 'cert', cert: raw.cert }
    case 'revoke': return { t: 'revoke', rev: raw.rev }
    case 'epoch': {
      const { id, gen, kc, boxes } = raw
      if (typeof id !== 'number' || !Number.isInteger(id) || id <= 0 || id > 0xffffffff) bad(`${where}: "id" expected a u32 > 0`)
      if (typeof gen !== 'number' || !Number.isInteger(gen) || gen < 1 || gen > 0xffffffff) bad(`${where}: "gen" expected a u32 > 0`)
      if (!(kc instanceof Uint8Array) || kc.length !== 16) bad(`${where}: "kc" expected 16 bytes`)
      if (!isPlainObject(boxes)) bad(`${where}: "boxes" expected a map`)
      const keys = Object.keys(boxes)
      if (keys.length === 0 || keys.length > 10_000) bad(`${where}: "boxes" expected 1..10000 entries`)
      for (const k of keys) if (!(boxes[k] instanceof Uint8Array)) bad(`${where}: box for ${k.slice(0, 64)} expected bytes`)
      return { t: 'epoch', id, gen, kc, boxes: boxes as Record<string, Uint8Array> }
    }
    default: bad(`${where}: unknown op type`)
  }
}

function decodeMap (bytes: Uint8Array, what: string, maxItems: number): Record<string, unknown> {
  let value: unknown
  try {
    value = decodeDagCbor(bytes, maxItems)
  } catch (err) {
    if (err instanceof TooLargeError) throw new TooLargeError(`${what}: ${err.message}`, { cause: err })
    bad(`${what} is not valid DAG-CBOR: ${(err as Error).message}`)
  }
  if (!isPlainObject(value)) bad(`${what} expected a map`)
  return value
}

function checkCount (n: number, what: string): void {
  if (n > MAX_OPS_PER_ENTRY) throw new TooLargeError(`${what} has ${n} ops, over ${MAX_OPS_PER_ENTRY}`)
}

/** JSON text of one document op, reusing its precomputed field text when it has one. */
function docOpJson (op: PutOp | PatchOp | DeleteOp): string {
  const head = `{"t":"${op.t}","c":${JSON.stringify(op.c)},"id":${JSON.stringify(op.id)}`
  return op.t === 'del' ? head + '}' : `${head},"f":${op.j ?? JSON.stringify(op.f)}}`
}

/** Encodes data ops as a payload (before sealing). */
export function encodeDataPayload (ops: readonly DataOp[]): Uint8Array {
  const docs: string[] = []
  const yjs: Array<{ d: string, u: Uint8Array }> = []
  for (const op of ops) {
    if (op.t === 'yjs') yjs.push({ d: op.d, u: op.u })
    else docs.push(docOpJson(op))
  }
  return dagCbor.encode(yjs.length > 0 ? { d: `[${docs.join(',')}]`, y: yjs } : { d: `[${docs.join(',')}]` })
}

/** Decodes and validates a data payload (after opening). Throws {@link MalformedError} / {@link TooLargeError}. */
export function decodeDataPayload (bytes: Uint8Array): DataOp[] {
  const map = decodeMap(bytes, 'payload', MAX_DATA_ITEMS)
  if (typeof map.d !== 'string') bad('payload "d" expected JSON text')
  let docs: unknown
  try {
    docs = JSON.parse(map.d)
  } catch {
    bad('payload "d" is not valid JSON')
  }
  if (!Array.isArray(docs)) bad('payload "d" expected a JSON array of ops')
  const yjs = map.y === undefined ? [] : map.y
  if (!Array.isArray(yjs)) bad('payload "y" expected an array')
  checkCount(docs.length + yjs.length, 'payload')
  if (docs.length + yjs.length === 0) bad('payload has no ops')
  const out: DataOp[] = docs.map(checkDocOp)
  yjs.forEach((y, i) => out.push(checkYjsOp(y, i)))
  return out
}

/** Encodes control ops as a plaintext payload. */
export function encodeControlPayload (ops: readonly ControlOp[]): Uint8Array {
  return dagCbor.encode({ ops })
}

/** Decodes and validates the shape of a control payload (signatures are checked by the identity layer). */
export function decodeControlPayload (bytes: Uint8Array): ControlOp[] {
  const map = decodeMap(bytes, 'control payload', MAX_CONTROL_ITEMS)
  if (!Array.isArray(map.ops) || map.ops.length === 0) bad('control payload expected { ops: [...] } with at least one op')
  checkCount(map.ops.length, 'control payload')
  return map.ops.map(checkControlOp)
}
