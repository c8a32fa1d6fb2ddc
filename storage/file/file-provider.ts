/**
 * The file provider: a {@link DocumentStore} on LMDB for fast local indexing and temporary
 * storage. It serves device-local collections (storage names starting with `~`, written with
 * `writeLocal`, never in the log), with per-collection expiry (TTL) and byte budgets that evict
 * the least recently used documents. Queries give the SQLite provider's results.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { open, type RootDatabase } from 'lmdb'
import { docIdProblem, MAX_DOC_ID } from '../../crdt/index.js'
import { SchemaVersionError, StorageClosedError } from '../errors.js'
import { LOCAL_PREFIX, type CollectionInfo, type DocChange, type DocumentStore, type StoredDoc } from '../provider.js'
import type { FieldPath, Filter, NormalisedQuery } from '../query.js'
import type { JsonObject } from '../types.js'
import { FileStoreCorruptError, InvalidBodyError, InvalidOptionError, NotDeviceLocalError } from './errors.js'
import { checkTables } from './file-integrity.js'
import { chunkOf, FileTables, FORMAT_VERSION, keysOf, rangeOf, TABLE_COUNT, type CollectionRecord, type DocValue } from './file-tables.js'
import { FileTxn, type PreparedWrite, type Touches } from './file-txn.js'
import { compareText, matchesFilter, sortByOrder } from './filter-eval.js'
import { idOfKey } from './index-keys.js'
import { bodyProblem } from './json-body.js'
import { lmdbFileProblem } from './lmdb-file-check.js'
import { checkDefaults, checkPolicy, effectivePolicy, isExpired, type CollectionPolicy, type EffectivePolicy } from './policy.js'
import { planFilter } from './query-plan.js'

export { FileStoreCorruptError, InvalidBodyError, InvalidOptionError, NotDeviceLocalError, OverBudgetError } from './errors.js'
export type { CollectionPolicy, EffectivePolicy } from './policy.js'

/** Options of {@link FileProvider.open}. */
export interface FileProviderOptions {
  /** Directory of the store (created if missing); LMDB keeps `data.mdb` and `lock.mdb` in it. */
  readonly path: string
  /** Default time to live of documents, in ms after their last write (collections may override it). */
  readonly ttlMs?: number
  /** Default byte budget of each collection (collections may override it). */
  readonly maxBytes?: number
  /**
   * 'full' (default): every commit is flushed to disk. 'none': commits are not flushed; a process
   * crash loses nothing, a power loss may lose or damage recent writes (for data that can be
   * rebuilt).
   */
  readonly durability?: 'full' | 'none'
  /**
   * How often expired documents are swept and read recency is saved, in ms (default 1000); 0
   * leaves both to writes, {@link FileProvider.sweep} and close.
   */
  readonly sweepIntervalMs?: number
  /** The clock, in ms since the epoch (default `Date.now`); tests inject one. */
  readonly now?: () => number
}

/** A document of a query result. */
interface Row { readonly id: string, readonly body: JsonObject }

const DEFAULT_SWEEP_MS = 1000
/** Read touches kept in memory before they are written without waiting for the timer. */
const TOUCH_FLUSH_AT = 4096
/** Expired documents a write sweeps from its collection (the timer and sweep() take the rest). */
const SWEEP_PER_WRITE = 256
/** Expired documents one background sweep transaction removes. */
const SWEEP_PER_PASS = 10_000
/** Longest collection name, in characters (keys must stay under LMDB's 1978 bytes). */
const MAX_COLLECTION_NAME = 128
const META_FORMAT = 'format'
const META_TICK = 'tick'
const META_NEXT_INDEX = 'next-index'
const LMDB_DAMAGE = /MDB_(CORRUPTED|PAGE_NOTFOUND|INVALID|VERSION_MISMATCH|BAD_TXN|BAD_DBI)/

function isDamage (err: unknown): err is Error {
  return err instanceof Error && LMDB_DAMAGE.test(err.message)
}

function isStorableName (collection: unknown): collection is string {
  return typeof collection === 'string' && collection.startsWith(LOCAL_PREFIX) && collection.length > LOCAL_PREFIX.length && collection.length <= MAX_COLLECTION_NAME
}

function isStorableId (id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_DOC_ID
}

function checkLocal (collection: string, what: string): void {
  if (!isStorableName(collection)) {
    throw new NotDeviceLocalError(`${what}: ${JSON.stringify(collection)} is not a device-local collection (expected a name of 2..${MAX_COLLECTION_NAME} characters starting with ${LOCAL_PREFIX})`)
  }
}

