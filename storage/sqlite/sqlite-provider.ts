/**
 * The SQLite storage provider (the embedded default), on better-sqlite3: WAL journal, statements
 * prepared once, every commit one synchronous transaction (nothing is awaited inside it).
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs'
import { createHash } from 'node:crypto'
import Database, { type Database as Db, type Statement, type Transaction } from 'better-sqlite3'
import {
  applyDelete, applyPatch, applyPut, docStateFromRow, docStateToRow, EMPTY_DOC,
  type DataOp, type DocRow, type DocState, type JsonObject, type Stamp
} from '../../crdt/index.js'
import { StorageClosedError, StorageCorruptError } from '../errors.js'
import type { FieldPath, Filter, NormalisedQuery } from '../query.js'
import type {
  CollectionInfo, CollectionSettings, CommitItem, CommitResult, ControlRecord, DocChange, IndexTask, IndexUpdate, LogHead, PendingApply, ReadLimits, StorageProvider, StoredDoc, StoredEntry, VectorChanges
} from '../provider.js'
import { LOCAL_PREFIX, type MaterializeItem, type TextHit } from '../provider.js'
import { CollectionDigester, combineDigests } from '../digest.js'
import { migrate } from './schema.js'
import { MigrationFailedError } from '../migrate/errors.js'
import { collectionList, takeWithin } from '../slice.js'
import { rareWordsQuery, WordStats } from './rare-words.js'
import { ftsMatch, ftsString, SearchTables, TEXT_TERM_COUNTS_SQL, type TermCount, textScoreCeiling, textSearchSql } from './search-tables.js'
import * as sqliteVec from 'sqlite-vec'
import { compileCount, compileFind, indexExpression } from './query-sql.js'
import { checkPages, INTEGRITY_CHECK_MAX, isCorruption } from './integrity.js'
import { ReadConnection, type ReadRequest } from './read-connection.js'
import type { DescribeSchemaOptions, SchemaDescriber, SchemaDescription } from '../introspect.js'
import { describeSqliteDb } from './sqlite-introspect.js'
import { defaultReaders, ReadPool } from './read-pool.js'
import { Checkpointer } from './checkpointer.js'

export { INTEGRITY_CHECK_MAX }

/** Options of the SQLite provider. */
export interface SqliteProviderOptions {
  /** Database file path. */
  readonly path: string
  /**
   * 'normal' (default): synchronous=NORMAL in WAL mode; a process crash loses nothing that was
   * committed, a power loss may lose the last transactions. 'full': fsync on every commit.
   */
  readonly durability?: 'normal' | 'full'
  /** Page cache size in MiB (default 8), per connection. */
  readonly cacheMiB?: number
  /**
   * Reader threads for reads that may take long (queries, counts, full-text and exact vector
   * search, integrity checks), each with its own read-only connection, so that they do not
   * block the event loop. Default: 2 where the machine has two or more cores, else 1; 0 runs
   * every read on the calling thread. In-memory databases always read on the calling thread.
   */
  readonly readers?: number
  /**
   * Copy the WAL into the database file on a thread of its own (default true) instead of on
   * the connection that writes, which then never stops for it (see checkpointer.ts). In-memory
   * databases have no WAL.
   */
  readonly backgroundCheckpoints?: boolean
}

interface DocRowDb { rid: number, body: string | null, meta: string }
/**
 * Every author's latest entry, from the (author, seq) index: a skip-scan over the distinct
 * authors, then one seek each (logarithmic per author, whatever the log's length).
 */
const HEADS_SQL = `
  WITH RECURSIVE a (author) AS (
    SELECT min(author) FROM entries
    UNION ALL
    SELECT (SELECT min(author) FROM entries WHERE author > a.author) FROM a WHERE a.author IS NOT NULL
  )
  SELECT e.author, e.seq, e.cid FROM a JOIN entries e ON e.author = a.author AND e.seq = (SELECT max(seq) FROM entries WHERE author = a.author)`

interface EntryRowDb { pos: number, cid: Uint8Array, author: string, seq: number, bytes: Uint8Array, sig?: Uint8Array | null }

const SQLITE_MAGIC = 'SQLite format 3\0'
/**
 * Meta key of the shutdown marker: 'open' while a process has the database open, 'clean' once
 * it closed it. Anything else at open (a crash, a kill, a power loss) makes open run a quick check.
 */
const SHUTDOWN_META = 'shutdown'
/** Meta key of the log position a routed store has applied (see MaterializingStore). */
const APPLIED_META = 'applied-position'
/** Problems of a failed quick check quoted in the error. */
const QUICK_CHECK_QUOTED = 3

/** Lookup key of a CID: 8 bytes of its digest (after the 4-byte CIDv1 / dag-cbor / sha2-256 prefix). */
function cidHash (cid: Uint8Array): bigint {
  return Buffer.from(cid.buffer, cid.byteOffset, cid.length).readBigInt64BE(cid.length >= 12 ? 4 : 0)
}

