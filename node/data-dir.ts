/**
 * The layout of a data dir and its lock. One process owns a data dir at a time (it holds
 * `LOCK`); the CLI talks to that process through the local API described in `api.json`.
 *
 * ```
 * <dir>/keystore.json   device key, certificate, swarm identity (0600)
 * <dir>/peakdb.sqlite   log and documents (+ -wal, -shm)
 * <dir>/LOCK            the owning process: pid, and whether it is a daemon or a short-lived command
 * <dir>/STARTING        a daemon on its way: commands wait for its local API instead of taking LOCK
 * <dir>/api.json        address and token of a running daemon's local API (0600)
 * <dir>/peers.json      devices met before and their addresses (0600): kept outside the
 *                       database, so that a device whose database is lost still finds the others
 * <dir>/storage.json    where the log and documents live when not in peakdb.sqlite: a
 *                       PostgreSQL connection string and schema (0600: it may hold a password)
 * ```
 *
 * A daemon that finds a short-lived command holding the lock waits for it (bounded); a command
 * that finds a daemon starting steps aside and uses the daemon once its API is up, so a loop of
 * commands cannot keep a restarting daemon out.
 */
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync, existsSync, statSync, chmodSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { DaemonStartingError, DataDirError, DataDirLockedError } from './errors.js'

/** Paths of the files in a data dir. */
export interface DataDirPaths {
  readonly dir: string
  readonly keystore: string
  readonly database: string
  readonly lock: string
  readonly starting: string
  readonly api: string
  readonly peers: string
  readonly storage: string
}

/** The default data dir: `$PEAKDB_DIR`, else `~/.peakdb`. */
export function defaultDataDir (): string {
  const env = process.env.PEAKDB_DIR
  return env !== undefined && env !== '' ? resolve(env) : join(homedir(), '.peakdb')
}

/**
 * The paths of a data dir. Throws {@link DataDirError} when `dir` is a file, or lies inside one:
 * every command and `PeakNode.open` resolve their dir here, so they all say so the same way.
 */
export function dataDirPaths (dir: string): DataDirPaths {
  const abs = resolve(dir)
  assertNotAFile(abs)
  return {
    dir: abs,
    keystore: join(abs, 'keystore.json'),
    database: join(abs, 'peakdb.sqlite'),
    lock: join(abs, 'LOCK'),
    starting: join(abs, 'STARTING'),
    api: join(abs, 'api.json'),
    peers: join(abs, 'peers.json'),
    storage: join(abs, 'storage.json')
  }
}

function assertNotAFile (abs: string): void {
  let isDir: boolean
  try {
    isDir = statSync(abs).isDirectory()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new DataDirError(`${abs} lies inside a file, not a directory: the data dir (--dir) must be a directory`, { cause: err })
    }
    return // missing (created on first open) or unreadable (reported by whatever reads it)
  }
  if (!isDir) throw new DataDirError(`${abs} is a file, not a directory: the data dir (--dir) must be a directory`)
}

/** Creates the data dir (mode 0700) if missing. */
export function ensureDataDir (dir: string): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })
  else if ((statSync(dir).mode & 0o077) !== 0) {
    try { chmodSync(dir, 0o700) } catch { /* not ours to fix: keys inside are 0600 anyway */ }
  }
}

/** True when a process with this pid is alive. */
export function processAlive (pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * What holds a data dir: a long-running owner (`peakdb start`, or an application with the node
 * open) or a short-lived CLI command.
 */
export type LockKind = 'daemon' | 'command'

/** The live holder of a data dir's lock. */
export interface LockHolder {
  readonly pid: number
  readonly kind: LockKind
}

/** How often a waiting daemon looks at the lock again, in ms. */
const LOCK_POLL_MS = 50

/** How long a `STARTING` marker outlives its daemon's lock deadline, in ms (see {@link pendingDaemon}). */
const STARTING_GRACE_MS = 15_000

function readText (path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

/** Parses a lock file: `{"pid":…,"kind":…}`, or the bare pid earlier versions wrote (taken as a daemon). */
function parseLock (text: string | undefined): LockHolder | undefined {
  if (text === undefined) return undefined
  const trimmed = text.trim()
  if (/^\d+$/.test(trimmed)) return { pid: Number(trimmed), kind: 'daemon' }
  try {
    const v = JSON.parse(trimmed) as { pid?: unknown, kind?: unknown }
    if (typeof v.pid === 'number' && (v.kind === 'daemon' || v.kind === 'command')) return { pid: v.pid, kind: v.kind }
  } catch { /* foreign content: treated as stale */ }
  return undefined
}

/** The holder named in a lock file, if the file exists and names a live process. */
export function lockHolder (lockPath: string): LockHolder | undefined {
  const holder = parseLock(readText(lockPath))
  return holder !== undefined && processAlive(holder.pid) ? holder : undefined
}

/**
 * Creates `path` holding `text`, only if it does not exist. The file appears with its content
 * (a hard link of a finished temporary file), so no reader ever sees it empty and takes it for
 * stale. Returns false when it exists.
 */
function createExclusive (path: string, text: string): boolean {
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, text, { mode: 0o600 })
  try {
    linkSync(tmp, path)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return false
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw err
  } finally {
    try { unlinkSync(tmp) } catch { /* already gone */ }
  }
  // a file system without hard links: exclusive create, then write
  try {
    const fd = openSync(path, 'wx', 0o600)
    try { writeSync(fd, text) } finally { closeSync(fd) }
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
}

/** An idempotent removal of the file this process created at `path` with `text`. */
function remover (path: string, text: string): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    removeIfUnchanged(path, text)
  }
}

