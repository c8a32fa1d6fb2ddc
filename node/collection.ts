/**
 * Collections: named sets of JSON documents. Writes become ops in the log (one entry per call,
 * committed with their materialisation in one transaction); reads go to the materialised
 * documents in storage, filtered by SQL over JSON expressions.
 */
import {
  docIdProblem, entryIdOf, fieldNameProblem, isPlainObject, jsonProblem,
  type CollectionName, type DataOp, type DocId, type EntryId, type JsonObject
} from '../crdt/index.js'
import { LOCAL_PREFIX, normaliseQuery, normaliseWhere, parseFieldPath, type DocChange, type FindQuery, type StorageProvider, type Where } from '../storage/index.js'
import type { Log } from './log.js'
import { newDocId } from './doc-id.js'
import { AbortError, DocumentNotFoundError, DocumentTooLargeError, InvalidDocumentError, InvalidOptionError } from './errors.js'
import type { Indexer } from './embedding/indexer.js'
import type { AnnIndexes } from './embedding/ann-index.js'
import { search, type SearchQuery, type SearchResults } from './search.js'
import type { Confirmation } from './confirmations.js'
import { LiveQuery, type LiveEvent, type LiveQueries, type Unsubscribe } from './live-query.js'

/** A stored document: its fields plus `_id`. */
export type Doc = JsonObject & { _id: string }

/** Largest document accepted, in bytes of its JSON text. */
export const MAX_DOC_BYTES = 1024 * 1024
/** Most documents in one putMany call. */
export const MAX_BATCH_DOCS = 100_000
/** putMany starts a new entry (same transaction) past this many payload bytes. */
const ENTRY_SPLIT_BYTES = 8 * 1024 * 1024

/** Options of an async call. */
export interface AbortOptions {
  signal?: AbortSignal
}

/**
 * Result of a single-document write: it is applied locally at once (optimistic); `status` turns
 * from 'pending' to 'confirmed', and `confirmed` resolves, once enough other devices hold it.
 */
export interface WriteResult extends Confirmation {
  /** The document id. */
  readonly id: string
  /** The log entry that carries the write (null in a device-local collection). */
  readonly entry: EntryId | null
  /** Its seq in this device's chain (0 in a device-local collection). */
  readonly seq: number
}

/** Result of a batch write (confirmed when its last entry is). */
export interface BatchWriteResult extends Confirmation {
  readonly ids: readonly string[]
  /** Entries that carry the batch (one, unless the batch is over 8 MiB). */
  readonly entries: readonly EntryId[]
}

/** Result of a delete. */
export interface DeleteResult extends WriteResult {
  /** Whether the document existed here before the delete. */
  readonly existed: boolean
}

/** Options of a collection. */
export interface CollectionOptions {
  /** Field paths to index (SQLite expression indexes), e.g. `['year', 'author.name']`. */
  readonly indexes?: readonly string[]
  /**
   * Fields to embed for search by meaning: a list of field paths, 'auto' (every top-level
   * string field, the default) or false (no vectors; keyword search still works). A change
   * re-indexes the collection in the background. Stored on this device.
   */
  readonly embed?: 'auto' | readonly string[] | false
  /**
   * false makes a device-local collection: its documents stay on this device (never in the
   * log, never replicated), yet it answers swarm searches. The node remembers the choice.
   */
  readonly replicate?: boolean
  /**
   * The provider that keeps this collection's documents and search indexes (a name from the
   * node's `providers`, or 'primary'). A new collection is routed there; one that already holds
   * documents elsewhere is moved with `node.moveCollection` instead.
   */
  readonly provider?: string
  /**
   * An existing PostgreSQL table (`schema.table`) to serve as this collection (see
   * `node.adopt`); `provider` then names the postgres provider that holds it.
   */
  readonly adopt?: string | undefined
}

/** What a collection needs from its node. */
export interface CollectionContext {
  readonly log: Log
  readonly storage: StorageProvider
  checkOpen (): void
  /** Confirmation tracking of a local write at `seq`. */
  track (seq: number): Confirmation
  readonly live: LiveQueries
  readonly indexer: Indexer
  readonly ann: AnnIndexes
  /** Records that `name` is device-local here (throws when replicated documents hold the name). */
  rememberLocal (name: string): Promise<void>
}

/** A plain result object whose `status` reads the live confirmation state. */
function withConfirmation<T extends object> (result: T, c: Confirmation): T & Confirmation {
  Object.defineProperty(result, 'status', { get: () => c.status, enumerable: true })
  Object.defineProperty(result, 'confirmed', { get: () => c.confirmed, enumerable: false })
  return result as T & Confirmation
}

