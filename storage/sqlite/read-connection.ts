/**
 * Reads as messages: a {@link ReadRequest} is plain, structured-clone friendly data, and a
 * {@link ReadConnection} runs it on one connection with its statements prepared once. The
 * provider's own connection and every reader thread (read-worker.ts) run the same code.
 */
import type { Database as Db, Statement } from 'better-sqlite3'
import { checkPages } from './integrity.js'
import { exactVectorSearch, type VectorQuery } from './search-tables.js'

/**
 * One read. `rows` runs a SELECT: `all` gives every row, `get` the first (or undefined), `pluck`
 * the first column of every row. The others name a read made of several statements, run in one
 * read transaction.
 */
export type ReadRequest =
  | { readonly kind: 'rows', readonly sql: string, readonly params: readonly unknown[], readonly mode: 'all' | 'get' | 'pluck' }
  | { readonly kind: 'vectorSearch', readonly query: VectorQuery }
  | { readonly kind: 'integrity' }

/** Prepared statements kept per connection (least recently used first out). */
const STATEMENTS_MAX = 64

/** A connection that answers {@link ReadRequest}s. */
export class ReadConnection {
  private readonly statements = new Map<string, Statement>()

  constructor (readonly db: Db) {}

  /** The statement for `sql`, prepared on first use. */
  prepare (sql: string): Statement {
    let stmt = this.statements.get(sql)
    if (stmt === undefined) {
      stmt = this.db.prepare(sql)
      if (this.statements.size >= STATEMENTS_MAX) {
        const oldest = this.statements.keys().next().value
        if (oldest !== undefined) this.statements.delete(oldest)
      }
    } else {
      this.statements.delete(sql)
    }
    this.statements.set(sql, stmt)
    return stmt
  }

  /** Runs one read; SQLite's errors are thrown as they come. */
  run (req: ReadRequest): unknown {
    switch (req.kind) {
      case 'rows': {
        const stmt = this.prepare(req.sql).pluck(req.mode === 'pluck')
        return req.mode === 'get' ? stmt.get(...req.params) : stmt.all(...req.params)
      }
      case 'vectorSearch':
        return this.db.transaction(() => exactVectorSearch(sql => this.prepare(sql), req.query))()
      case 'integrity':
        return checkPages(this.db, 'integrity_check')
    }
  }

  /** Forgets the prepared statements. */
  clear (): void {
    this.statements.clear()
  }
}