/** Validates writes before any transaction starts, so that a bad one writes nothing. */
function prepareWrites (writes: ReadonlyArray<{ readonly id: string, readonly body: JsonObject | null }>): PreparedWrite[] {
  if (!Array.isArray(writes)) throw new InvalidBodyError('writeLocal expected an array of writes')
  return writes.map((w: unknown, i) => {
    const { id, body } = (w ?? {}) as { id?: unknown, body?: unknown }
    const idProblem = docIdProblem(id)
    if (idProblem !== undefined) throw new InvalidBodyError(`write ${i}: "id" ${idProblem}`)
    const problem = body === null ? undefined : bodyProblem(body)
    if (problem !== undefined) throw new InvalidBodyError(`write ${i} (${JSON.stringify(id)}): ${problem}`)
    return { id: id as string, body: body as JsonObject | null }
  })
}

/** The LMDB implementation of {@link DocumentStore}, for device-local collections. */
export class FileProvider implements DocumentStore {
  readonly kind = 'file'
  readonly location: string
  private readonly t: FileTables
  private readonly defaults: { readonly ttlMs?: number | undefined, readonly maxBytes?: number | undefined }
  private readonly defaultPolicy: EffectivePolicy
  private readonly now: () => number
  /** Committed collection records, with what reads derive from them. */
  private readonly records = new Map<string, { readonly rec: CollectionRecord, readonly policy: EffectivePolicy, readonly indexes: ReadonlyMap<string, number> }>()
  /** Reads not yet written to the recency table: collection → id → tick. */
  private touches: Touches = new Map()
  private touchCount = 0
  private flushQueued = false
  /** The last recency tick handed out (reads and writes share it, so it orders both). */
  private tick = 0
  private closed = false
  private timer: NodeJS.Timeout | undefined
  private readonly inflight = new Set<Promise<unknown>>()

  /**
   * Opens (creating if needed) a file store in a directory. Throws {@link FileStoreCorruptError}
   * (a `StorageCorruptError`) naming it when its data file is not a readable file store.
   *
   * @example
   * ```ts
   * const files = await FileProvider.open({ path: './data/files', ttlMs: 24 * 3600_000 })
   * await files.setCollectionPolicy('~thumbnails', { maxBytes: 256 << 20 })
   * await files.writeLocal('~thumbnails', [{ id: 'a.jpg', body: { w: 640, h: 480, path: '/photos/a.jpg' } }])
   * ```
   */
  static async open (options: FileProviderOptions): Promise<FileProvider> {
    if (typeof options?.path !== 'string' || options.path === '') throw new InvalidOptionError('"path" expected a directory path')
    checkDefaults(options)
    const interval = options.sweepIntervalMs ?? DEFAULT_SWEEP_MS
    if (!Number.isSafeInteger(interval) || interval < 0) throw new InvalidOptionError(`"sweepIntervalMs" expected an integer >= 0, got ${String(interval)}`)
    if (options.durability !== undefined && options.durability !== 'full' && options.durability !== 'none') throw new InvalidOptionError(`"durability" expected 'full' or 'none', got ${String(options.durability)}`)
    mkdirSync(options.path, { recursive: true })
    const problem = lmdbFileProblem(join(options.path, 'data.mdb'))
    if (problem !== undefined) throw new FileStoreCorruptError(options.path, problem)
    let root: RootDatabase | undefined
    let store: FileProvider | undefined
    try {
      // room for the tables of a newer format, so that opening one reaches the format check
      root = open({ path: options.path, noSubdir: false, maxDbs: TABLE_COUNT * 2, ...(options.durability === 'none' ? { noSync: true } : {}) })
      store = new FileProvider(root, options)
      await store.start(interval)
      return store
    } catch (err) {
      // the open error is the one to report
      await (store?.close() ?? root?.close())?.catch(() => {})
      throw isDamage(err) ? new FileStoreCorruptError(options.path, err.message, { cause: err }) : err
    }
  }

  private constructor (root: RootDatabase, options: FileProviderOptions) {
    this.location = options.path
    this.t = new FileTables(root)
    this.defaults = { ttlMs: options.ttlMs, maxBytes: options.maxBytes }
    this.defaultPolicy = effectivePolicy({}, this.defaults)
    this.now = options.now ?? Date.now
  }