/**
 * Cheap checks of an existing file before SQLite opens it: the magic string, and (when no WAL
 * is pending) that the file is not shorter than its header says.
 */
function precheckFile (path: string): void {
  if (!existsSync(path)) return
  const size = statSync(path).size
  if (size === 0) return
  const header = Buffer.alloc(100)
  const fd = openSync(path, 'r')
  let n: number
  try {
    n = readSync(fd, header, 0, 100, 0)
  } finally {
    closeSync(fd)
  }
  if (n < 100 || header.toString('latin1', 0, 16) !== SQLITE_MAGIC) {
    throw new StorageCorruptError(path, 'not an SQLite database (bad header)')
  }
  const walPath = `${path}-wal`
  if (existsSync(walPath) && statSync(walPath).size > 0) return
  const rawPageSize = header.readUInt16BE(16)
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize
  const pages = header.readUInt32BE(28)
  const valid = header.readUInt32BE(24) === header.readUInt32BE(92)
  if (valid && pages > 0 && size < pages * pageSize) {
    throw new StorageCorruptError(path, `file is truncated: ${size} bytes, header says ${pages * pageSize}`)
  }
}

/**
 * Up to this many documents named by id, a query stays on the provider's connection: a point
 * read costs less than the round trip to a reader thread (measured in bench/read-pool.ts).
 */
const PINNED_IDS_MAX = 64

/** Whether a filter only lets through a few documents named by id (so the query is a point read). */
function pinsFewIds (filter: Filter | undefined): boolean {
  if (filter === undefined) return false
  switch (filter.op) {
    case 'and': return filter.items.some(pinsFewIds)
    case 'or': return filter.items.length > 0 && filter.items.length <= PINNED_IDS_MAX && filter.items.every(pinsFewIds)
    case 'in': return filter.path.isId && filter.values.length <= PINNED_IDS_MAX
    case 'cmp': return filter.path.isId && filter.cmp === 'eq'
    default: return false
  }
}

/**
 * Whether a query is a point read through an expression index: at most {@link PINNED_IDS_MAX}
 * rows, no ordering, and an equality or a closed range on an indexed field (a hash lookup such
 * as `{ hash: { gte: h, lte: h } }`). SQLite answers it from the index in microseconds, less than
 * the round trip to a reader thread.
 */
function pinsIndexedRange (query: NormalisedQuery, indexed: ReadonlySet<string>): boolean {
  if (query.limit === undefined || query.limit > PINNED_IDS_MAX || query.orderBy.length > 0 || query.filter === undefined || indexed.size === 0) return false
  const items = query.filter.op === 'and' ? query.filter.items : [query.filter]
  const bounds = new Map<string, { low: boolean, high: boolean }>()
  for (const f of items) {
    if (f.op !== 'cmp' || f.path.isId) continue
    const path = f.path.segments.join('.')
    if (!indexed.has(path)) continue
    if (f.cmp === 'eq') return true
    const b = bounds.get(path) ?? { low: false, high: false }
    if (f.cmp === 'gt' || f.cmp === 'gte') b.low = true
    if (f.cmp === 'lt' || f.cmp === 'lte') b.high = true
    if (b.low && b.high) return true
    bounds.set(path, b)
  }
  return false
}

/** Reader threads for these options: none for an in-memory database (a thread could not open it). */
function readerCount (options: SqliteProviderOptions): number {
  const n = options.readers ?? defaultReaders()
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`"readers" expected a whole number >= 0, got ${n}`)
  return isInMemory(options.path) ? 0 : n
}

/** Whether a path names an in-memory database (no file, no WAL, nothing another thread can open). */
function isInMemory (path: string): boolean {
  return path === '' || path === ':memory:'
}

/** Connection settings, and sqlite-vec: vector tables are its virtual tables, so it loads before they are touched. */
function configure (db: Db, options: SqliteProviderOptions): void {
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`)
  db.pragma('busy_timeout = 5000')
  db.pragma(`cache_size = -${(options.cacheMiB ?? 8) * 1024}`)
  db.pragma('temp_store = MEMORY')
  sqliteVec.load(db)
}

/**
 * After an unclean shutdown (the marker is not 'clean'), runs SQLite's `quick_check` and throws
 * {@link StorageCorruptError} when it finds damage, rather than let the node run on it until a
 * read happens to hit it. A clean shutdown skips it: the check reads the whole file.
 */
function quickCheckAfterUncleanShutdown (db: Db, path: string): void {
  const marker = db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(SHUTDOWN_META)
  if (marker === 'clean') return
  const problems = checkPages(db, 'quick_check')
  if (problems.length === 0) return
  const quoted = problems.slice(0, QUICK_CHECK_QUOTED).map(p => JSON.stringify(p)).join('; ')
  const more = problems.length > QUICK_CHECK_QUOTED ? `; ... ${problems.length - QUICK_CHECK_QUOTED} more` : ''
  const count = `${problems.length}${problems.length >= INTEGRITY_CHECK_MAX ? ' or more' : ''}`
  throw new StorageCorruptError(path, `the previous shutdown was not clean, and SQLite's quick check found ${count} problem(s): ${quoted}${more}`)
}

