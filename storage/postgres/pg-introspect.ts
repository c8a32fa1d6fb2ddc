/**
 * Schema discovery on PostgreSQL: tables, views, columns, keys and indexes of every user schema
 * (or one), read from pg_catalog in four queries. A schema holding PeakDB's log tables is a
 * node's own, and its tables are marked.
 */
import type pg from 'pg'
import { byQualifiedName, type ColumnDescription, type DescribeSchemaOptions, type IndexDescription, type SchemaDescription, type TableDescription } from '../introspect.js'

/** Anything that runs a query: a pool or one of its clients. */
export type PgQueryable = pg.Pool | pg.ClientBase

/** Tables every node schema has (storage/postgres/schema.ts): a schema with all of them is PeakDB's. */
const NODE_TABLES = ['meta', 'entries', 'heads', 'docs', 'control', 'index_queue'] as const
/** Schemas PeakDB shares between nodes: the change log of adopted tables (storage/postgres/table-watch.ts). */
const SHARED_SCHEMAS = ['peakdb_watch'] as const

interface RelationRow { oid: number, schema: string, name: string, relkind: string }
interface ColumnRow {
  oid: number
  attnum: number
  name: string
  type: string
  typname: string
  typtype: string
  elem: string | null
  typmod: number
  nullable: boolean
  default: string | null
  generated: boolean
  enum_values: string[] | null
}
interface IndexRow { oid: number, name: string, unique: boolean, primary: boolean, partial: boolean, method: string, attnums: number[], defs: string[] }
interface KeyRow { oid: number, attnums: number[] }

// extension-owned relations (pgvector has none, others do) are the extension's, not the user's
const RELATIONS = `
  SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
    AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
    AND ($1::text IS NULL OR n.nspname = $1)
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  ORDER BY n.nspname, c.relname`

// a domain is described by its base type (one level), an array by its element type
const COLUMNS = `
  SELECT a.attrelid::int AS oid, a.attnum::int AS attnum, a.attname AS name,
    format_type(a.atttypid, a.atttypmod) AS type,
    b.typname::text AS typname, b.typtype::text AS typtype, e.typname::text AS elem, a.atttypmod AS typmod,
    NOT a.attnotnull AS nullable, pg_get_expr(ad.adbin, ad.adrelid) AS default,
    a.attgenerated <> '' AS generated,
    (SELECT array_agg(en.enumlabel::text ORDER BY en.enumsortorder) FROM pg_enum en
      WHERE en.enumtypid = coalesce(e.oid, b.oid)) AS enum_values
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
  LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A'
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
  ORDER BY a.attrelid, a.attnum`

// key columns only (not INCLUDE ones); attnum 0 is an expression, printed by pg_get_indexdef
const INDEXES = `
  SELECT i.indrelid::int AS oid, ic.relname AS name, i.indisunique AS unique, i.indisprimary AS primary,
    i.indpred IS NOT NULL AS partial, am.amname AS method,
    array(SELECT i.indkey[g - 1]::int FROM generate_series(1, i.indnkeyatts) g ORDER BY g) AS attnums,
    array(SELECT pg_get_indexdef(i.indexrelid, g, true) FROM generate_series(1, i.indnkeyatts) g ORDER BY g) AS defs
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
  WHERE i.indrelid = ANY($1::oid[])
  ORDER BY i.indrelid, ic.relname`

const PRIMARY_KEYS = `
  SELECT conrelid::int AS oid, conkey::int[] AS attnums FROM pg_constraint
  WHERE contype = 'p' AND conrelid = ANY($1::oid[])`

/** pgvector's types whose type modifier is the number of dimensions. */
const VECTOR_TYPES = new Set(['vector', 'halfvec', 'sparsevec'])

function column (r: ColumnRow): ColumnDescription {
  const array = r.elem !== null
  const baseType = r.elem ?? r.typname
  return {
    name: r.name,
    type: r.type,
    baseType,
    array,
    nullable: r.nullable,
    default: r.default,
    generated: r.generated,
    ...(VECTOR_TYPES.has(baseType) && r.typmod > 0 ? { vectorDims: r.typmod } : {}),
    ...(r.enum_values !== null ? { enumValues: r.enum_values } : {})
  }
}

/**
 * Describes the tables and views of a PostgreSQL database: every schema but the system ones,
 * or `options.schema` only.
 *
 * @example
 * ```ts
 * const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1/app' })
 * const { tables } = await describePostgres(pool, 'postgres://…/app', { schema: 'public' })
 * ```
 */
export async function describePostgres (db: PgQueryable, location: string, options: DescribeSchemaOptions = {}): Promise<SchemaDescription> {
  const signal = options.signal
  signal?.throwIfAborted()
  const relations = (await db.query<RelationRow>(RELATIONS, [options.schema ?? null])).rows
  const oids = relations.map(r => r.oid)
  signal?.throwIfAborted()
  // one statement each, run in turn: a single client cannot run them side by side
  const columns = (await db.query<ColumnRow>(COLUMNS, [oids])).rows
  const indexes = (await db.query<IndexRow>(INDEXES, [oids])).rows
  const keys = (await db.query<KeyRow>(PRIMARY_KEYS, [oids])).rows
  signal?.throwIfAborted()

  const columnsOf = group(columns)
  const indexesOf = group(indexes)
  const keyOf = new Map(keys.map(k => [k.oid, k.attnums]))
  const tablesBySchema = new Map<string, Set<string>>()
  for (const r of relations) {
    let names = tablesBySchema.get(r.schema)
    if (names === undefined) tablesBySchema.set(r.schema, names = new Set())
    if (r.relkind === 'r') names.add(r.name)
  }
  const nodeSchemas = new Set<string>([...SHARED_SCHEMAS, ...[...tablesBySchema].filter(([, names]) => NODE_TABLES.every(t => names.has(t))).map(([s]) => s)])

  const tables: TableDescription[] = relations.map(r => {
    const cols = columnsOf.get(r.oid) ?? []
    const nameAt = new Map(cols.map(c => [c.attnum, c.name]))
    return {
      schema: r.schema,
      name: r.name,
      kind: r.relkind === 'v' || r.relkind === 'm' ? 'view' : 'table',
      peakdb: nodeSchemas.has(r.schema),
      columns: cols.map(column),
      primaryKey: (keyOf.get(r.oid) ?? []).map(n => nameAt.get(n) ?? String(n)),
      indexes: (indexesOf.get(r.oid) ?? []).map((i): IndexDescription => ({
        name: i.name,
        keys: i.attnums.map((n, k) => {
          const name = n === 0 ? undefined : nameAt.get(n)
          return name !== undefined ? { column: name } : { expression: i.defs[k] ?? '' }
        }),
        unique: i.unique,
        primary: i.primary,
        partial: i.partial,
        method: i.method
      }))
    }
  })
  return { engine: 'postgres', location, tables: tables.sort(byQualifiedName) }
}

function group<R extends { oid: number }> (rows: readonly R[]): Map<number, R[]> {
  const out = new Map<number, R[]>()
  for (const r of rows) {
    const list = out.get(r.oid)
    if (list === undefined) out.set(r.oid, [r])
    else list.push(r)
  }
  return out
}
