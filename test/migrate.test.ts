/**
 * The migration engine (storage/migrate/) on SQLite and PostgreSQL: apply, down and up again;
 * a failing migration leaves nothing; two processes applying at once apply each migration once;
 * the guard against steps that may lose data; SQLite's table rebuild; and the CLI.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import pg from 'pg'
import { assessStatement, narrows, splitStatements, FileMigrationSource, Migrator, openMigrationDriver, type MigrationDriver } from '../storage/migrate/index.js'
import { TestDatabase } from './helpers/postgres.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { rejectsNamed } from './helpers/errors.js'
import { withTimeout } from './helpers/wait-for.js'
import { runCli, startDaemon } from './helpers/cli.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/migrate-apply.ts', import.meta.url))

describe('migrations: destructive steps (pure)', () => {
  it('flags drops, truncation, unbounded deletes and column drops, not harmless look-alikes', () => {
    const reasons = (sql: string): string[] => assessStatement(sql).reasons
    assert.deepEqual(reasons('DROP TABLE users'), ['drops table users'])
    assert.deepEqual(reasons('drop table if exists "Users", b'), ['drops table "Users", b'])
    assert.deepEqual(reasons('TRUNCATE users'), ['truncates users'])
    assert.deepEqual(reasons('DELETE FROM users'), ['deletes every row of users (DELETE without WHERE)'])
    assert.deepEqual(reasons('DELETE FROM users WHERE id = 1'), [])
    assert.deepEqual(reasons("DELETE FROM users -- WHERE id = 1\n"), ['deletes every row of users (DELETE without WHERE)'])
    assert.deepEqual(reasons('ALTER TABLE users DROP COLUMN email, ADD COLUMN x int'), ['drops column email of users'])
    assert.deepEqual(reasons('ALTER TABLE users DROP email'), ['drops column email of users'])
    assert.deepEqual(reasons('ALTER TABLE users DROP CONSTRAINT users_pkey, ALTER COLUMN a DROP NOT NULL, ALTER COLUMN b DROP DEFAULT'), [])
    assert.deepEqual(reasons('DROP INDEX users_email'), [])
    assert.deepEqual(reasons("INSERT INTO notes (body) VALUES ('DROP TABLE users')"), [])
    assert.deepEqual(assessStatement('ALTER TABLE t ALTER COLUMN "N" TYPE smallint USING n::smallint').typeChanges, [{ table: 't', column: 'N', to: 'smallint' }])
  })

  it('knows which type changes narrow', () => {
    assert.equal(narrows('integer', 'bigint'), false)
    assert.equal(narrows('bigint', 'integer'), true)
    assert.equal(narrows('integer', 'smallint'), true)
    assert.equal(narrows('character varying(100)', 'varchar(20)'), true)
    assert.equal(narrows('character varying(20)', 'varchar(100)'), false)
    assert.equal(narrows('text', 'varchar(10)'), true)
    assert.equal(narrows('character varying(10)', 'text'), false)
    assert.equal(narrows('numeric(10,2)', 'numeric(12,2)'), false)
    assert.equal(narrows('numeric(10,2)', 'numeric(10,1)'), true)
    assert.equal(narrows('double precision', 'real'), true)
    assert.equal(narrows('jsonb', 'integer'), undefined)
  })

  it('splits statements outside quotes, comments, dollar bodies and trigger bodies', () => {
    assert.deepEqual(splitStatements("CREATE TABLE a (x text DEFAULT ';'); -- c;\nINSERT INTO a VALUES ($$;$$);;"), ["CREATE TABLE a (x text DEFAULT ';')", 'INSERT INTO a VALUES ($$;$$)'])
    assert.deepEqual(splitStatements('CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 1; DELETE FROM b WHERE 1; END; SELECT 1').length, 2)
  })
})

/** A database to migrate, and plain SQL to look at it with. */
interface Harness {
  readonly kind: 'sqlite' | 'postgres'
  /** The file path or URL the fixture process is given. */
  readonly where: string
  open (): Promise<MigrationDriver>
  query (sql: string): Promise<Array<Record<string, unknown>>>
  columns (table: string): Promise<string[]>
}

