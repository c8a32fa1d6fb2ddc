/**
 * The LMDB sub-databases of the file provider and their key shapes:
 *
 * | name    | key                          | value                                  |
 * |---------|------------------------------|----------------------------------------|
 * | docs    | [collection, id]             | {@link DocValue}: write time and body  |
 * | colls   | collection                   | {@link CollectionRecord}               |
 * | expiry  | [collection, writtenAt, id]  | empty (kept while the collection has a TTL) |
 * | recency | [collection, tick]           | id (kept while it has a byte budget)   |
 * | used    | [collection, id]             | tick (the id's current recency key)    |
 * | index   | index-keys.ts bytes          | empty                                  |
 * | meta    | name                         | format version, counters               |
 *
 * Array keys are ordered-binary: every key of one collection shares the prefix of `[collection]`,
 * so a collection is one contiguous range that starts at `[collection]`.
 */
import type { Database, Key, RootDatabase } from 'lmdb'
import type { JsonObject } from '../types.js'
import type { CollectionPolicy } from './policy.js'

/**
 * A stored document: the time of its last write (ms since the epoch, by the provider's clock)
 * and its body, as one MessagePack array.
 */
export type DocValue = [writtenAt: number, body: JsonObject]

/** What the store keeps about one collection (in `colls`). */
export interface CollectionRecord {
  /** Documents stored, including expired ones not swept yet. */
  count: number
  /** Their summed size ({@link docSize}), kept while `recency` is. */
  bytes: number
  policy: CollectionPolicy
  /** Indexed field paths (dot text, or `_id`) and their index numbers. */
  indexes: Record<string, number>
  /** Whether `expiry` keys are kept for the collection's documents. */
  expiry: boolean
  /** Whether `recency` and `used` keys are kept for them. */
  recency: boolean
}

/** A record for a collection the store has not seen. */
export function emptyRecord (): CollectionRecord {
  return { count: 0, bytes: 0, policy: {}, indexes: {}, expiry: false, recency: false }
}

/** A copy that a write transaction may change. */
export function copyRecord (r: CollectionRecord): CollectionRecord {
  return { ...r, policy: { ...r.policy }, indexes: { ...r.indexes } }
}

/** Version of the layout above; a store written with a newer one is refused. */
export const FORMAT_VERSION = 1

export type DocKey = [string, string]
export type ExpiryKey = [string, number, string]
export type RecencyKey = [string, number]

/** The empty value of key-only tables. */
export const EMPTY = Buffer.alloc(0)

/** Named sub-databases this layout uses (LMDB needs the count up front). */
export const TABLE_COUNT = 7

// plain MessagePack maps (msgpackr's option): a stored document does not depend on record structures
const PLAIN_MAPS = { encoding: 'msgpack' as const, useRecords: false }

/** The sub-databases of one store. */
export class FileTables {
  readonly docs: Database<DocValue, DocKey>
  readonly colls: Database<CollectionRecord, string>
  readonly expiry: Database<Buffer, ExpiryKey>
  readonly recency: Database<string, RecencyKey>
  readonly used: Database<number, DocKey>
  readonly index: Database<Buffer, Buffer>
  readonly meta: Database<number, string>

  constructor (readonly root: RootDatabase) {
    this.docs = root.openDB<DocValue, DocKey>('docs', PLAIN_MAPS)
    this.colls = root.openDB<CollectionRecord, string>('colls', {})
    this.expiry = root.openDB<Buffer, ExpiryKey>('expiry', { encoding: 'binary' })
    this.recency = root.openDB<string, RecencyKey>('recency', {})
    this.used = root.openDB<number, DocKey>('used', {})
    this.index = root.openDB<Buffer, Buffer>('index', { keyEncoding: 'binary', encoding: 'binary' })
    this.meta = root.openDB<number, string>('meta', {})
  }
}

/**
 * What a stored document weighs against its collection's byte budget: its stored bytes and the
 * UTF-8 bytes of its id (0 when it is not stored).
 */
export function docSize (t: FileTables, key: DocKey): number {
  const stored = t.docs.getBinaryFast(key)
  return stored === undefined ? 0 : stored.length + Buffer.byteLength(key[1])
}

/**
 * Up to `limit` entries of one collection's range in a table, in key order, after `after` (a
 * key of that range) when given. Read in chunks like this, a write transaction can change the
 * table between chunks.
 */
export function chunkOf<V, K extends Key[]> (db: Database<V, K>, collection: string, limit: number, after?: K): Array<{ key: K, value: V }> {
  const out: Array<{ key: K, value: V }> = []
  const range = after === undefined ? db.getRange({ start: [collection] as unknown as K }) : db.getRange({ start: after, exclusiveStart: true })
  for (const e of range) {
    if (e.key[0] !== collection || out.length >= limit) break
    out.push({ key: e.key, value: e.value })
  }
  return out
}

/** Every entry of one collection's range in a table (for reads: no writes while iterating). */
export function * rangeOf<V, K extends Key[]> (db: Database<V, K>, collection: string): Generator<{ key: K, value: V }> {
  for (const e of db.getRange({ start: [collection] as unknown as K })) {
    if (e.key[0] !== collection) return
    yield e
  }
}

/** Every key of one collection's range in a table (for reads). */
export function * keysOf<V, K extends Key[]> (db: Database<V, K>, collection: string): Generator<K> {
  for (const key of db.getKeys({ start: [collection] as unknown as K })) {
    if (key[0] !== collection) return
    yield key
  }
}
