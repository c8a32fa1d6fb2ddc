/**
 * Schema discovery: the shape of what a database holds (tables and views, their columns, keys
 * and indexes), whoever created it. This file is the contract; storage/postgres/pg-introspect.ts
 * and storage/sqlite/sqlite-introspect.ts read it from each engine's catalog.
 */

/** One column of a table or view. */
export interface ColumnDescription {
  readonly name: string
  /** The type as the engine shows it: `character varying(40)`, `vector(3)`, `INTEGER` (SQLite: as declared, possibly ''). */
  readonly type: string
  /**
   * The engine's name of the underlying type, lower case and without modifiers: PostgreSQL's
   * pg_type name (`int4`, `varchar`, `timestamptz`, `vector`; a domain gives its base type, an
   * array its element's), SQLite's declared type (`integer`, `varchar`, '' when none).
   */
  readonly baseType: string
  /** True for an array of `baseType` (PostgreSQL). */
  readonly array: boolean
  readonly nullable: boolean
  /** The default expression as the engine prints it (`now()`, `'x'::text`, `0`), or null. */
  readonly default: string | null
  /** True for a generated (computed) column. */
  readonly generated: boolean
  /** Dimensions of a vector column (pgvector `vector(n)`, sqlite-vec `float[n]`). */
  readonly vectorDims?: number
  /** Labels of an enum type, in order (PostgreSQL). */
  readonly enumValues?: readonly string[]
}

/** One key of an index: a column, or an expression over the row. */
export type IndexKey = { readonly column: string } | { readonly expression: string }

/** One index of a table. */
export interface IndexDescription {
  readonly name: string
  readonly keys: readonly IndexKey[]
  readonly unique: boolean
  /** The index behind the primary key. */
  readonly primary: boolean
  /** True when it covers only rows matching a WHERE clause. */
  readonly partial: boolean
  /** Access method (PostgreSQL: `btree`, `hash`, `gin`, `hnsw`, …). */
  readonly method?: string
}

/** One table or view. */
export interface TableDescription {
  /** PostgreSQL schema; `main` on SQLite. */
  readonly schema: string
  readonly name: string
  /** Materialized views are views; foreign and partitioned tables are tables. */
  readonly kind: 'table' | 'view'
  /**
   * True for PeakDB's own tables: every table of a node's schema on PostgreSQL, the tables
   * PeakDB creates in its SQLite file. Anything else was made by someone else.
   */
  readonly peakdb: boolean
  readonly columns: readonly ColumnDescription[]
  /** Primary key columns in key order; empty when there is none. */
  readonly primaryKey: readonly string[]
  readonly indexes: readonly IndexDescription[]
}

/** What a database holds, tables ordered by schema and name. */
export interface SchemaDescription {
  readonly engine: 'postgres' | 'sqlite'
  /** Where it was read (no secrets). */
  readonly location: string
  readonly tables: readonly TableDescription[]
}

/** Options of {@link SchemaDescriber.describeSchema}. */
export interface DescribeSchemaOptions {
  /** PostgreSQL: describe this schema only (default: every user schema of the database). */
  readonly schema?: string
  readonly signal?: AbortSignal
}

/** A store that can describe the database it lives in. */
export interface SchemaDescriber {
  /**
   * Describes the tables and views of the store's database, PeakDB's own ones marked.
   *
   * @example
   * ```ts
   * const { tables } = await provider.describeSchema({ schema: 'public' })
   * for (const t of tables) console.log(t.name, t.columns.map(c => `${c.name} ${c.type}`))
   * ```
   */
  describeSchema (options?: DescribeSchemaOptions): Promise<SchemaDescription>
}

/** True when a store can describe its database (the SQLite and PostgreSQL providers can). */
export function canDescribeSchema<S extends object> (store: S): store is S & SchemaDescriber {
  return typeof (store as Partial<SchemaDescriber>).describeSchema === 'function'
}

/** Orders tables by schema, then name (code unit order, the same on every machine). */
export function byQualifiedName (a: TableDescription, b: TableDescription): number {
  if (a.schema !== b.schema) return a.schema < b.schema ? -1 : 1
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0
}