/** Most best matches a text search reads before it falls back to joining every match. */
const TEXT_TOP_MAX = 12_800

/** The SQLite implementation of {@link StorageProvider}. */
export class SqliteProvider implements StorageProvider, SchemaDescriber {
  readonly kind = 'sqlite'
  readonly location: string
  private readonly db: Db
  private closed = false
  private closing: Promise<void> | undefined
  /** Reads on this connection, with their statements prepared once. */
  private readonly local: ReadConnection
  /** Reader threads (undefined: every read runs here). */
  private readonly pool: ReadPool | undefined
  /** Indexed paths per collection (see indexedPaths). */
  private readonly indexed = new Map<string, ReadonlySet<string>>()
  /** The thread that copies the WAL into the file (undefined: the connection does it itself). */
  private readonly checkpoints: Checkpointer | undefined
  private readonly search: SearchTables
  /** Query words' stems and frequencies, for keyword searches that skip common words' rows. */
  private readonly words: WordStats
  private readonly s: {
    insertEntry: Statement
    pending: Statement
    pendingPos: Statement
    clearPending: Statement
    insertYjs: Statement
    yjs: Statement
    deleteYjs: Statement
    getDoc: Statement
    insertDoc: Statement
    updateDoc: Statement
    insertControl: Statement
    heads: Statement
    getEntry: Statement
    getEntryAt: Statement
    scan: Statement
    scanApplied: Statement
    entryCount: Statement
    setEntrySig: Statement
    control: Statement
    getMeta: Statement
    setMeta: Statement
  }

  private readonly commitTx: Transaction<(items: readonly CommitItem[]) => CommitResult>
  private readonly applyPendingTx: Transaction<(items: readonly PendingApply[]) => CommitResult>

  /**
   * Opens (creating if needed) a database file. Throws {@link StorageCorruptError} naming the file
   * when it is not a readable PeakDB database.
   *
   * @example
   * ```ts
   * const storage = await SqliteProvider.open({ path: './data/peakdb.sqlite' })
   * ```
   */
  static async open (options: SqliteProviderOptions): Promise<SqliteProvider> {
    precheckFile(options.path)
    let db: Db | undefined
    try {
      db = new Database(options.path)
      configure(db, options)
      const fresh = db.pragma('user_version', { simple: true }) === 0
      await migrate(db, options.path)
      // touch every table once so that a damaged schema fails here, naming the file
      db.prepare('SELECT (SELECT count(*) FROM docs), (SELECT count(*) FROM meta), (SELECT count(*) FROM control)').get()
      if (!fresh) quickCheckAfterUncleanShutdown(db, options.path)
      return new SqliteProvider(db, options)
    } catch (err) {
      db?.close()
      // a damaged file may first fail inside a migration, which names the migration
      const cause = err instanceof MigrationFailedError ? err.cause : err
      if (isCorruption(cause)) throw new StorageCorruptError(options.path, cause.message)
      throw err
    }
  }

  private constructor (db: Db, options: SqliteProviderOptions) {
    this.db = db
    this.location = options.path
    db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(SHUTDOWN_META, 'open')
    this.s = {
      insertEntry: db.prepare('INSERT INTO entries (cidh, cid, author, seq, bytes, pending, sig) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING'),
      setEntrySig: db.prepare('UPDATE entries SET sig = ? WHERE cidh = ? AND cid = ?'),
      pending: db.prepare('SELECT pos, cid, author, seq, bytes FROM entries WHERE pending = 1 AND pos > ? ORDER BY pos LIMIT ?'),
      pendingPos: db.prepare('SELECT pos FROM entries WHERE cidh = ? AND cid = ? AND pending = 1'),
      clearPending: db.prepare('UPDATE entries SET pending = 0 WHERE pos = ?'),
      insertYjs: db.prepare('INSERT INTO yjs_updates (doc, pos, data) VALUES (?, ?, ?)'),
      yjs: db.prepare('SELECT id, data FROM yjs_updates WHERE doc = ? ORDER BY id'),
      deleteYjs: db.prepare('DELETE FROM yjs_updates WHERE doc = ? AND id <= ?'),
      getDoc: db.prepare('SELECT rid, body, meta FROM docs WHERE collection = ? AND id = ?'),
      insertDoc: db.prepare('INSERT INTO docs (collection, id, body, meta, pos) VALUES (?, ?, ?, ?, ?)'),
      updateDoc: db.prepare('UPDATE docs SET body = ?, meta = ?, pos = ? WHERE rid = ?'),
      insertControl: db.prepare('INSERT INTO control (kind, key, bytes, pos) VALUES (?, ?, ?, ?) ON CONFLICT (kind, key) DO NOTHING'),
      heads: db.prepare(HEADS_SQL),
      getEntry: db.prepare('SELECT cid, bytes, sig FROM entries WHERE cidh = ?'),
      getEntryAt: db.prepare('SELECT bytes FROM entries WHERE author = ? AND seq = ?').pluck(),
      scan: db.prepare('SELECT pos, cid, author, seq, bytes, sig FROM entries WHERE pos > ? ORDER BY pos LIMIT ?'),
      scanApplied: db.prepare('SELECT pos, cid, author, seq, bytes, sig FROM entries WHERE pos > ? AND pending = 0 ORDER BY pos LIMIT ?'),
      entryCount: db.prepare('SELECT count(*) FROM entries').pluck(),
      control: db.prepare('SELECT kind, key, bytes FROM control ORDER BY pos'),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
    }
    this.search = new SearchTables(db)
    this.words = new WordStats(db)
    this.local = new ReadConnection(db)
    const readers = readerCount(options)
    this.pool = readers === 0 ? undefined : new ReadPool({ path: options.path, cacheMiB: options.cacheMiB ?? 8, readers, fallback: req => this.local.run(req) })
    this.checkpoints = isInMemory(options.path) || options.backgroundCheckpoints === false ? undefined : new Checkpointer(db, { path: options.path, synchronous: options.durability === 'full' ? 'FULL' : 'NORMAL' })
    this.commitTx = db.transaction((items: readonly CommitItem[]) => this.applyItems(items))
    this.applyPendingTx = db.transaction((items: readonly PendingApply[]) => this.applyPendingItems(items))
  }

