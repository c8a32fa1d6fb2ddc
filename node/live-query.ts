/**
 * Live queries: a watcher holds a query's current result and updates it from the change feed.
 * For each commit it looks only at the documents that commit changed (one indexed SQL lookup of
 * those ids against the filter), so its cost follows the change, not the collection. A window
 * (`limit`) that loses members is refilled with one query of at most `limit` documents; queries
 * with an `offset` are re-run on relevant changes.
 */
import type { JsonObject, JsonValue } from '../crdt/index.js'
import type { DocChange, FindQuery, NormalisedQuery, StorageProvider } from '../storage/index.js'
import { normaliseQuery } from '../storage/index.js'
import type { ChangeEvent, Log } from './log.js'
import { createLogger } from './logger.js'

const logger = createLogger('live')

/** A document as returned by queries. */
export type LiveDoc = JsonObject & { _id: string }

/** One change to a live result. */
export interface LiveChange {
  readonly type: 'added' | 'updated' | 'removed'
  readonly id: string
  /** The document now (null when removed). */
  readonly doc: LiveDoc | null
}

/** What a watcher receives: the whole current result and what changed in it. */
export interface LiveEvent {
  /** 'initial' for the first result, then where the change came from. */
  readonly origin: 'initial' | 'local' | 'remote'
  readonly docs: readonly LiveDoc[]
  readonly changes: readonly LiveChange[]
}

/** Stops a watcher. */
export type Unsubscribe = () => void

// --- ordering like SQLite's ORDER BY over json_extract values --------------------------------

function valueAt (doc: LiveDoc, path: NormalisedQuery['orderBy'][number]['path']): JsonValue | undefined {
  if (path.isId) return doc._id
  let v: JsonValue | undefined = doc
  for (const s of path.segments) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
    v = (v as JsonObject)[s]
  }
  return v
}

// SQLite: NULL < INTEGER/REAL < TEXT; json_extract gives 1/0 for booleans and JSON text for
// arrays and objects; TEXT compares as bytes (BINARY collation).
function sqlCompare (a: JsonValue | undefined, b: JsonValue | undefined): number {
  const norm = (v: JsonValue | undefined): [number, number | string] => {
    if (v === undefined || v === null) return [0, 0]
    if (typeof v === 'boolean') return [1, v ? 1 : 0]
    if (typeof v === 'number') return [1, v]
    if (typeof v === 'string') return [2, v]
    return [2, JSON.stringify(v)]
  }
  const [ra, va] = norm(a)
  const [rb, vb] = norm(b)
  if (ra !== rb) return ra - rb
  if (ra === 2) return Buffer.compare(Buffer.from(va as string), Buffer.from(vb as string))
  return (va as number) - (vb as number)
}

/** The comparator of a query's `orderBy` (then `_id`), as SQLite orders. */
function resultComparator (query: NormalisedQuery): (a: LiveDoc, b: LiveDoc) => number {
  return (a, b) => {
    for (const o of query.orderBy) {
      const c = sqlCompare(valueAt(a, o.path), valueAt(b, o.path))
      if (c !== 0) return o.desc ? -c : c
    }
    return Buffer.compare(Buffer.from(a._id), Buffer.from(b._id))
  }
}

// --- one watcher ---------------------------------------------------------------------------------

class Watcher {
  private docs: LiveDoc[] = []
  private readonly ids = new Set<string>()
  private queue: Promise<void> = Promise.resolve()
  private closed = false
  private readonly compare: (a: LiveDoc, b: LiveDoc) => number

  constructor (
    readonly collection: string,
    private readonly query: NormalisedQuery,
    private readonly storage: StorageProvider,
    private readonly emit: (ev: LiveEvent) => void
  ) {
    this.compare = resultComparator(query)
  }

  start (): void {
    this.enqueue(async () => {
      await this.reload()
      this.emit({ origin: 'initial', docs: this.docs, changes: this.docs.map(d => ({ type: 'added', id: d._id, doc: d })) })
    })
  }

  close (): void {
    this.closed = true
  }

  private enqueue (task: () => Promise<void>): void {
    this.queue = this.queue.then(async () => {
      if (!this.closed) await task()
    }).catch(err => logger.warn('live query update failed', { collection: this.collection, error: (err as Error).message }))
  }

  private async reload (): Promise<void> {
    const rows = await this.storage.find(this.collection, this.query)
    this.docs = rows.map(r => ({ _id: r.id, ...r.body }))
    this.ids.clear()
    for (const d of this.docs) this.ids.add(d._id)
  }

  private indexOf (id: string): number {
    return this.docs.findIndex(d => d._id === id)
  }

