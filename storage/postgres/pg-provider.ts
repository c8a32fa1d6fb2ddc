/**
 * The PostgreSQL storage provider, on node-postgres (`pg`) with its pool: every role, so a node
 * can run wholly on a server. Each node keeps its tables in a schema of its own and holds an
 * advisory lock on it for as long as it is open, so it is the schema's one writer: commits are
 * planned in memory and written by one statement (storage/postgres/plan.ts); reads run on the
 * pool concurrently.
 */
import { createHash } from 'node:crypto'
import pg from 'pg'
import type { Pool, PoolClient } from 'pg'
import type { DataOp, JsonObject, Stamp } from '../../crdt/index.js'
import { CollectionDigester, combineDigests } from '../digest.js'
import { StorageBusyError, StorageClosedError, StorageUnavailableError } from '../errors.js'
import type { FieldPath, Filter, NormalisedQuery } from '../query.js'
import {
  LOCAL_PREFIX,
  type CollectionInfo, type CollectionSettings, type CommitItem, type CommitResult, type ControlRecord, type DocChange, type IndexTask, type IndexUpdate,
  type LogHead, type MaterializeItem, type PendingApply, type ReadLimits, type StorageProvider, type StoredDoc, type TextHit, type StoredEntry, type VectorChanges
} from '../provider.js'
import { migrate } from './schema.js'
import { KeyFilter } from './key-filter.js'
import { AdoptedTable } from './adopted.js'
import { installTableWatch, TableWatch } from './table-watch.js'
import { collectionList, takeWithin } from '../slice.js'
import { PgSearch } from './pg-search.js'
import { opKeys, WritePlan, writeStatement, type Queryable } from './plan.js'
import { compileCount, compileFind, indexExpression } from './query-sql.js'
import type { DescribeSchemaOptions, SchemaDescriber, SchemaDescription } from '../introspect.js'
import { describePostgres } from './pg-introspect.js'

/** Pool settings; every one is set explicitly (defaults in {@link POOL_DEFAULTS}). */
export interface PostgresPoolOptions {
  /** Most connections open at once. */
  readonly max?: number
  /** How long to wait for a connection (from the server or the pool) before failing, ms. */
  readonly connectionTimeoutMs?: number
  /** How long an idle connection stays open, ms. */
  readonly idleTimeoutMs?: number
  /** Server-side cap on one statement, ms (0: none). */
  readonly statementTimeoutMs?: number
  /** Shown in pg_stat_activity. */
  readonly applicationName?: string
}

export const POOL_DEFAULTS: Required<PostgresPoolOptions> = {
  max: 10,
  connectionTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  statementTimeoutMs: 60_000,
  applicationName: 'peakdb'
}

/** Options of the PostgreSQL provider. */
export interface PostgresProviderOptions {
  /** Connection string: `postgres://user[:password]@host[:port]/database`. */
  readonly url: string
  /** The node's schema (created when missing): lower-case letters, digits and `_`. */
  readonly schema: string
  readonly pool?: PostgresPoolOptions
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/
/** First key of the schema lock (pg_advisory_lock(int, int)): "PEAK". */
const LOCK_CLASS = 0x5045414b
/** Meta key of the log position a routed store has applied (see MaterializingStore). */
const APPLIED_META = 'applied-position'
/** Rows per page when a whole table is read (digests, rebuilds). */
const PAGE = 1000

/** A connection string without its password, with the schema: safe to show and log. */
export function safeLocation (url: string, schema: string): string {
  try {
    const u = new URL(url)
    u.password = ''
    for (const k of [...u.searchParams.keys()]) if (/pass|secret|key|token/i.test(k)) u.searchParams.delete(k)
    u.searchParams.set('schema', schema)
    return u.toString()
  } catch {
    return `postgres (unparsable connection string)#${schema}`
  }
}

/**
 * A prepared-statement name for a statement's text (node-postgres prepares a named statement
 * once per connection, then only binds it).
 */
function statementName (text: string): string {
  return `peak_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`
}

/** A stable 31-bit key for a schema name. */
function lockKey (schema: string): number {
  return createHash('sha256').update(schema).digest().readInt32BE(0)
}

/** Health of the pool, for `peakdb providers`. */
export interface PoolHealth {
  readonly size: number
  readonly idle: number
  readonly waiting: number
  readonly max: number
}

/** The PostgreSQL implementation of {@link StorageProvider}. */
export class PostgresProvider implements StorageProvider, SchemaDescriber {
  readonly kind = 'postgres'
  readonly location: string
  private closed = false
  private lockLost = false
  private nextPos = 1
  /** Which documents may exist (kept here: this process is the schema's one writer). */
  private readonly keys = new KeyFilter()
  /** Each author's head seq (kept here: this process is the schema's one writer). */
  private readonly headSeq = new Map<string, number>()
  /** Write transactions, one at a time (this process is the schema's one writer). */
  private writing: Promise<unknown> = Promise.resolve()
  private readonly search: PgSearch

