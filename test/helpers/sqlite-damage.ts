/**
 * Damages chosen pages of an SQLite file, as a failing disk would: the pages of one table are
 * overwritten with garbage, the rest of the file (schema, log) stays readable.
 */
import { closeSync, openSync, writeSync } from 'node:fs'
import Database from 'better-sqlite3'

/**
 * Overwrites the last `pages` leaf pages of `table` (the most recent rows) with 0xab bytes and
 * returns their numbers. Opening the file first moves a pending WAL into it, so the damage lands
 * on the pages SQLite reads next; nothing else in the file changes. With `cells`, each page keeps
 * its first and last 100 bytes (the header survives), so SQLite's checks list the damage cell by
 * cell instead of stopping at the first unreadable page.
 */
export function damageTablePages (path: string, table: string, pages: number, options: { cells?: boolean } = {}): number[] {
  const db = new Database(path)
  let pageSize: number
  let leaves: number[]
  try {
    pageSize = db.pragma('page_size', { simple: true }) as number
    leaves = (db.prepare("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno").pluck().all(table) as number[])
    db.pragma('wal_checkpoint(TRUNCATE)')
  } finally {
    db.close()
  }
  if (leaves.length < pages + 2) throw new Error(`table ${table} has ${leaves.length} leaf pages; write more rows to damage ${pages}`)
  const chosen = leaves.slice(-pages - 1, -1)
  const fd = openSync(path, 'r+')
  try {
    const keep = options.cells === true ? 100 : 0
    for (const page of chosen) writeSync(fd, Buffer.alloc(pageSize - 2 * keep, 0xab), 0, pageSize - 2 * keep, (page - 1) * pageSize + keep)
  } finally {
    closeSync(fd)
  }
  return chosen
}
