/**
 * storage/migrate/: typed migrations of user schemas on PostgreSQL and SQLite. The drivers load
 * their database clients only where used: import them from storage/migrate/pg-driver.js and
 * storage/migrate/sqlite-driver.js.
 */
export * from './migration.js'
export * from './errors.js'
export { Migrator, type ApplyOptions } from './migrator.js'
export { FileMigrationSource, newMigrationFile, migrationStamp } from './file-source.js'
export { assessStatement, narrows, splitStatements, type StatementRisk, type TypeChange } from './destructive.js'
export { MIGRATIONS_TABLE, type MigrationDriver, type DriverTransaction, type AppliedMigration } from './driver.js'
export type { PostgresMigrationOptions } from './pg-driver.js'
export type { SqliteMigrationOptions } from './sqlite-driver.js'

/** Where to migrate: a PostgreSQL database (its default schema) or a SQLite file. */
export type MigrationTarget =
  | { readonly kind: 'postgres', readonly url: string, readonly table?: string }
  | { readonly kind: 'sqlite', readonly path: string, readonly table?: string, readonly create?: boolean }

/**
 * Opens a migration driver for `target`, loading only its database client. Close it when done.
 *
 * @example
 * ```ts
 * const driver = await openMigrationDriver({ kind: 'sqlite', path: 'app.sqlite', create: true })
 * try {
 *   await new Migrator(driver, new FileMigrationSource('./migrations')).apply()
 * } finally {
 *   await driver.close()
 * }
 * ```
 */
export async function openMigrationDriver (target: MigrationTarget): Promise<import('./driver.js').MigrationDriver> {
  if (target.kind === 'postgres') {
    const { PostgresMigrationDriver } = await import('./pg-driver.js')
    return await PostgresMigrationDriver.connect(target)
  }
  const { SqliteMigrationDriver } = await import('./sqlite-driver.js')
  return SqliteMigrationDriver.open(target)
}
