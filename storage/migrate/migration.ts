/**
 * The contract of user schema migrations: a migration is a module with `up` and `down`, named by
 * a sortable prefix, run by the {@link Migrator} in one transaction each on PostgreSQL or SQLite.
 */

/** The SQL dialect a migration runs on. */
export type MigrationDialect = 'postgres' | 'sqlite'

/** Options of one {@link MigrationDb.execute} call. */
export interface ExecuteOptions {
  /**
   * Overrides the destructive-step check for this statement: `false` for a step known to lose
   * nothing (the DROP of a table whose rows were just copied elsewhere), or a reason to flag it.
   */
  readonly destructive?: string | false
}

/**
 * What `up` and `down` get: the target database inside the migration's transaction. Everything
 * a migration does goes through here, so `migrate plan` can show it and the guard can see it.
 */
export interface MigrationDb {
  readonly dialect: MigrationDialect
  /**
   * Runs SQL and returns the rows of its (last) statement. With `params` the text is one
   * statement with the dialect's placeholders (`$1` on PostgreSQL, `?` on SQLite); without,
   * it may hold several statements separated by `;`.
   */
  execute<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: ExecuteOptions): Promise<R[]>
  /**
   * SQLite only: changes a table the way SQLite's ALTER TABLE cannot (types, constraints,
   * column order, dropping a column used by an index) by rebuilding it (see {@link RebuildSpec}).
   * Throws on PostgreSQL, where ALTER TABLE does it in place.
   */
  rebuildTable (table: string, spec: RebuildSpec): Promise<void>
}

/**
 * A table rebuild on SQLite, following SQLite's procedure for "other kinds of table schema
 * changes": create the new table, copy the rows, drop the old one, rename the new one, re-create
 * the old table's indexes and triggers, check foreign keys before commit.
 */
export interface RebuildSpec {
  /** The new column and constraint definitions, as inside `CREATE TABLE t ( … )`. */
  readonly columns: string
  /**
   * SQL expressions over the old table's columns for new columns. A new column not named here
   * takes the old column of the same name, or its default when the old table has none.
   */
  readonly copy?: Readonly<Record<string, string>>
  /** What follows the parentheses of CREATE TABLE, e.g. `STRICT` or `WITHOUT ROWID`. */
  readonly tableOptions?: string
}

/**
 * One migration: `up` moves the schema forward, `down` (optional) takes it back. Both must work
 * only through `db`: `migrate plan` runs `up` in a transaction that is rolled back.
 *
 * @example
 * ```ts
 * import type { MigrationDb } from 'peakdb'
 * export async function up (db: MigrationDb): Promise<void> {
 *   await db.execute('CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL)')
 * }
 * export async function down (db: MigrationDb): Promise<void> {
 *   await db.execute('DROP TABLE users')
 * }
 * ```
 */
export interface Migration {
  up (db: MigrationDb): Promise<void>
  down? (db: MigrationDb): Promise<void>
}

/** A migration and its name (the file name without extension); names sort in applying order. */
export interface NamedMigration {
  readonly name: string
  readonly migration: Migration
}

/** Where migrations come from (a folder of files: {@link FileMigrationSource}). */
export interface MigrationSource {
  /** Every migration, sorted by name. */
  list (options?: { signal?: AbortSignal }): Promise<NamedMigration[]>
}

/** One statement a migration ran, or would run. */
export interface PlannedStatement {
  readonly sql: string
  readonly params?: readonly unknown[]
  /** Why the statement may lose data, when it may. */
  readonly destructive?: string
}

/** What one migration runs in one direction. */
export interface MigrationPlan {
  readonly name: string
  readonly direction: 'up' | 'down'
  readonly statements: readonly PlannedStatement[]
  /** True when a statement may lose data. */
  readonly destructive: boolean
}

/** A migration as `migrate status` shows it. */
export interface MigrationStatus {
  readonly name: string
  /** `missing`: recorded as applied, but no longer among the migration files. */
  readonly state: 'applied' | 'pending' | 'missing'
  /** When it was applied (ISO 8601). */
  readonly appliedAt?: string
}
