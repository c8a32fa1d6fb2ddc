/**
 * Folder indexing: walks a folder and keeps a device-local collection (default `files`) in step
 * with it: one document per file with its path, size, modification time and SHA-256, plus the
 * text of text files (plain text, Markdown, source code, JSON, HTML without its tags), which
 * the search indexer chunks and embeds like any document.
 *
 * Re-running is incremental: a file whose size and modification time did not change is not
 * read again, a changed one is re-read (and re-embedded only if its text changed), a deleted
 * one is removed. Ignored: `.git`, `node_modules` and similar noise, symbolic links, and the
 * gitignore-style patterns of a `.peakdbignore` file at the folder's root. A file is text when
 * its first 8 KiB hold no NUL byte and it decodes as UTF-8.
 */
import { createHash } from 'node:crypto'
import { createReadStream, watch, type FSWatcher } from 'node:fs'
import { open, readdir, readFile, realpath, stat } from 'node:fs/promises'
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path'
import ignore, { type Ignore } from 'ignore'
import type { Collection } from './collection.js'
import { AbortError, InvalidOptionError } from './errors.js'
import { createLogger } from './logger.js'

const logger = createLogger('files')

/** Directory and file names never indexed. */
export const IGNORED_NAMES = new Set(['.git', '.hg', '.svn', 'node_modules', '__pycache__', '.venv', '.cache', '.DS_Store', 'Thumbs.db', '.peakdb'])
/** The ignore file read at the root of an indexed folder. */
export const IGNORE_FILE = '.peakdbignore'
/** Text beyond this many characters is not indexed (the document notes `truncated`). */
export const MAX_TEXT_CHARS = 100_000
/** Files larger than this are indexed by name and metadata only (no hash, no text). */
export const MAX_READ_BYTES = 64 * 1024 * 1024
/** Files larger than this are not read for text. */
const MAX_TEXT_FILE_BYTES = 4 * 1024 * 1024
const BATCH = 200

/** What a file's document holds. */
export interface FileDoc {
  readonly path: string
  readonly name: string
  readonly ext: string
  /** The indexed folder it was found under. */
  readonly root: string
  /** Its folder relative to `root` ('' at the root), with '/' separators. */
  readonly dir: string
  readonly size: number
  /** Modification time, ms since the epoch. */
  readonly mtime: number
  /** SHA-256 of the content, hex (absent for files over 64 MiB). */
  readonly hash?: string
  /** 'text' (with `text`), 'binary', or 'large' (over 4 MiB, not read for text). */
  readonly kind: 'text' | 'binary' | 'large'
  readonly text?: string
  readonly truncated?: boolean
}

/** Progress of an indexing run. */
export interface FolderProgress {
  readonly root: string
  /** 'scan': walking; 'files': reading changed files; 'embed': waiting for the search index. */
  readonly phase: 'scan' | 'files' | 'embed'
  /** Files found so far / in all. */
  readonly found: number
  /** Files checked (read or found unchanged) of `found`. */
  readonly checked: number
  /** Documents still waiting to be indexed for search (phase 'embed'). */
  readonly pendingIndex: number
}

/** What an indexing run did. */
export interface FolderIndexResult {
  readonly root: string
  readonly collection: string
  readonly files: number
  readonly added: number
  readonly updated: number
  readonly unchanged: number
  readonly removed: number
  /** Files whose contents were read (new, or changed size or time); the others were skipped unread. */
  readonly read: number
  /** Files that could not be read (permissions, vanished while indexing). */
  readonly errors: ReadonlyArray<{ readonly path: string, readonly error: string }>
  readonly ms: number
}

export interface IndexFolderOptions {
  /** Device-local collection to keep in step (default 'files'). */
  readonly collection?: string
  /** Wait until the new text is embedded (default true). */
  readonly waitForIndex?: boolean
  readonly signal?: AbortSignal
  readonly onProgress?: (p: FolderProgress) => void
}

/** A running watch of a folder. */
export interface FolderWatch {
  readonly root: string
  readonly collection: string
  /** Resolves after the first indexing run. */
  readonly ready: Promise<FolderIndexResult>
  /** Each later run (a change settled for 300 ms). */
  on (event: 'indexed', listener: (r: FolderIndexResult) => void): void
  close (): void
}

/** The id of a file's document: derived from its absolute path. */
export function fileDocId (path: string): string {
  return 'f' + createHash('sha256').update(path).digest('hex').slice(0, 40)
}

/** Text of an HTML document: scripts, styles and tags removed, common entities decoded. */
export function htmlText (html: string): string {
  const entities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' }
  return html
    .replace(/<(script|style|noscript|template)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<\/(p|div|h[1-6]|li|tr|br|section|article)\s*>|<br\s*\/?>/gi, '\n')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&(#\d+|#x[0-9a-f]+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === '#') {
        const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)
        return Number.isFinite(code) && code > 0 && code < 0x110000 ? String.fromCodePoint(code) : m
      }
      return entities[e.toLowerCase()] ?? m
    })
    .replace(/[ \t]+/g, ' ')
    .replace(/\n\s*\n+/g, '\n')
    .trim()
}