  private guard<T> (fn: () => T): T {
    if (this.closed) throw new StorageClosedError(`storage ${this.location} is closed`)
    try {
      return fn()
    } catch (err) {
      // a transaction that failed was rolled back: queue lengths kept in memory may be off
      this.search.forgetQueueCounts()
      throw this.storageError(err)
    }
  }

  /** Runs a write: as {@link guard}, and tells the checkpointer that the WAL grew. */
  private write<T> (fn: () => T): T {
    const result = this.guard(fn)
    this.checkpoints?.wrote()
    return result
  }

  private storageError (err: unknown): unknown {
    return isCorruption(err) ? new StorageCorruptError(this.location, err.message) : err
  }

  /**
   * Runs a read that may take long on a reader thread, or here when there are none or `here` is
   * set (a point read: the round trip to a thread costs more than the read).
   */
  private async read<T> (req: ReadRequest, here = false): Promise<T> {
    if (this.pool === undefined || here) return this.guard(() => this.local.run(req) as T)
    if (this.closed) throw new StorageClosedError(`storage ${this.location} is closed`)
    try {
      return await this.pool.run(req) as T
    } catch (err) {
      throw this.storageError(err)
    }
  }

  async getMeta (key: string): Promise<string | undefined> {
    return this.guard(() => this.s.getMeta.get(key) as string | undefined)
  }

  async setMeta (key: string, value: string): Promise<void> {
    this.write(() => this.s.setMeta.run(key, value))
  }

  async heads (): Promise<LogHead[]> {
    return this.guard(() => this.s.heads.all() as LogHead[])
  }

  async hasEntries (cids: readonly Uint8Array[]): Promise<Set<string>> {
    return this.guard(() => {
      const out = new Set<string>()
      for (const cid of cids) if (this.lookup(cid) !== undefined) out.add(Buffer.from(cid).toString('base64'))
      return out
    })
  }

  async commit (items: readonly CommitItem[]): Promise<CommitResult> {
    await this.checkpoints?.ready()
    return this.write(() => this.commitTx.immediate(items))
  }

  async writeLocal (collection: string, writes: ReadonlyArray<{ readonly id: string, readonly body: JsonObject | null }>): Promise<DocChange[]> {
    if (!collection.startsWith(LOCAL_PREFIX)) throw new Error(`writeLocal: ${collection} is not a device-local collection`)
    return this.write(() => this.db.transaction(() => {
      const changes: DocChange[] = []
      for (const w of writes) {
        const row = this.s.getDoc.get(collection, w.id) as DocRowDb | undefined
        const text = w.body === null ? null : JSON.stringify(w.body)
        if (row === undefined) {
          if (text === null) continue
          this.s.insertDoc.run(collection, w.id, text, '{}', 0)
        } else {
          if (row.body === text) continue
          this.s.updateDoc.run(text, '{}', 0, row.rid)
        }
        changes.push({ collection, id: w.id, before: row?.body == null ? null : JSON.parse(row.body) as JsonObject, after: w.body })
        this.search.changed(collection, w.id)
      }
      return changes
    }).immediate())
  }

