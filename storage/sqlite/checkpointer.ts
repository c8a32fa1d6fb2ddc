/**
 * Background WAL checkpoints for the SQLite provider.
 *
 * In WAL mode every commit appends whole pages to the WAL, and by default the connection that
 * commits copies them back into the database file once the WAL passes 1,000 pages, syncing both
 * files: measured at ~12 us per page, about 100 us of every single `put` (which dirties ~8
 * pages), more than a raw insert costs in all. Here a thread with its own connection does those
 * copies (PASSIVE checkpoints, which never block the writer) while the provider's connection goes
 * on writing, its own automatic checkpoints turned off.
 *
 * The thread's progress is shared through a few integers in shared memory, so the writer learns
 * it even while it runs a long series of writes without returning to the event loop. SQLite
 * starts the WAL over only when a write begins with every frame copied; under a steady stream of
 * writes the thread never quite catches up, so once the WAL passes {@link WAL_LIMIT_FRAMES} the
 * next write waits (without blocking the event loop) for one pass that copies everything; and
 * since the WAL's size is learned only when a pass begins, a writer that has committed
 * {@link WRITES_PER_PASS} transactions during one slow pass waits for it to end. When
 * the thread cannot start or dies, the connection checkpoints itself again, as SQLite does by
 * default. The thread starts with the 256th write transaction: a database that is mostly read,
 * or written a little (most tests, a quiet device), keeps SQLite's own checkpoints and one
 * thread less.
 */
import { resolve } from 'node:path'
import type { Worker } from 'node:worker_threads'
import type { Database } from 'better-sqlite3'
import { startWorker } from './start-worker.js'

/** What the checkpointer thread is started with. */
export interface CheckpointerData {
  readonly path: string
  readonly synchronous: 'NORMAL' | 'FULL'
  /** Int32 slots, indexed by {@link Slot}. */
  readonly shared: SharedArrayBuffer
}

/** The shared integers, set by the thread after each pass (and {@link Slot.Log} by the writer when the WAL starts over). */
export const enum Slot {
  /** Passes ended (with or without success). */
  Passes = 0,
  /** WAL frames when the last pass began. */
  Log = 1,
  /** Frames the last pass had copied when it ended. */
  Checkpointed = 2,
  /** 1 once the thread has opened the file and takes passes. */
  Ready = 3
}
export const SLOTS = 4

/** A message from the checkpointer thread, after each pass. */
export type CheckpointReply =
  | { readonly done: true }
  | { readonly error: string }

/** WAL pages (4 KiB each) beyond which writers wait for a complete checkpoint: ~16 MiB. */
export const WAL_LIMIT_FRAMES = 4096
/** Least time between the starts of two passes while writes go on, ms: a pass syncs two files. */
const PASS_INTERVAL_MS = 20
/** Write transactions before the thread starts: a node that writes little never starts it. */
const START_AFTER_WRITES = 256
/** Most passes one wait of writers takes. */
const DRAIN_PASSES = 3
/**
 * Most write transactions while one pass runs. The WAL's size is learned when a pass begins, so
 * during a slow pass (a busy machine) the writer could otherwise run far past the limit unseen:
 * past this many it waits for the pass to end (an idle machine ends a pass long before).
 */
const WRITES_PER_PASS = 256
/** SQLite's own default, restored when the thread is gone. */
const AUTOCHECKPOINT_PAGES = 1000
/** How long closing waits for a pass in progress before ending the thread, ms. */
const CLOSE_WAIT_MS = 10_000

/**
 * @example
 * ```ts
 * const checkpoints = new Checkpointer(db, { path, synchronous: 'NORMAL' })   // a thread from the 256th write on
 * await checkpoints.ready()   // before a write: waits only while the WAL is over its limit
 * db.prepare('INSERT ...').run()
 * checkpoints.wrote()
 * await checkpoints.close()   // before db.close()
 * ```
 */
