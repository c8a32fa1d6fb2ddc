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
import { OverBudgetError } from './errors.js'
import { valueAt } from './filter-eval.js'
import { chunkOf, copyRecord, docSize, emptyRecord, EMPTY, type CollectionRecord, type DocKey, type DocValue, type FileTables } from './file-tables.js'
import { entryKeys } from './index-keys.js'
import { sameJson } from './json-body.js'
import { effectivePolicy, isExpired, type EffectivePolicy, type PolicyDefaults } from './policy.js'

/** Entries read per chunk when a transaction walks a collection. */
const CHUNK = 512

/** A write of one document, validated before the transaction: a body replaces it, null deletes it. */
export interface PreparedWrite {
  readonly id: string
  readonly body: JsonObject | null
}

/** Pending read touches: collection → id → tick. */
export type Touches = Map<string, Map<string, number>>

interface Stored { readonly writtenAt: number, readonly body: JsonObject }

function indexPath (text: string): FieldPath {
  return { segments: text.split('.'), isId: false }
}

function stored (v: DocValue | undefined): Stored | undefined {
  return v === undefined ? undefined : { writtenAt: v[0], body: v[1] }
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
      const kept = this.t.colls.get(c)
      r = kept === undefined ? emptyRecord() : copyRecord(kept)
      this.records.set(c, r)
    }
    return r
  }

  policy (c: string): EffectivePolicy {
    return effectivePolicy(this.record(c).policy, this.defaults)
  }

  /** Applies one write; a body equal to the live one only restarts its TTL and counts as use. */
  write (c: string, w: PreparedWrite): void {
    const rec = this.record(c)
    const policy = this.policy(c)
    const key: DocKey = [c, w.id]
    const old = stored(this.t.docs.get(key))
    const live = old !== undefined && !isExpired(old.writtenAt, policy, this.now)
    const before = live ? old.body : null
    if (w.body === null) {
      if (old === undefined) return
      this.remove(key, old, rec)
      if (before !== null) this.changes.push({ collection: c, id: w.id, before, after: null })
      return
    }
    const oldSize = rec.recency ? docSize(this.t, key) : 0
    this.t.docs.putSync(key, [this.now, w.body])
    if (rec.recency) {
      const size = docSize(this.t, key)
      if (policy.maxBytes !== null && size > policy.maxBytes) {
        throw new OverBudgetError(`document ${JSON.stringify(w.id)} is ${size} bytes, over the ${policy.maxBytes}-byte budget of ${c}`)
      }
      rec.bytes += size - oldSize
      this.setTick(key, this.tick())
    }
    if (rec.expiry) {
      if (old !== undefined) this.t.expiry.removeSync([c, old.writtenAt, w.id])
      this.t.expiry.putSync([c, this.now, w.id], EMPTY)
    }
    if (old === undefined) rec.count++
    if (before !== null && sameJson(before, w.body)) return
    this.reindex(w.id, rec, old?.body, w.body)
    this.changes.push({ collection: c, id: w.id, before, after: w.body })
  }

  /** Removes a stored document and every key that refers to it. */
  private remove (key: DocKey, old: Stored, rec: CollectionRecord): void {
    const [c, id] = key
    if (rec.recency) {
      rec.bytes -= docSize(this.t, key)
      this.dropTick(key)
    }
    this.t.docs.removeSync(key)
    if (rec.expiry) this.t.expiry.removeSync([c, old.writtenAt, id])
    this.reindex(id, rec, old.body, undefined)
    rec.count--
  }

  private setTick (key: DocKey, tick: number): void {
    this.dropTick(key)
    this.t.recency.putSync([key[0], tick], key[1])
    this.t.used.putSync(key, tick)
  }

  private dropTick (key: DocKey): void {
    const old = this.t.used.get(key)
    if (old === undefined) return
    this.t.recency.removeSync([key[0], old])
    this.t.used.removeSync(key)
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
        const key: DocKey = [c, id]
        const current = this.t.used.get(key)
        if (current !== undefined && current < tick) this.setTick(key, tick)
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
        const docKey: DocKey = [c, key[2]]
        const old = stored(this.t.docs.get(docKey))
        if (old === undefined || old.writtenAt !== key[1]) {
          // a key left behind by damage: drop it, the document (if any) has its own
          this.t.expiry.removeSync(key)
          continue
        }
        this.remove(docKey, old, rec)
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
        const docKey: DocKey = [c, id]
        const old = stored(this.t.docs.get(docKey))
        if (old === undefined) {
          this.t.recency.removeSync(key)
          continue
        }
        this.remove(docKey, old, rec)
        if (!isExpired(old.writtenAt, policy, this.now)) this.changes.push({ collection: c, id, before: old.body, after: null })
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
      rec.bytes = 0
      if (recency) {
        const order: Array<{ id: string, at: number }> = []
        this.eachDoc(c, (id, doc) => { order.push({ id, at: doc.writtenAt }) })
        order.sort((a, b) => a.at - b.at)
        for (const { id } of order) {
          const key: DocKey = [c, id]
          rec.bytes += docSize(this.t, key)
          this.setTick(key, this.tick())
        }
      } else {
        this.clear(this.t.recency, c)
        this.clear(this.t.used, c)
      }
      rec.recency = recency
    }
  }

  /** Records an index and adds the keys of every stored document. */
  addIndex (c: string, text: string, no: number): void {
    this.record(c).indexes[text] = no
    if (text === '_id') return
    const path = indexPath(text)
    this.eachDoc(c, (id, doc) => {
      for (const k of entryKeys(no, valueAt(doc.body, path), id)) this.t.index.putSync(k, EMPTY)
    })
  }

  private eachDoc (c: string, fn: (id: string, doc: Stored) => void): void {
    let after: DocKey | undefined
    for (;;) {
      const chunk = chunkOf(this.t.docs, c, CHUNK, after)
      if (chunk.length === 0) return
      for (const { key, value } of chunk) fn(key[1], { writtenAt: value[0], body: value[1] })
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