  private applyItems (items: readonly CommitItem[]): CommitResult {
    const positions: number[] = []
    const changes: DocChange[] = []
    const yjs: Array<{ doc: string, update: Uint8Array }> = []
    for (const item of items) {
      const state = item.quarantined === true ? 2 : item.pending === true ? 1 : 0
      const r = this.s.insertEntry.run(cidHash(item.cid), item.cid, item.author, item.seq, item.bytes, state, item.sig ?? null)
      if (r.changes === 0) {
        positions.push(-1)
        continue
      }
      const pos = Number(r.lastInsertRowid)
      positions.push(pos)
      if (state === 0) for (const op of item.ops) this.applyOp(op, item.stamp, pos, changes, yjs)
      for (const rec of item.control) this.s.insertControl.run(rec.kind, rec.key, rec.bytes, pos)
    }
    return { positions, changes, yjs }
  }

  private applyPendingItems (items: readonly PendingApply[]): CommitResult {
    const positions: number[] = []
    const changes: DocChange[] = []
    const yjs: Array<{ doc: string, update: Uint8Array }> = []
    for (const item of items) {
      const pos = this.s.pendingPos.get(cidHash(item.cid), item.cid) as { pos: number } | undefined
      if (pos === undefined) {
        positions.push(-1)
        continue
      }
      positions.push(pos.pos)
      for (const op of item.ops) this.applyOp(op, item.stamp, pos.pos, changes, yjs)
      this.s.clearPending.run(pos.pos)
    }
    return { positions, changes, yjs }
  }

  private applyOp (op: DataOp, stamp: Stamp, pos: number, changes: DocChange[], yjs: Array<{ doc: string, update: Uint8Array }>): void {
    if (op.t === 'yjs') {
      this.s.insertYjs.run(op.d, pos, op.u)
      yjs.push({ doc: op.d, update: op.u })
      return
    }
    const row = this.s.getDoc.get(op.c, op.id) as DocRowDb | undefined
    if (row === undefined && op.t === 'put') {
      // a new document: its state is exactly the put (every field stamped x), no merge needed
      this.s.insertDoc.run(op.c, op.id, op.j ?? JSON.stringify(op.f), JSON.stringify({ x: stamp }), pos)
      changes.push({ collection: op.c, id: op.id, before: null, after: op.f })
      this.search.changed(op.c, op.id)
      return
    }
    const before: JsonObject | null = row?.body == null ? null : JSON.parse(row.body) as JsonObject
    const state: DocState = row === undefined ? EMPTY_DOC : docStateFromRow({ body: before, meta: JSON.parse(row.meta) as DocRow['meta'] })
    const next = op.t === 'put' ? applyPut(state, op.f, stamp) : op.t === 'patch' ? applyPatch(state, op.f, stamp) : applyDelete(state, stamp)
    const out = docStateToRow(next)
    const bodyText = out.body === null ? null : JSON.stringify(out.body)
    const metaText = JSON.stringify(out.meta)
    if (row === undefined) {
      this.s.insertDoc.run(op.c, op.id, bodyText, metaText, pos)
    } else {
      if (row.body === bodyText && row.meta === metaText) return
      this.s.updateDoc.run(bodyText, metaText, pos, row.rid)
    }
    if (row?.body !== bodyText) {
      changes.push({ collection: op.c, id: op.id, before, after: out.body })
      this.search.changed(op.c, op.id)
    }
  }

  /** The stored entry with this CID (its bytes and chain signature), if the log holds it. */
  private lookup (cid: Uint8Array): { bytes: Uint8Array, sig: Uint8Array | null } | undefined {
    for (const row of this.s.getEntry.all(cidHash(cid)) as Array<{ cid: Uint8Array, bytes: Uint8Array, sig: Uint8Array | null }>) {
      if (Buffer.compare(row.cid, cid) === 0) return row
    }
    return undefined
  }

  async getEntry (cid: Uint8Array): Promise<Uint8Array | undefined> {
    return this.guard(() => this.lookup(cid)?.bytes)
  }

  async entrySignature (cid: Uint8Array): Promise<Uint8Array | undefined> {
    return this.guard(() => this.lookup(cid)?.sig ?? undefined)
  }

  async setEntrySignature (cid: Uint8Array, sig: Uint8Array): Promise<void> {
    this.write(() => this.s.setEntrySig.run(sig, cidHash(cid), cid))
  }

  async getEntryAt (author: string, seq: number): Promise<Uint8Array | undefined> {
    return this.guard(() => this.s.getEntryAt.get(author, seq) as Uint8Array | undefined)
  }

  async entriesNotIn (have: ReadonlyMap<string, number>, after: number, limits: ReadLimits): Promise<{ entries: StoredEntry[], next: number | undefined }> {
    return this.guard(() => {
      const heads = this.s.heads.all() as LogHead[]
      const lacking = heads.filter(h => h.seq > (have.get(h.author) ?? 0))
      if (lacking.length === 0) return { entries: [], next: undefined }
      // one bounded, seq-ordered slice per author, merged in log (causal) order
      const branch = 'SELECT pos FROM (SELECT pos FROM entries WHERE author = ? AND seq > ? AND pos > ? ORDER BY seq LIMIT ?)'
      const sql = `SELECT pos, cid, author, seq, bytes, sig FROM entries WHERE pos IN (${lacking.map(() => branch).join(' UNION ALL ')}) ORDER BY pos LIMIT ?`
      const params: unknown[] = []
      for (const h of lacking) params.push(h.author, have.get(h.author) ?? 0, after, limits.maxEntries)
      params.push(limits.maxEntries)
      return takeWithin(this.db.prepare(sql).iterate(...params) as IterableIterator<EntryRowDb>, limits)
    })
  }

