/**
 * Schema discovery on SQLite: tables, views, columns, keys and indexes of a database file, read
 * from sqlite_schema and the table_list, table_xinfo, index_list and index_xinfo pragmas. In a
 * PeakDB file, the tables PeakDB made are marked.
 */
import Database, { type Database as Db } from 'better-sqlite3'
import * as sqliteVec from 'sqlite-vec'
import { byQualifiedName, type ColumnDescription, type IndexDescription, type IndexKey, type SchemaDescription, type TableDescription } from '../introspect.js'
import { MIGRATIONS } from './schema.js'
import { SCHEMA_TABLE } from '../migrate/schema-source.js'

interface TableListRow { schema: string, name: string, type: string, wr: number }
interface XInfoRow { cid: number, name: string, type: string, notnull: number, dflt_value: string | null, pk: number, hidden: number }
interface IndexListRow { name: string, unique: number, origin: string, partial: number }
interface IndexXInfoRow { seqno: number, cid: number, name: string | null, key: number }

/** Tables PeakDB's migrations create (the vector tables it adds later are listed in vector_tables). */
const PEAKDB_TABLES = new Set([SCHEMA_TABLE, ...MIGRATIONS.flatMap(m => [...m.sql.matchAll(/CREATE (?:VIRTUAL )?TABLE (\w+)/g)].map(x => x[1] as string))])