  private tableWatch: TableWatch | undefined
  private tableWatchStarting: Promise<TableWatch> | undefined

  private constructor (private readonly pool: Pool, private readonly lock: pg.Client, readonly schema: string, location: string, private readonly max: number, private readonly connection: pg.ClientConfig) {
    this.location = location
    this.search = new PgSearch(pool)
  }

  /**
   * Connects, takes the schema's lock, creates or migrates the schema. Throws
   * {@link StorageUnavailableError} when the server cannot be reached or lacks pgvector, and
   * {@link StorageBusyError} when another process has the schema open.
   *
   * @example
   * ```ts
   * const storage = await PostgresProvider.open({ url: 'postgres://postgres@127.0.0.1/peak', schema: 'peakdb_laptop' })
   * ```
   */
  static async open (options: PostgresProviderOptions): Promise<PostgresProvider> {
    if (!SCHEMA_NAME.test(options.schema)) throw new StorageUnavailableError(`schema name ${JSON.stringify(options.schema)} is not valid (lower-case letters, digits and _, at most 63)`)
    const location = safeLocation(options.url, options.schema)
    const o = { ...POOL_DEFAULTS, ...options.pool }
    const types = new pg.TypeOverrides()
    // bigint and bigserial columns hold positions and row ids, far below 2^53
    types.setTypeParser(20, (v: string) => Number(v))
    // validated above, and quoted: a reserved word such as "user" is a schema name too
    const schema = pg.escapeIdentifier(options.schema)
    const connection = {
      connectionString: options.url,
      connectionTimeoutMillis: o.connectionTimeoutMs,
      statement_timeout: o.statementTimeoutMs,
      application_name: o.applicationName,
      options: `-c search_path=${schema},public`,
      types
    }
    const lock = new pg.Client(connection)
    let lost: PostgresProvider | undefined
    // the schema lock lives as long as this connection: losing it ends this process's writes
    lock.on('error', () => lost?.loseLock())
    lock.on('end', () => lost?.loseLock())
    try {
      await lock.connect()
    } catch (err) {
      throw new StorageUnavailableError(`cannot connect to PostgreSQL at ${location}: ${(err as Error).message}`, { cause: err })
    }
    const pool = new pg.Pool({ ...connection, max: o.max, idleTimeoutMillis: o.idleTimeoutMs })
    // an idle connection the server drops is replaced by the pool; the error must not crash the process
    pool.on('error', () => undefined)
    try {
      const held = await lock.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LOCK_CLASS, lockKey(options.schema)])
      if (held.rows[0]?.ok !== true) throw new StorageBusyError(`schema ${options.schema} at ${location} is open in another PeakDB process`)
      await ensureVector(lock, location)
      const provider = new PostgresProvider(pool, lock, schema, location, o.max, connection)
      lost = provider
      const client = await pool.connect()
      try {
        await migrate(client, schema, location)
      } finally {
        client.release()
      }
      await provider.search.load()
      await provider.reloadPositions(pool)
      await provider.keys.rebuild(pool)
      return provider
    } catch (err) {
      await pool.end().catch(() => undefined)
      await lock.end().catch(() => undefined)
      throw err
    }
  }

  /**
   * Adopts an existing table (`schema.table`, default schema public) as the documents of a
   * collection (storage name `collection`), watched for changes any client makes: `onIds` gets
   * the keys of changed rows. The table stays the database's own; nothing of it enters the log.
   */
  async adopt (collection: string, table: string, onIds: (ids: string[]) => void): Promise<{ store: AdoptedTable, unwatch: () => void }> {
    this.check()
    const store = await AdoptedTable.open(this.pool, collection, table, this.location)
    await installTableWatch(this.pool, store.schema, store.table, store.key.name)
    const watch = await this.watcher()
    return { store, unwatch: watch.watch(`${store.schema}.${store.table}`, onIds) }
  }

  private async watcher (): Promise<TableWatch> {
    if (this.tableWatch !== undefined) return this.tableWatch
    this.tableWatchStarting ??= (async () => {
      const w = new TableWatch(this.connection)
      await w.start()
      this.tableWatch = w
      return w
    })()
    return await this.tableWatchStarting
  }

  /**
   * Describes the tables and views of the whole database (every user schema, or
   * `options.schema`), this and other nodes' schemas marked as PeakDB's (storage/introspect.ts).
   */
  async describeSchema (options: DescribeSchemaOptions = {}): Promise<SchemaDescription> {
    this.check()
    return await describePostgres(this.pool, this.location, options)
  }

  /** Pool state: connections open, idle, callers waiting. */
  health (): PoolHealth {
    return { size: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount, max: this.max }
  }

  private check (): void {
    if (this.closed) throw new StorageClosedError(`storage ${this.location} is closed`)
  }

  /** The lock connection dropped: another process may take the schema now, so this one stops writing. */
  private loseLock (): void {
    if (this.closed) return
    this.lockLost = true
  }

  private plan (): WritePlan {
    return new WritePlan((c, id) => this.keys.mayHold(c, id))
  }

  /**
   * Writes a plan in one statement and notes the documents it created. A document the key
   * filter wrongly ruled out would fail the insert on its unique key: the filter is then
   * rebuilt, and the caller's transaction (or single statement) left nothing behind.
   */
  private async run (db: Queryable, plan: WritePlan): Promise<void> {
    const statement = writeStatement(plan)
    if (statement === undefined) return
    try {
      await db.query({ name: statementName(statement.text), text: statement.text, values: statement.params })
    } catch (err) {
      if ((err as { code?: string }).code === '23505' && (err as { constraint?: string }).constraint === 'docs_collection_id_key') await this.keys.rebuild(this.pool)
      throw err
    }
    for (const d of plan.docRows().inserts) this.keys.add(d.collection, d.id)
    if (this.keys.full) await this.keys.rebuild(db)
  }

  /** Reads the next log position and the authors' heads from the server. */
  private async reloadPositions (db: Queryable): Promise<void> {
    this.nextPos = ((await db.query<{ p: number }>('SELECT coalesce(max(pos), 0) + 1 AS p FROM entries')).rows[0]?.p) ?? 1
    this.headSeq.clear()
    for (const r of (await db.query<{ author: string, seq: number }>('SELECT author, seq FROM heads')).rows) this.headSeq.set(r.author, r.seq)
  }

  private async read<R> (text: string, params: unknown[] = []): Promise<R[]> {
    this.check()
    return (await this.pool.query(text, params)).rows as R[]
  }

  /** Runs write work one at a time, on one connection, optionally in a transaction. */
  private async write<T> (fn: (db: PoolClient) => Promise<T>, transaction = false): Promise<T> {
    this.check()
    const run = async (): Promise<T> => {
      this.check()
      if (this.lockLost) throw new StorageUnavailableError(`lost the lock on schema ${this.schema} at ${this.location} (its connection to the server dropped); another process may hold it now: close and reopen the node`)
      const client = await this.pool.connect()
      try {
        if (!transaction) return await fn(client)
        await client.query('BEGIN')
        try {
          const out = await fn(client)
          await client.query('COMMIT')
          return out
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined)
          throw err
        }
      } finally {
        client.release()
      }
    }
    const next = this.writing.then(run, run)
    this.writing = next.catch(() => undefined)
    return await next
  }

  async getMeta (key: string): Promise<string | undefined> {
    return (await this.read<{ value: string }>('SELECT value FROM meta WHERE key = $1', [key]))[0]?.value
  }

  async setMeta (key: string, value: string): Promise<void> {
    await this.write(async db => await db.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]))
  }

  async heads (): Promise<LogHead[]> {
    return await this.read<{ author: string, seq: number, cid: Uint8Array }>('SELECT author, seq, cid FROM heads ORDER BY author')
  }

  async hasEntries (cids: readonly Uint8Array[]): Promise<Set<string>> {
    if (cids.length === 0) return new Set()
    const rows = await this.read<{ cid: Buffer }>('SELECT cid FROM entries WHERE cid = ANY($1::bytea[])', [cids.map(c => Buffer.from(c))])
    return new Set(rows.map(r => r.cid.toString('base64')))
  }

  async commit (items: readonly CommitItem[]): Promise<CommitResult> {
    return await this.write(async db => {
      // an entry past its author's head is new (this process is the schema's one writer): only
      // entries at or below it (a peer resending what is held) are looked up
      const unsure = items.filter(i => i.seq <= (this.headSeq.get(i.author) ?? 0))
      const held = unsure.length === 0
        ? { rows: [] }
        : await db.query<{ author: string, seq: number }>({ name: 'peak_held', text: 'SELECT author, seq FROM entries WHERE (author, seq) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))', values: [unsure.map(i => i.author), unsure.map(i => i.seq)] })
      const seen = new Set(held.rows.map(r => `${r.author}\u0000${r.seq}`))
      const plan = this.plan()
      const keys: Array<readonly [string, string]> = []
      for (const item of items) if (item.pending !== true && item.quarantined !== true) opKeys(item.ops, keys)
      await plan.load(db, keys)
      const positions: number[] = []
      let pos = this.nextPos
      for (const item of items) {
        const k = `${item.author}\u0000${item.seq}`
        if (seen.has(k)) {
          positions.push(-1)
          continue
        }
        seen.add(k)
        const state = item.quarantined === true ? 2 : item.pending === true ? 1 : 0
        const at = pos++
        positions.push(at)
        plan.addEntry(at, item.cid, item.author, item.seq, item.bytes, state, item.sig)
        if (state === 0) for (const op of item.ops) plan.applyOp(op, item.stamp, at)
        for (const rec of item.control) plan.addControl(rec.kind, rec.key, rec.bytes, at)
      }
      try {
        await this.run(db, plan)
      } catch (err) {
        // a reply lost after the server committed would leave positions and heads moved: ask the server
        await this.reloadPositions(db).catch(() => undefined)
        throw err
      }
      this.nextPos = pos
      for (const [author, head] of plan.heads) if (head.seq > (this.headSeq.get(author) ?? 0)) this.headSeq.set(author, head.seq)
      return { positions, changes: plan.changes, yjs: plan.yjsOut }
    })
  }

  async writeLocal (collection: string, writes: ReadonlyArray<{ readonly id: string, readonly body: JsonObject | null }>): Promise<DocChange[]> {
    if (!collection.startsWith(LOCAL_PREFIX)) throw new Error(`writeLocal: ${collection} is not a device-local collection`)
    return await this.write(async db => {
      const plan = this.plan()
      await plan.load(db, writes.map(w => [collection, w.id] as const))
      for (const w of writes) plan.writeLocal(collection, w.id, w.body)
      await this.run(db, plan)
      return plan.changes
    })
  }

  async getEntry (cid: Uint8Array): Promise<Uint8Array | undefined> {
    return (await this.read<{ bytes: Buffer }>('SELECT bytes FROM entries WHERE cid = $1', [Buffer.from(cid)]))[0]?.bytes
  }

  async entrySignature (cid: Uint8Array): Promise<Uint8Array | undefined> {
    return (await this.read<{ sig: Buffer | null }>('SELECT sig FROM entries WHERE cid = $1', [Buffer.from(cid)]))[0]?.sig ?? undefined
  }

  async setEntrySignature (cid: Uint8Array, sig: Uint8Array): Promise<void> {
    await this.write(async db => { await db.query('UPDATE entries SET sig = $1 WHERE cid = $2', [Buffer.from(sig), Buffer.from(cid)]) })
  }

  async getEntryAt (author: string, seq: number): Promise<Uint8Array | undefined> {
    return (await this.read<{ bytes: Buffer }>('SELECT bytes FROM entries WHERE author = $1 AND seq = $2', [author, seq]))[0]?.bytes
  }

  async entriesNotIn (have: ReadonlyMap<string, number>, after: number, limits: ReadLimits): Promise<{ entries: StoredEntry[], next: number | undefined }> {
    const heads = await this.heads()
    const lacking = heads.filter(h => h.seq > (have.get(h.author) ?? 0))
    if (lacking.length === 0) return { entries: [], next: undefined }
    // one bounded, seq-ordered slice per author, merged in log (causal) order
    const rows = await this.read<StoredEntry>(
      `SELECT e.pos, e.cid, e.author, e.seq, e.bytes, e.sig FROM unnest($1::text[], $2::bigint[]) AS h (author, have)
       CROSS JOIN LATERAL (SELECT * FROM entries WHERE author = h.author AND seq > h.have AND pos > $3 ORDER BY seq LIMIT $4) e
       ORDER BY e.pos LIMIT $4`,
      [lacking.map(h => h.author), lacking.map(h => have.get(h.author) ?? 0), after, limits.maxEntries])
    return takeWithin(rows, limits)
  }

  async pendingEntries (after: number, limit: number): Promise<StoredEntry[]> {
    return await this.read('SELECT pos, cid, author, seq, bytes FROM entries WHERE pending = 1 AND pos > $1 ORDER BY pos LIMIT $2', [after, limit])
  }

  async applyPending (items: readonly PendingApply[]): Promise<CommitResult> {
    return await this.write(async db => {
      const found = await db.query<{ pos: number, cid: Buffer }>('SELECT pos, cid FROM entries WHERE cid = ANY($1::bytea[]) AND pending = 1', [items.map(i => Buffer.from(i.cid))])
      const byCid = new Map(found.rows.map(r => [r.cid.toString('base64'), r.pos]))
      const plan = this.plan()
      const keys: Array<readonly [string, string]> = []
      for (const item of items) if (byCid.has(Buffer.from(item.cid).toString('base64'))) opKeys(item.ops, keys)
      await plan.load(db, keys)
      const positions: number[] = []
      for (const item of items) {
        const k = Buffer.from(item.cid).toString('base64')
        const pos = byCid.get(k)
        if (pos === undefined) {
          positions.push(-1)
          continue
        }
        byCid.delete(k)
        positions.push(pos)
        for (const op of item.ops) plan.applyOp(op, item.stamp, pos)
        plan.cleared.push(pos)
      }
      await this.run(db, plan)
      return { positions, changes: plan.changes, yjs: plan.yjsOut }
    })
  }

  async quarantine (author: string, afterSeq: number): Promise<number> {
    return await this.write(async db => {
      // every part of one statement sees the rows as they were before it
      const r = await db.query<{ n: number }>(
        `WITH before AS (SELECT count(*)::int AS n FROM entries WHERE author = $1 AND seq > $2 AND pending = 0),
              q AS (UPDATE entries SET pending = 2 WHERE author = $1 AND seq > $2)
         SELECT n FROM before`, [author, afterSeq])
      return r.rows[0]?.n ?? 0
    })
  }

  async rematerialize (open: (entry: StoredEntry) => { stamp: Stamp, ops: readonly DataOp[] } | undefined): Promise<void> {
    await this.write(async db => {
      await db.query(`DELETE FROM docs WHERE substr(collection, 1, 1) <> '${LOCAL_PREFIX}'`)
      await db.query('DELETE FROM yjs_updates')
      for (let after = 0; ;) {
        const rows = (await db.query<StoredEntry & Record<string, unknown>>('SELECT pos, cid, author, seq, bytes FROM entries WHERE pending = 0 AND pos > $1 ORDER BY pos LIMIT $2', [after, PAGE])).rows
        if (rows.length === 0) break
        const opened: Array<{ pos: number, stamp: Stamp, ops: readonly DataOp[] }> = []
        for (const row of rows) {
          after = row.pos
          const o = open(row)
          if (o !== undefined) opened.push({ pos: row.pos, ...o })
        }
        const plan = this.plan()
        const keys: Array<readonly [string, string]> = []
        for (const o of opened) opKeys(o.ops, keys)
        await plan.load(db, keys)
        for (const o of opened) for (const op of o.ops) plan.applyOp(op, o.stamp, o.pos)
        await this.run(db, plan)
      }
      // rebuilt documents have new row ids: their words and vectors are made again
      await this.search.resetAll(db)
    }, true)
  }

  async yjsUpdates (doc: string): Promise<Array<{ id: number, data: Uint8Array }>> {
    return await this.read('SELECT id, data FROM yjs_updates WHERE doc = $1 ORDER BY id', [doc])
  }

  async compactYjs (doc: string, merged: Uint8Array, upToId: number): Promise<void> {
    await this.write(async db => await db.query(
      'WITH d AS (DELETE FROM yjs_updates WHERE doc = $1 AND id <= $2) INSERT INTO yjs_updates (doc, pos, data) VALUES ($1, 0, $3)', [doc, upToId, Buffer.from(merged)]))
  }

  async scanEntries (after: number, limit: number, options: { applied?: boolean } = {}): Promise<StoredEntry[]> {
    return await this.read(`SELECT pos, cid, author, seq, bytes, sig FROM entries WHERE pos > $1${options.applied === true ? ' AND pending = 0' : ''} ORDER BY pos LIMIT $2`, [after, limit])
  }

  async entryCount (): Promise<number> {
    return (await this.read<{ n: number }>('SELECT count(*)::int AS n FROM entries'))[0]?.n ?? 0
  }

  async controlRecords (): Promise<ControlRecord[]> {
    return await this.read('SELECT kind, key, bytes FROM control ORDER BY pos, kind, key')
  }

  async getDocument (collection: string, id: string): Promise<StoredDoc | undefined> {
    const row = (await this.read<{ body: string | null, meta: string }>('SELECT body, meta FROM docs WHERE collection = $1 AND id = $2', [collection, id]))[0]
    if (row === undefined) return undefined
    return { body: row.body === null ? null : JSON.parse(row.body) as JsonObject, meta: row.meta }
  }

  async find (collection: string, query: NormalisedQuery): Promise<Array<{ id: string, body: JsonObject }>> {
    const { text, params } = compileFind(collection, query)
    return (await this.read<{ id: string, body: string }>(text, params)).map(r => ({ id: r.id, body: JSON.parse(r.body) as JsonObject }))
  }

  async count (collection: string, filter: Filter | undefined): Promise<number> {
    const { text, params } = compileCount(collection, filter)
    return (await this.read<{ n: number }>(text, params))[0]?.n ?? 0
  }

  async collections (): Promise<CollectionInfo[]> {
    const counts = await this.read<{ name: string, count: number }>('SELECT collection AS name, count(body)::int AS count FROM docs GROUP BY collection')
    const indexes = await this.read<{ collection: string, path: string }>('SELECT collection, path FROM indexes ORDER BY collection, path')
    return collectionList(counts, indexes)
  }

  async ensureIndex (collection: string, path: FieldPath): Promise<void> {
    const text = path.isId ? '_id' : path.segments.join('.')
    const name = 'ix_' + createHash('sha256').update(`${collection}\0${text}`).digest('hex').slice(0, 16)
    await this.write(async db => {
      await db.query(`CREATE INDEX IF NOT EXISTS ${name} ON docs (collection, ${indexExpression(path)})`)
      await db.query('INSERT INTO indexes (collection, path, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [collection, text, name])
    }, true)
  }

  async collectionDigests (): Promise<Map<string, string>> {
    const digester = new CollectionDigester()
    for (let last: [string, string] = ['', '']; ;) {
      const rows = await this.read<{ collection: string, id: string, body: string | null, meta: string }>(
        `SELECT collection, id, body, meta FROM docs WHERE substr(collection, 1, 1) <> '${LOCAL_PREFIX}' AND (collection, id) > ($1, $2) ORDER BY collection, id LIMIT ${PAGE}`, last)
      for (const row of rows) digester.add(row.collection, row.id, row.body, row.meta)
      if (rows.length < PAGE) break
      const end = rows[rows.length - 1] as { collection: string, id: string }
      last = [end.collection, end.id]
    }
    return digester.done()
  }

  async stateDigest (): Promise<string> {
    return combineDigests(await this.collectionDigests())
  }

  async appliedPosition (): Promise<number> {
    return Number(await this.getMeta(APPLIED_META) ?? 0)
  }

  async materialize (items: readonly MaterializeItem[], options: { upTo?: number, replay?: boolean } = {}): Promise<DocChange[]> {
    return await this.write(async db => {
      const applied = Number((await db.query<{ value: string }>('SELECT value FROM meta WHERE key = $1 FOR UPDATE', [APPLIED_META])).rows[0]?.value ?? 0)
      const todo = items.filter(i => i.pos > applied || options.replay === true)
      const plan = this.plan()
      const keys: Array<readonly [string, string]> = []
      for (const i of todo) opKeys(i.ops, keys)
      await plan.load(db, keys)
      let top = applied
      for (const i of todo) {
        for (const op of i.ops) plan.applyOp(op, i.stamp, i.pos)
        // a replay re-applies old entries: it never moves the position (upTo does)
        if (options.replay !== true) top = Math.max(top, i.pos)
      }
      top = Math.max(top, options.upTo ?? 0)
      await this.run(db, plan)
      if (top > applied) await db.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [APPLIED_META, String(top)])
      return plan.changes
    }, true)
  }

  async dropCollection (collection: string): Promise<void> {
    await this.write(async db => {
      await this.search.dropCollection(db, collection)
      for (const r of (await db.query<{ name: string }>('SELECT name FROM indexes WHERE collection = $1', [collection])).rows) await db.query(`DROP INDEX IF EXISTS ${r.name}`)
      await db.query('DELETE FROM indexes WHERE collection = $1', [collection])
      await db.query('DELETE FROM docs WHERE collection = $1', [collection])
    }, true)
  }

  async collectionSettings (name: string): Promise<CollectionSettings | undefined> {
    this.check()
    return this.search.getSettings(name)
  }

  async setCollectionSettings (name: string, settings: CollectionSettings | undefined): Promise<void> {
    await this.write(async db => await this.search.setSettings(db, name, settings))
  }

  async indexQueue (limit: number, collection?: string): Promise<IndexTask[]> {
    this.check()
    return await this.search.queue(limit, collection)
  }

  async indexQueueCount (collection?: string): Promise<number> {
    this.check()
    return await this.search.queueCount(collection)
  }

  async requeueCollection (collection: string): Promise<number> {
    return await this.write(async db => await this.search.requeue(db, collection))
  }

  async indexedChunks (collection: string, id: string): Promise<Array<{ text: string, embedder: string }>> {
    this.check()
    return await this.search.chunksOf(collection, id)
  }

  async embeddersOf (collection: string): Promise<string[]> {
    this.check()
    return await this.search.embeddersOf(collection)
  }

  async applyIndexUpdates (updates: readonly IndexUpdate[]): Promise<VectorChanges> {
    const { changes, created } = await this.write(async db => await this.search.apply(db, updates), true)
    this.search.committed(created)
    return changes
  }

  async chunkStats (collection: string, embedder: string): Promise<{ count: number, maxRid: number, sumRid: number }> {
    this.check()
    return await this.search.chunkStats(collection, embedder)
  }

  async textSearch (collection: string, terms: readonly string[], k: number, filter: Filter | undefined): Promise<TextHit[]> {
    this.check()
    return await this.search.textSearch(collection, terms, k, filter)
  }

  async vectorSearch (collection: string, embedder: string, vector: Float32Array, k: number, filter: Filter | undefined): Promise<Array<{ id: string, distance: number }>> {
    this.check()
    return await this.search.vectorSearch(collection, embedder, vector, k, filter)
  }

  async vectorsOf (collection: string, embedder: string, after: number, limit: number): Promise<Array<{ rid: number, id: string, vector: Float32Array }>> {
    this.check()
    return await this.search.vectorsOf(collection, embedder, after, limit)
  }

  async chunkDocs (collection: string, rids: readonly number[]): Promise<Map<number, string>> {
    this.check()
    return await this.search.chunkDocs(collection, rids)
  }

  /**
   * What the server cannot check for us: heads that disagree with the entries, documents that
   * point past the log, index rows of documents that are gone.
   */
  async checkIntegrity (): Promise<string[]> {
    const problems: string[] = []
    for (const r of await this.read<{ author: string, seq: number, top: number | null }>('SELECT h.author, h.seq, (SELECT max(seq) FROM entries e WHERE e.author = h.author) AS top FROM heads h')) {
      if (r.top !== r.seq) problems.push(`head of ${r.author} is seq ${r.seq}, but its latest entry is seq ${r.top ?? 'none'}`)
    }
    // a store that holds no log (a provider collections are routed to) has nothing to point into
    const beyond = (await this.read<{ n: number }>('SELECT count(*)::int AS n FROM docs WHERE EXISTS (SELECT 1 FROM entries) AND pos > (SELECT max(pos) FROM entries)'))[0]?.n ?? 0
    if (beyond > 0) problems.push(`${beyond} document(s) point past the end of the log`)
    const orphans = (await this.read<{ n: number }>('SELECT count(*)::int AS n FROM fts f WHERE NOT EXISTS (SELECT 1 FROM docs d WHERE d.rid = f.rid)'))[0]?.n ?? 0
    if (orphans > 0) problems.push(`${orphans} word index row(s) belong to no document`)
    return problems
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.writing
    await this.tableWatch?.close()
    await this.pool.end().catch(() => undefined)
    await this.lock.query('SELECT pg_advisory_unlock_all()').catch(() => undefined)
    await this.lock.end().catch(() => undefined)
  }

  /** Removes a node's schema and everything in it (tests, and `peakdb` when a node is deleted). */
  static async dropSchema (url: string, schema: string): Promise<void> {
    if (!SCHEMA_NAME.test(schema)) throw new StorageUnavailableError(`schema name ${JSON.stringify(schema)} is not valid`)
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      // CASCADE removes the schema's tables and functions; the vector extension lives in public
      await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`)
    } finally {
      await client.end()
    }
  }
}

/** Makes sure pgvector is available in the database, with advice when it is not installed. */
async function ensureVector (client: Queryable, location: string): Promise<void> {
  const installed = await client.query<{ v: string | null }>("SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS v")
  if (installed.rows[0]?.v != null) return
  try {
    await client.query('CREATE EXTENSION IF NOT EXISTS vector SCHEMA public')
  } catch (err) {
    const e = err as { code?: string, message: string }
    // two nodes opening at once: the other one created it
    if (e.code === '23505' || e.code === '42710') return
    throw new StorageUnavailableError(`PostgreSQL at ${location} has no pgvector extension for search (${e.message}); install it on the server (this project's scripts/install-pgvector.sh does, from Debian's source package) or ask its administrator to run CREATE EXTENSION vector`, { cause: err })
  }
}