  private insert (doc: LiveDoc): void {
    let lo = 0
    let hi = this.docs.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.compare(this.docs[mid] as LiveDoc, doc) < 0) lo = mid + 1
      else hi = mid
    }
    this.docs.splice(lo, 0, doc)
    this.ids.add(doc._id)
  }

  private remove (id: string): void {
    const i = this.indexOf(id)
    if (i >= 0) this.docs.splice(i, 1)
    this.ids.delete(id)
  }

  /** Applies one commit's changes to this collection. */
  update (changes: readonly DocChange[], origin: 'local' | 'remote'): void {
    this.enqueue(async () => {
      const latest = new Map<string, DocChange>()
      for (const c of changes) latest.set(c.id, c)
      const ids = [...latest.keys()]
      // which of the changed documents match the filter now (SQL over just those ids)
      const matching = new Map<string, LiveDoc>()
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500)
        const byId = { op: 'in' as const, path: { segments: [], isId: true }, values: chunk }
        const q: NormalisedQuery = { filter: this.query.filter === undefined ? byId : { op: 'and', items: [this.query.filter, byId] }, orderBy: [], limit: undefined, offset: 0 }
        for (const r of await this.storage.find(this.collection, q)) matching.set(r.id, { _id: r.id, ...r.body } as LiveDoc)
      }
      if (this.query.offset > 0) {
        if (!ids.some(id => this.ids.has(id) || matching.has(id))) return
        const before = new Map(this.docs.map(d => [d._id, d]))
        await this.reload()
        this.emitDiff(before, origin)
        return
      }
      const out: LiveChange[] = []
      let shrank = false
      for (const id of ids) {
        const was = this.ids.has(id)
        const now = matching.get(id)
        if (!was && now === undefined) continue
        // the same change heard twice (a write of this process, then the table's notification)
        if (was && now !== undefined && JSON.stringify(this.docs.find(d => d._id === id)) === JSON.stringify(now)) continue
        if (was) this.remove(id)
        if (now !== undefined) {
          this.insert(now)
          out.push({ type: was ? 'updated' : 'added', id, doc: now })
        } else {
          out.push({ type: 'removed', id, doc: null })
          shrank = true
        }
      }
      if (out.length === 0) return
      const limit = this.query.limit
      if (limit !== undefined) {
        if (this.docs.length > limit) {
          for (const d of this.docs.splice(limit)) {
            this.ids.delete(d._id)
            const i = out.findIndex(c => c.id === d._id)
            if (i >= 0 && out[i]?.type === 'added') out.splice(i, 1)
            else out.push({ type: 'removed', id: d._id, doc: null })
          }
        } else if (shrank && this.docs.length < limit) {
          // the window lost members: refill it (at most `limit` documents)
          const before = new Map(this.docs.map(d => [d._id, d]))
          await this.reload()
          for (const d of this.docs) if (!before.has(d._id)) out.push({ type: 'added', id: d._id, doc: d })
        }
      }
      if (out.length > 0) this.emit({ origin, docs: this.docs, changes: out })
    })
  }

  private emitDiff (before: Map<string, LiveDoc>, origin: 'local' | 'remote'): void {
    const out: LiveChange[] = []
    for (const d of this.docs) {
      const b = before.get(d._id)
      if (b === undefined) out.push({ type: 'added', id: d._id, doc: d })
      else if (JSON.stringify(b) !== JSON.stringify(d)) out.push({ type: 'updated', id: d._id, doc: d })
    }
    for (const id of before.keys()) if (!this.ids.has(id)) out.push({ type: 'removed', id, doc: null })
    if (out.length > 0) this.emit({ origin, docs: this.docs, changes: out })
  }
}

/** An async iterator over a live query's events. */
export class LiveQuery implements AsyncIterable<LiveEvent> {
  private readonly buffer: LiveEvent[] = []
  private wake: (() => void) | undefined
  private ended = false

  constructor (private readonly unsubscribe: Unsubscribe) {}

  /** Receives an event (coalescing when the consumer falls far behind). */
  push (ev: LiveEvent): void {
    if (this.ended) return
    if (this.buffer.length >= 100) {
      const merged = this.buffer.splice(0)
      this.buffer.push({ origin: ev.origin, docs: ev.docs, changes: [...merged.flatMap(m => m.changes), ...ev.changes] })
    } else {
      this.buffer.push(ev)
    }
    this.wake?.()
  }

  /** Stops the live query; a pending iteration ends. */
  close (): void {
    if (this.ended) return
    this.ended = true
    this.unsubscribe()
    this.wake?.()
  }

  async * [Symbol.asyncIterator] (): AsyncIterator<LiveEvent> {
    try {
      for (;;) {
        const next = this.buffer.shift()
        if (next !== undefined) {
          yield next
          continue
        }
        if (this.ended) return
        await new Promise<void>(resolve => { this.wake = resolve })
        this.wake = undefined
      }
    } finally {
      this.close()
    }
  }
}

/** All watchers of a node, fed by the log's change events. */
export class LiveQueries {
  private readonly watchers = new Map<string, Set<Watcher>>()
  private readonly onChange = (ev: ChangeEvent): void => {
    const byCollection = new Map<string, DocChange[]>()
    for (const c of ev.changes) {
      if (!this.watchers.has(c.collection)) continue
      let list = byCollection.get(c.collection)
      if (list === undefined) byCollection.set(c.collection, list = [])
      list.push(c)
    }
    for (const [collection, changes] of byCollection) {
      for (const w of this.watchers.get(collection) ?? []) w.update(changes, ev.origin)
    }
  }

  constructor (private readonly log: Log, private readonly storage: StorageProvider) {
    log.on('change', this.onChange)
  }

  /** Starts watching; the listener first receives the current result. */
  watch (collection: string, query: FindQuery, listener: (ev: LiveEvent) => void): Unsubscribe {
    const w = new Watcher(collection, normaliseQuery(query), this.storage, ev => {
      try {
        listener(ev)
      } catch (err) {
        logger.warn('live query listener threw', { collection, error: (err as Error).message })
      }
    })
    let set = this.watchers.get(collection)
    if (set === undefined) this.watchers.set(collection, set = new Set())
    set.add(w)
    w.start()
    return () => {
      w.close()
      set?.delete(w)
      if (set?.size === 0) this.watchers.delete(collection)
    }
  }

  close (): void {
    this.log.off('change', this.onChange)
    for (const set of this.watchers.values()) for (const w of set) w.close()
    this.watchers.clear()
  }
}