  /** Checks the format, loads the collection records and brings their keys in line with the policies in force. */
  private async start (interval: number): Promise<void> {
    const format = this.t.meta.get(META_FORMAT)
    if (format === undefined) {
      await this.t.meta.put(META_FORMAT, FORMAT_VERSION)
    } else if (typeof format !== 'number') {
      throw new FileStoreCorruptError(this.location, `its format record is ${JSON.stringify(format)}`)
    } else if (format > FORMAT_VERSION) {
      throw new SchemaVersionError(`file store ${this.location} has format ${format}; this PeakDB reads format ${FORMAT_VERSION} and older`)
    }
    this.tick = this.t.meta.get(META_TICK) ?? 0
    for (const { key, value } of this.t.colls.getRange()) {
      if (typeof value?.count !== 'number' || typeof value.bytes !== 'number' || typeof value.indexes !== 'object' || typeof value.policy !== 'object') {
        throw new FileStoreCorruptError(this.location, `the record of collection ${JSON.stringify(key)} is malformed`)
      }
      this.adopt(key, value)
    }
    // the default policy may differ from the last open: keep the keys it needs, enforce its budget
    const stale = [...this.records].filter(([, r]) => (r.policy.ttlMs !== null) !== r.rec.expiry || (r.policy.maxBytes !== null) !== r.rec.recency || (r.policy.maxBytes !== null && r.rec.bytes > r.policy.maxBytes))
    if (stale.length > 0) {
      await this.transact(tx => {
        for (const [c] of stale) {
          tx.track(c)
          tx.evict(c)
        }
      })
    }
    if (interval > 0) {
      this.timer = setInterval(() => { this.maintain() }, interval)
      this.timer.unref()
    }
  }

  private adopt (c: string, rec: CollectionRecord | undefined): void {
    if (rec === undefined) this.records.delete(c)
    else this.records.set(c, { rec, policy: effectivePolicy(rec.policy, this.defaults), indexes: new Map(Object.entries(rec.indexes)) })
  }

  private checkOpen (): void {
    if (this.closed) throw new StorageClosedError(`file store ${this.location} is closed`)
  }

  private policyOf (c: string): EffectivePolicy {
    return this.records.get(c)?.policy ?? this.defaultPolicy
  }

  /**
   * Runs `work` in one write transaction (a child of LMDB's batch, so that a throw rolls back
   * exactly this work), after the pending read touches; then adopts the records it changed.
   */
  private async transact<T> (work: (tx: FileTxn) => T): Promise<T> {
    let adopted: Map<string, CollectionRecord | undefined> | undefined
    let touches: Touches | undefined
    const run = this.t.root.childTransaction(() => {
      touches = this.takeTouches()
      const tx = new FileTxn(this.t, this.defaults, this.now(), () => ++this.tick)
      if (touches !== undefined) tx.applyTouches(touches)
      const out = work(tx)
      this.t.meta.putSync(META_TICK, this.tick)
      adopted = tx.finish()
      return out
    })
    const done = run.then(out => {
      for (const [c, rec] of adopted ?? []) this.adopt(c, rec)
      return out
    }, (err: unknown) => {
      if (touches !== undefined) this.restoreTouches(touches)
      throw isDamage(err) ? new FileStoreCorruptError(this.location, err.message, { cause: err }) : err
    })
    this.inflight.add(done)
    const forget = (): void => { this.inflight.delete(done) }
    done.then(forget, forget)
    return await done
  }

  private takeTouches (): Touches | undefined {
    if (this.touchCount === 0) return undefined
    const t = this.touches
    this.touches = new Map()
    this.touchCount = 0
    return t
  }

  private restoreTouches (batch: Touches): void {
    for (const [c, ids] of batch) {
      for (const [id, tick] of ids) this.recordTouch(c, id, tick)
    }
  }

  private recordTouch (c: string, id: string, tick: number): void {
    let ids = this.touches.get(c)
    if (ids === undefined) this.touches.set(c, ids = new Map())
    if ((ids.get(id) ?? 0) < tick) ids.set(id, tick)
    this.touchCount++
  }

  /** Notes a read for the collection's LRU order; written in batches, not on every read. */
  private touch (c: string, id: string): void {
    this.recordTouch(c, id, ++this.tick)
    if (this.touchCount >= TOUCH_FLUSH_AT && !this.flushQueued) {
      this.flushQueued = true
      setImmediate(() => {
        this.flushQueued = false
        if (this.closed || this.touchCount === 0) return
        // recency is a hint: touches a failed flush took are put back by transact
        this.transact(() => undefined).catch(() => {})
      })
    }
  }