async function sqliteHarness (dirs: TmpDirs): Promise<Harness> {
  const path = join(dirs.make(), 'app.sqlite')
  new Database(path).close()
  const query = async (sql: string): Promise<Array<Record<string, unknown>>> => {
    const db = new Database(path)
    try {
      const stmt = db.prepare(sql)
      return stmt.reader ? stmt.all() as Array<Record<string, unknown>> : (stmt.run(), [])
    } finally {
      db.close()
    }
  }
  return {
    kind: 'sqlite',
    where: path,
    open: async () => await openMigrationDriver({ kind: 'sqlite', path }),
    query,
    columns: async table => (await query(`SELECT name FROM pragma_table_info('${table}') ORDER BY cid`)).map(r => r.name as string)
  }
}

async function postgresHarness (database: TestDatabase): Promise<Harness> {
  const base = await database.url()
  const schema = database.schema()
  const admin = new pg.Client({ connectionString: base })
  await admin.connect()
  await admin.query(`CREATE SCHEMA ${schema}`)
  await admin.end()
  // the migrations run in the connection's current schema: a fresh one per test
  const url = `${base}?options=${encodeURIComponent(`-c search_path=${schema}`)}`
  const query = async (sql: string): Promise<Array<Record<string, unknown>>> => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    try {
      return (await c.query(sql)).rows as Array<Record<string, unknown>>
    } finally {
      await c.end()
    }
  }
  return {
    kind: 'postgres',
    where: url,
    open: async () => await openMigrationDriver({ kind: 'postgres', url }),
    query,
    columns: async table => (await query(`SELECT column_name FROM information_schema.columns WHERE table_schema = '${schema}' AND table_name = '${table}' ORDER BY ordinal_position`)).map(r => r.column_name as string)
  }
}

/** Writes a migration file `<folder>/<name>.ts` with `up` (and `down`) bodies. */
function migration (folder: string, name: string, up: string, down?: string): void {
  mkdirSync(folder, { recursive: true })
  writeFileSync(join(folder, `${name}.ts`), [
    'import type { MigrationDb } from \'../../storage/migrate/index.js\'',
    `export async function up (db: MigrationDb): Promise<void> {\n${up}\n}`,
    ...(down !== undefined ? [`export async function down (db: MigrationDb): Promise<void> {\n${down}\n}`] : [])
  ].join('\n'))
}