const decoder = new TextDecoder('utf-8', { fatal: true })

/** The text of a file's bytes, or undefined when they are not text. */
export function fileText (bytes: Uint8Array, ext: string): string | undefined {
  if (bytes.subarray(0, 8192).includes(0)) return undefined
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    return undefined
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  return ext === '.html' || ext === '.htm' || ext === '.xhtml' ? htmlText(text) : text
}

async function hashFile (path: string, signal?: AbortSignal): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(path, signal !== undefined ? { signal } : {})) h.update(chunk as Buffer)
  return h.digest('hex')
}

/** `node.files`: folder indexing into device-local collections. */
export class FileIndexer {
  private readonly watches = new Set<FolderWatch>()
  private running: FolderProgress | undefined

  /** `collection(name)`: the device-local collection to index into (created if new). */
  constructor (private readonly collection: (name: string) => Collection) {}

  /** Progress of the run in progress, if any. */
  progress (): FolderProgress | undefined {
    return this.running
  }

  /** Indexes a folder (incrementally: see the module comment). */
  async index (path: string, options: IndexFolderOptions = {}): Promise<FolderIndexResult> {
    const started = performance.now()
    const root = await this.rootOf(path)
    const name = options.collection ?? 'files'
    const files = this.collection(name)
    const check = (): void => { if (options.signal?.aborted === true) throw new AbortError() }
    let progress: FolderProgress = { root, phase: 'scan', found: 0, checked: 0, pendingIndex: 0 }
    const report = (p: Partial<FolderProgress>): void => {
      progress = { ...progress, ...p }
      this.running = progress
      options.onProgress?.(progress)
    }
    try {
      report({})
      const found = await this.walk(root, n => report({ found: n }), check)
      report({ phase: 'files', found: found.length })
      // what the collection holds for this folder
      const known = new Map<string, { id: string, size: number, mtime: number, hash?: string }>()
      for (let offset = 0; ; offset += 10_000) {
        const page = await files.find({ where: { root }, orderBy: '_id', limit: 10_000, offset })
        for (const d of page) known.set(d.path as string, { id: d._id, size: d.size as number, mtime: d.mtime as number, ...(typeof d.hash === 'string' ? { hash: d.hash } : {}) })
        if (page.length < 10_000) break
      }
      let added = 0
      let updated = 0
      let unchanged = 0
      let read = 0
      const errors: Array<{ path: string, error: string }> = []
      let batch: Array<FileDoc & { _id: string }> = []
      const flush = async (): Promise<void> => {
        if (batch.length > 0) await files.putMany(batch)
        batch = []
      }
      const seen = new Set<string>()
      for (const [i, file] of found.entries()) {
        check()
        seen.add(file.path)
        const before = known.get(file.path)
        if (before !== undefined && before.size === file.size && before.mtime === file.mtime) {
          unchanged++
        } else {
          try {
            read++
            const doc = await this.read(root, file, options.signal)
            if (before !== undefined && before.hash !== undefined && before.hash === doc.hash && before.size === doc.size) {
              // same content, new time: a cheap update (the text and its vectors stay)
              batch.push({ _id: before.id, ...doc })
              unchanged++
            } else {
              batch.push({ _id: fileDocId(file.path), ...doc })
              if (before === undefined) added++
              else updated++
            }
          } catch (err) {
            if ((err as Error).name === 'AbortError') throw err
            errors.push({ path: file.path, error: (err as Error).message }) // stays indexed as it was
          }
          if (batch.length >= BATCH) await flush()
        }
        if (i % 50 === 0 || i === found.length - 1) report({ checked: i + 1 })
      }
      await flush()
      let removed = 0
      for (const [p, k] of known) {
        if (seen.has(p)) continue
        await files.delete(k.id)
        removed++
      }
      if (options.waitForIndex !== false) {
        report({ phase: 'embed', pendingIndex: await files.pendingIndex() })
        const timer = setInterval(() => { void files.pendingIndex().then(n => report({ pendingIndex: n }), () => {}) }, 250)
        try {
          await files.indexed(options.signal !== undefined ? { signal: options.signal } : {})
        } finally {
          clearInterval(timer)
        }
        report({ pendingIndex: await files.pendingIndex() })
      }
      check()
      const result = { root, collection: name, files: found.length, added, updated, unchanged, removed, read, errors, ms: performance.now() - started }
      logger.info('folder indexed', { root, files: result.files, added, updated, removed, errors: errors.length, ms: Math.round(result.ms) })
      return result
    } finally {
      this.running = undefined
    }
  }

