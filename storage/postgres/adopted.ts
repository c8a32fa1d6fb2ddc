/**
 * An existing PostgreSQL table adopted as a collection: its primary key is `_id`, its columns are
 * the document's fields, and values are checked against the column types before they reach the
 * server. Adopted tables are the database's own data: they are never written to the signed log
 * nor replicated. Changes any client makes to the table (another process, psql) reach watchers
 * through triggers, a change table and LISTEN/NOTIFY (storage/postgres/table-watch.ts).
 */
import type { Pool } from 'pg'
import type { JsonObject, JsonValue } from '../../crdt/index.js'
import { ColumnTypeError, InvalidQueryError, StorageClosedError } from '../errors.js'
import type { CollectionInfo, DocChange, DocumentStore, StoredDoc } from '../provider.js'
import type { FieldPath, Filter, NormalisedQuery, Scalar } from '../query.js'

/** A column of an adopted table. */
export interface Column {
  readonly name: string
  /** PostgreSQL type name (`udt_name`: int4, text, timestamptz, _text for text[] ...). */
  readonly type: string
  readonly nullable: boolean
  readonly hasDefault: boolean
  /** Largest length of a varchar/char column. */
  readonly maxLength: number | null
}

const TABLE_NAME = /^(?:([A-Za-z_][A-Za-z0-9_$]{0,62})\.)?([A-Za-z_][A-Za-z0-9_$]{0,62})$/

const INTS: Record<string, [number, number]> = { int2: [-32768, 32767], int4: [-2147483648, 2147483647], int8: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER] }
const NUMBERS = new Set(['float4', 'float8', 'numeric'])
const TEXTS = new Set(['text', 'varchar', 'bpchar', 'name', 'citext'])
const TIMES = new Set(['timestamp', 'timestamptz', 'date', 'time', 'timetz'])
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