/** Runs the fixture that applies `folder` in a child process; resolves with what it applied. */
async function applyInChild (h: Harness, folder: string): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, h.kind, h.where, folder], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await withTimeout(new Promise<number | null>(resolve => child.once('close', resolve)), 30_000, 'migration child').catch(e => { child.kill('SIGKILL'); throw e })
  assert.equal(code, 0, `child exited with ${String(code)}: ${err}`)
  return (JSON.parse(out) as { applied: string[] }).applied
}

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`migrations on ${kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'}`, function () {
    this.timeout(60_000)
    const dirs = new TmpDirs()
    const database = new TestDatabase()
    const drivers: MigrationDriver[] = []
    let h: Harness
    let folder: string

    beforeEach(async () => {
      h = kind === 'sqlite' ? await sqliteHarness(dirs) : await postgresHarness(database)
      folder = join(dirs.make(), 'm')
    })
    afterEach(async () => {
      for (const d of drivers.splice(0)) await d.close()
      dirs.cleanup()
    })
    after(async () => { await database.drop() })

    async function migrator (): Promise<Migrator> {
      const d = await h.open()
      drivers.push(d)
      return new Migrator(d, new FileMigrationSource(folder))
    }

    it('applies, undoes with down, and applies again to the same schema', async () => {
      migration(folder, '20240101000000_users', "  await db.execute('CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL)')", "  await db.execute('DROP TABLE users')")
      migration(folder, '20240102000000_users_name', "  await db.execute('ALTER TABLE users ADD COLUMN name text'); await db.execute('CREATE INDEX users_email ON users (email)')", "  await db.execute('DROP INDEX users_email'); await db.execute('ALTER TABLE users DROP COLUMN name')")
      const m = await migrator()
      assert.deepEqual((await m.status()).map(s => s.state), ['pending', 'pending'])
      const applied = await m.apply()
      assert.deepEqual(applied.map(p => p.name), ['20240101000000_users', '20240102000000_users_name'])
      assert.deepEqual(await h.columns('users'), ['id', 'email', 'name'])
      assert.deepEqual((await h.query('SELECT name FROM peakdb_migrations ORDER BY name')).map(r => r.name), ['20240101000000_users', '20240102000000_users_name'])
      const undone = await m.down()
      assert.equal(undone?.name, '20240102000000_users_name')
      assert.equal(undone.destructive, true, 'down drops a column: flagged, though not refused')
      assert.deepEqual(await h.columns('users'), ['id', 'email'])
      assert.deepEqual((await m.status()).map(s => s.state), ['applied', 'pending'])
      assert.deepEqual((await m.apply()).map(p => p.name), ['20240102000000_users_name'])
      assert.deepEqual(await h.columns('users'), ['id', 'email', 'name'])
      assert.deepEqual(await m.apply(), [], 'nothing is applied twice')
    })

    it('rolls a failing migration back whole and does not record it', async () => {
      migration(folder, '20240101000000_ok', "  await db.execute('CREATE TABLE kept (id integer PRIMARY KEY)')")
      migration(folder, '20240102000000_fails', [
        "  await db.execute('CREATE TABLE half (id integer PRIMARY KEY)')",
        "  await db.execute('INSERT INTO kept (id) VALUES (1)')",
        "  await db.execute('INSERT INTO no_such_table (id) VALUES (1)')"
      ].join('\n'))
      const m = await migrator()
      // apply first runs every pending migration in a transaction it rolls back: nothing is applied
      await rejectsNamed(async () => await m.apply(), 'MigrationFailedError', 'no_such_table')
      assert.deepEqual((await m.status()).map(s => s.state), ['pending', 'pending'])
      // without that dry run, the migrations before the failing one stay applied
      const err = await rejectsNamed(async () => await m.apply({ allowDestructive: true }), 'MigrationFailedError', 'no_such_table') as Error & { migration: string }
      assert.equal(err.migration, '20240102000000_fails')
      assert.deepEqual(await h.columns('half'), [], 'the table it created is gone')
      assert.equal(await h.query('SELECT count(*) AS n FROM kept').then(r => Number(r[0]?.n)), 0, 'its insert is gone')
      assert.deepEqual((await m.status()).map(s => [s.name, s.state]), [['20240101000000_ok', 'applied'], ['20240102000000_fails', 'pending']])
      assert.deepEqual((await h.query('SELECT name FROM peakdb_migrations')).map(r => r.name), ['20240101000000_ok'])
    })

    it('applies each migration exactly once when two processes apply at once', async () => {
      const wait = h.kind === 'postgres' ? "await db.execute('SELECT pg_sleep(0.4)')" : 'await new Promise(resolve => setTimeout(resolve, 400))'
      migration(folder, '20240101000000_runs', `  await db.execute('CREATE TABLE runs (name text NOT NULL)'); ${wait}; await db.execute("INSERT INTO runs (name) VALUES ('a')")`)
      migration(folder, '20240102000000_b', `  ${wait}; await db.execute("INSERT INTO runs (name) VALUES ('b')")`)
      migration(folder, '20240103000000_c', `  ${wait}; await db.execute("INSERT INTO runs (name) VALUES ('c')")`)
      const [x, y] = await Promise.all([applyInChild(h, folder), applyInChild(h, folder)])
      assert.deepEqual([...x, ...y].sort(), ['20240101000000_runs', '20240102000000_b', '20240103000000_c'], `each applied by exactly one process: ${JSON.stringify({ x, y })}`)
      assert.deepEqual((await h.query('SELECT name FROM runs ORDER BY name')).map(r => r.name), ['a', 'b', 'c'])
      assert.equal((await h.query('SELECT name FROM peakdb_migrations')).length, 3)
    })

    it('plans the SQL with destructive steps flagged, and applies them only when allowed', async () => {
      migration(folder, '20240101000000_t', "  await db.execute('CREATE TABLE t (id integer PRIMARY KEY, n integer, legacy text)'); await db.execute('INSERT INTO t (id, n) VALUES (1, 7)')")
      migration(folder, '20240102000000_drop_legacy', "  await db.execute('ALTER TABLE t DROP COLUMN legacy')")
      const m = await migrator()
      const plan = await m.plan()
      assert.deepEqual(plan.map(p => [p.name, p.destructive]), [['20240101000000_t', false], ['20240102000000_drop_legacy', true]])
      assert.equal(plan[1]?.statements[0]?.destructive, 'drops column legacy of t')
      assert.deepEqual(await h.columns('t'), [], 'the plan was rolled back')
      await rejectsNamed(async () => await m.apply(), 'DestructiveMigrationError', 'drops column legacy of t')
      assert.deepEqual((await m.status()).map(s => s.state), ['pending', 'pending'], 'refused before applying anything')
      await m.apply({ allowDestructive: true })
      assert.deepEqual(await h.columns('t'), ['id', 'n'])
      assert.deepEqual(await h.query('SELECT n FROM t'), [{ n: 7 }])
    })

    if (kind === 'postgres') {
      it('flags a type change that narrows, and not one that widens', async () => {
        migration(folder, '20240101000000_t', "  await db.execute('CREATE TABLE t (id integer PRIMARY KEY, n integer, s varchar(50))')")
        migration(folder, '20240102000000_widen', "  await db.execute('ALTER TABLE t ALTER COLUMN n TYPE bigint, ALTER COLUMN s TYPE text')")
        migration(folder, '20240103000000_narrow', "  await db.execute('ALTER TABLE t ALTER COLUMN n TYPE smallint')")
        const plan = await (await migrator()).plan()
        assert.deepEqual(plan.map(p => p.destructive), [false, false, true])
        assert.equal(plan[2]?.statements[0]?.destructive, 'changes column n of t from bigint to smallint, a narrower type')
      })
    } else {
      it('rebuilds a table for changes ALTER TABLE cannot make, keeping rows and indexes', async () => {
        migration(folder, '20240101000000_t', [
          "  await db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT, legacy TEXT); CREATE INDEX t_email ON t (email)')",
          "  await db.execute(\"INSERT INTO t (id, email, legacy) VALUES (1, 'a@x', 'old'), (2, NULL, 'old')\")"
        ].join('\n'))
        migration(folder, '20240102000000_email_required', "  await db.rebuildTable('t', { columns: 'id INTEGER PRIMARY KEY, email TEXT NOT NULL, legacy TEXT', copy: { email: \"coalesce(email, '')\" } })")
        migration(folder, '20240103000000_drop_legacy', "  await db.rebuildTable('t', { columns: 'id INTEGER PRIMARY KEY, email TEXT NOT NULL' })")
        const m = await migrator()
        const plan = await m.plan()
        assert.deepEqual(plan.map(p => p.destructive), [false, false, true])
        assert.ok(plan[2]?.statements.some(s => s.destructive === 'drops column legacy of t (table rebuild)'))
        await m.apply({ allowDestructive: true })
        assert.deepEqual(await h.columns('t'), ['id', 'email'])
        assert.deepEqual(await h.query('SELECT id, email FROM t ORDER BY id'), [{ id: 1, email: 'a@x' }, { id: 2, email: '' }])
        assert.deepEqual(await h.query("SELECT \"notnull\" FROM pragma_table_info('t') WHERE name = 'email'"), [{ notnull: 1 }])
        assert.deepEqual((await h.query("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 't'")).map(r => r.name), ['t_email'])
      })
    }
  })
}