/** Quotes an identifier for a pragma argument or statement. */
function quote (name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/**
 * Splits the key list of a CREATE INDEX statement into its terms, as written (`lower(a)`,
 * `b`), without ASC/DESC: SQLite reports an expression key only as "an expression", so its text
 * comes from the statement. Quotes and nested parentheses are skipped over.
 */
export function indexTerms (sql: string): string[] {
  const on = /\bON\s+(?:"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|[\w.]+)\s*\(/i.exec(sql)
  if (on === null) return []
  const terms: string[] = []
  let depth = 0
  let start = on.index + on[0].length
  let quoteChar: string | undefined
  for (let i = start; i < sql.length; i++) {
    const ch = sql[i] as string
    if (quoteChar !== undefined) {
      if (ch === quoteChar) quoteChar = undefined
      continue
    }
    if (ch === "'" || ch === '"' || ch === '`') quoteChar = ch
    else if (ch === '[') quoteChar = ']'
    else if (ch === '(') depth++
    else if (ch === ')' && depth > 0) depth--
    else if (depth === 0 && (ch === ',' || ch === ')')) {
      terms.push(sql.slice(start, i).trim().replace(/\s+(ASC|DESC)$/i, ''))
      if (ch === ')') break
      start = i + 1
    }
  }
  return terms
}

/** sqlite-vec's vector columns in a `CREATE VIRTUAL TABLE … USING vec0(…)` statement: name to dimensions. */
function vecColumns (sql: string): Map<string, { type: string, dims: number }> {
  const out = new Map<string, { type: string, dims: number }>()
  for (const m of sql.matchAll(/(\w+)\s+(float|int8|bit)\[(\d+)\]/gi)) out.set(m[1] as string, { type: `${m[2] as string}[${m[3] as string}]`, dims: Number(m[3]) })
  return out
}

/** True when the database is a PeakDB one (its migrations ran, its log tables are there). */
function isPeakdbFile (db: Db, names: ReadonlySet<string>): boolean {
  return (db.pragma('user_version', { simple: true }) as number) > 0 && ['meta', 'entries', 'docs'].every(t => names.has(t))
}

/**
 * Describes the tables and views of an open SQLite database (schema `main`). Shadow tables of
 * virtual tables (FTS5, sqlite-vec) are left out; the virtual tables themselves are listed.
 * Synchronous, like every better-sqlite3 call.
 */
export function describeSqliteDb (db: Db, location: string): SchemaDescription {
  const list = (db.pragma('table_list') as TableListRow[]).filter(t => t.schema === 'main' && !t.name.startsWith('sqlite_'))
  const sqlOf = new Map((db.prepare("SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL").all() as Array<{ name: string, sql: string }>).map(r => [r.name, r.sql]))
  const vecTables = list.filter(t => t.type === 'virtual' && /\bUSING\s+vec0\b/i.test(sqlOf.get(t.name) ?? ''))
  // sqlite-vec keeps some of its tables as plain ones (`<name>_vector_chunks00`): they belong to it
  const internal = (name: string): boolean => vecTables.some(v => name.startsWith(`${v.name}_`))
  const visible = list.filter(t => (t.type === 'table' || t.type === 'view' || t.type === 'virtual') && !(t.type === 'table' && internal(t.name)))
  const names = new Set(visible.map(t => t.name))
  const peakdbFile = isPeakdbFile(db, names)
  const peakdbNames = new Set(PEAKDB_TABLES)
  if (peakdbFile && names.has('vector_tables')) {
    for (const n of db.prepare('SELECT name FROM vector_tables').pluck().all() as string[]) peakdbNames.add(n)
  }

  const tables = visible.map((t): TableDescription => {
    const sql = sqlOf.get(t.name) ?? ''
    let xinfo: XInfoRow[]
    try {
      xinfo = db.pragma(`table_xinfo(${quote(t.name)})`) as XInfoRow[]
    } catch {
      // a virtual table whose module is not loaded here cannot list its columns: show it without them
      xinfo = []
    }
    const vec = t.type === 'virtual' ? vecColumns(sql) : new Map<string, { type: string, dims: number }>()
    const pk = xinfo.filter(c => c.pk > 0).sort((a, b) => a.pk - b.pk).map(c => c.name)
    // an INTEGER PRIMARY KEY is the rowid, and WITHOUT ROWID tables refuse NULL keys: neither is ever null
    const rowidAlias = t.wr === 0 && pk.length === 1 && xinfo.some(c => c.name === pk[0] && c.type.toUpperCase() === 'INTEGER')
    const columns = xinfo.filter(c => c.hidden !== 1).map((c): ColumnDescription => {
      const v = vec.get(c.name)
      return {
        name: c.name,
        type: v?.type ?? c.type,
        baseType: v !== undefined ? `${v.type.slice(0, v.type.indexOf('['))}[]` : c.type.toLowerCase().replace(/\s*\(.*$/, '').trim(),
        array: false,
        nullable: c.notnull === 0 && !(c.pk > 0 && (rowidAlias || t.wr === 1)),
        default: c.dflt_value,
        generated: c.hidden === 2 || c.hidden === 3,
        ...(v !== undefined ? { vectorDims: v.dims } : {})
      }
    })
    const indexes = t.type === 'table' ? tableIndexes(db, t.name, sqlOf) : []
    return {
      schema: 'main',
      name: t.name,
      kind: t.type === 'view' ? 'view' : 'table',
      peakdb: peakdbFile && peakdbNames.has(t.name),
      columns,
      primaryKey: pk,
      indexes
    }
  })
  return { engine: 'sqlite', location, tables: tables.sort(byQualifiedName) }
}

function tableIndexes (db: Db, table: string, sqlOf: ReadonlyMap<string, string>): IndexDescription[] {
  const list = db.pragma(`index_list(${quote(table)})`) as IndexListRow[]
  return list.map(i => {
    const info = (db.pragma(`index_xinfo(${quote(i.name)})`) as IndexXInfoRow[]).filter(k => k.key === 1).sort((a, b) => a.seqno - b.seqno)
    const terms = info.some(k => k.cid === -2) ? indexTerms(sqlOf.get(i.name) ?? '') : []
    const keys = info.map((k, n): IndexKey => k.name !== null ? { column: k.name } : k.cid === -1 ? { column: 'rowid' } : { expression: terms[n] ?? '' })
    return { name: i.name, keys, unique: i.unique === 1, primary: i.origin === 'pk', partial: i.partial === 1 }
  }).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
}

/**
 * Describes an SQLite database file without changing it (opened read-only; sqlite-vec is
 * loaded so its vector tables show their columns).
 *
 * @example
 * ```ts
 * const { tables } = describeSqliteFile('./app.sqlite')
 * ```
 */
export function describeSqliteFile (path: string): SchemaDescription {
  const db = new Database(path, { readonly: true, fileMustExist: true })
  try {
    sqliteVec.load(db)
    return describeSqliteDb(db, path)
  } finally {
    db.close()
  }
}
