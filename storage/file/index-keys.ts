/**
 * Keys of the file provider's secondary indexes, as bytes that sort the way SQLite compares the
 * indexed values: `index number (4) | type (1) | value | id`. Numbers (booleans as 1 and 0)
 * come first as order-preserving doubles; text follows as escaped UTF-8 cut to
 * {@link INDEX_TEXT_BYTES} and ended by a zero byte. A cut value stands for every value
 * that begins with it, so a key range is a superset of the matches: the caller rechecks
 * each candidate against the whole filter.
 */
import type { JsonValue } from '../types.js'
import { sqlValue, type SqlValue } from './filter-eval.js'

/** Bytes of a text value kept in an index key (UTF-8, before escaping). */
export const INDEX_TEXT_BYTES = 256

/** A half-open range of keys: start <= key < end. */
export interface KeyRange {
  readonly start: Buffer
  readonly end: Buffer
}

const TAG_NUMBER = 0x10
const TAG_TEXT = 0x20
const HEAD = 5
// no UTF-8 byte, escaped byte or terminator is 0xff: appending it bounds every key with a given start
const TOP = 0xff

function head (index: number, tag: number): Buffer {
  const b = Buffer.allocUnsafe(HEAD)
  b.writeUInt32BE(index, 0)
  b[4] = tag
  return b
}

/** A double as 8 bytes whose unsigned order is numeric order (-0 is 0). */
function numberBytes (n: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeDoubleBE(n === 0 ? 0 : n, 0)
  if ((b[0] as number) & 0x80) {
    for (let i = 0; i < 8; i++) b[i] = ~(b[i] as number) & 0xff
  } else {
    b[0] = (b[0] as number) | 0x80
  }
  return b
}

/** UTF-8 of a text value cut to its first bytes, 0 and 1 escaped so that 0 can end it. */
function textBytes (s: string): Buffer {
  const raw = Buffer.from(s, 'utf8').subarray(0, INDEX_TEXT_BYTES)
  let escapes = 0
  for (const byte of raw) if (byte <= 1) escapes++
  if (escapes === 0) return raw
  const out = Buffer.allocUnsafe(raw.length + escapes)
  let j = 0
  for (const byte of raw) {
    if (byte <= 1) {
      out[j++] = 1
      out[j++] = byte + 1
    } else {
      out[j++] = byte
    }
  }
  return out
}

const ZERO = Buffer.from([0])
const TOP_BYTE = Buffer.from([TOP])

/** The key prefix of one value: index, type, value (and the text terminator). */
function valuePrefix (index: number, v: number | string): Buffer {
  return typeof v === 'number'
    ? Buffer.concat([head(index, TAG_NUMBER), numberBytes(v)])
    : Buffer.concat([head(index, TAG_TEXT), textBytes(v), ZERO])
}

/** Index keys of one document's value at the indexed path: the value, and each array member. */
export function entryKeys (index: number, value: JsonValue | undefined, id: string): Buffer[] {
  const values = new Set<number | string>()
  const own = sqlValue(value)
  if (own !== null) values.add(own)
  if (Array.isArray(value)) {
    for (const m of value) {
      const v = sqlValue(m)
      if (v !== null) values.add(v)
    }
  }
  const idBytes = Buffer.from(id, 'utf8')
  const keys = new Map<string, Buffer>()
  for (const v of values) {
    const k = Buffer.concat([valuePrefix(index, v), idBytes])
    keys.set(k.toString('latin1'), k)
  }
  return [...keys.values()]
}

/** The document id at the end of an index key. */
export function idOfKey (key: Uint8Array): string {
  const b = Buffer.from(key.buffer, key.byteOffset, key.length)
  const start = b[4] === TAG_NUMBER ? HEAD + 8 : b.indexOf(0, HEAD) + 1
  return b.toString('utf8', start)
}

/** Keys whose value equals `v` (a cut text value: every value it stands for). */
export function equalRange (index: number, v: number | string): KeyRange {
  const p = valuePrefix(index, v)
  return { start: p, end: Buffer.concat([p, TOP_BYTE]) }
}

/** Keys of one type whose value lies between the bounds (inclusive; either may be open). */
export function betweenRange (index: number, lo: SqlValue, hi: SqlValue, type: 'number' | 'string'): KeyRange {
  const tag = type === 'number' ? TAG_NUMBER : TAG_TEXT
  return {
    start: lo === null ? head(index, tag) : valuePrefix(index, lo),
    end: hi === null ? head(index, tag + 1) : Buffer.concat([valuePrefix(index, hi), TOP_BYTE])
  }
}

/** Keys of text values starting with `prefix`. */
export function prefixRange (index: number, prefix: string): KeyRange {
  const p = Buffer.concat([head(index, TAG_TEXT), textBytes(prefix)])
  return { start: p, end: Buffer.concat([p, TOP_BYTE]) }
}

/** Every key of one index. */
export function wholeIndexRange (index: number): KeyRange {
  const start = Buffer.allocUnsafe(4)
  start.writeUInt32BE(index, 0)
  const end = Buffer.allocUnsafe(4)
  end.writeUInt32BE(index + 1, 0)
  return { start, end }
}
