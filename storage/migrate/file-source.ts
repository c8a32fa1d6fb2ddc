/**
 * Migrations kept as files in one folder, named `<timestamp>_<name>.ts` (or .js/.mjs/.mts), each
 * exporting `up` and, optionally, `down`. TypeScript files are loaded with tsx.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { MigrationSourceError } from './errors.js'
import type { Migration, MigrationSource, NamedMigration } from './migration.js'

/** A migration file name: a sortable numeric prefix (a UTC timestamp), `_`, a name. */
const FILE = /^(\d{1,20})_([A-Za-z0-9][A-Za-z0-9_-]*)\.(ts|mts|js|mjs)$/
const SCRIPT = /\.(ts|mts|js|mjs)$/
const DECLARATION = /\.d\.m?ts$/

/**
 * The migrations in folder `dir`, sorted by file name. A script whose name does not fit
 * `<digits>_<name>.<ext>` is an error rather than skipped, so a misnamed migration is not
 * silently never applied.
 *
 * @example
 * ```ts
 * const migrator = new Migrator(driver, new FileMigrationSource('./migrations'))
 * ```
 */
export class FileMigrationSource implements MigrationSource {
  readonly dir: string
  constructor (dir: string) {
    this.dir = resolve(dir)
  }

  async list (options: { signal?: AbortSignal } = {}): Promise<NamedMigration[]> {
    if (!existsSync(this.dir)) throw new MigrationSourceError(`migrations folder ${this.dir} does not exist (create a migration with \`peakdb migrate new <name>\`)`)
    const files = readdirSync(this.dir).filter(f => SCRIPT.test(f) && !DECLARATION.test(f)).sort()
    const seen = new Map<string, string>()
    const out: NamedMigration[] = []
    for (const file of files) {
      options.signal?.throwIfAborted()
      if (!FILE.test(file)) throw new MigrationSourceError(`migration file ${join(this.dir, file)}: expected a name like 20240131120000_add_users.ts (digits, _, letters, digits, _ or -)`)
      const name = file.replace(SCRIPT, '')
      const other = seen.get(name)
      if (other !== undefined) throw new MigrationSourceError(`migrations ${other} and ${file} in ${this.dir} have the same name: keep one`)
      seen.set(name, file)
      out.push({ name, migration: await loadMigration(join(this.dir, file)) })
    }
    return out
  }
}

async function loadMigration (path: string): Promise<Migration> {
  let mod: Record<string, unknown>
  try {
    if (/\.m?ts$/.test(path)) {
      const { tsImport } = await import('tsx/esm/api')
      mod = await tsImport(pathToFileURL(path).href, import.meta.url) as Record<string, unknown>
    } else {
      mod = await import(pathToFileURL(path).href) as Record<string, unknown>
    }
  } catch (err) {
    throw new MigrationSourceError(`migration ${path} does not load: ${(err as Error).message}`, { cause: err })
  }
  // `export default { up, down }` works as well as named exports
  const m = (typeof mod.up === 'function' ? mod : mod.default) as Partial<Migration> | undefined
  if (typeof m?.up !== 'function') throw new MigrationSourceError(`migration ${path} exports no up() function`)
  if (m.down !== undefined && typeof m.down !== 'function') throw new MigrationSourceError(`migration ${path}: down is not a function`)
  return m as Migration
}

/** `YYYYMMDDHHMMSS` in UTC: the prefix of a new migration file. */
export function migrationStamp (at: Date): string {
  return at.toISOString().replace(/[-:T]/g, '').slice(0, 14)
}

/**
 * Writes a new migration file `<dir>/<timestamp>_<name>.ts` from the typed template and returns
 * its path (the folder is created when missing; an existing file is never overwritten).
 */
export function newMigrationFile (dir: string, name: string, at: Date = new Date()): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/.test(name)) throw new MigrationSourceError(`migration name ${JSON.stringify(name)}: expected letters, digits, _ and - (at most 100), e.g. add_users`)
  mkdirSync(dir, { recursive: true })
  const path = join(resolve(dir), `${migrationStamp(at)}_${name}.ts`)
  try {
    writeFileSync(path, template(name, at), { flag: 'wx' })
  } catch (err) {
    throw new MigrationSourceError(`cannot write ${path}: ${(err as Error).message}`, { cause: err })
  }
  return path
}

function template (name: string, at: Date): string {
  return `// Migration ${name}, created ${at.toISOString()}.
// \`peakdb migrate apply\` runs up() in one transaction (all or nothing) and records it;
// \`peakdb migrate down\` runs down() to undo it. Run SQL only through \`db\`: \`peakdb migrate plan\`
// runs up() in a transaction it rolls back, to show the statements.
import type { MigrationDb } from 'peakdb'

export async function up (db: MigrationDb): Promise<void> {
  // await db.execute('CREATE TABLE ${name.replace(/-/g, '_')} (id integer PRIMARY KEY, title text NOT NULL)')
  // Parameters: $1, $2 on PostgreSQL, ? on SQLite: await db.execute('INSERT INTO t (a) VALUES ($1)', [1])
  // SQLite changes ALTER TABLE cannot make: await db.rebuildTable('t', { columns: 'id integer PRIMARY KEY, title text NOT NULL' })
}

export async function down (db: MigrationDb): Promise<void> {
  // await db.execute('DROP TABLE ${name.replace(/-/g, '_')}')
}
`
}
