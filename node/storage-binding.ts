/**
 * Where a node keeps its log and documents. The embedded SQLite file in the data dir is the
 * default; a PostgreSQL server is chosen once, at the first open (`peakdb init --storage
 * postgres://…`, `storage` in config.json, or `PeakNode.open({ storage })`), and recorded in
 * `<dir>/storage.json` so that every later open (daemon or command) finds the same place. The
 * data dir keeps the keystore, the lock and the configuration either way.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import { writeFileAtomic } from '../identity/index.js'
import type { PostgresPoolOptions, RoutedStore, StorageProvider } from '../storage/index.js'
import type { DataDirPaths } from './data-dir.js'
import { DataDirError, InvalidOptionError } from './errors.js'

/** Storage as given by a user: a connection string, 'sqlite', or an object. */
export type StorageSpec =
  | string
  | { readonly kind: 'sqlite' }
  | { readonly kind: 'postgres', readonly url: string, readonly schema?: string, readonly pool?: PostgresPoolOptions }

/** Storage as bound to a data dir. */
export type StorageBinding =
  | { readonly kind: 'sqlite' }
  | { readonly kind: 'postgres', readonly url: string, readonly schema: string, readonly pool?: PostgresPoolOptions }

const poolSchema = z.object({
  max: z.number().int().min(1).max(1000).optional(),
  connectionTimeoutMs: z.number().int().min(1).max(3_600_000).optional(),
  idleTimeoutMs: z.number().int().min(0).max(86_400_000).optional(),
  statementTimeoutMs: z.number().int().min(0).max(86_400_000).optional(),
  applicationName: z.string().min(1).max(63).optional()
}).strict()

const postgresUrl = z.string().max(4096).refine(s => /^postgres(ql)?:\/\//.test(s), 'expected a postgres:// connection string')

/** The `storage` setting of config.json. */
export const storageSchema = z.union([
  z.literal('sqlite'),
  postgresUrl,
  z.object({ kind: z.literal('sqlite') }).strict(),
  z.object({ kind: z.literal('postgres'), url: postgresUrl, schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'lower-case letters, digits and _').optional(), pool: poolSchema.optional() }).strict()
])

const bindingSchema = z.union([
  z.object({ kind: z.literal('sqlite') }).strict(),
  z.object({ kind: z.literal('postgres'), url: postgresUrl, schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/), pool: poolSchema.optional() }).strict()
])

function normalise (spec: StorageSpec): { kind: 'sqlite' } | { kind: 'postgres', url: string, schema?: string, pool?: PostgresPoolOptions } {
  const parsed = storageSchema.safeParse(spec)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new InvalidOptionError(`storage: ${issue?.message ?? 'invalid'} (expected "sqlite" or a postgres://user@host/database connection string)`)
  }
  const v = parsed.data
  if (v === 'sqlite') return { kind: 'sqlite' }
  if (typeof v === 'string') return { kind: 'postgres', url: v }
  // zod's optional fields read as `T | undefined`; the schema leaves them absent, never undefined
  return v as { kind: 'sqlite' } | { kind: 'postgres', url: string, schema?: string, pool?: PostgresPoolOptions }
}

function readBinding (paths: DataDirPaths): StorageBinding | undefined {
  if (!existsSync(paths.storage)) return undefined
  let value: unknown
  try {
    value = JSON.parse(readFileSync(paths.storage, 'utf8'))
  } catch (err) {
    throw new DataDirError(`${paths.storage} is not valid JSON (${(err as Error).message}); it says where this device's data lives: restore it`)
  }
  const parsed = bindingSchema.safeParse(value)
  if (!parsed.success) throw new DataDirError(`${paths.storage} does not validate (${parsed.error.issues[0]?.message ?? 'invalid'}); it says where this device's data lives: restore it`)
  return parsed.data as StorageBinding
}

/** The storage of a data dir: its recorded binding, or what `spec` asks for on a new one. */
export function resolveStorage (paths: DataDirPaths, spec: StorageSpec | undefined): { binding: StorageBinding, record: boolean } {
  const bound = readBinding(paths)
  const wanted = spec === undefined ? undefined : normalise(spec)
  if (bound !== undefined) {
    if (wanted !== undefined && !sameStorage(bound, wanted)) {
      throw new DataDirError(`${paths.dir} keeps its data in ${describe(bound)} (${paths.storage}); it cannot be opened on ${describe(wanted)}. Moving a device's data is done with a new data dir: init another one there and pair it`)
    }
    return { binding: bound, record: false }
  }
  if (wanted === undefined || wanted.kind === 'sqlite') return { binding: { kind: 'sqlite' }, record: false }
  return {
    binding: { kind: 'postgres', url: wanted.url, schema: wanted.schema ?? `peakdb_${randomBytes(6).toString('hex')}`, ...(wanted.pool !== undefined ? { pool: wanted.pool } : {}) },
    record: true
  }
}