  async pendingEntries (after: number, limit: number): Promise<StoredEntry[]> {
    return this.guard(() => this.s.pending.all(after, limit) as StoredEntry[])
  }

  async applyPending (items: readonly PendingApply[]): Promise<CommitResult> {
    return this.write(() => this.applyPendingTx.immediate(items))
  }

  async quarantine (author: string, afterSeq: number): Promise<number> {
    return this.write(() => this.db.transaction(() => {
      const applied = (this.db.prepare('SELECT count(*) FROM entries WHERE author = ? AND seq > ? AND pending = 0').pluck().get(author, afterSeq) as number)
      this.db.prepare('UPDATE entries SET pending = 2 WHERE author = ? AND seq > ?').run(author, afterSeq)
      return applied
    }).immediate())
  }

  async rematerialize (open: (entry: StoredEntry) => { stamp: Stamp, ops: readonly DataOp[] } | undefined): Promise<void> {
    this.write(() => this.db.transaction(() => {
      this.db.exec(`DELETE FROM docs WHERE substr(collection, 1, 1) <> '${LOCAL_PREFIX}'; DELETE FROM yjs_updates`)
      this.search.resetAll()
      // pages, not an iterator: the connection cannot write while a read is open
      const page = this.db.prepare('SELECT pos, cid, author, seq, bytes FROM entries WHERE pending = 0 AND pos > ? ORDER BY pos LIMIT 500')
      const changes: DocChange[] = []
      const yjs: Array<{ doc: string, update: Uint8Array }> = []
      for (let after = 0; ;) {
        const rows = page.all(after) as EntryRowDb[]
        if (rows.length === 0) break
        for (const row of rows) {
          after = row.pos
          const opened = open(row)
          if (opened === undefined) continue
          for (const op of opened.ops) this.applyOp(op, opened.stamp, row.pos, changes, yjs)
          changes.length = 0
          yjs.length = 0
        }
      }
    }).immediate())
  }

  async yjsUpdates (doc: string): Promise<Array<{ id: number, data: Uint8Array }>> {
    return this.guard(() => this.s.yjs.all(doc) as Array<{ id: number, data: Uint8Array }>)
  }

  async compactYjs (doc: string, merged: Uint8Array, upToId: number): Promise<void> {
    this.write(() => this.db.transaction(() => {
      this.s.deleteYjs.run(doc, upToId)
      this.s.insertYjs.run(doc, 0, merged)
    }).immediate())
  }

  async scanEntries (after: number, limit: number, options: { applied?: boolean } = {}): Promise<StoredEntry[]> {
    return this.guard(() => (options.applied === true ? this.s.scanApplied : this.s.scan).all(after, limit) as StoredEntry[])
  }

  async entryCount (): Promise<number> {
    return this.guard(() => this.s.entryCount.get() as number)
  }

  async controlRecords (): Promise<ControlRecord[]> {
    return this.guard(() => this.s.control.all() as ControlRecord[])
  }

  async getDocument (collection: string, id: string): Promise<StoredDoc | undefined> {
    return this.guard(() => {
      const row = this.s.getDoc.get(collection, id) as DocRowDb | undefined
      if (row === undefined) return undefined
      return { body: row.body === null ? null : JSON.parse(row.body) as JsonObject, meta: row.meta }
    })
  }

  async find (collection: string, query: NormalisedQuery): Promise<Array<{ id: string, body: JsonObject }>> {
    const { text, params } = compileFind(collection, query)
    const here = pinsFewIds(query.filter) || pinsIndexedRange(query, this.indexedPaths(collection))
    const rows = await this.read<Array<{ id: string, body: string }>>({ kind: 'rows', sql: text, params, mode: 'all' }, here)
    return rows.map(r => ({ id: r.id, body: JSON.parse(r.body) as JsonObject }))
  }

  /** The paths of a collection's expression indexes (cached until an index is made or dropped). */
  private indexedPaths (collection: string): ReadonlySet<string> {
    let paths = this.indexed.get(collection)
    if (paths === undefined) {
      paths = new Set(this.guard(() => this.db.prepare('SELECT path FROM indexes WHERE collection = ?').pluck().all(collection) as string[]))
      this.indexed.set(collection, paths)
    }
    return paths
  }

  async count (collection: string, filter: Filter | undefined): Promise<number> {
    const { text, params } = compileCount(collection, filter)
    return (await this.read<{ n: number }>({ kind: 'rows', sql: text, params, mode: 'get' }, pinsFewIds(filter))).n
  }

