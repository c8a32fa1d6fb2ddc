/**
 * The work of one file-provider write transaction: synchronous, on the transaction's own view
 * of the tables (file-tables.ts). It keeps each document's expiry, recency and index keys and
 * its collection's counters in step with the document, and collects what changed. Nothing here
 * touches the provider's memory: {@link FileTxn.finish} hands back the records to adopt once the
 * transaction has committed.
 */
import type { Database, Key } from 'lmdb'
import type { JsonObject } from '../types.js'
import type { DocChange } from '../provider.js'
import type { FieldPath } from '../query.js'
import { decodeDoc, docSize, stampDoc, type DocRecord } from './doc-record.js'
import { OverBudgetError } from './errors.js'
import { valueAt } from './filter-eval.js'
import { chunkOf, copyRecord, emptyRecord, EMPTY, type CollectionRecord, type DocKey, type FileTables } from './file-tables.js'
import { entryKeys } from './index-keys.js'
import { effectivePolicy, isExpired, type EffectivePolicy, type PolicyDefaults } from './policy.js'

/** Entries read per chunk when a transaction walks a collection. */
const CHUNK = 512

/** A write of one document, validated and encoded before the transaction. */
export interface PreparedWrite {
  readonly id: string
  /** The encoded record (doc-record.ts), or null to delete. */
  readonly record: Buffer | null
  /** The body's JSON text (null to delete). */
  readonly json: string | null
  readonly body: JsonObject | null
}

/** Pending read touches: collection → id → tick. */
export type Touches = Map<string, Map<string, number>>

function indexPath (text: string): FieldPath {
  return { segments: text.split('.'), isId: false }
}

function parse (json: string): JsonObject {
  return JSON.parse(json) as JsonObject
}

/** One write transaction's work. */
export class FileTxn {
  private readonly records = new Map<string, CollectionRecord>()
  /** Changes to report, in order. */
  readonly changes: DocChange[] = []

  constructor (
    private readonly t: FileTables,
    private readonly defaults: PolicyDefaults,
    readonly now: number,
    private readonly tick: () => number
  ) {}

  /** The collection's record as this transaction sees it (changes to it are persisted by finish). */
  record (c: string): CollectionRecord {
    let r = this.records.get(c)
    if (r === undefined) {
      const stored = this.t.colls.get(c)
      r = stored === undefined ? emptyRecord() : copyRecord(stored)
      this.records.set(c, r)
    }
    return r
  }

  policy (c: string): EffectivePolicy {
    return effectivePolicy(this.record(c).policy, this.defaults)
  }

  private stored (c: string, id: string): DocRecord | undefined {
    const buf = this.t.docs.getBinary([c, id])
    return buf === undefined ? undefined : decodeDoc(id, buf)
  }

  /** Applies one write; a body equal to the live one only refreshes its write time and recency. */
  write (c: string, w: PreparedWrite): void {
    const rec = this.record(c)
    const policy = this.policy(c)
    const old = this.stored(c, w.id)
    const live = old !== undefined && !isExpired(old.writtenAt, policy, this.now)
    const before = live ? parse(old.json) : null
    if (w.record === null) {
      if (old === undefined) return
      this.remove(c, w.id, old, rec)
      if (before !== null) this.changes.push({ collection: c, id: w.id, before, after: null })
      return
    }
    const size = docSize(w.id, w.record.length)
    if (policy.maxBytes !== null && size > policy.maxBytes) {
      throw new OverBudgetError(`document ${JSON.stringify(w.id)} is ${size} bytes, over the ${policy.maxBytes}-byte budget of ${c}`)
    }
    const key: DocKey = [c, w.id]
    this.t.docs.putSync(key, stampDoc(w.record, this.now))
    if (rec.expiry) {
      if (old !== undefined) this.t.expiry.removeSync([c, old.writtenAt, w.id])
      this.t.expiry.putSync([c, this.now, w.id], EMPTY)
    }
    if (rec.recency) this.setTick(c, w.id, this.tick())
    const unchanged = live && old.json === w.json
    if (!unchanged) this.reindex(w.id, rec, old === undefined ? undefined : (before ?? parse(old.json)), w.body ?? undefined)
    if (old === undefined) rec.count++
    rec.bytes += size - (old?.size ?? 0)
    if (!unchanged) this.changes.push({ collection: c, id: w.id, before, after: w.body })
  }

  /** Removes a stored document and every key that refers to it. */
  private remove (c: string, id: string, old: DocRecord, rec: CollectionRecord): void {
    this.t.docs.removeSync([c, id])
    if (rec.expiry) this.t.expiry.removeSync([c, old.writtenAt, id])
    if (rec.recency) this.dropTick(c, id)
    this.reindex(id, rec, parse(old.json), undefined)
    rec.count--
    rec.bytes -= old.size
  }

  private setTick (c: string, id: string, tick: number): void {
    this.dropTick(c, id)
    this.t.recency.putSync([c, tick], id)
    this.t.used.putSync([c, id], tick)
  }

  private dropTick (c: string, id: string): void {
    const old = this.t.used.get([c, id])
    if (old === undefined) return
    this.t.recency.removeSync([c, old])
    this.t.used.removeSync([c, id])
  }