  /**
   * Indexes a folder, then again whenever something in it changes (changes settle for 300 ms
   * first). `close()` stops watching.
   */
  watch (path: string, options: Omit<IndexFolderOptions, 'signal'> = {}): FolderWatch {
    const listeners: Array<(r: FolderIndexResult) => void> = []
    const stop = new AbortController()
    let watcher: FSWatcher | undefined
    let timer: NodeJS.Timeout | undefined
    let running: Promise<unknown> = Promise.resolve()
    let again = false
    const run = async (): Promise<FolderIndexResult> => await this.index(path, { ...options, signal: stop.signal })
    const schedule = (): void => {
      clearTimeout(timer)
      timer = setTimeout(() => {
        if (stop.signal.aborted) return
        again = true
        running = running.then(async () => {
          if (!again || stop.signal.aborted) return
          again = false
          const r = await run()
          for (const l of listeners) l(r)
        }).catch(err => { if ((err as Error).name !== 'AbortError') logger.warn('re-indexing a watched folder failed', { path, error: (err as Error).message }) })
      }, 300)
    }
    const ready = (async () => {
      const root = await this.rootOf(path)
      watcher = watch(root, { recursive: true }, () => schedule())
      watcher.on('error', err => logger.warn('watching a folder failed', { path: root, error: err.message }))
      const first = run()
      running = first.catch(() => {})
      return await first
    })()
    ready.catch(() => {})
    const handle: FolderWatch = {
      root: resolve(path),
      collection: options.collection ?? 'files',
      ready,
      on: (_event, listener) => { listeners.push(listener) },
      close: () => {
        stop.abort()
        clearTimeout(timer)
        watcher?.close()
        this.watches.delete(handle)
      }
    }
    this.watches.add(handle)
    return handle
  }

  /** The folders watched now. */
  watched (): Array<{ root: string, collection: string }> {
    return [...this.watches].map(w => ({ root: w.root, collection: w.collection }))
  }

  /** Stops watching a folder; false when it was not watched. */
  unwatch (path: string): boolean {
    const root = resolve(path)
    const w = [...this.watches].find(x => x.root === root)
    w?.close()
    return w !== undefined
  }

  /** Stops every watch. */
  close (): void {
    for (const w of [...this.watches]) w.close()
  }

  private async rootOf (path: string): Promise<string> {
    if (typeof path !== 'string' || path.length === 0) throw new InvalidOptionError('expected a folder path')
    let root: string
    try {
      root = await realpath(resolve(path))
    } catch {
      throw new InvalidOptionError(`folder ${path} does not exist`)
    }
    if (!(await stat(root)).isDirectory()) throw new InvalidOptionError(`${path} is not a folder`)
    return root
  }

  /** Every regular file under `root`, minus the ignored ones. */
  private async walk (root: string, onFound: (n: number) => void, check: () => void): Promise<Array<{ path: string, size: number, mtime: number }>> {
    let rules: Ignore | undefined
    try {
      rules = ignore().add(await readFile(join(root, IGNORE_FILE), 'utf8'))
    } catch {
      rules = undefined
    }
    const out: Array<{ path: string, size: number, mtime: number }> = []
    const dirs = [root]
    while (dirs.length > 0) {
      check()
      const dir = dirs.pop() as string
      let entries
      try {
        entries = await readdir(dir, { withFileTypes: true })
      } catch (err) {
        logger.warn('cannot read a folder; skipping it', { path: dir, error: (err as Error).message })
        continue
      }
      for (const e of entries) {
        if (IGNORED_NAMES.has(e.name) || e.name === IGNORE_FILE) continue
        const full = join(dir, e.name)
        const rel = relative(root, full).split(sep).join('/')
        if (e.isDirectory()) {
          if (rules?.ignores(rel + '/') !== true) dirs.push(full)
        } else if (e.isFile() && rules?.ignores(rel) !== true) {
          try {
            const st = await stat(full)
            out.push({ path: full, size: st.size, mtime: Math.floor(st.mtimeMs) })
            if (out.length % 100 === 0) onFound(out.length)
          } catch {
            // vanished between readdir and stat
          }
        }
      }
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : 1))
  }

  /** A file's document. */
  private async read (root: string, file: { path: string, size: number, mtime: number }, signal?: AbortSignal): Promise<FileDoc> {
    const ext = extname(file.path).toLowerCase()
    const dir = relative(root, dirname(file.path)).split(sep).join('/')
    const base = { path: file.path, name: basename(file.path), ext, root, dir, size: file.size, mtime: file.mtime }
    if (file.size > MAX_READ_BYTES) return { ...base, kind: 'large' }
    if (file.size > MAX_TEXT_FILE_BYTES) return { ...base, hash: await hashFile(file.path, signal), kind: 'large' }
    const fh = await open(file.path, 'r')
    let bytes: Buffer
    try {
      bytes = await fh.readFile(signal !== undefined ? { signal } : {})
    } finally {
      await fh.close()
    }
    const hash = createHash('sha256').update(bytes).digest('hex')
    const text = fileText(bytes, ext)
    if (text === undefined) return { ...base, size: bytes.length, hash, kind: 'binary' }
    const truncated = text.length > MAX_TEXT_CHARS
    return { ...base, size: bytes.length, hash, kind: 'text', text: truncated ? text.slice(0, MAX_TEXT_CHARS) : text, ...(truncated ? { truncated } : {}) }
  }
}
