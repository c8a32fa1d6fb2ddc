/**
 * `peakdb migrate …`: user schema migrations on a provider's database (the node's primary
 * storage, or a named provider of config.json). They open that database directly, holding the
 * data dir's lock as a short-lived command, so they wait for other commands and refuse while a
 * daemon owns the dir. Migration files default to `<dir>/migrations/<provider>`.
 */
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Command } from 'commander'
import { acquireLock, dataDirPaths, type DirLock } from '../data-dir.js'
import { DataDirLockedError, InvalidOptionError } from '../errors.js'
import { readApiInfo } from '../daemon/api-client.js'
import type { MigrationDriver, MigrationPlan, MigrationStatus, Migrator } from '../../storage/migrate/index.js'
import { emit } from './output.js'
import { COMMAND_WAIT_MS } from './target.js'

/** What every migrate command needs from the global options. */
export interface MigrateGlobals { readonly dir: string, readonly json: boolean }

interface MigrateOptions { provider?: string, dirMigrations?: string }

/** The migrations folder of a provider: `--dir-migrations`, else `<dir>/migrations/<provider>`. */
export function migrationsFolder (dataDir: string, provider: string, explicit?: string): string {
  return explicit !== undefined ? resolve(explicit) : join(dataDirPaths(dataDir).dir, 'migrations', provider)
}

function daemonRefusal (dir: string, pid: number): DataDirLockedError {
  return new DataDirLockedError(dir, pid, 'daemon', `data dir ${dir} is in use: a daemon (pid ${pid}) runs on it. Migrations open the database directly, so they do not run beside it: stop it (peakdb stop), migrate, and start it again`)
}

/** Takes the data dir's lock as a command: waits (bounded) for another command, refuses a daemon. */
async function lockDataDir (dataDir: string): Promise<DirLock> {
  const paths = dataDirPaths(dataDir)
  if (!existsSync(paths.dir)) throw new InvalidOptionError(`no data dir at ${paths.dir} (create one with \`peakdb init\`, or pass --dir)`)
  const deadline = Date.now() + COMMAND_WAIT_MS
  for (;;) {
    const api = readApiInfo(paths.api)
    if (api !== undefined) throw daemonRefusal(paths.dir, api.pid)
    try {
      return await acquireLock(paths, { kind: 'command' })
    } catch (err) {
      if (!(err instanceof DataDirLockedError)) throw err
      if (err.holder === 'daemon') throw daemonRefusal(paths.dir, err.pid)
      if (Date.now() >= deadline) throw err
    }
    await sleep(100)
  }
}

/** Opens the database of `provider` (`primary`: the node's own storage) for migrations. */
async function openDriver (dataDir: string, provider: string): Promise<MigrationDriver> {
  const paths = dataDirPaths(dataDir)
  const pg = async (url: string): Promise<MigrationDriver> => await (await import('../../storage/migrate/pg-driver.js')).PostgresMigrationDriver.connect({ url })
  const sqlite = async (path: string): Promise<MigrationDriver> => {
    if (!existsSync(path)) throw new InvalidOptionError(`${path} does not exist yet: open the node once (peakdb init, or start) so that it is created`)
    return (await import('../../storage/migrate/sqlite-driver.js')).SqliteMigrationDriver.open({ path })
  }
  if (provider === 'primary') {
    const { resolveStorage } = await import('../storage-binding.js')
    const { binding } = resolveStorage(paths, undefined)
    return binding.kind === 'postgres' ? await pg(binding.url) : await sqlite(paths.database)
  }
  const { dataDirConfig } = await import('./config.js')
  const spec = dataDirConfig(paths.dir).providers?.[provider]
  if (spec === undefined) throw new InvalidOptionError(`--provider: no provider named ${JSON.stringify(provider)} in ${join(paths.dir, 'config.json')} ("primary" is the node's own storage; see peakdb providers)`)
  if (spec.kind === 'postgres') return await pg(spec.url)
  if (spec.kind === 'sqlite') return await sqlite(spec.path ?? join(paths.dir, 'providers', `${provider}.sqlite`))
  throw new InvalidOptionError(`--provider: ${provider} is a file provider; it has no SQL schema to migrate`)
}

