/**
 * The migration engine: which migrations are applied (`status`), what pending ones will run
 * (`plan`, in a transaction rolled back), applying them one transaction each (`apply`, refusing
 * steps that may lose data unless allowed), and undoing the last one (`down`).
 */
import { assessStatement, narrows, splitStatements } from './destructive.js'
import type { DriverTransaction, MigrationDriver } from './driver.js'
import { DestructiveMigrationError, MigrationFailedError, MigrationStateError } from './errors.js'
import type { MigrationDb, MigrationPlan, MigrationSource, MigrationStatus, NamedMigration, PlannedStatement } from './migration.js'
import { rebuildTable } from './sqlite-rebuild.js'

/** Options of {@link Migrator.apply}. */
export interface ApplyOptions {
  /** Apply steps that may lose data (DROP TABLE, DROP COLUMN, narrowing types, TRUNCATE, DELETE without WHERE). */
  readonly allowDestructive?: boolean
  readonly signal?: AbortSignal
}

/**
 * Runs the migrations of a {@link MigrationSource} against one database. Each migration runs in
 * a transaction of its own that holds the migration lock and records it, so two processes
 * applying at once apply each migration exactly once, and a failing one leaves nothing behind.
 *
 * @example
 * ```ts
 * const driver = await PostgresMigrationDriver.connect({ url: 'postgres://app@db/app' })
 * const migrator = new Migrator(driver, new FileMigrationSource('./migrations'))
 * for (const p of await migrator.plan()) console.log(p.name, p.statements)
 * await migrator.apply()
 * await driver.close()
 * ```
 */
export class Migrator {
  constructor (private readonly driver: MigrationDriver, private readonly source: MigrationSource) {}

  /** Every migration, applied or pending, and those recorded as applied whose file is gone. */
  async status (options: { signal?: AbortSignal } = {}): Promise<MigrationStatus[]> {
    const all = await this.source.list(options)
    const applied = await this.driver.transaction(async tx => await tx.applied(), { commit: false })
    const byName = new Map(applied.map(a => [a.name, a]))
    const known = new Set(all.map(m => m.name))
    return [
      ...all.map((m): MigrationStatus => {
        const a = byName.get(m.name)
        return a === undefined ? { name: m.name, state: 'pending' } : { name: m.name, state: 'applied', appliedAt: a.appliedAt }
      }),
      ...applied.filter(a => !known.has(a.name)).map((a): MigrationStatus => ({ name: a.name, state: 'missing', appliedAt: a.appliedAt }))
    ].sort((x, y) => x.name < y.name ? -1 : x.name > y.name ? 1 : 0)
  }

  /**
   * What the pending migrations will run, in order: each `up` runs against the database in one
   * transaction that is then rolled back, and every statement is recorded with the reason it
   * may lose data, if any.
   */
  async plan (options: { signal?: AbortSignal } = {}): Promise<MigrationPlan[]> {
    const all = await this.source.list(options)
    return await this.driver.transaction(async tx => {
      const done = new Set((await tx.applied()).map(a => a.name))
      const plans: MigrationPlan[] = []
      for (const m of all) {
        options.signal?.throwIfAborted()
        if (!done.has(m.name)) plans.push(await this.run(tx, m, 'up', false))
      }
      return plans
    }, { commit: false })
  }

  /**
   * Applies the pending migrations in name order, each in its own transaction, and returns what
   * this call applied (migrations another process applied meanwhile are skipped). Without
   * `allowDestructive` it first plans every pending migration (see {@link plan}), so that a
   * step that may lose data ({@link DestructiveMigrationError}) or a migration that fails
   * ({@link MigrationFailedError}) stops the run before anything is applied. A migration that
   * fails while applying is rolled back whole; the ones before it stay applied.
   */
  async apply (options: ApplyOptions = {}): Promise<MigrationPlan[]> {
    const guard = options.allowDestructive !== true
    if (guard) {
      const risky = (await this.plan(options)).flatMap(p => p.statements.filter(s => s.destructive !== undefined).map(s => ({ migration: p.name, ...s })))
      if (risky.length > 0) throw new DestructiveMigrationError(risky)
    }
    const all = await this.source.list(options)
    const applied: MigrationPlan[] = []
    for (const m of all) {
      options.signal?.throwIfAborted()
      const plan = await this.driver.transaction(async tx => {
        // read again under the lock: another process may have applied it meanwhile
        if ((await tx.applied()).some(a => a.name === m.name)) return undefined
        const p = await this.run(tx, m, 'up', guard)
        await tx.record(m.name)
        return p
      }, { commit: true })
      if (plan !== undefined) applied.push(plan)
    }
    return applied
  }

