/**
 * Typed errors of the migration engine. Each class has a stable `name` and `code`.
 */
import type { PlannedStatement } from './migration.js'

/** A migration file is misnamed, does not load, or does not export `up`. */
export class MigrationSourceError extends Error {
  static readonly code = 'ERR_MIGRATION_SOURCE'
  override readonly name = 'MigrationSourceError'
  readonly code = MigrationSourceError.code
}

/** A migration threw or a statement failed: its transaction was rolled back and it is not recorded. */
export class MigrationFailedError extends Error {
  static readonly code = 'ERR_MIGRATION_FAILED'
  override readonly name = 'MigrationFailedError'
  readonly code = MigrationFailedError.code
  constructor (readonly migration: string, readonly direction: 'up' | 'down', readonly statement: string | undefined, cause: unknown) {
    super(`migration ${migration} (${direction}) failed${statement !== undefined ? ` at: ${statement.length > 200 ? statement.slice(0, 197) + '...' : statement}` : ''}: ${cause instanceof Error ? cause.message : String(cause)}. Its transaction was rolled back; nothing of it was applied or recorded`, { cause })
  }
}

/** A pending migration may lose data, and `allowDestructive` was not given. */
export class DestructiveMigrationError extends Error {
  static readonly code = 'ERR_MIGRATION_DESTRUCTIVE'
  override readonly name = 'DestructiveMigrationError'
  readonly code = DestructiveMigrationError.code
  constructor (readonly steps: ReadonlyArray<{ readonly migration: string } & PlannedStatement>) {
    super(`refusing to apply ${steps.length} step(s) that may lose data: ${steps.map(s => `${s.migration}: ${s.destructive ?? 'destructive'} (${s.sql.length > 80 ? s.sql.slice(0, 77) + '...' : s.sql})`).join('; ')}. Review them (migrate plan) and apply with allowDestructive (--allow-destructive) if that is intended`)
  }
}

/** What was asked does not fit the recorded history (nothing to undo, no `down`, a file gone). */
export class MigrationStateError extends Error {
  static readonly code = 'ERR_MIGRATION_STATE'
  override readonly name = 'MigrationStateError'
  readonly code = MigrationStateError.code
}