describe('peakdb migrate (CLI)', function () {
  this.timeout(120_000)
  const dirs = new TmpDirs()
  afterEach(() => dirs.cleanup())

  it('writes a template, plans, applies, shows status and undoes on the node\'s SQLite file', async () => {
    const dir = dirs.make()
    assert.equal((await runCli(['init', '--dir', dir])).code, 0)
    const created = await runCli(['migrate', 'new', 'add_notes', '--dir', dir, '--json'])
    assert.equal(created.code, 0, created.stderr)
    const { path } = JSON.parse(created.stdout) as { path: string }
    assert.match(path, /migrations\/primary\/\d{14}_add_notes\.ts$/)
    assert.match(readFileSync(path, 'utf8'), /export async function up \(db: MigrationDb\)/)
    writeFileSync(path, [
      "import type { MigrationDb } from 'peakdb'",
      "export async function up (db: MigrationDb): Promise<void> { await db.execute('CREATE TABLE my_notes (id integer PRIMARY KEY, body text)') }",
      "export async function down (db: MigrationDb): Promise<void> { await db.execute('DROP TABLE my_notes') }"
    ].join('\n'))
    const plan = await runCli(['migrate', 'plan', '--dir', dir, '--json'])
    assert.equal(plan.code, 0, plan.stderr)
    assert.deepEqual((JSON.parse(plan.stdout) as { pending: Array<{ statements: Array<{ sql: string }> }> }).pending[0]?.statements.map(s => s.sql), ['CREATE TABLE my_notes (id integer PRIMARY KEY, body text)'])
    const apply = await runCli(['migrate', 'apply', '--dir', dir])
    assert.equal(apply.code, 0, apply.stderr)
    assert.match(apply.stdout, /applied 1 migration\(s\): \d{14}_add_notes/)
    const db = new Database(join(dir, 'peakdb.sqlite'), { readonly: true })
    try {
      assert.deepEqual((db.prepare("SELECT name FROM pragma_table_info('my_notes')").all() as Array<{ name: string }>).map(r => r.name), ['id', 'body'])
    } finally {
      db.close()
    }
    const status = await runCli(['migrate', 'status', '--dir', dir, '--json'])
    assert.deepEqual((JSON.parse(status.stdout) as { migrations: Array<{ state: string }> }).migrations.map(s => s.state), ['applied'])
    // the node still opens its data dir with the user's table beside its own
    assert.equal((await runCli(['put', 'notes', '{"t":1}', '--dir', dir])).code, 0)
    const down = await runCli(['migrate', 'down', '--dir', dir])
    assert.equal(down.code, 0, down.stderr)
    assert.match(down.stdout, /undid \d{14}_add_notes/)
    const unknown = await runCli(['migrate', 'apply', '--dir', dir, '--provider', 'nope', '--json'])
    assert.equal(unknown.code, 1)
    assert.equal((JSON.parse(unknown.stderr) as { error: { name: string } }).error.name, 'InvalidOptionError')
  })

  it('refuses clearly while a daemon runs on the data dir', async () => {
    const dir = dirs.make()
    const daemon = await startDaemon(['--dir', dir])
    try {
      const r = await runCli(['migrate', 'status', '--dir', dir, '--json'])
      assert.equal(r.code, 1)
      const { error } = JSON.parse(r.stderr) as { error: { name: string, message: string } }
      assert.equal(error.name, 'DataDirLockedError')
      assert.match(error.message, /stop it \(peakdb stop\), migrate, and start it again/)
    } finally {
      await daemon.stop()
    }
  })
})