function checkEmbed (embed: unknown): void {
  if (embed === 'auto' || embed === false) return
  if (!Array.isArray(embed) || embed.length === 0 || embed.length > 64) throw new InvalidOptionError('"embed" expected "auto", false or a list of 1..64 field paths')
  for (const f of embed) parseFieldPath(f)
}

function checkAbort (options?: AbortOptions): void {
  if (options?.signal?.aborted === true) throw new AbortError()
}

/** A named collection of documents. Obtain one with `node.collection(name)`. */
export class Collection {
  private ready: Promise<void> = Promise.resolve()
  /** Set while the collection is being set up (an adoption): watchers start after it. */
  private pendingReady: Promise<void> | undefined
  /** The name in storage (device-local collections are prefixed). */
  private readonly key: string

  /** `local`: a device-local collection (see {@link CollectionOptions.replicate}). */
  constructor (readonly name: CollectionName, private readonly ctx: CollectionContext, options: CollectionOptions = {}, readonly local = false, adopting?: Promise<void>) {
    const key = this.key = local ? LOCAL_PREFIX + name : name
    if (adopting !== undefined) {
      this.ready = adopting
      this.pendingReady = adopting
      adopting.then(() => { this.pendingReady = undefined }, () => {})
      return
    }
    const paths = (options.indexes ?? []).map(p => parseFieldPath(p))
    const embed = options.embed
    if (embed !== undefined) checkEmbed(embed)
    if (paths.length > 0 || embed !== undefined || options.replicate === false) {
      this.ready = (async () => {
        if (options.replicate === false) await ctx.rememberLocal(name)
        for (const p of paths) await ctx.storage.ensureIndex(key, p)
        if (embed !== undefined) await this.setEmbed(embed)
      })()
      this.ready.catch(() => {})
    }
  }

  /**
   * Chooses what this device embeds for the collection ('auto', a list of fields, or false);
   * a change queues every document for re-indexing. Returns true when the setting changed.
   */
  async setEmbed (embed: 'auto' | readonly string[] | false): Promise<boolean> {
    this.ctx.checkOpen()
    checkEmbed(embed)
    const current = (await this.ctx.storage.collectionSettings(this.key))?.embed ?? 'auto'
    if (JSON.stringify(current) === JSON.stringify(embed)) return false
    await this.ctx.storage.setCollectionSettings(this.key, { embed: Array.isArray(embed) ? [...embed] : embed })
    await this.ctx.storage.requeueCollection(this.key)
    this.ctx.indexer.invalidate(this.key)
    this.ctx.indexer.kick()
    return true
  }

  /** The collection's embedding setting on this device. */
  async embedSetting (): Promise<'auto' | readonly string[] | false> {
    return (await this.ctx.storage.collectionSettings(this.key))?.embed ?? 'auto'
  }

  /**
   * Searches by meaning, by words, or both (see {@link SearchQuery}).
   *
   * @example
   * ```ts
   * await notes.search({ text: 'tax return', k: 10, where: { year: { gte: 2024 } } })
   * // -> [{ id, score, doc }]   (modes: 'vector' | 'text' | 'hybrid')
   * ```
   */
  async search (query: SearchQuery): Promise<SearchResults> {
    this.ctx.checkOpen()
    await this.ready
    return await search({ storage: this.ctx.storage, indexer: this.ctx.indexer, ann: this.ctx.ann }, this.key, query)
  }

  /**
   * Waits until every document saved so far is indexed for search. Resolves with the number
   * still pending (0 unless the signal fired).
   */
  async indexed (options: { signal?: AbortSignal } = {}): Promise<number> {
    this.ctx.checkOpen()
    await this.ready
    return await this.ctx.indexer.drain(this.key, options)
  }

  /** Documents of this collection waiting to be indexed. */
  async pendingIndex (): Promise<number> {
    this.ctx.checkOpen()
    return await this.ctx.storage.indexQueueCount(this.key)
  }

  /** Validates a document and splits it into id and fields. */
  private prepare (doc: unknown, index?: number): { id: DocId, fields: JsonObject, json: string, bytes: number } {
    const where = index === undefined ? 'document' : `document ${index}`
    if (!isPlainObject(doc)) throw new InvalidDocumentError(`${where} expected a JSON object, got ${Array.isArray(doc) ? 'an array' : doc === null ? 'null' : typeof doc}`)
    const { _id, ...fields } = doc
    let id: string
    if (_id === undefined) {
      id = newDocId()
    } else {
      const p = docIdProblem(_id)
      if (p !== undefined) throw new InvalidDocumentError(`${where}: "_id" ${p}`)
      id = _id as string
    }
    for (const name of Object.keys(fields)) {
      const p = fieldNameProblem(name)
      if (p !== undefined) throw new InvalidDocumentError(`${where}: ${p}`)
    }
    const problem = jsonProblem(fields)
    if (problem !== undefined) throw new InvalidDocumentError(`${where}: ${problem}`)
    const json = JSON.stringify(fields)
    // UTF-8 is at most 3 bytes per UTF-16 unit: skip measuring when the text is clearly small
    const bytes = json.length * 3 <= MAX_DOC_BYTES ? json.length : Buffer.byteLength(json)
    if (bytes > MAX_DOC_BYTES) throw new DocumentTooLargeError(`${where} is ${bytes} bytes of JSON, over the ${MAX_DOC_BYTES}-byte cap`)
    return { id: id as DocId, fields: fields as JsonObject, json, bytes }
  }