/** Runs `fn` with a migrator on the provider's database, holding the data dir's lock. */
async function withMigrator<T> (g: MigrateGlobals, opts: MigrateOptions, fn: (m: Migrator, where: { provider: string, folder: string }) => Promise<T>): Promise<T> {
  const provider = opts.provider ?? 'primary'
  const folder = migrationsFolder(g.dir, provider, opts.dirMigrations)
  const lock = await lockDataDir(g.dir)
  try {
    const driver = await openDriver(g.dir, provider)
    try {
      const { Migrator, FileMigrationSource } = await import('../../storage/migrate/index.js')
      return await fn(new Migrator(driver, new FileMigrationSource(folder)), { provider, folder })
    } finally {
      await driver.close()
    }
  } finally {
    lock.release()
  }
}

function planLines (plans: readonly MigrationPlan[]): string[] {
  return plans.flatMap(p => [
    `${p.name} (${p.direction})${p.destructive ? '  [DESTRUCTIVE]' : ''}`,
    ...p.statements.map(s => `  ${s.destructive !== undefined ? `! ${s.destructive}\n    ` : ''}${s.sql.replace(/\s+/g, ' ')}${s.params !== undefined ? `  -- params ${JSON.stringify(s.params)}` : ''}`)
  ])
}

function statusLine (s: MigrationStatus): string {
  return `${s.state.padEnd(8)} ${s.name}${s.appliedAt !== undefined ? `  (${s.appliedAt})` : ''}${s.state === 'missing' ? '  the file is gone' : ''}`
}

/** Adds `peakdb migrate new|status|plan|apply|down` to the program. */
export function addMigrateCommand (program: Command, globals: (cmd: Command) => MigrateGlobals): void {
  const migrate = program.command('migrate')
    .description('typed migrations of your own tables in a provider\'s database (PostgreSQL or SQLite); files default to <dir>/migrations/<provider>')
  const common = (c: Command): Command => c
    .option('--provider <name>', 'the database to migrate: "primary" (default, the node\'s own storage) or a provider of config.json')
    .option('--dir-migrations <path>', 'the migrations folder (default <dir>/migrations/<provider>)')

  common(migrate.command('new')
    .description('write a new migration file <timestamp>_<name>.ts from the typed template')
    .argument('<name>', 'what it does, e.g. add_users'))
    .action(async (name: string, opts: MigrateOptions, cmd: Command) => {
      const g = globals(cmd)
      const { newMigrationFile } = await import('../../storage/migrate/file-source.js')
      const path = newMigrationFile(migrationsFolder(g.dir, opts.provider ?? 'primary', opts.dirMigrations), name)
      emit(g.json, { path }, () => `created ${path}`)
    })

  common(migrate.command('status').description('list the migrations: applied (when), pending, or applied but missing from the folder'))
    .action(async (opts: MigrateOptions, cmd: Command) => {
      const g = globals(cmd)
      const r = await withMigrator(g, opts, async (m, where) => ({ ...where, migrations: await m.status() }))
      emit(g.json, r, () => r.migrations.length === 0 ? `(no migrations in ${r.folder})` : r.migrations.map(statusLine).join('\n'))
    })

  common(migrate.command('plan').description('show the SQL the pending migrations will run (run in a transaction that is rolled back), with the steps that may lose data flagged'))
    .action(async (opts: MigrateOptions, cmd: Command) => {
      const g = globals(cmd)
      const r = await withMigrator(g, opts, async (m, where) => ({ ...where, pending: await m.plan() }))
      emit(g.json, r, () => r.pending.length === 0 ? 'nothing to apply' : planLines(r.pending).join('\n'))
    })

  common(migrate.command('apply').description('apply the pending migrations, each in one transaction; refuses steps that may lose data without --allow-destructive')
    .option('--allow-destructive', 'also apply DROP TABLE, DROP COLUMN, narrowing type changes, TRUNCATE and DELETE without WHERE'))
    .action(async (opts: MigrateOptions & { allowDestructive?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const r = await withMigrator(g, opts, async (m, where) => ({ ...where, applied: await m.apply({ allowDestructive: opts.allowDestructive === true }) }))
      emit(g.json, r, () => r.applied.length === 0 ? 'nothing to apply' : `applied ${r.applied.length} migration(s): ${r.applied.map(p => p.name).join(', ')}`)
    })

  common(migrate.command('down').description('undo the last applied migration with its down()'))
    .action(async (opts: MigrateOptions, cmd: Command) => {
      const g = globals(cmd)
      const r = await withMigrator(g, opts, async (m, where) => ({ ...where, undone: await m.down() ?? null }))
      emit(g.json, r, () => r.undone === null ? 'nothing to undo' : [`undid ${r.undone.name}`, ...planLines([r.undone]).slice(1)].join('\n'))
    })
}