function sameStorage (a: StorageBinding, b: ReturnType<typeof normalise>): boolean {
  if (a.kind !== b.kind) return false
  if (a.kind === 'sqlite' || b.kind === 'sqlite') return true
  return sameServer(a.url, b.url) && (b.schema === undefined || a.schema === b.schema)
}

/** Two connection strings to the same server, user and database (a changed password is the same place). */
function sameServer (a: string, b: string): boolean {
  try {
    const [x, y] = [new URL(a), new URL(b)]
    return x.protocol.replace('postgresql:', 'postgres:') === y.protocol.replace('postgresql:', 'postgres:') && x.username === y.username && x.host === y.host && x.pathname === y.pathname
  } catch {
    return a === b
  }
}

function describe (s: ReturnType<typeof normalise> | StorageBinding): string {
  if (s.kind === 'sqlite') return 'the embedded SQLite file'
  const u = new URL(s.url)
  return `PostgreSQL ${u.host}${u.pathname}${s.schema !== undefined ? ` (schema ${s.schema})` : ''}`
}

/** Records a binding in the data dir (0600: a connection string may hold a password). */
export function recordStorage (paths: DataDirPaths, binding: StorageBinding): void {
  writeFileAtomic(paths.storage, JSON.stringify(binding, null, 2) + '\n', 0o600)
}

/** Forgets a binding recorded by an open that failed. */
export function forgetStorage (paths: DataDirPaths): void {
  rmSync(paths.storage, { force: true })
}

/** Opens the provider of a binding (PostgreSQL is loaded only when used). */
export async function openStorage (binding: StorageBinding, paths: DataDirPaths, durability: 'normal' | 'full' | undefined): Promise<StorageProvider> {
  if (binding.kind === 'postgres') {
    const { PostgresProvider } = await import('../storage/postgres/pg-provider.js')
    return await PostgresProvider.open({ url: binding.url, schema: binding.schema, ...(binding.pool !== undefined ? { pool: binding.pool } : {}) })
  }
  const { SqliteProvider } = await import('../storage/sqlite/sqlite-provider.js')
  return await SqliteProvider.open(durability === undefined ? { path: paths.database } : { path: paths.database, durability })
}

/** A named provider collections can be routed to (config.json `providers`). */
export type ProviderSpec =
  | { readonly kind: 'postgres', readonly url: string, readonly schema?: string, readonly pool?: PostgresPoolOptions }
  | { readonly kind: 'sqlite', readonly path?: string }
  | { readonly kind: 'file', readonly path?: string }

const PROVIDER_NAME = /^[a-z][a-z0-9_-]{0,31}$/

/** config.json `providers`: names to provider settings. */
export const providersSchema = z.record(
  z.string().regex(PROVIDER_NAME, 'provider names are lower-case letters, digits, _ and -, starting with a letter').refine(n => n !== 'primary', 'primary names the node\'s own storage'),
  z.union([
    z.object({ kind: z.literal('postgres'), url: postgresUrl, schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'lower-case letters, digits and _').optional(), pool: poolSchema.optional() }).strict(),
    z.object({ kind: z.literal('sqlite'), path: z.string().min(1).max(4096).optional() }).strict(),
    z.object({ kind: z.literal('file'), path: z.string().min(1).max(4096).optional() }).strict()
  ])
)

/** config.json `routes`: a collection name, or a `prefix*` pattern, to a provider name. */
export const routesSchema = z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\*?$/, 'a collection name, or a prefix ending in *'), z.string().min(1).max(32))

/**
 * Opens a named provider. A PostgreSQL provider without a schema gets one on first open,
 * remembered in the primary storage; SQLite and file providers live under `<dir>/providers/`.
 */
export async function openProvider (name: string, spec: ProviderSpec, primary: StorageProvider, paths: DataDirPaths): Promise<RoutedStore> {
  if (!PROVIDER_NAME.test(name) || name === 'primary') throw new InvalidOptionError(`provider name ${JSON.stringify(name)} is not valid (lower-case letters, digits, _ and -, starting with a letter; not "primary")`)
  if (spec.kind === 'postgres') {
    const key = `provider-schema:${name}`
    let schema = spec.schema ?? await primary.getMeta(key)
    if (schema === undefined) {
      schema = `peakdb_${name.replace(/-/g, '_')}_${randomBytes(4).toString('hex')}`
      await primary.setMeta(key, schema)
    }
    const { PostgresProvider } = await import('../storage/postgres/pg-provider.js')
    return await PostgresProvider.open({ url: spec.url, schema, ...(spec.pool !== undefined ? { pool: spec.pool } : {}) })
  }
  const dir = join(paths.dir, 'providers')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  if (spec.kind === 'sqlite') {
    const { SqliteProvider } = await import('../storage/sqlite/sqlite-provider.js')
    return await SqliteProvider.open({ path: spec.path ?? join(dir, `${name}.sqlite`) })
  }
  const { FileProvider } = await import('../storage/file/file-provider.js')
  return await FileProvider.open({ path: spec.path ?? join(dir, name) })
}
