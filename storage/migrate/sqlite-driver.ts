/**
 * Migrations on SQLite: one dedicated better-sqlite3 connection; each transaction is
 * `BEGIN IMMEDIATE`, which takes the database's write lock up front, so a second process waits
 * (up to `timeoutMs`) and then sees what the first recorded.
 */
import Database from 'better-sqlite3'
import { MIGRATIONS_TABLE, quoteName, type AppliedMigration, type DriverTransaction, type MigrationDriver } from './driver.js'
import { splitStatements } from './destructive.js'

/** Options of {@link SqliteMigrationDriver.open}. */
export interface SqliteMigrationOptions {
  readonly path: string
  /** The migrations table (default `peakdb_migrations`). */
  readonly table?: string
  /** How long to wait for another writer, in ms (default 30000). */
  readonly timeoutMs?: number
  /** Create the file when missing (default false). */
  readonly create?: boolean
}

/** The SQLite side of the migrator. */
export class SqliteMigrationDriver implements MigrationDriver {
  readonly dialect = 'sqlite'
  private constructor (private readonly db: Database.Database, readonly location: string, private readonly table: string, private readonly owned: boolean) {}

  /** Opens the file at `path` for migrations. */
  static open (options: SqliteMigrationOptions): SqliteMigrationDriver {
    const db = new Database(options.path, { fileMustExist: options.create !== true, timeout: options.timeoutMs ?? 30_000 })
    return new SqliteMigrationDriver(db, options.path, quoteName(options.table ?? MIGRATIONS_TABLE), true)
  }

  /**
   * Migrates on a connection its owner keeps (PeakDB's own schema, at open): nothing else may use
   * the connection until the migrations are done, and `close` leaves it open.
   */
  static attach (db: Database.Database, location: string, table: string): SqliteMigrationDriver {
    return new SqliteMigrationDriver(db, location, quoteName(table), false)
  }

  /**
   * Foreign keys are off for the transaction, as SQLite's table-rebuild procedure requires
   * (they cannot be switched inside one), and checked with `PRAGMA foreign_key_check` before
   * commit. Awaiting inside the transaction is safe here: this connection serves nothing else.
   */
  async transaction<T> (fn: (tx: DriverTransaction) => Promise<T>, options: { readonly commit: boolean }): Promise<T> {
    const db = this.db
    const foreignKeys = db.pragma('foreign_keys', { simple: true }) as number
    db.pragma('foreign_keys = OFF')
    db.exec('BEGIN IMMEDIATE')
    try {
      db.exec(`CREATE TABLE IF NOT EXISTS ${this.table} (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`)
      const result = await fn(this.tx())
      db.exec(options.commit ? 'COMMIT' : 'ROLLBACK')
      return result
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK')
      throw err
    } finally {
      db.pragma(`foreign_keys = ${foreignKeys === 1 ? 'ON' : 'OFF'}`)
    }
  }

  private tx (): DriverTransaction {
    const db = this.db
    const table = this.table
    const run = async (sql: string, params?: readonly unknown[]): Promise<Array<Record<string, unknown>>> => {
      const texts = params === undefined ? splitStatements(sql) : [sql]
      let rows: Array<Record<string, unknown>> = []
      for (const text of texts) {
        const stmt = db.prepare(text)
        if (stmt.reader) {
          rows = stmt.all(...(params ?? [])) as Array<Record<string, unknown>>
        } else {
          stmt.run(...(params ?? []))
          rows = []
        }
      }
      return rows
    }
    return {
      run,
      applied: async () => (db.prepare(`SELECT name, applied_at FROM ${table} ORDER BY name`).all() as Array<{ name: string, applied_at: string }>)
        .map((r): AppliedMigration => ({ name: r.name, appliedAt: r.applied_at })),
      record: async name => { db.prepare(`INSERT INTO ${table} (name, applied_at) VALUES (?, ?)`).run(name, new Date().toISOString()) },
      unrecord: async name => { db.prepare(`DELETE FROM ${table} WHERE name = ?`).run(name) },
      columnType: async () => undefined,
      check: async () => {
        const broken = db.pragma('foreign_key_check') as Array<{ table: string, rowid: number, parent: string }>
        if (broken.length > 0) {
          const first = broken[0]
          // the migrator wraps this in MigrationFailedError, naming the migration
          throw new Error(`PRAGMA foreign_key_check: ${broken.length} row(s) break foreign keys, e.g. ${first?.table} rowid ${first?.rowid} -> ${first?.parent}`)
        }
      }
    }
  }

  async close (): Promise<void> {
    if (this.owned && this.db.open) this.db.close()
  }
}