  /** Device-local writes: straight to storage, announced like log changes. */
  private async writeLocal (writes: Array<{ id: string, body: JsonObject | null }>, options?: AbortOptions): Promise<DocChange[]> {
    this.ctx.checkOpen()
    checkAbort(options)
    await this.ready
    const changes = await this.ctx.storage.writeLocal(this.key, writes)
    this.ctx.log.announceLocal(changes)
    return changes
  }

  private async write (ops: DataOp[], options?: AbortOptions): Promise<{ entry: EntryId, seq: number, existed: boolean }> {
    this.ctx.checkOpen()
    checkAbort(options)
    await this.ready
    const r = await this.ctx.log.append([ops])
    const entry = r.entries[0]
    if (entry === undefined) throw new Error('append produced no entry')
    return { entry: entryIdOf(entry.cid), seq: entry.header.seq, existed: r.changes.some(c => c.before !== null) }
  }

  /**
   * Saves a document, replacing any previous version with the same `_id` (fields it no longer
   * has are removed). Without `_id`, a new time-ordered id is generated.
   *
   * @example
   * ```ts
   * const { id } = await notes.put({ title: 'hi', tags: ['a'] })
   * ```
   */
  async put (doc: object, options?: AbortOptions): Promise<WriteResult> {
    const { id, fields, json } = this.prepare(doc)
    if (this.local) {
      await this.writeLocal([{ id, body: fields }], options)
      return withConfirmation({ id, entry: null, seq: 0 }, this.ctx.track(0))
    }
    const w = await this.write([{ t: 'put', c: this.name, id, f: fields, j: json }], options)
    return withConfirmation({ id, entry: w.entry, seq: w.seq }, this.ctx.track(w.seq))
  }

  /**
   * Saves many documents in one transaction (one entry unless the batch is over 8 MiB).
   * All documents are validated first: one invalid document writes nothing.
   */
  async putMany (docs: readonly object[], options?: AbortOptions): Promise<BatchWriteResult> {
    if (!Array.isArray(docs)) throw new InvalidDocumentError('putMany expected an array of documents')
    if (docs.length > MAX_BATCH_DOCS) throw new DocumentTooLargeError(`putMany of ${docs.length} documents is over the ${MAX_BATCH_DOCS}-document cap`)
    if (docs.length === 0) return withConfirmation({ ids: [], entries: [] }, this.ctx.track(0))
    this.ctx.checkOpen()
    checkAbort(options)
    const batches: DataOp[][] = [[]]
    const ids: string[] = []
    const last = new Map<string, number>()
    let size = 0
    // validate everything first; a repeated _id keeps its last version
    const prepared = docs.map((d, i) => this.prepare(d, i))
    prepared.forEach((p, i) => last.set(p.id, i))
    prepared.forEach((p, i) => {
      ids.push(p.id)
      if (last.get(p.id) !== i) return
      if (size + p.bytes > ENTRY_SPLIT_BYTES && size > 0) {
        batches.push([])
        size = 0
      }
      (batches[batches.length - 1] as DataOp[]).push({ t: 'put', c: this.name, id: p.id, f: p.fields, j: p.json })
      size += p.bytes
    })
    await this.ready
    if (this.local) {
      await this.writeLocal(prepared.filter((p, i) => last.get(p.id) === i).map(p => ({ id: p.id, body: p.fields })), options)
      return withConfirmation({ ids, entries: [] }, this.ctx.track(0))
    }
    const r = await this.ctx.log.append(batches)
    const lastEntry = r.entries[r.entries.length - 1]
    return withConfirmation({ ids, entries: r.entries.map(e => entryIdOf(e.cid)) }, this.ctx.track(lastEntry?.header.seq ?? 0))
  }

