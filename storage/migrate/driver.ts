/**
 * What the migrator needs from a database: transactions that hold the migration lock, and the
 * migrations table. Implemented for PostgreSQL (pg-driver.ts) and SQLite (sqlite-driver.ts).
 */
import type { MigrationDialect } from './migration.js'

/** The default name of the table that records applied migrations. */
export const MIGRATIONS_TABLE = 'peakdb_migrations'

/** An applied migration as recorded. */
export interface AppliedMigration {
  readonly name: string
  /** ISO 8601. */
  readonly appliedAt: string
}

/** One transaction of a driver, holding the migration lock. */
export interface DriverTransaction {
  /** Runs one statement (or, without params, possibly several) and returns the rows of the last. */
  run (sql: string, params?: readonly unknown[]): Promise<Array<Record<string, unknown>>>
  /** The applied migrations, sorted by name. */
  applied (): Promise<AppliedMigration[]>
  record (name: string): Promise<void>
  unrecord (name: string): Promise<void>
  /** A column's current type, where the database can say (PostgreSQL); undefined otherwise. */
  columnType (table: string, column: string): Promise<string | undefined>
  /** Throws when the transaction broke a constraint the database checks only on request (SQLite foreign keys). */
  check (): Promise<void>
}

/** A database connection dedicated to migrations. */
export interface MigrationDriver {
  readonly dialect: MigrationDialect
  /** Where it points, for messages (no password). */
  readonly location: string
  /**
   * Runs `fn` in one transaction that holds the migration lock (so that two processes never
   * migrate at once) and sees the migrations table. Commits when `fn` resolves and `commit` is
   * true; rolls back otherwise, whole.
   */
  transaction<T> (fn: (tx: DriverTransaction) => Promise<T>, options: { readonly commit: boolean }): Promise<T>
  close (): Promise<void>
}

/** A name as an SQL identifier: as it is when plain, else double-quoted. */
export function quoteName (name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`
}
