/**
 * SQLite's own checks of a database file, and how a corruption error is recognised. Used by the
 * provider's connection and by the reader threads alike.
 */
import type { Database as Db } from 'better-sqlite3'

/** SQLite lists at most this many problems per check; a list this long may be cut. */
export const INTEGRITY_CHECK_MAX = 100

/** Whether an error is SQLite reporting a damaged file (or one that is not a database). */
export function isCorruption (err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT'))
}

/**
 * Runs SQLite's `quick_check` or `integrity_check` and returns its problems, one per line (SQLite
 * packs many into one row under a "*** in database main ***" heading). Damage that stops the
 * check itself comes back as a last line saying so, not as an exception.
 */
export function checkPages (db: Db, pragma: 'quick_check' | 'integrity_check'): string[] {
  let rows: string[]
  try {
    rows = (db.pragma(pragma) as Array<Record<string, string>>).map(r => r[pragma] ?? '')
  } catch (err) {
    if (!isCorruption(err)) throw err
    return [`the check stopped at damage it could not read past: ${err.message}`]
  }
  return rows.flatMap(r => r.split('\n')).map(l => l.trim()).filter(l => l !== '' && l !== 'ok' && !/^\*\*\* in database \S+ \*\*\*$/.test(l))
}