  /**
   * Sets some fields of an existing document, leaving the others. Throws
   * {@link DocumentNotFoundError} when the document does not exist here, unless `upsert` is set:
   * then a missing document is created from the fields, and devices that do so concurrently
   * keep all of each other's fields (a concurrent `put` would keep one device's).
   */
  async patch (id: string, fields: object, options?: AbortOptions & { upsert?: boolean }): Promise<WriteResult> {
    const docId = this.checkId(id)
    const p = this.prepare({ ...fields, _id: docId })
    const current = await this.get(docId)
    if (current === null && options?.upsert !== true) throw new DocumentNotFoundError(`document ${JSON.stringify(docId)} does not exist in collection ${this.name}`)
    if (this.local) {
      const { _id: _, ...body } = current ?? {}
      const merged = this.prepare({ ...body, ...p.fields, _id: docId })
      await this.writeLocal([{ id: docId, body: merged.fields }], options)
      return withConfirmation({ id: docId, entry: null, seq: 0 }, this.ctx.track(0))
    }
    const w = await this.write([{ t: 'patch', c: this.name, id: docId, f: p.fields, j: p.json }], options)
    return withConfirmation({ id: docId, entry: w.entry, seq: w.seq }, this.ctx.track(w.seq))
  }

  /** Deletes a document. Deleting a document that does not exist here still records the delete. */
  async delete (id: string, options?: AbortOptions): Promise<DeleteResult> {
    const docId = this.checkId(id)
    if (this.local) {
      const changes = await this.writeLocal([{ id: docId, body: null }], options)
      return withConfirmation({ id: docId, entry: null, seq: 0, existed: changes.length > 0 }, this.ctx.track(0))
    }
    const w = await this.write([{ t: 'del', c: this.name, id: docId }], options)
    return withConfirmation({ id: docId, entry: w.entry, seq: w.seq, existed: w.existed }, this.ctx.track(w.seq))
  }

  private checkId (id: unknown): DocId {
    const p = docIdProblem(id)
    if (p !== undefined) throw new InvalidDocumentError(`"id" ${p}`)
    return id as DocId
  }

  /** One document by id, or null. */
  async get (id: string): Promise<Doc | null> {
    this.ctx.checkOpen()
    const docId = this.checkId(id)
    await this.ready
    const stored = await this.ctx.storage.getDocument(this.key, docId)
    return stored?.body == null ? null : { _id: docId, ...stored.body }
  }

  /**
   * Documents matching a query, evaluated in SQL over the stored JSON (expression indexes are
   * used where they exist).
   *
   * @example
   * ```ts
   * await notes.find({ where: { tags: 'a', year: { gte: 2020 } }, orderBy: 'title', limit: 20 })
   * ```
   */
  async find (query: FindQuery = {}): Promise<Doc[]> {
    this.ctx.checkOpen()
    const q = normaliseQuery(query)
    await this.ready
    const rows = await this.ctx.storage.find(this.key, q)
    return rows.map(r => ({ _id: r.id, ...r.body }))
  }

  /** Number of documents matching a filter. */
  async count (where?: Where): Promise<number> {
    this.ctx.checkOpen()
    await this.ready
    return await this.ctx.storage.count(this.key, normaliseWhere(where))
  }

  /**
   * Watches a query: the listener receives the current result, then the result and what changed
   * in it after every local or remote write that affects it. Returns the function that stops
   * watching. Without a listener, returns an async iterator of the same events (`close()` it,
   * or break out of the loop).
   *
   * @example
   * ```ts
   * const stop = notes.watch({ where: { tags: 'a' }, orderBy: 'title' }, ev => render(ev.docs))
   * for await (const ev of notes.watch({ where: { done: false } })) console.log(ev.changes)
   * ```
   */
  watch (query: FindQuery, listener: (ev: LiveEvent) => void): Unsubscribe
  watch (query?: FindQuery): LiveQuery
  watch (query: FindQuery = {}, listener?: (ev: LiveEvent) => void): Unsubscribe | LiveQuery {
    this.ctx.checkOpen()
    if (listener !== undefined) return this.liveWatch(query, listener)
    const buffered: LiveEvent[] = []
    let deliver = (ev: LiveEvent): void => { buffered.push(ev) }
    const iterator = new LiveQuery(this.liveWatch(query, ev => deliver(ev)))
    for (const ev of buffered) iterator.push(ev)
    deliver = ev => iterator.push(ev)
    return iterator
  }

  /** A live query, started once the collection is set up. */
  private liveWatch (query: FindQuery, listener: (ev: LiveEvent) => void): Unsubscribe {
    const pending = this.pendingReady
    if (pending === undefined) return this.ctx.live.watch(this.key, query, listener)
    let stop: Unsubscribe | undefined
    let cancelled = false
    pending.then(() => { if (!cancelled) stop = this.ctx.live.watch(this.key, query, listener) }, () => {})
    return () => {
      cancelled = true
      stop?.()
    }
  }

  /** Creates (if missing) an index on a field path. */
  async createIndex (path: string): Promise<void> {
    this.ctx.checkOpen()
    await this.ctx.storage.ensureIndex(this.key, parseFieldPath(path))
  }
}
