/**
 * A look at an LMDB data file before LMDB maps it. LMDB trusts its file: handed one that is not
 * an LMDB file, the native open crashes the process instead of failing. This reads the two meta
 * pages (magic, version, page size) and compares the file size with the last page the newer
 * meta page names, the way the SQLite provider checks its header.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs'

const MAGIC = 0xbeefc0de
/** The data format version the bundled LMDB writes. */
const DATA_VERSION = 2
/** Offsets in a meta page: after the page header come magic, version, ..., the FREE_DBI record (its pad holds the page size), last page and txn id. */
const AT_MAGIC = 24
const AT_VERSION = 28
const AT_PAGE_SIZE = 48
const AT_LAST_PAGE = 144
const AT_TXN = 152
const META_BYTES = 160

interface Meta { readonly pageSize: number, readonly lastPage: number, readonly txn: number }

function readAt (fd: number, position: number): Buffer | undefined {
  const b = Buffer.alloc(META_BYTES)
  return readSync(fd, b, 0, META_BYTES, position) === META_BYTES ? b : undefined
}

function meta (b: Buffer | undefined): Meta | string {
  if (b === undefined) return 'too short for its meta pages'
  if (b.readUInt32LE(AT_MAGIC) !== MAGIC) return 'not an LMDB data file (bad magic)'
  const version = b.readUInt32LE(AT_VERSION)
  if (version !== DATA_VERSION) return `LMDB data version ${version}, expected ${DATA_VERSION}`
  const pageSize = b.readUInt32LE(AT_PAGE_SIZE)
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return `implausible page size ${pageSize}`
  return { pageSize, lastPage: Number(b.readBigUInt64LE(AT_LAST_PAGE)), txn: Number(b.readBigUInt64LE(AT_TXN)) }
}

/**
 * Why the data file at `file` cannot be opened safely, or undefined when it looks sound (or does
 * not exist yet).
 */
export function lmdbFileProblem (file: string): string | undefined {
  if (!existsSync(file)) return undefined
  const size = statSync(file).size
  if (size === 0) return undefined
  const fd = openSync(file, 'r')
  try {
    const first = meta(readAt(fd, 0))
    if (typeof first === 'string') return first
    const second = meta(readAt(fd, first.pageSize))
    if (typeof second === 'string') return `second meta page: ${second}`
    const current = second.txn > first.txn ? second : first
    const needed = (current.lastPage + 1) * current.pageSize
    if (size < needed) return `file is truncated: ${size} bytes, its meta page says ${needed}`
    return undefined
  } finally {
    closeSync(fd)
  }
}
