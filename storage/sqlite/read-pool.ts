/**
 * Reader threads of the SQLite provider: reads that may take long (scans, exact vector search,
 * integrity checks) run on read-only connections in worker threads, so that the event loop, and
 * with it replication and every other client, keeps running. WAL lets them read while the
 * provider's one connection writes.
 */
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import type { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { StorageClosedError } from '../errors.js'
import type { ReadRequest } from './read-connection.js'
import { startWorker } from './start-worker.js'

/** What a reader thread is started with. */
export interface ReaderData {
  readonly path: string
  readonly cacheMiB: number
}

/** An error as it crosses from a reader thread: enough to rebuild the same error. */
export interface WireError {
  readonly name: string
  readonly message: string
  readonly code?: string
}

/** A message from a reader thread. */
export type ReaderReply =
  | { readonly ready: true }
  | { readonly id: number, readonly result: unknown }
  | { readonly id: number, readonly error: WireError }

/** Options of a {@link ReadPool}. */
export interface ReadPoolOptions extends ReaderData {
  /** Reader threads (at least 1). */
  readonly readers: number
  /**
   * Runs a read on the provider's own connection: for the reads of a reader thread that died,
   * and for every read once readers keep dying.
   */
  readonly fallback: (req: ReadRequest) => unknown
}

/** Reader threads, by default: two where the machine has the cores, else one. */
export function defaultReaders (): number {
  return Math.min(2, availableParallelism())
}

/** A reader thread that does not report ready within this time is replaced. */
const STARTUP_MS = 30_000
/** After this many reader threads in a row die before answering, every read stays on the provider's connection. */
const MAX_FAILURES = 3

interface Call {
  readonly req: ReadRequest
  readonly resolve: (v: unknown) => void
  readonly reject: (e: Error) => void
}

interface Reader {
  readonly worker: Worker
  readonly calls: Map<number, Call>
  ready: boolean
  startup: NodeJS.Timeout | undefined
}

/** Rebuilds a reader thread's error: SQLite's keep their class and code, so callers map them as before. */
function rebuildError (e: WireError): Error {
  if (e.code?.startsWith('SQLITE_') === true) return new Database.SqliteError(e.message, e.code)
  const err = new Error(e.message)
  err.name = e.name
  if (e.code !== undefined) Object.assign(err, { code: e.code })
  return err
}

/**
 * A pool of reader threads over one database file. A thread starts on the first read (it takes
 * some 60 ms; reads issued meanwhile run on the provider's connection), a second one when every
 * ready thread is busy; idle threads do not keep the process alive. A read goes to the ready
 * thread with the fewest reads waiting.
 *
 * @example
 * ```ts
 * const pool = new ReadPool({ path, cacheMiB: 8, readers: 2, fallback: req => local.run(req) })
 * const rows = await pool.run({ kind: 'rows', sql: 'SELECT id FROM docs', params: [], mode: 'pluck' })
 * await pool.close()
 * ```
 */
export class ReadPool {
  private readonly readers: Array<Reader | undefined>
  private next = 0
  private failures = 0
  private closing: Promise<void> | undefined

  private readonly data: ReaderData

  constructor (private readonly options: ReadPoolOptions) {
    this.readers = new Array<Reader | undefined>(Math.max(1, options.readers)).fill(undefined)
    // threads start later: a relative path must not follow a change of working directory
    this.data = { path: resolve(options.path), cacheMiB: options.cacheMiB }
  }

  /** Whether reads still go to reader threads (false once they kept dying). */
  get active (): boolean {
    return this.failures < MAX_FAILURES
  }

  /** Reader threads ready to take reads. */
  get ready (): number {
    return this.readers.filter(r => r?.ready === true).length
  }

  /**
   * Runs a read on a reader thread. A read issued after a commit returned sees that commit. When
   * no thread is ready yet, or the thread dies first, the read runs on the provider's connection.
   */
  async run (req: ReadRequest): Promise<unknown> {
    if (this.closing !== undefined) throw new StorageClosedError(`storage ${this.options.path} is closed`)
    const reader = this.active ? this.pick() : undefined
    if (reader === undefined) return this.options.fallback(req)
    const id = ++this.next
    return await new Promise((resolve, reject) => {
      if (reader.calls.size === 0) reader.worker.ref()
      reader.calls.set(id, { req, resolve, reject })
      reader.worker.postMessage({ id, req })
    })
  }

  /**
   * The ready reader with the fewest calls waiting. Starts a thread when none is starting, a slot
   * is free, and no ready reader is idle.
   */
  private pick (): Reader | undefined {
    let best: Reader | undefined
    let free = -1
    let starting = false
    for (let i = 0; i < this.readers.length; i++) {
      const r = this.readers[i]
      if (r === undefined) {
        if (free < 0) free = i
      } else if (!r.ready) {
        starting = true
      } else if (best === undefined || r.calls.size < best.calls.size) {
        best = r
      }
    }
    if (free >= 0 && !starting && (best === undefined || best.calls.size > 0)) {
      try {
        this.start(free)
      } catch {
        // no thread can be started here (the worker script or its loader is missing): read on the connection
        this.failures = MAX_FAILURES
      }
    }
    return best
  }

  private start (slot: number): void {
    const worker = startWorker('read-worker', this.data)
    const reader: Reader = { worker, calls: new Map(), ready: false, startup: undefined }
    reader.startup = setTimeout(() => { void worker.terminate() }, STARTUP_MS).unref()
    worker.on('message', (m: ReaderReply) => this.onReply(reader, m))
    // the 'exit' that follows settles the calls; without a listener an 'error' would be thrown
    worker.on('error', () => {})
    worker.on('exit', () => this.onExit(slot, reader))
    // nothing waits on a starting thread: it must not keep the process alive
    worker.unref()
    this.readers[slot] = reader
  }

  private onReply (reader: Reader, m: ReaderReply): void {
    if ('ready' in m) {
      clearTimeout(reader.startup)
      reader.startup = undefined
      reader.ready = true
      return
    }
    const call = reader.calls.get(m.id)
    if (call === undefined) return
    reader.calls.delete(m.id)
    if (reader.calls.size === 0) reader.worker.unref()
    this.failures = 0
    if ('error' in m) call.reject(rebuildError(m.error))
    else call.resolve(m.result)
  }

  /**
   * A reader thread ended. On close its calls were settled already; otherwise it died: its
   * calls run on the provider's connection, and the next read starts another thread.
   */
  private onExit (slot: number, reader: Reader): void {
    clearTimeout(reader.startup)
    if (this.readers[slot] === reader) this.readers[slot] = undefined
    if (this.closing !== undefined) return
    this.failures++
    const calls = [...reader.calls.values()]
    reader.calls.clear()
    for (const call of calls) {
      try {
        call.resolve(this.options.fallback(call.req))
      } catch (err) {
        call.reject(err as Error)
      }
    }
  }

  /** Stops every reader thread; reads still waiting fail with {@link StorageClosedError}. Idempotent. */
  async close (): Promise<void> {
    this.closing ??= (async () => {
      const readers = this.readers.splice(0).filter((r): r is Reader => r !== undefined)
      const closed = new StorageClosedError(`storage ${this.options.path} is closed`)
      for (const r of readers) {
        clearTimeout(r.startup)
        for (const call of r.calls.values()) call.reject(closed)
        r.calls.clear()
      }
      await Promise.all(readers.map(async r => await r.worker.terminate()))
    })()
    await this.closing
  }
}
