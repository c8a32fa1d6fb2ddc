/**
 * A reader thread of the SQLite provider (started by read-pool.ts): it opens the database file
 * read-only and answers {@link ReadRequest} messages, one at a time, each in its own read
 * transaction, so it always sees what was committed before the request was sent.
 */
import { parentPort, workerData } from 'node:worker_threads'
import Database from 'better-sqlite3'
import * as sqliteVec from 'sqlite-vec'
import { ReadConnection, type ReadRequest } from './read-connection.js'
import type { ReaderData, ReaderReply, WireError } from './read-pool.js'

function wireError (err: unknown): WireError {
  const e = err as { name?: unknown, message?: unknown, code?: unknown } | null
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {})
  }
}

/**
 * Buffers and typed arrays that own their whole memory (better-sqlite3 gives each blob its own)
 * are moved to the main thread rather than copied; a view into shared memory is copied.
 */
function transferables (result: unknown): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>()
  const visit = (v: unknown): void => {
    if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) out.add(v.buffer)
  }
  if (Array.isArray(result)) {
    for (const row of result) {
      if (row !== null && typeof row === 'object' && !ArrayBuffer.isView(row)) for (const v of Object.values(row)) visit(v)
      else visit(row)
    }
  }
  return [...out]
}

const port = parentPort
if (port === null) throw new Error('read-worker.ts runs as a worker thread of the SQLite provider')
const data = workerData as ReaderData
// a file that cannot be opened ends the thread with its error: the pool then reads on the provider's connection
const db = new Database(data.path, { readonly: true, fileMustExist: true })
db.pragma('query_only = ON')
db.pragma('busy_timeout = 5000')
db.pragma(`cache_size = -${data.cacheMiB * 1024}`)
db.pragma('temp_store = MEMORY')
// the vector tables are sqlite-vec virtual tables, as on the provider's connection
sqliteVec.load(db)
const conn = new ReadConnection(db)
port.on('message', ({ id, req }: { id: number, req: ReadRequest }) => {
  let reply: ReaderReply
  let transfer: ArrayBuffer[] = []
  try {
    const result = conn.run(req)
    reply = { id, result }
    transfer = transferables(result)
  } catch (err) {
    reply = { id, error: wireError(err) }
  }
  port.postMessage(reply, transfer)
})
port.postMessage({ ready: true } satisfies ReaderReply)
