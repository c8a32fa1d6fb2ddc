/**
 * PeakDB's own schema as migrations of the same engine that runs user migrations: each version is
 * a named piece of SQL, recorded in a table of its own (`peakdb_schema`) so that it never mixes
 * with the user's `peakdb_migrations` history in the same database.
 */
import { SchemaVersionError } from '../errors.js'
import type { MigrationDriver } from './driver.js'
import type { MigrationSource, NamedMigration } from './migration.js'
import { Migrator } from './migrator.js'

/** The table that records which of PeakDB's own migrations a database has. */
export const SCHEMA_TABLE = 'peakdb_schema'

/** One version of a built-in schema: a sortable name and the SQL that makes it. */
export interface SqlMigration {
  readonly name: string
  readonly sql: string
}

/** Migrations given in code as SQL text; each `up` runs its statements in order. */
export class SqlMigrationSource implements MigrationSource {
  private readonly migrations: readonly NamedMigration[]
  constructor (list: readonly SqlMigration[]) {
    this.migrations = list.map(({ name, sql }) => ({ name, migration: { up: async db => { await db.execute(sql) } } }))
  }

  async list (): Promise<NamedMigration[]> {
    return [...this.migrations]
  }
}

/**
 * Brings a built-in schema up to date through the {@link Migrator}, one transaction per
 * migration under the driver's lock (so two processes opening one database at once apply each
 * once). `legacyVersion` is the version the database recorded before its history was kept in
 * {@link SCHEMA_TABLE} (a counter): that many migrations are recorded as applied, once. A
 * database with a migration this build does not know was written by a newer PeakDB:
 * {@link SchemaVersionError}. Returns the names applied now.
 */
export async function migrateSchema (driver: MigrationDriver, list: readonly SqlMigration[], legacyVersion: number): Promise<string[]> {
  if (legacyVersion > list.length) {
    throw new SchemaVersionError(`database ${driver.location} has schema version ${legacyVersion}; this PeakDB supports up to ${list.length} (upgrade PeakDB)`)
  }
  const migrator = new Migrator(driver, new SqlMigrationSource(list))
  const status = await migrator.status()
  const unknown = status.filter(s => s.state === 'missing')
  if (unknown.length > 0) {
    throw new SchemaVersionError(`database ${driver.location} has schema migrations this PeakDB does not know (${unknown.map(s => s.name).join(', ')}); upgrade PeakDB`)
  }
  let applied = status.filter(s => s.state === 'applied').length
  if (applied === 0 && legacyVersion > 0 && await migrator.baseline(list.slice(0, legacyVersion).map(m => m.name))) applied = legacyVersion
  // the usual open: one read of the history
  if (applied === list.length) return []
  // PeakDB's own migrations ship reviewed with their release: the destructive-step guard is for
  // user migrations, and planning each one first would run it twice
  return (await migrator.apply({ allowDestructive: true })).map(p => p.name)
}
