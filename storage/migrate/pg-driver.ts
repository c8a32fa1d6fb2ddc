/**
 * Migrations on PostgreSQL: one dedicated client; each transaction takes
 * `pg_advisory_xact_lock` first (released at commit or rollback), so a second process waits and
 * then sees what the first recorded. DDL is transactional: a failed migration leaves nothing.
 */
import pg from 'pg'
import { StorageUnavailableError } from '../errors.js'
import { MIGRATIONS_TABLE, quoteName, type AppliedMigration, type DriverTransaction, type MigrationDriver } from './driver.js'

/** First key of the migration lock (pg_advisory_xact_lock(int, int)): "PKMG"; PeakDB's schema locks use "PEAK". */
const LOCK_CLASS = 0x504b4d47

/** Options of {@link PostgresMigrationDriver.connect}. */
export interface PostgresMigrationOptions {
  /** postgres://user@host/database; the migrations run in its default schema (`search_path`). */
  readonly url: string
  /** The migrations table (default `peakdb_migrations`, in the connection's current schema). */
  readonly table?: string
  /** How long to wait for the server, in ms (default 10000). */
  readonly connectionTimeoutMs?: number
}

/** The PostgreSQL side of the migrator. */
export class PostgresMigrationDriver implements MigrationDriver {
  readonly dialect = 'postgres'
  private constructor (
    private readonly client: pg.ClientBase,
    readonly location: string,
    private readonly table: string,
    /** Set as the search path of each transaction, when given (already quoted). */
    private readonly schema: string | undefined,
    private readonly owned: boolean
  ) {}

  /**
   * Migrates on a client its owner keeps, in `schema` (a quoted identifier): PeakDB's own schema,
   * at open. `close` leaves the client connected.
   */
  static attach (client: pg.ClientBase, location: string, table: string, schema: string): PostgresMigrationDriver {
    return new PostgresMigrationDriver(client, location, quoteName(table), schema, false)
  }

  /** Connects for migrations; an unreachable server is {@link StorageUnavailableError}. */
  static async connect (options: PostgresMigrationOptions): Promise<PostgresMigrationDriver> {
    const client = new pg.Client({ connectionString: options.url, connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000, application_name: 'peakdb-migrate' })
    const location = withoutPassword(options.url)
    try {
      await client.connect()
    } catch (err) {
      await client.end().catch(() => undefined)
      throw new StorageUnavailableError(`cannot connect to PostgreSQL at ${location}: ${(err as Error).message}`, { cause: err })
    }
    // a dropped connection must not crash the process; the next query fails instead
    client.on('error', () => undefined)
    return new PostgresMigrationDriver(client, location, quoteName(options.table ?? MIGRATIONS_TABLE), undefined, true)
  }

  async transaction<T> (fn: (tx: DriverTransaction) => Promise<T>, options: { readonly commit: boolean }): Promise<T> {
    const c = this.client
    await c.query('BEGIN')
    try {
      if (this.schema !== undefined) await c.query(`SET LOCAL search_path TO ${this.schema}, public`)
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || $2))', [LOCK_CLASS, '.' + this.table])
      await c.query(`CREATE TABLE IF NOT EXISTS ${this.table} (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
      const result = await fn(this.tx())
      await c.query(options.commit ? 'COMMIT' : 'ROLLBACK')
      return result
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined)
      throw err
    }
  }

  private tx (): DriverTransaction {
    const c = this.client
    const table = this.table
    return {
      run: async (sql, params) => (await c.query(sql, params === undefined ? undefined : [...params])).rows as Array<Record<string, unknown>>,
      applied: async () => (await c.query<{ name: string, applied_at: Date }>(`SELECT name, applied_at FROM ${table} ORDER BY name`)).rows
        .map((r): AppliedMigration => ({ name: r.name, appliedAt: r.applied_at.toISOString() })),
      record: async name => { await c.query(`INSERT INTO ${table} (name) VALUES ($1)`, [name]) },
      unrecord: async name => { await c.query(`DELETE FROM ${table} WHERE name = $1`, [name]) },
      columnType: async (tableName, column) => {
        const r = await c.query<{ type: string }>('SELECT format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped', [tableName, column])
        return r.rows[0]?.type
      },
      check: async () => undefined
    }
  }

  async close (): Promise<void> {
    if (this.owned) await (this.client as pg.Client).end().catch(() => undefined)
  }
}

function withoutPassword (url: string): string {
  try {
    const u = new URL(url)
    u.password = ''
    return u.toString()
  } catch {
    return '(connection string)'
  }
}
