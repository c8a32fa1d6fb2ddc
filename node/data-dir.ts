/**
 * The layout of a data dir and its lock. One process owns a data dir at a time (it holds
 * `LOCK`); the CLI talks to that process through the local API described in `api.json`.
 *
 * ```
 * <dir>/keystore.json   device key, certificate, swarm identity (0600)
 * <dir>/peakdb.sqlite   log and documents (+ -wal, -shm)
 * <dir>/LOCK            pid of the owning process
 * <dir>/api.json        address and token of a running daemon's local API (0600)
 * ```
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync, existsSync, statSync, chmodSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { DataDirLockedError } from './errors.js'

/** Paths of the files in a data dir. */
export interface DataDirPaths {
  readonly dir: string
  readonly keystore: string
  readonly database: string
  readonly lock: string
  readonly api: string
}

/** The default data dir: `$PEAKDB_DIR`, else `~/.peakdb`. */
export function defaultDataDir (): string {
  const env = process.env.PEAKDB_DIR
  return env !== undefined && env !== '' ? resolve(env) : join(homedir(), '.peakdb')
}

/** The paths of a data dir. */
export function dataDirPaths (dir: string): DataDirPaths {
  const abs = resolve(dir)
  return {
    dir: abs,
    keystore: join(abs, 'keystore.json'),
    database: join(abs, 'peakdb.sqlite'),
    lock: join(abs, 'LOCK'),
    api: join(abs, 'api.json')
  }
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

/** The pid in a lock file, if the file exists and names a live process. */
export function lockHolder (lockPath: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, 'utf8').trim(), 10)
    return processAlive(pid) ? pid : undefined
  } catch {
    return undefined
  }
}

/** A held data-dir lock. */
export interface DirLock {
  release (): void
}

/**
 * Takes the data dir's lock, replacing a stale one (its process is gone). Throws
 * {@link DataDirLockedError} when a live process holds it.
 */
export function acquireLock (paths: DataDirPaths): DirLock {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(paths.lock, 'wx', 0o600)
      writeSync(fd, `${process.pid}\n`)
      closeSync(fd)
      let released = false
      return {
        release () {
          if (released) return
          released = true
          try {
            if (readFileSync(paths.lock, 'utf8').trim() === String(process.pid)) unlinkSync(paths.lock)
          } catch { /* already gone */ }
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const holder = lockHolder(paths.lock)
      if (holder !== undefined) throw new DataDirLockedError(paths.dir, holder)
      try { unlinkSync(paths.lock) } catch { /* raced with another remover */ }
    }
  }
  throw new DataDirLockedError(paths.dir, Number.parseInt(readFileSync(paths.lock, 'utf8'), 10))
}