export class Checkpointer {
  /** Started by the writes that make it worthwhile: a database that is only read, or barely written, never needs it. */
  private worker: Worker | undefined
  private writes = 0
  private readonly shared = new Int32Array(new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT))
  private active = false
  /** Closed, or the thread is gone: the writer checkpoints itself for good. */
  private ended = false
  /** Writes since the last pass began. */
  private dirty = false
  /** Write transactions since the last pass was asked for. */
  private writesSincePass = 0
  private lastPass = -Infinity
  /** Runs a pass once writes pause (when the event loop is free again). */
  private trailing: NodeJS.Timeout | undefined
  /** Passes asked for; those beyond {@link Slot.Passes} are queued or running. */
  private requested = 0
  /** Waiters for the end of a pass. */
  private waiters: Array<{ pass: number, resolve: () => void }> = []
  /** The wait of writers for a complete pass, shared by all of them. */
  private drain: Promise<void> | undefined
  /** WAL length at which writes wait: raised while a reader holds frames back, so that not every write waits. */
  private threshold = WAL_LIMIT_FRAMES
  private exited: Promise<void> = Promise.resolve()
  private closing: Promise<void> | undefined
  private drains = 0

  /**
   * `startAfter`: write transactions after which the thread starts (until then SQLite
   * checkpoints as usual); 0 starts it now.
   */
  constructor (private readonly db: Database, private readonly data: Omit<CheckpointerData, 'shared'>, private readonly startAfter = START_AFTER_WRITES) {
    if (startAfter <= 0) this.start()
  }

  private start (): void {
    const worker = this.worker = startWorker('checkpoint-worker', { ...this.data, path: resolve(this.data.path), shared: this.shared.buffer as SharedArrayBuffer } satisfies CheckpointerData)
    worker.on('message', (m: CheckpointReply) => this.onReply(m))
    // the 'exit' that follows falls back to SQLite's own checkpoints
    worker.on('error', () => {})
    this.exited = new Promise(resolve => worker.once('exit', () => { this.stop(); resolve() }))
    worker.unref()
  }

  /** Passes ended, waits of writers, and the WAL's length at the last pass (for tests and diagnostics). */
  get stats (): { passes: number, drains: number, walFrames: number } {
    return { passes: Atomics.load(this.shared, Slot.Passes), drains: this.drains, walFrames: Atomics.load(this.shared, Slot.Log) }
  }

  /** Whether the thread was started (it may still be starting, or be gone). */
  get started (): boolean {
    return this.worker !== undefined
  }

  /** Whether the thread checkpoints (false while it starts, and once it is gone). */
  get background (): boolean {
    return this.activate()
  }

  /**
   * Turns the writer's own checkpoints off once the thread is ready. Checked on every write
   * rather than on a message, which a writer that never returns to the event loop would not see.
   */
  private activate (): boolean {
    if (this.active) return true
    if (this.ended || Atomics.load(this.shared, Slot.Ready) !== 1) return false
    this.db.pragma('wal_autocheckpoint = 0')
    this.active = true
    return true
  }

  /** Resolves at once, unless the WAL is over its limit: then after a pass that copies all of it. */
  async ready (): Promise<void> {
    if (!this.activate()) return
    if (Atomics.load(this.shared, Slot.Log) < this.threshold) {
      if (this.writesSincePass >= WRITES_PER_PASS && this.busy) await this.passEnded()
      return
    }
    this.drain ??= this.fullPass().finally(() => { this.drain = undefined })
    await this.drain
  }

  private async fullPass (): Promise<void> {
    this.drains++
    const worker = this.worker as Worker
    worker.ref()
    try {
      // the pass in progress began before writes were held: the next one copies everything
      if (this.busy) await this.passEnded()
      // writes that do not wait (a signature, a setting) may land during a pass: then it did not
      // copy everything, and the WAL cannot start over; a few more passes catch up
      for (let i = 0; i < DRAIN_PASSES && this.active; i++) {
        this.pass()
        await this.passEnded()
        if (!this.dirty) break
      }
      if (!this.active) return
      const log = Atomics.load(this.shared, Slot.Log)
      if (!this.dirty && Atomics.load(this.shared, Slot.Checkpointed) >= log) {
        // the next write starts the WAL over, unless a pass holds the file then: none starts for a while
        this.threshold = WAL_LIMIT_FRAMES
        Atomics.store(this.shared, Slot.Log, 0)
        this.lastPass = performance.now()
      } else {
        // a reader holds frames back: wait again only once the WAL has grown by another limit
        this.threshold = log + WAL_LIMIT_FRAMES
      }
    } finally {
      worker.unref()
    }
  }

  /** Call after each write transaction on the writer connection. */
  wrote (): void {
    if (this.worker === undefined && !this.ended && ++this.writes >= this.startAfter) this.start()
    if (!this.activate()) return
    this.dirty = true
    this.writesSincePass++
    this.schedule()
  }

  /** A pass now if none ran lately, else one soon: writes that stop are still copied. */
  private schedule (): void {
    if (this.busy || !this.active) return
    if (performance.now() - this.lastPass >= PASS_INTERVAL_MS) this.pass()
    else this.trailing ??= setTimeout(() => {
      this.trailing = undefined
      if (this.dirty) this.schedule()
    }, PASS_INTERVAL_MS).unref()
  }

  private get busy (): boolean {
    return Atomics.load(this.shared, Slot.Passes) < this.requested
  }

  private pass (): void {
    this.dirty = false
    this.writesSincePass = 0
    this.lastPass = performance.now()
    this.requested++
    this.worker?.postMessage('pass')
  }

  /** Resolves when the last pass asked for has ended. */
  private async passEnded (): Promise<void> {
    const pass = this.requested
    if (Atomics.load(this.shared, Slot.Passes) >= pass) return
    await new Promise<void>(resolve => this.waiters.push({ pass, resolve }))
  }

  private wake (all: boolean): void {
    const ended = Atomics.load(this.shared, Slot.Passes)
    const waiting = this.waiters
    this.waiters = []
    for (const w of waiting) {
      if (all || w.pass <= ended) w.resolve()
      else this.waiters.push(w)
    }
  }

  private onReply (m: CheckpointReply): void {
    this.wake(false)
    // a pass that failed (a damaged file, a full disk) is left to SQLite's own checkpoints
    if ('error' in m) {
      this.stop()
      return
    }
    if (Atomics.load(this.shared, Slot.Checkpointed) >= Atomics.load(this.shared, Slot.Log)) this.threshold = WAL_LIMIT_FRAMES
    // writes that came during the pass are copied by the next one, even if no more follow
    if (this.dirty && this.drain === undefined) this.schedule()
  }

  /** Back to the connection's own checkpoints. */
  private stop (): void {
    this.ended = true
    this.wake(true)
    if (!this.active) return
    this.active = false
    clearTimeout(this.trailing)
    this.trailing = undefined
    try {
      this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`)
    } catch {
      // the connection is closed: nothing to restore
    }
  }

  /** Ends the thread (after a pass in progress). Call before closing the writer connection. Idempotent. */
  async close (): Promise<void> {
    this.closing ??= (async () => {
      this.stop()
      const worker = this.worker
      if (worker === undefined) return
      worker.postMessage('close')
      const timer = setTimeout(() => { void worker.terminate() }, CLOSE_WAIT_MS)
      await this.exited
      clearTimeout(timer)
    })()
    await this.closing
  }
}