  /** Timer work: save read recency, sweep collections that have expired documents. */
  private maintain (): void {
    if (this.closed) return
    const now = this.now()
    const due = [...this.records].some(([c, r]) => r.policy.ttlMs !== null && (chunkOf(this.t.expiry, c, 1)[0]?.key[1] ?? Infinity) <= now - r.policy.ttlMs)
    if (!due && this.touchCount === 0) return
    // a failed pass leaves expired documents hidden (reads filter them) until the next one
    this.sweepPass(SWEEP_PER_PASS).catch(() => {})
  }

  private async sweepPass (limit: number): Promise<number> {
    return await this.transact(tx => {
      let removed = 0
      for (const c of this.records.keys()) {
        if (removed < limit) removed += tx.sweep(c, limit - removed)
      }
      return removed
    })
  }

  /**
   * Removes every expired document now (reads already leave them out) and saves the read
   * recency. Returns how many documents it removed.
   */
  async sweep (): Promise<number> {
    this.checkOpen()
    let total = 0
    for (;;) {
      const n = await this.sweepPass(SWEEP_PER_PASS)
      total += n
      if (n < SWEEP_PER_PASS) return total
    }
  }

  /**
   * Writes documents of a device-local collection in one transaction (see
   * {@link DocumentStore.writeLocal}). What changed includes the documents the write evicted to
   * keep the collection within its byte budget (after: null), after the writes themselves.
   */
  async writeLocal (collection: string, writes: ReadonlyArray<{ readonly id: string, readonly body: JsonObject | null }>): Promise<DocChange[]> {
    this.checkOpen()
    checkLocal(collection, 'writeLocal')
    const prepared = prepareWrites(writes)
    if (prepared.length === 0) return []
    return await this.transact(tx => {
      tx.track(collection)
      for (const w of prepared) tx.write(collection, w)
      tx.sweep(collection, SWEEP_PER_WRITE)
      tx.evict(collection)
      return tx.changes
    })
  }

  /**
   * Sets (or with undefined resets to the store's defaults) a collection's policy, and applies
   * it at once: expired documents go, a smaller budget evicts. Returns the documents it evicted.
   */
  async setCollectionPolicy (collection: string, policy: CollectionPolicy | undefined): Promise<DocChange[]> {
    this.checkOpen()
    checkLocal(collection, 'setCollectionPolicy')
    const own = policy === undefined ? {} : checkPolicy(policy)
    return await this.transact(tx => {
      tx.record(collection).policy = own
      tx.track(collection)
      tx.sweep(collection, Infinity)
      tx.evict(collection)
      return tx.changes
    })
  }

  /** The policy in force for a collection (its own values, else the store's defaults). */
  async collectionPolicy (collection: string): Promise<EffectivePolicy> {
    this.checkOpen()
    return this.policyOf(collection)
  }

  async getDocument (collection: string, id: string): Promise<StoredDoc | undefined> {
    this.checkOpen()
    if (!isStorableName(collection) || !isStorableId(id)) return undefined
    const doc = this.t.docs.get([collection, id])
    if (doc === undefined) return undefined
    const policy = this.policyOf(collection)
    if (policy.ttlMs !== null && isExpired(doc[0], policy, this.now())) return undefined
    if (policy.maxBytes !== null) this.touch(collection, id)
    return { body: doc[1], meta: '{}' }
  }

  /** Stored documents that may match a filter (see query-plan.ts), expired ones left out. */
  private * candidates (c: string, filter: Filter | undefined): Generator<Row> {
    const policy = this.policyOf(c)
    const now = policy.ttlMs === null ? 0 : this.now()
    const live = (doc: DocValue): boolean => policy.ttlMs === null || !isExpired(doc[0], policy, now)
    const plan = planFilter(filter, this.records.get(c)?.indexes ?? new Map())
    if (plan.kind === 'scan') {
      for (const { key, value } of rangeOf(this.t.docs, c)) {
        if (live(value)) yield { id: key[1], body: value[1] }
      }
      return
    }
    const ids = plan.kind === 'ids' ? plan.ids.filter(isStorableId) : this.indexedIds(plan.ranges)
    for (const id of ids) {
      const doc = this.t.docs.get([c, id])
      if (doc !== undefined && live(doc)) yield { id, body: doc[1] }
    }
  }