  /**
   * Records `names` as applied without running them, when nothing is recorded yet: a database
   * whose schema was made before its history was kept here (by hand, or by a version counter)
   * starts its history at that point. Returns true when it recorded them.
   */
  async baseline (names: readonly string[]): Promise<boolean> {
    return await this.driver.transaction(async tx => {
      if ((await tx.applied()).length > 0) return false
      for (const name of names) await tx.record(name)
      return true
    }, { commit: true })
  }

  /**
   * Undoes the last applied migration with its `down`, in one transaction, and returns what it
   * ran (undefined when none is applied). Running `down` is the consent to what it drops: its
   * steps are flagged in the result but not refused.
   */
  async down (options: { signal?: AbortSignal } = {}): Promise<MigrationPlan | undefined> {
    const all = await this.source.list(options)
    return await this.driver.transaction(async tx => {
      const last = (await tx.applied()).at(-1)
      if (last === undefined) return undefined
      const m = all.find(x => x.name === last.name)
      if (m === undefined) throw new MigrationStateError(`the last applied migration, ${last.name}, has no file among the migrations: restore it to undo it`)
      if (m.migration.down === undefined) throw new MigrationStateError(`migration ${m.name} has no down(): it cannot be undone`)
      const p = await this.run(tx, m, 'down', false)
      await tx.unrecord(m.name)
      return p
    }, { commit: true })
  }

  /** Runs one direction of a migration in `tx`, recording its statements; `guard` refuses destructive ones. */
  private async run (tx: DriverTransaction, m: NamedMigration, direction: 'up' | 'down', guard: boolean): Promise<MigrationPlan> {
    const statements: PlannedStatement[] = []
    let current: string | undefined
    const db: MigrationDb = {
      dialect: this.driver.dialect,
      execute: async <R extends Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: { destructive?: string | false }): Promise<R[]> => {
        let rows: Array<Record<string, unknown>> = []
        for (const text of params === undefined ? splitStatements(sql) : [sql]) {
          // assessed before it runs: a type change is compared with the column's type as it is now
          const destructive = options?.destructive === undefined ? await risk(tx, text) : options.destructive === false ? undefined : options.destructive
          const step: PlannedStatement = { sql: text, ...(params !== undefined ? { params: [...params] } : {}), ...(destructive !== undefined ? { destructive } : {}) }
          statements.push(step)
          if (guard && destructive !== undefined) throw new DestructiveMigrationError([{ migration: m.name, ...step }])
          current = text
          rows = await tx.run(text, params)
          current = undefined
        }
        return rows as R[]
      },
      rebuildTable: async (table, spec) => {
        if (this.driver.dialect !== 'sqlite') throw new MigrationStateError(`rebuildTable(${JSON.stringify(table)}) is for SQLite; on PostgreSQL ALTER TABLE changes the table in place`)
        await rebuildTable(db, table, spec)
      }
    }
    const fn = direction === 'up' ? m.migration.up : m.migration.down
    try {
      await fn?.call(m.migration, db)
      await tx.check()
    } catch (err) {
      if (err instanceof DestructiveMigrationError) throw err
      throw new MigrationFailedError(m.name, direction, current, err)
    }
    return { name: m.name, direction, statements, destructive: statements.some(s => s.destructive !== undefined) }
  }
}

/** Why one statement may lose data, if it may, with type changes compared to the current column types. */
async function risk (tx: DriverTransaction, sql: string): Promise<string | undefined> {
  const { reasons, typeChanges } = assessStatement(sql)
  for (const change of typeChanges) {
    const from = await tx.columnType(change.table, change.column)
    if (from === undefined) {
      reasons.push(`changes the type of column ${change.column} of ${change.table} to ${change.to} (its current type is unknown)`)
      continue
    }
    const narrower = narrows(from, change.to)
    if (narrower !== false) reasons.push(`changes column ${change.column} of ${change.table} from ${from} to ${change.to}${narrower === true ? ', a narrower type' : ' (not known to keep every value)'}`)
  }
  return reasons.length > 0 ? reasons.join('; ') : undefined
}