  async collections (): Promise<CollectionInfo[]> {
    const counts = await this.read<Array<{ name: string, count: number }>>({ kind: 'rows', sql: 'SELECT collection AS name, count(body) AS count FROM docs GROUP BY collection', params: [], mode: 'all' })
    return this.guard(() => {
      const indexes = this.db.prepare('SELECT collection, path FROM indexes ORDER BY collection, path').all() as Array<{ collection: string, path: string }>
      return collectionList(counts, indexes)
    })
  }

  async ensureIndex (collection: string, path: FieldPath): Promise<void> {
    this.write(() => {
      const text = path.isId ? '_id' : path.segments.join('.')
      const name = 'ix_' + createHash('sha256').update(`${collection}\0${text}`).digest('hex').slice(0, 16)
      this.db.transaction(() => {
        this.db.exec(`CREATE INDEX IF NOT EXISTS ${name} ON docs (collection, ${indexExpression(path)})`)
        this.db.prepare('INSERT INTO indexes (collection, path, name) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(collection, text, name)
        this.indexed.delete(collection)
      }).immediate()
    })
  }

  async collectionDigests (): Promise<Map<string, string>> {
    return this.guard(() => {
      const digester = new CollectionDigester()
      for (const row of this.db.prepare(`SELECT collection, id, body, meta FROM docs WHERE substr(collection, 1, 1) <> '${LOCAL_PREFIX}' ORDER BY collection, id`).iterate() as IterableIterator<{ collection: string, id: string, body: string | null, meta: string }>) {
        digester.add(row.collection, row.id, row.body, row.meta)
      }
      return digester.done()
    })
  }

  async stateDigest (): Promise<string> {
    return combineDigests(await this.collectionDigests())
  }

  async appliedPosition (): Promise<number> {
    return this.guard(() => Number(this.s.getMeta.get(APPLIED_META) ?? 0))
  }

  async materialize (items: readonly MaterializeItem[], options: { upTo?: number, replay?: boolean } = {}): Promise<DocChange[]> {
    return this.write(() => this.db.transaction(() => {
      const applied = Number(this.s.getMeta.get(APPLIED_META) ?? 0)
      const changes: DocChange[] = []
      const yjs: Array<{ doc: string, update: Uint8Array }> = []
      let top = applied
      for (const item of items) {
        if (item.pos <= applied && options.replay !== true) continue
        for (const op of item.ops) this.applyOp(op, item.stamp, item.pos, changes, yjs)
        // a replay re-applies old entries: it never moves the position (upTo does)
        if (options.replay !== true) top = Math.max(top, item.pos)
      }
      top = Math.max(top, options.upTo ?? 0)
      if (top > applied) this.s.setMeta.run(APPLIED_META, String(top))
      return changes
    }).immediate())
  }

  async dropCollection (collection: string): Promise<void> {
    this.write(() => this.db.transaction(() => {
      this.search.dropCollection(collection)
      for (const name of this.db.prepare('SELECT name FROM indexes WHERE collection = ?').pluck().all(collection) as string[]) this.db.exec(`DROP INDEX IF EXISTS ${name}`)
      this.db.prepare('DELETE FROM indexes WHERE collection = ?').run(collection)
      this.indexed.delete(collection)
      this.db.prepare('DELETE FROM docs WHERE collection = ?').run(collection)
    }).immediate())
  }

  async collectionSettings (name: string): Promise<CollectionSettings | undefined> {
    return this.guard(() => this.search.getSettings(name))
  }

  async setCollectionSettings (name: string, settings: CollectionSettings | undefined): Promise<void> {
    this.write(() => this.search.setSettings(name, settings))
  }

  async indexQueue (limit: number, collection?: string): Promise<IndexTask[]> {
    return this.guard(() => this.search.queue(limit, collection))
  }

  async indexQueueCount (collection?: string): Promise<number> {
    return this.guard(() => this.search.queueCount(collection))
  }

  async requeueCollection (collection: string): Promise<number> {
    return this.write(() => this.search.requeue(collection))
  }

  async indexedChunks (collection: string, id: string): Promise<Array<{ text: string, embedder: string }>> {
    return this.guard(() => this.search.chunksOf(collection, id))
  }

  async embeddersOf (collection: string): Promise<string[]> {
    return this.guard(() => this.search.embeddersOf(collection))
  }

  async applyIndexUpdates (updates: readonly IndexUpdate[]): Promise<VectorChanges> {
    await this.checkpoints?.ready()
    return this.write(() => {
      const changes = this.db.transaction(() => this.search.apply(updates)).immediate()
      this.search.mergeTextIndexWhenIdle()
      return changes
    })
  }

  async chunkStats (collection: string, embedder: string): Promise<{ count: number, maxRid: number, sumRid: number }> {
    return this.guard(() => this.search.chunkStats(collection, embedder))
  }

  async textSearch (collection: string, terms: readonly string[], k: number, filter: Filter | undefined): Promise<TextHit[]> {
    if (terms.length === 0) return this.guard(() => [])
    const counted = this.read<TermCount[]>({ kind: 'rows', sql: TEXT_TERM_COUNTS_SQL, params: [JSON.stringify(terms.map(ftsString))], mode: 'all' })
    let rows: Array<{ id: string, s: number }> | undefined
    if (terms.length === 1) {
      // nothing to leave out: the word's count (for the scores' ceiling) is read beside its matches
      rows = (await Promise.all([this.textRows(collection, ftsMatch(terms), k, filter), counted]))[0]
    } else {
      // words in many rows: score the rows with a rare word first, the rest only when they could matter
      const rare = rareWordsQuery(terms, await counted, words => this.wordFrequencies(words))
      if (rare !== undefined) {
        const best = await this.textRows(collection, rare.match, k, filter)
        if (best.length >= k && -(best[k - 1] as { s: number }).s > rare.bound) rows = best
      }
      rows ??= await this.textRows(collection, ftsMatch(terms), k, filter)
    }
    if (rows.length === 0) return []
    const ceiling = textScoreCeiling(await counted)
    return rows.map(r => ({ id: r.id, score: -r.s, relevance: ceiling > 0 ? Math.min(1, -r.s / ceiling) : 0 }))
  }

  /** The most times one row holds each word; unknown (a looser bound) where the vocabulary cannot tell. */
  private wordFrequencies (words: readonly string[]): Array<number | undefined> {
    try {
      return this.guard(() => this.words.maxFrequencies(words))
    } catch {
      // the search still runs: with IDF x (k1 + 1) per word as the bound, it skips less often
      return words.map(() => undefined)
    }
  }

  /** BM25 matches of an FTS5 query (`s`: FTS5's bm25, lower is better) in one collection, best first. */
  private async textRows (collection: string, match: string, k: number, filter: Filter | undefined): Promise<Array<{ id: string, s: number }>> {
    // the best matches of the whole table, widened until k of them are this collection's and pass
    // the filter (they are then the best of those that do), or all matches were read
    for (let top = Math.max(200, k * 8); top <= TEXT_TOP_MAX; top *= 8) {
      const { text, params } = textSearchSql(collection, match, k, filter, top)
      const rows = await this.read<Array<{ id: string, s: number, n: number }>>({ kind: 'rows', sql: text, params, mode: 'all' })
      if (rows.length >= k || (rows[0]?.n ?? top) < top) return rows
      if (rows.length === 0 && !await this.moreMatches(match, top)) return []
    }
    const { text, params } = textSearchSql(collection, match, k, filter)
    return await this.read<Array<{ id: string, s: number }>>({ kind: 'rows', sql: text, params, mode: 'all' })
  }

  /** True when an FTS5 query matches more than `top` rows of the full-text table. */
  private async moreMatches (match: string, top: number): Promise<boolean> {
    const n = await this.read<number>({ kind: 'rows', sql: 'SELECT count(*) FROM (SELECT rowid FROM fts WHERE fts MATCH ? LIMIT ?)', params: [match, top + 1], mode: 'pluck' })
    return n > top
  }

  async vectorSearch (collection: string, embedder: string, vector: Float32Array, k: number, filter: Filter | undefined): Promise<Array<{ id: string, distance: number }>> {
    const table = this.guard(() => this.search.vectorTable(embedder))
    if (table === undefined) return []
    return await this.read({ kind: 'vectorSearch', query: { table, collection, embedder, vector, k, filter } })
  }

  async vectorsOf (collection: string, embedder: string, after: number, limit: number): Promise<Array<{ rid: number, id: string, vector: Float32Array }>> {
    return this.guard(() => this.search.vectorsOf(collection, embedder, after, limit))
  }

  async chunkDocs (collection: string, rids: readonly number[]): Promise<Map<number, string>> {
    return this.guard(() => this.search.chunkDocs(collection, rids))
  }

  async checkIntegrity (): Promise<string[]> {
    return await this.read({ kind: 'integrity' })
  }

  /** Describes the tables and views of this file, PeakDB's own marked (storage/introspect.ts). */
  async describeSchema (options: DescribeSchemaOptions = {}): Promise<SchemaDescription> {
    options.signal?.throwIfAborted()
    const d = this.guard(() => describeSqliteDb(this.db, this.location))
    return options.schema === undefined ? d : { ...d, tables: d.tables.filter(t => t.schema === options.schema) }
  }

  async close (): Promise<void> {
    this.closed = true
    this.closing ??= this.shutdown()
    await this.closing
  }

  private async shutdown (): Promise<void> {
    // the threads go first: the last connection to close removes the WAL files
    await this.pool?.close()
    await this.checkpoints?.close()
    this.local.clear()
    try {
      this.s.setMeta.run(SHUTDOWN_META, 'clean')
    } catch {
      // a database that cannot take the marker is damaged or read-only: the next open checks it
    }
    this.db.close()
  }
}