  private * indexedIds (ranges: ReadonlyArray<{ start: Buffer, end: Buffer }>): Generator<string> {
    const seen = new Set<string>()
    for (const r of ranges) {
      for (const key of this.t.index.getKeys({ start: r.start, end: r.end })) {
        const id = idOfKey(key)
        if (seen.has(id)) continue
        seen.add(id)
        yield id
      }
    }
  }

  async find (collection: string, query: NormalisedQuery): Promise<Array<{ id: string, body: JsonObject }>> {
    this.checkOpen()
    if (!isStorableName(collection)) return []
    const { filter, orderBy, offset, limit } = query
    const end = limit === undefined ? undefined : offset + limit
    let page: Row[]
    if (orderBy.every(o => o.path.isId)) {
      // ids are unique, so the first `_id` key decides the order
      const desc = orderBy[0]?.desc === true
      const byId = (a: string, b: string): number => desc ? compareText(b, a) : compareText(a, b)
      if (filter === undefined && this.policyOf(collection).ttlMs === null) {
        // a page of ids first: only its bodies are read
        const ids = [...keysOf(this.t.docs, collection)].map(k => k[1])
        page = []
        for (const id of ids.sort(byId).slice(offset, end)) {
          const doc = this.t.docs.get([collection, id])
          if (doc !== undefined) page.push({ id, body: doc[1] })
        }
      } else {
        page = this.matching(collection, filter).sort((a, b) => byId(a.id, b.id)).slice(offset, end)
      }
    } else {
      page = sortByOrder(this.matching(collection, filter), orderBy).slice(offset, end)
    }
    if (this.policyOf(collection).maxBytes !== null) for (const r of page) this.touch(collection, r.id)
    return page
  }

  /** Documents matching a filter. */
  private matching (c: string, filter: Filter | undefined): Row[] {
    const rows: Row[] = []
    for (const row of this.candidates(c, filter)) {
      if (matchesFilter(filter, row.id, row.body)) rows.push(row)
    }
    return rows
  }

  /** Live documents of a collection: its count less the expired ones not swept yet. */
  private liveCount (c: string): number {
    const r = this.records.get(c)
    if (r === undefined) return 0
    if (r.policy.ttlMs === null) return r.rec.count
    const cutoff = this.now() - r.policy.ttlMs
    let expired = 0
    for (const { key } of rangeOf(this.t.expiry, c)) {
      if (key[1] > cutoff) break
      expired++
    }
    return r.rec.count - expired
  }

  async count (collection: string, filter: Filter | undefined): Promise<number> {
    this.checkOpen()
    if (!isStorableName(collection)) return 0
    if (filter === undefined) return this.liveCount(collection)
    let n = 0
    for (const { id, body } of this.candidates(collection, filter)) if (matchesFilter(filter, id, body)) n++
    return n
  }

  async collections (): Promise<CollectionInfo[]> {
    this.checkOpen()
    const out: CollectionInfo[] = []
    for (const [name, r] of this.records) {
      const count = this.liveCount(name)
      const indexes = Object.keys(r.rec.indexes).sort(compareText)
      if (count > 0 || indexes.length > 0) out.push({ name, count, indexes })
    }
    return out.sort((a, b) => compareText(a.name, b.name))
  }

  async ensureIndex (collection: string, path: FieldPath): Promise<void> {
    this.checkOpen()
    checkLocal(collection, 'ensureIndex')
    const text = path.isId ? '_id' : path.segments.join('.')
    if (this.records.get(collection)?.indexes.has(text) === true) return
    await this.transact(tx => {
      if (tx.record(collection).indexes[text] !== undefined) return
      const no = this.t.meta.get(META_NEXT_INDEX) ?? 1
      this.t.meta.putSync(META_NEXT_INDEX, no + 1)
      tx.addIndex(collection, text, no)
    })
  }

  /** Digests of replicated collections: none here, every collection of a file store is device-local. */
  async collectionDigests (): Promise<Map<string, string>> {
    this.checkOpen()
    return new Map()
  }

  async checkIntegrity (): Promise<string[]> {
    this.checkOpen()
    try {
      return checkTables(this.t)
    } catch (err) {
      return [`the check stopped at damage it could not read past: ${err instanceof Error ? err.message : String(err)}`]
    }
  }

  /** Saves the read recency, waits for writes in flight, and closes the store. Idempotent. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    if (this.touchCount > 0) {
      // recency is a hint: if this last flush fails, eviction is only less precise
      await this.transact(() => undefined).catch(() => {})
    }
    await Promise.allSettled([...this.inflight])
    await this.t.root.close()
  }
}
