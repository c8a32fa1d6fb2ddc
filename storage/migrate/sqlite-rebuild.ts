/**
 * The table rebuild for SQLite schema changes that ALTER TABLE cannot make, as SQLite's own
 * documentation lays it out (https://www.sqlite.org/lang_altertable.html#otheralter). The
 * migrator runs it inside the migration's transaction with foreign keys off and checks them
 * before commit, so a rebuild is all or nothing like the rest of the migration.
 */
import { quoteName } from './driver.js'
import type { MigrationDb, RebuildSpec } from './migration.js'

/**
 * Rebuilds `table` with new column definitions, copying its rows. The old table's DROP is
 * flagged destructive only when an old column is neither kept nor used by a `copy` expression.
 *
 * @example
 * ```ts
 * // make email NOT NULL and drop the legacy column (flagged: drops column legacy)
 * await db.rebuildTable('users', {
 *   columns: 'id INTEGER PRIMARY KEY, email TEXT NOT NULL',
 *   copy: { email: "coalesce(email, '')" }
 * })
 * ```
 */
export async function rebuildTable (db: Pick<MigrationDb, 'execute'>, table: string, spec: RebuildSpec): Promise<void> {
  const name = quoteName(table)
  const scratch = quoteName(`peakdb_rebuild_${table}`)
  const literal = `'${table.replace(/'/g, '\'\'')}'`
  const oldColumns = (await db.execute<{ name: string }>(`SELECT name FROM pragma_table_info(${literal})`)).map(c => c.name)
  const kept = await db.execute<{ sql: string }>(`SELECT sql FROM sqlite_schema WHERE tbl_name = ${literal} AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name`)
  await db.execute(`CREATE TABLE ${scratch} (${spec.columns})${spec.tableOptions !== undefined ? ' ' + spec.tableOptions : ''}`)
  const newColumns = (await db.execute<{ name: string }>(`SELECT name FROM pragma_table_info('${`peakdb_rebuild_${table}`.replace(/'/g, '\'\'')}')`)).map(c => c.name)
  const copy = spec.copy ?? {}
  const targets = newColumns.filter(c => copy[c] !== undefined || oldColumns.includes(c))
  if (targets.length > 0) {
    await db.execute(`INSERT INTO ${scratch} (${targets.map(quoteName).join(', ')}) SELECT ${targets.map(c => copy[c] ?? quoteName(c)).join(', ')} FROM ${name}`)
  }
  const expressions = Object.values(copy).join(' ')
  const lost = oldColumns.filter(c => !newColumns.includes(c) && !new RegExp(`(^|[^\\w$])"?${c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"?($|[^\\w$])`, 'i').test(expressions))
  await db.execute(`DROP TABLE ${name}`, undefined, { destructive: lost.length > 0 ? `drops column ${lost.join(', ')} of ${table} (table rebuild)` : false })
  await db.execute(`ALTER TABLE ${scratch} RENAME TO ${name}`)
  for (const { sql } of kept) await db.execute(sql)
}