  /** Moves a document's index keys from its old body to its new one. */
  private reindex (id: string, rec: CollectionRecord, before: JsonObject | undefined, after: JsonObject | undefined): void {
    for (const [text, no] of Object.entries(rec.indexes)) {
      if (text === '_id') continue
      const path = indexPath(text)
      const gone = before === undefined ? [] : entryKeys(no, valueAt(before, path), id)
      const added = after === undefined ? [] : entryKeys(no, valueAt(after, path), id)
      const keep = new Set(added.map(k => k.toString('latin1')))
      const had = new Set(gone.map(k => k.toString('latin1')))
      for (const k of gone) if (!keep.has(k.toString('latin1'))) this.t.index.removeSync(k)
      for (const k of added) if (!had.has(k.toString('latin1'))) this.t.index.putSync(k, EMPTY)
    }
  }

  /** Applies read touches newer than the recency they replace (documents since removed are skipped). */
  applyTouches (touches: Touches): void {
    for (const [c, ids] of touches) {
      if (!this.record(c).recency) continue
      for (const [id, tick] of ids) {
        const current = this.t.used.get([c, id])
        if (current !== undefined && current < tick) this.setTick(c, id, tick)
      }
    }
  }

  /** Removes up to `limit` expired documents of a collection; returns how many. */
  sweep (c: string, limit: number): number {
    const rec = this.record(c)
    const policy = this.policy(c)
    if (policy.ttlMs === null || !rec.expiry) return 0
    const cutoff = this.now - policy.ttlMs
    let removed = 0
    while (removed < limit) {
      const keys = chunkOf(this.t.expiry, c, Math.min(CHUNK, limit - removed)).filter(e => e.key[1] <= cutoff)
      if (keys.length === 0) break
      for (const { key } of keys) {
        const old = this.stored(c, key[2])
        if (old === undefined || old.writtenAt !== key[1]) {
          // a key left behind by damage: drop it, the document (if any) has its own
          this.t.expiry.removeSync(key)
          continue
        }
        this.remove(c, key[2], old, rec)
        removed++
      }
    }
    return removed
  }

  /** Evicts least recently used documents until the collection fits its budget. */
  evict (c: string): void {
    const rec = this.record(c)
    const policy = this.policy(c)
    if (policy.maxBytes === null || !rec.recency) return
    while (rec.bytes > policy.maxBytes) {
      const oldest = chunkOf(this.t.recency, c, 64)
      if (oldest.length === 0) break
      for (const { key, value: id } of oldest) {
        if (rec.bytes <= policy.maxBytes) break
        const old = this.stored(c, id)
        if (old === undefined) {
          this.t.recency.removeSync(key)
          continue
        }
        const live = !isExpired(old.writtenAt, policy, this.now)
        this.remove(c, id, old, rec)
        if (live) this.changes.push({ collection: c, id, before: parse(old.json), after: null })
      }
    }
  }

  /**
   * Keeps the expiry and recency keys the collection's policy needs, and only those: builds them
   * from the stored documents (recency in write-time order) or drops them.
   */
  track (c: string): void {
    const rec = this.record(c)
    const policy = this.policy(c)
    const expiry = policy.ttlMs !== null
    const recency = policy.maxBytes !== null
    if (expiry !== rec.expiry) {
      if (expiry) this.eachDoc(c, (id, doc) => { this.t.expiry.putSync([c, doc.writtenAt, id], EMPTY) })
      else this.clear(this.t.expiry, c)
      rec.expiry = expiry
    }
    if (recency !== rec.recency) {
      if (recency) {
        const order: Array<{ id: string, at: number }> = []
        this.eachDoc(c, (id, doc) => { order.push({ id, at: doc.writtenAt }) })
        order.sort((a, b) => a.at - b.at)
        for (const { id } of order) this.setTick(c, id, this.tick())
      } else {
        this.clear(this.t.recency, c)
        this.clear(this.t.used, c)
      }
      rec.recency = recency
    }
  }

  /** Records an index and adds the keys of every stored document. */
  addIndex (c: string, text: string, no: number): void {
    const rec = this.record(c)
    rec.indexes[text] = no
    if (text === '_id') return
    const path = indexPath(text)
    this.eachDoc(c, (id, doc) => {
      for (const k of entryKeys(no, valueAt(parse(doc.json), path), id)) this.t.index.putSync(k, EMPTY)
    })
  }

  private eachDoc (c: string, fn: (id: string, doc: DocRecord) => void): void {
    let after: DocKey | undefined
    for (;;) {
      const chunk = chunkOf(this.t.docs, c, CHUNK, after)
      if (chunk.length === 0) return
      for (const { key, value } of chunk) fn(key[1], decodeDoc(key[1], value))
      after = chunk[chunk.length - 1]?.key
    }
  }

  private clear<V, K extends Key[]> (db: Database<V, K>, c: string): void {
    for (;;) {
      const chunk = chunkOf(db, c, CHUNK)
      if (chunk.length === 0) return
      for (const { key } of chunk) db.removeSync(key)
    }
  }

  /**
   * Writes the changed records (dropping those of collections left with nothing to keep) and
   * returns them for the provider to adopt after the commit (undefined: dropped).
   */
  finish (): Map<string, CollectionRecord | undefined> {
    const out = new Map<string, CollectionRecord | undefined>()
    for (const [c, rec] of this.records) {
      const empty = rec.count === 0 && Object.keys(rec.indexes).length === 0 && Object.keys(rec.policy).length === 0
      if (empty) {
        this.t.colls.removeSync(c)
        out.set(c, undefined)
      } else {
        this.t.colls.putSync(c, rec)
        out.set(c, rec)
      }
    }
    return out
  }
}