function quote (name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/** What a column type expects, for messages. */
function expected (c: Column): string {
  if (c.type in INTS) return `an integer (${c.type})`
  if (NUMBERS.has(c.type)) return `a number (${c.type})`
  if (TEXTS.has(c.type)) return `a string${c.maxLength !== null ? ` of at most ${c.maxLength} characters` : ''} (${c.type})`
  if (c.type === 'bool') return 'true or false (bool)'
  if (TIMES.has(c.type)) return `a date/time string (${c.type})`
  if (c.type === 'uuid') return 'a UUID string (uuid)'
  if (c.type === 'json' || c.type === 'jsonb') return `any JSON value (${c.type})`
  if (c.type.startsWith('_')) return `an array (${c.type.slice(1)}[])`
  return `a string (${c.type})`
}

/** Whether a value fits a column type (null aside). */
function fits (c: Column, v: JsonValue): boolean {
  const range = INTS[c.type]
  if (range !== undefined) return typeof v === 'number' && Number.isInteger(v) && v >= range[0] && v <= range[1]
  if (NUMBERS.has(c.type)) return typeof v === 'number' && Number.isFinite(v)
  if (TEXTS.has(c.type)) return typeof v === 'string' && (c.maxLength === null || [...v].length <= c.maxLength) && !v.includes('\u0000')
  if (c.type === 'bool') return typeof v === 'boolean'
  if (TIMES.has(c.type)) return typeof v === 'string' && (c.type.startsWith('time') && !c.type.startsWith('timestamp') ? /^\d{1,2}:\d{2}/.test(v) : !Number.isNaN(Date.parse(v)))
  if (c.type === 'uuid') return typeof v === 'string' && UUID.test(v)
  if (c.type === 'json' || c.type === 'jsonb') return true
  if (c.type.startsWith('_')) {
    const element: Column = { ...c, type: c.type.slice(1), nullable: true }
    return Array.isArray(v) && v.every(x => x === null || fits(element, x))
  }
  return typeof v === 'string'
}

/** A row as a document: `_id` from the primary key, dates as ISO strings, numbers as numbers. */
function toJson (v: unknown): JsonValue {
  if (v === null || v === undefined) return null
  if (v instanceof Date) return v.toISOString()
  if (Buffer.isBuffer(v)) return v.toString('base64')
  if (Array.isArray(v)) return v.map(toJson)
  if (typeof v === 'bigint') return Number(v)
  return v as JsonValue
}

/** One adopted table, as a {@link DocumentStore} of one collection. */
export class AdoptedTable implements DocumentStore {
  readonly kind = 'postgres-table'
  readonly location: string
  readonly qualified: string
  private closed = false
  private readonly byName: Map<string, Column>

  private constructor (private readonly pool: Pool, readonly collection: string, readonly schema: string, readonly table: string, readonly key: Column, readonly columns: readonly Column[], location: string) {
    this.qualified = `${quote(schema)}.${quote(table)}`
    this.location = `${location}#${schema}.${table}`
    this.byName = new Map(columns.map(c => [c.name, c]))
  }

  /**
   * Reads a table's columns and primary key. Throws {@link ColumnTypeError} for a table that does
   * not exist or has no single-column primary key.
   */
  static async open (pool: Pool, collection: string, name: string, location: string): Promise<AdoptedTable> {
    const m = TABLE_NAME.exec(name)
    if (m === null) throw new ColumnTypeError(`table name ${JSON.stringify(name)} is not valid (schema.table, letters, digits, _ and $)`)
    const schema = m[1] ?? 'public'
    const table = m[2] as string
    const cols = await pool.query<{ name: string, type: string, nullable: string, def: string | null, max: number | null }>(
      `SELECT column_name AS name, udt_name AS type, is_nullable AS nullable, column_default AS def, character_maximum_length AS max
       FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, [schema, table])
    if (cols.rows.length === 0) throw new ColumnTypeError(`table ${schema}.${table} does not exist at ${location} (or has no columns)`)
    const pk = await pool.query<{ name: string }>(
      `SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
       WHERE i.indrelid = to_regclass($1) AND i.indisprimary`, [`${quote(schema)}.${quote(table)}`])
    if (pk.rows.length !== 1) throw new ColumnTypeError(`table ${schema}.${table} has ${pk.rows.length === 0 ? 'no primary key' : 'a primary key of several columns'}: an adopted table needs one primary-key column, which becomes _id`)
    const columns = cols.rows.map(r => ({ name: r.name, type: r.type, nullable: r.nullable === 'YES', hasDefault: r.def !== null, maxLength: r.max }))
    const key = columns.find(c => c.name === pk.rows[0]?.name) as Column
    return new AdoptedTable(pool, collection, schema, table, key, columns, location)
  }

  private check (): void {
    if (this.closed) throw new StorageClosedError(`adopted table ${this.schema}.${this.table} is closed`)
  }

  private column (path: FieldPath): Column {
    if (path.isId) return this.key
    const c = path.segments.length === 1 ? this.byName.get(path.segments[0] as string) : undefined
    if (c === undefined || c === this.key) throw new InvalidQueryError(`table ${this.schema}.${this.table} has no column ${JSON.stringify(path.segments.join('.'))} (columns: _id, ${this.columns.filter(x => x !== this.key).map(x => x.name).join(', ')}); queries on adopted tables name columns`)
    return c
  }

  /** Checks a value against a column, naming both when it does not fit. */
  private checkValue (c: Column, v: JsonValue | undefined, where: string): void {
    if (v === undefined || v === null) return
    if (!fits(c, v)) throw new ColumnTypeError(`${where}: column ${c.name} of ${this.schema}.${this.table} expects ${expected(c)}, got ${JSON.stringify(v).slice(0, 80)}`)
  }

  private idParam (id: string): string | number {
    if (this.key.type in INTS) {
      const n = Number(id)
      if (!Number.isSafeInteger(n)) throw new ColumnTypeError(`_id ${JSON.stringify(id)}: the primary key ${this.key.name} of ${this.schema}.${this.table} is ${expected(this.key)}`)
      return n
    }
    if (this.key.type === 'uuid' && !UUID.test(id)) throw new ColumnTypeError(`_id ${JSON.stringify(id)}: the primary key ${this.key.name} of ${this.schema}.${this.table} is ${expected(this.key)}`)
    return id
  }

  private doc (row: Record<string, unknown>): { id: string, body: JsonObject } {
    const body: JsonObject = {}
    for (const c of this.columns) if (c !== this.key) body[c.name] = toJson(row[c.name])
    return { id: String(row[this.key.name]), body }
  }

  private param (c: Column, v: JsonValue): unknown {
    return c.type === 'json' || c.type === 'jsonb' ? JSON.stringify(v) : v
  }

  async getDocument (_collection: string, id: string): Promise<StoredDoc | undefined> {
    this.check()
    let key: string | number
    try {
      key = this.idParam(id)
    } catch {
      return undefined
    }
    const { rows } = await this.pool.query(`SELECT * FROM ${this.qualified} WHERE ${quote(this.key.name)} = $1`, [key])
    return rows[0] === undefined ? undefined : { body: this.doc(rows[0] as Record<string, unknown>).body, meta: '{}' }
  }

  /** Writes whole rows (a body replaces the row: absent columns take their default or null), or deletes them. */
  async writeLocal (collection: string, writes: ReadonlyArray<{ readonly id: string, readonly body: JsonObject | null }>): Promise<DocChange[]> {
    this.check()
    for (const w of writes) {
      this.idParam(w.id)
      if (w.body === null) continue
      for (const [field, v] of Object.entries(w.body)) {
        const c = this.byName.get(field)
        if (c === undefined || c === this.key) throw new ColumnTypeError(`document ${JSON.stringify(w.id)}: ${this.schema}.${this.table} has no column ${JSON.stringify(field)} (columns: ${this.columns.filter(x => x !== this.key).map(x => x.name).join(', ')})`)
        this.checkValue(c, v, `document ${JSON.stringify(w.id)}`)
      }
      for (const c of this.columns) {
        if (c !== this.key && !c.nullable && !c.hasDefault && (w.body[c.name] === undefined || w.body[c.name] === null)) throw new ColumnTypeError(`document ${JSON.stringify(w.id)}: column ${c.name} of ${this.schema}.${this.table} is NOT NULL and has no default`)
      }
    }
    const client = await this.pool.connect()
    const changes: DocChange[] = []
    try {
      await client.query('BEGIN')
      for (const w of writes) {
        const key = this.idParam(w.id)
        const was = (await client.query(`SELECT * FROM ${this.qualified} WHERE ${quote(this.key.name)} = $1 FOR UPDATE`, [key])).rows[0] as Record<string, unknown> | undefined
        const before = was === undefined ? null : this.doc(was).body
        if (w.body === null) {
          if (was === undefined) continue
          await client.query(`DELETE FROM ${this.qualified} WHERE ${quote(this.key.name)} = $1`, [key])
        } else {
          const body = w.body
          const cols = this.columns.filter(c => c !== this.key)
          const params: unknown[] = [key]
          const values = cols.map(c => {
            const v = body[c.name]
            if (v === undefined && c.hasDefault) return 'DEFAULT'
            params.push(v === undefined ? null : this.param(c, v))
            return `$${params.length}`
          })
          const set = cols.map(c => `${quote(c.name)} = excluded.${quote(c.name)}`)
          await client.query(`INSERT INTO ${this.qualified} (${[this.key, ...cols].map(c => quote(c.name)).join(', ')}) VALUES ($1${values.length > 0 ? ', ' + values.join(', ') : ''})
            ON CONFLICT (${quote(this.key.name)}) DO ${set.length > 0 ? `UPDATE SET ${set.join(', ')}` : 'NOTHING'}`, params)
        }
        const now = (await client.query(`SELECT * FROM ${this.qualified} WHERE ${quote(this.key.name)} = $1`, [key])).rows[0] as Record<string, unknown> | undefined
        const after = now === undefined ? null : this.doc(now).body
        if (JSON.stringify(before) !== JSON.stringify(after)) changes.push({ collection, id: w.id, before, after })
      }
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined)
      if ((err as { code?: string }).code?.startsWith('22') === true || (err as { code?: string }).code?.startsWith('23') === true) {
        throw new ColumnTypeError(`${this.schema}.${this.table} refused the write: ${(err as Error).message}`, { cause: err })
      }
      throw err
    } finally {
      client.release()
    }
    return changes
  }

  private compile (filter: Filter | undefined, params: unknown[]): string {
    if (filter === undefined) return 'true'
    const add = (v: unknown): string => {
      params.push(v)
      return `$${params.length}`
    }
    const value = (c: Column, v: Scalar): unknown => {
      if (c === this.key && typeof v === 'string') return this.idParam(v)
      this.checkValue(c, v, 'query')
      return v === null ? null : this.param(c, v)
    }
    const walk = (f: Filter): string => {
      switch (f.op) {
        case 'and':
        case 'or':
          if (f.items.length === 0) return f.op === 'and' ? 'true' : 'false'
          return `(${f.items.map(walk).join(f.op === 'and' ? ' AND ' : ' OR ')})`
        case 'not':
          return `NOT COALESCE(${walk(f.item)}, false)`
        case 'exists': {
          const c = this.column(f.path)
          return `${quote(c.name)} IS ${f.exists ? 'NOT ' : ''}NULL`
        }
        case 'prefix':
          return `starts_with(${quote(this.column(f.path).name)}::text, ${add(f.prefix)})`
        case 'in':
        case 'nin': {
          const c = this.column(f.path)
          const values = f.values.filter(v => v !== null).map(v => value(c, v))
          let text = values.length === 0 ? 'false' : `${quote(c.name)} IN (${values.map(add).join(', ')})`
          if (f.values.includes(null)) text = `(${text} OR ${quote(c.name)} IS NULL)`
          return f.op === 'in' ? text : `NOT COALESCE(${text}, false)`
        }
        case 'cmp': {
          const c = this.column(f.path)
          const col = quote(c.name)
          if (f.cmp === 'contains') {
            if (c.type.startsWith('_')) return `${add(f.value)} = ANY(${col})`
            return `strpos(${col}::text, ${add(String(f.value))}) > 0`
          }
          if (f.value === null) return f.cmp === 'ne' ? `${col} IS NOT NULL` : f.cmp === 'eq' ? `${col} IS NULL` : 'false'
          const op = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' }[f.cmp]
          const text = `${col} ${op} ${add(value(c, f.value))}`
          return f.cmp === 'ne' ? `(${text} OR ${col} IS NULL)` : text
        }
      }
    }
    return walk(filter)
  }

  async find (_collection: string, query: NormalisedQuery): Promise<Array<{ id: string, body: JsonObject }>> {
    this.check()
    const params: unknown[] = []
    const where = this.compile(query.filter, params)
    const order = query.orderBy.map(o => `${quote(this.column(o.path).name)} ${o.desc ? 'DESC' : 'ASC'} NULLS FIRST`)
    if (!query.orderBy.some(o => o.path.isId)) order.push(`${quote(this.key.name)} ASC`)
    let sql = `SELECT * FROM ${this.qualified} WHERE ${where} ORDER BY ${order.join(', ')}`
    if (query.limit !== undefined || query.offset > 0) {
      params.push(query.limit ?? null, query.offset)
      sql += ` LIMIT $${params.length - 1} OFFSET $${params.length}`
    }
    return (await this.pool.query(sql, params)).rows.map(r => this.doc(r as Record<string, unknown>))
  }

  async count (_collection: string, filter: Filter | undefined): Promise<number> {
    this.check()
    const params: unknown[] = []
    const where = this.compile(filter, params)
    return Number((await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.qualified} WHERE ${where}`, params)).rows[0]?.n ?? 0)
  }

  async collections (): Promise<CollectionInfo[]> {
    return [{ name: this.collection, count: await this.count(this.collection, undefined), indexes: [] }]
  }

  async ensureIndex (): Promise<void> {
    throw new ColumnTypeError(`${this.schema}.${this.table} is the database's own table: PeakDB does not add indexes to it (create them with SQL)`)
  }

  async collectionDigests (): Promise<Map<string, string>> {
    return new Map()
  }

  async checkIntegrity (): Promise<string[]> {
    return []
  }

  /** Lets go of the table (the pool belongs to its provider). */
  async close (): Promise<void> {
    this.closed = true
  }
}