/** Removes `path` if it still holds `text` (a stale file judged by its content, not another's fresh one). */
function removeIfUnchanged (path: string, text: string): void {
  try {
    if (readFileSync(path, 'utf8') === text) unlinkSync(path)
  } catch { /* already gone */ }
}

/**
 * The pid of a daemon that announced it is starting on the data dir ({@link announceDaemon}),
 * unless that is this process. A marker counts while its process lives and, past the daemon's
 * lock deadline, only while that process holds the lock: a marker left by a crash never blocks
 * anyone, even when its pid is reused.
 */
export function pendingDaemon (paths: DataDirPaths): number | undefined {
  const text = readText(paths.starting)
  if (text === undefined) return undefined
  let marker: { pid?: unknown, until?: unknown }
  try {
    marker = JSON.parse(text) as typeof marker
  } catch {
    return undefined
  }
  const { pid, until } = marker
  if (typeof pid !== 'number' || typeof until !== 'number' || pid === process.pid || !processAlive(pid)) return undefined
  if (Date.now() > until && lockHolder(paths.lock)?.pid !== pid) return undefined
  return pid
}

/** A daemon's announcement that it is starting on a data dir. */
export interface DaemonAnnouncement {
  /** Removes the announcement (once the daemon's API is up, or it gave up). Idempotent. */
  withdraw (): void
}

/**
 * Announces that this process, a daemon, is starting on the data dir: from now until
 * `withdraw()`, short-lived commands do not take the lock but wait for the daemon's local API.
 * `waitMs` is how long the daemon may wait for the lock. Throws {@link DataDirLockedError} when
 * another daemon is starting on the dir.
 */
export function announceDaemon (paths: DataDirPaths, options: { waitMs: number }): DaemonAnnouncement {
  const text = JSON.stringify({ pid: process.pid, until: Date.now() + options.waitMs + STARTING_GRACE_MS }) + '\n'
  for (let attempt = 0; attempt < 10; attempt++) {
    if (createExclusive(paths.starting, text)) return { withdraw: remover(paths.starting, text) }
    const other = pendingDaemon(paths)
    if (other !== undefined) throw new DataDirLockedError(paths.dir, other, 'daemon', `data dir ${paths.dir} is in use: a daemon (pid ${other}) is starting on this dir`)
    const stale = readText(paths.starting)
    if (stale !== undefined) removeIfUnchanged(paths.starting, stale)
  }
  throw new DataDirError(`cannot create ${paths.starting}: it keeps reappearing`)
}

/** A held data-dir lock. */
export interface DirLock {
  release (): void
}

/** How to take a data dir's lock. */
export interface LockOptions {
  /**
   * What takes it (default `daemon`). A `command` steps aside for a daemon that is starting
   * ({@link DaemonStartingError}); a `daemon` may wait for a command (`waitMs`).
   */
  readonly kind?: LockKind
  /**
   * How long a daemon waits for short-lived commands to release the lock, in ms (default 0:
   * fail at once). A lock held by another daemon fails at once either way.
   */
  readonly waitMs?: number
  /** Called when the daemon starts waiting for a command (once per command). */
  readonly onWait?: (holder: LockHolder) => void
  readonly signal?: AbortSignal
}

/** Takes the lock if free (replacing stale ones), else returns its live holder. */
function tryLock (paths: DataDirPaths, kind: LockKind): DirLock | LockHolder {
  const text = JSON.stringify({ pid: process.pid, kind }) + '\n'
  for (let attempt = 0; attempt < 10; attempt++) {
    if (createExclusive(paths.lock, text)) return { release: remover(paths.lock, text) }
    const current = readText(paths.lock)
    const holder = parseLock(current)
    if (holder !== undefined && processAlive(holder.pid)) return holder
    // stale: its process is gone
    if (current !== undefined) removeIfUnchanged(paths.lock, current)
  }
  throw new DataDirError(`cannot take the lock ${paths.lock}: it keeps changing hands`)
}

/**
 * Takes the data dir's lock, replacing a stale one (its process is gone). Throws
 * {@link DataDirLockedError} when a live process holds it (after waiting up to `waitMs` for a
 * short-lived command), and, for a `command`, {@link DaemonStartingError} when a daemon
 * announced it is starting.
 */
export async function acquireLock (paths: DataDirPaths, options: LockOptions = {}): Promise<DirLock> {
  const kind = options.kind ?? 'daemon'
  const deadline = Date.now() + (options.waitMs ?? 0)
  const waitedFor = new Set<number>()
  for (;;) {
    options.signal?.throwIfAborted()
    const got = tryLock(paths, kind)
    if ('release' in got) {
      // a daemon may have announced itself while this command was on its way: step aside
      const pending = kind === 'command' ? pendingDaemon(paths) : undefined
      if (pending === undefined) return got
      got.release()
      throw new DaemonStartingError(paths.dir, pending)
    }
    if (kind === 'command' || got.kind === 'daemon' || got.pid === process.pid) throw new DataDirLockedError(paths.dir, got.pid, got.kind)
    if (Date.now() >= deadline) {
      throw new DataDirLockedError(paths.dir, got.pid, got.kind, waitedFor.size === 0
        ? undefined
        : `data dir ${paths.dir} is in use by a short-lived command (pid ${got.pid}) that did not release it within ${Math.round((options.waitMs ?? 0) / 1000)} s`)
    }
    if (!waitedFor.has(got.pid)) {
      waitedFor.add(got.pid)
      options.onWait?.(got)
    }
    await sleep(LOCK_POLL_MS, undefined, options.signal !== undefined ? { signal: options.signal } : {})
  }
}
