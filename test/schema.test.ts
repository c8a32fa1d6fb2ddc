import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import ts from 'typescript'
import { PeakNode } from '../node/index.js'
import type { SchemaDescription, TableDescription } from '../storage/introspect.js'
import { PostgresProvider } from '../storage/postgres/pg-provider.js'
import { describeSqliteFile, indexTerms } from '../storage/sqlite/sqlite-introspect.js'
import { generateRowTypes, pascalCase } from '../storage/schema-types.js'
import { runCli, startDaemon, type Daemon } from './helpers/cli.js'
import { hashEmbedder } from './helpers/embedders.js'
import { rejectsNamed } from './helpers/errors.js'
import { TestDatabase } from './helpers/postgres.js'
import { TmpDirs } from './helpers/tmp-dir.js'

/** Tables made with plain SQL, as another application would. */
const PG_SETUP = `
  CREATE EXTENSION IF NOT EXISTS vector;
  CREATE SCHEMA app;
  CREATE TYPE app.mood AS ENUM ('calm', 'busy');
  CREATE TABLE users (
    id      bigserial PRIMARY KEY,
    email   text NOT NULL,
    name    varchar(40),
    created timestamptz NOT NULL DEFAULT now(),
    profile jsonb,
    balance numeric(12, 2),
    visits  integer NOT NULL DEFAULT 0,
    tags    text[]
  );
  CREATE UNIQUE INDEX users_email ON users (email);
  CREATE INDEX users_lower_name ON users (lower(name));
  CREATE TABLE app.memberships (
    user_id bigint NOT NULL REFERENCES users (id),
    team    text NOT NULL,
    mood    app.mood,
    joined  date,
    PRIMARY KEY (user_id, team)
  );
  CREATE TABLE items (
    id        integer PRIMARY KEY,
    embedding vector(3) NOT NULL,
    note      text
  );
  CREATE INDEX items_embedding ON items USING hnsw (embedding vector_cosine_ops);
  CREATE VIEW active_users AS SELECT id, email FROM users WHERE visits > 0;
`

const SQLITE_SETUP = `
  CREATE TABLE authors (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL,
    email TEXT,
    born  DATETIME DEFAULT CURRENT_TIMESTAMP,
    photo BLOB,
    score REAL
  );
  CREATE UNIQUE INDEX authors_email ON authors (email);
  CREATE INDEX authors_lower_name ON authors (lower(name), score DESC);
  CREATE TABLE "book tags" (
    book TEXT NOT NULL,
    tag  TEXT NOT NULL,
    weight NUMERIC,
    PRIMARY KEY (book, tag)
  ) WITHOUT ROWID;
  CREATE VIEW named_authors AS SELECT id, name FROM authors WHERE name <> '';
`

function table (d: SchemaDescription, schema: string, name: string): TableDescription {
  const t = d.tables.find(x => x.schema === schema && x.name === name)
  assert.ok(t !== undefined, `${schema}.${name} described (got ${d.tables.map(x => `${x.schema}.${x.name}`).join(', ')})`)
  return t
}

/** Column name, type, nullability and default, for exact comparisons. */
function columns (t: TableDescription): Array<[string, string, boolean, string | null]> {
  return t.columns.map(c => [c.name, c.type, c.nullable, c.default])
}

/** Type errors of a generated module and code using it, compiled together in memory. */
function typeErrors (generated: string, usage: string): string[] {
  const files = new Map([['/virtual/db-types.ts', generated], ['/virtual/usage.ts', usage]])
  const options: ts.CompilerOptions = { strict: true, exactOptionalPropertyTypes: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, lib: ['lib.es2023.d.ts'], types: [] }
  const host = ts.createCompilerHost(options)
  const read = host.getSourceFile.bind(host)
  host.getSourceFile = (name, version, ...rest) => {
    const text = files.get(name)
    return text !== undefined ? ts.createSourceFile(name, text, version) : read(name, version, ...rest)
  }
  host.fileExists = name => files.has(name) || ts.sys.fileExists(name)
  host.directoryExists = name => name === '/virtual' || ts.sys.directoryExists(name)
  host.readFile = name => files.get(name) ?? ts.sys.readFile(name)
  const program = ts.createProgram([...files.keys()], options, host)
  return ts.getPreEmitDiagnostics(program).map(d => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)
}

describe('schema discovery', function () {
  this.timeout(60_000)
  const db = new TestDatabase()
  const dirs = new TmpDirs()
  const open: Array<{ close: () => Promise<void> }> = []
  const daemons: Daemon[] = []
  let url: string

  /** Runs SQL on a connection of its own, as psql would. */
  async function sql (text: string): Promise<void> {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      await client.query(text)
    } finally {
      await client.end()
    }
  }

  before(async () => {
    url = await db.url()
    await sql(PG_SETUP)
  })
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop('SIGKILL').catch(() => {})
    for (const o of open.splice(0).reverse()) await o.close()
    dirs.cleanup()
  })
  after(async () => { await db.drop() })

  describe('PostgreSQL', () => {
    it('describes tables PeakDB did not create: columns, keys, indexes, vectors, enums, views', async () => {
      const schema = db.schema()
      const provider = await PostgresProvider.open({ url, schema })
      open.push(provider)
      const d = await provider.describeSchema()
      assert.equal(d.engine, 'postgres')

      const users = table(d, 'public', 'users')
      assert.equal(users.kind, 'table')
      assert.equal(users.peakdb, false)
      assert.deepEqual(columns(users), [
        ['id', 'bigint', false, "nextval('users_id_seq'::regclass)"],
        ['email', 'text', false, null],
        ['name', 'character varying(40)', true, null],
        ['created', 'timestamp with time zone', false, 'now()'],
        ['profile', 'jsonb', true, null],
        ['balance', 'numeric(12,2)', true, null],
        ['visits', 'integer', false, '0'],
        ['tags', 'text[]', true, null]
      ])
      assert.deepEqual(users.columns.map(c => [c.baseType, c.array]), [['int8', false], ['text', false], ['varchar', false], ['timestamptz', false], ['jsonb', false], ['numeric', false], ['int4', false], ['text', true]])
      assert.deepEqual(users.primaryKey, ['id'])
      assert.deepEqual(users.indexes, [
        { name: 'users_email', keys: [{ column: 'email' }], unique: true, primary: false, partial: false, method: 'btree' },
        { name: 'users_lower_name', keys: [{ expression: 'lower(name::text)' }], unique: false, primary: false, partial: false, method: 'btree' },
        { name: 'users_pkey', keys: [{ column: 'id' }], unique: true, primary: true, partial: false, method: 'btree' }
      ])

      const memberships = table(d, 'app', 'memberships')
      assert.deepEqual(memberships.primaryKey, ['user_id', 'team'])
      assert.deepEqual(columns(memberships), [
        ['user_id', 'bigint', false, null],
        ['team', 'text', false, null],
        ['mood', 'app.mood', true, null],
        ['joined', 'date', true, null]
      ])
      assert.deepEqual(memberships.columns[2]?.enumValues, ['calm', 'busy'])
      assert.deepEqual(memberships.indexes.map(i => [i.name, i.keys, i.primary]), [['memberships_pkey', [{ column: 'user_id' }, { column: 'team' }], true]])

      const items = table(d, 'public', 'items')
      assert.deepEqual(columns(items), [['id', 'integer', false, null], ['embedding', 'vector(3)', false, null], ['note', 'text', true, null]])
      assert.equal(items.columns[1]?.vectorDims, 3)
      assert.equal(items.columns[0]?.vectorDims, undefined)
      assert.deepEqual(items.indexes.find(i => i.name === 'items_embedding'), { name: 'items_embedding', keys: [{ column: 'embedding' }], unique: false, primary: false, partial: false, method: 'hnsw' })

      const view = table(d, 'public', 'active_users')
      assert.equal(view.kind, 'view')
      assert.deepEqual(columns(view), [['id', 'bigint', true, null], ['email', 'text', true, null]])
      assert.deepEqual([view.primaryKey, view.indexes], [[], []])

      // the node's own schema is there, every table of it marked
      const own = d.tables.filter(t => t.schema === schema)
      assert.ok(own.length >= 10, `node schema tables: ${own.map(t => t.name).join(', ')}`)
      assert.ok(own.every(t => t.peakdb))
      assert.deepEqual(d.tables.filter(t => !t.peakdb).map(t => `${t.schema}.${t.name}`), ['app.memberships', 'public.active_users', 'public.items', 'public.users'])
      assert.deepEqual(table(d, schema, 'docs').primaryKey, ['rid'])
    })

    it('describes one schema when asked', async () => {
      const provider = await PostgresProvider.open({ url, schema: db.schema() })
      open.push(provider)
      const d = await provider.describeSchema({ schema: 'app' })
      assert.deepEqual(d.tables.map(t => t.name), ['memberships'])
      assert.deepEqual((await provider.describeSchema({ schema: 'nothing_here' })).tables, [])
      await rejectsNamed(() => provider.describeSchema({ signal: AbortSignal.abort() }), 'AbortError')
    })

    it('marks the change log of adopted tables as PeakDB\'s, and leaves the adopted table the user\'s', async () => {
      await sql('CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL)')
      try {
        const provider = await PostgresProvider.open({ url, schema: db.schema() })
        open.push(provider)
        const { unwatch } = await provider.adopt('~orders', 'public.orders', () => {})
        try {
          const d = await provider.describeSchema()
          assert.equal(table(d, 'public', 'orders').peakdb, false)
          assert.equal(table(d, 'peakdb_watch', 'changes').peakdb, true)
        } finally {
          unwatch()
        }
      } finally {
        await sql('DROP TABLE orders')
      }
    })

    it('generates row types that type-check, and reject wrong rows', async () => {
      const provider = await PostgresProvider.open({ url, schema: db.schema() })
      open.push(provider)
      const source = generateRowTypes(await provider.describeSchema())
      assert.match(source, /export interface Users \{/)
      assert.match(source, /export interface AppMemberships \{/)
      assert.match(source, /export interface ActiveUsers \{/)
      assert.doesNotMatch(source, /interface Entries\b/, 'PeakDB\'s own tables left out')
      assert.match(source, / {2}balance: string \| null\n/)
      assert.match(source, / {2}embedding: number\[\]\n/)
      assert.match(source, / {2}mood: "calm" \| "busy" \| null\n/)
      assert.match(source, / {2}"app\.memberships": AppMemberships\n/)
      const ok = `import type { Users, Items, AppMemberships, ActiveUsers, DB } from './db-types.js'
        export const u: Users = { id: '1', email: 'a@b.c', name: null, created: new Date(), profile: { a: [1, 'x', null] }, balance: '12.50', visits: 3, tags: ['x'] }
        export const i: Items = { id: 1, embedding: [0.1, 0.2, 0.3], note: null }
        export const m: AppMemberships = { user_id: '1', team: 'core', mood: 'calm', joined: null }
        export const v: ActiveUsers = { id: null, email: 'a@b.c' }
        export const t: DB['users'] = u`
      assert.deepEqual(typeErrors(source, ok), [])
      const wrong: Array<[string, RegExp]> = [
        ["import type { Users } from './db-types.js'\nexport const u: Users = { id: '1', email: null, name: null, created: new Date(), profile: null, balance: null, visits: 3, tags: null }", /Type 'null' is not assignable to type 'string'/],
        ["import type { Items } from './db-types.js'\nexport const i: Items = { id: 1, embedding: 'x', note: null }", /Type 'string' is not assignable to type 'number\[\]'/],
        ["import type { AppMemberships } from './db-types.js'\nexport const m: AppMemberships = { user_id: '1', team: 'core', mood: 'angry', joined: null }", /Type '"angry"' is not assignable to type '"calm" \| "busy" \| null'/]
      ]
      for (const [code, expected] of wrong) assert.match(typeErrors(source, code).join('\n'), expected)
    })
  })

  describe('SQLite', () => {
    function sqliteFile (): string {
      const path = join(dirs.make(), 'app.sqlite')
      const s = new Database(path)
      s.exec(SQLITE_SETUP)
      s.close()
      return path
    }

    it('describes a file: columns, composite and rowid keys, unique and expression indexes, views', () => {
      const d = describeSqliteFile(sqliteFile())
      assert.equal(d.engine, 'sqlite')
      assert.deepEqual(d.tables.map(t => [t.name, t.kind, t.peakdb]), [['authors', 'table', false], ['book tags', 'table', false], ['named_authors', 'view', false]])
      const authors = table(d, 'main', 'authors')
      assert.deepEqual(columns(authors), [
        ['id', 'INTEGER', false, null],
        ['name', 'TEXT', false, null],
        ['email', 'TEXT', true, null],
        ['born', 'DATETIME', true, 'CURRENT_TIMESTAMP'],
        ['photo', 'BLOB', true, null],
        ['score', 'REAL', true, null]
      ])
      assert.deepEqual(authors.primaryKey, ['id'])
      assert.deepEqual(authors.indexes, [
        { name: 'authors_email', keys: [{ column: 'email' }], unique: true, primary: false, partial: false },
        { name: 'authors_lower_name', keys: [{ expression: 'lower(name)' }, { column: 'score' }], unique: false, primary: false, partial: false }
      ])
      const tags = table(d, 'main', 'book tags')
      assert.deepEqual(tags.primaryKey, ['book', 'tag'])
      assert.deepEqual(columns(tags), [['book', 'TEXT', false, null], ['tag', 'TEXT', false, null], ['weight', 'NUMERIC', true, null]])
      assert.deepEqual(tags.indexes.map(i => [i.name, i.keys, i.unique, i.primary]), [['sqlite_autoindex_book tags_1', [{ column: 'book' }, { column: 'tag' }], true, true]])
      assert.deepEqual(columns(table(d, 'main', 'named_authors')), [['id', 'INTEGER', true, null], ['name', 'TEXT', true, null]])
    })

    it('reads expression keys from CREATE INDEX, quotes and nesting included', () => {
      assert.deepEqual(indexTerms('CREATE INDEX x ON "my t" (lower(a), b DESC, json_extract(c, \'$.a,b\') ASC)'), ['lower(a)', 'b', "json_extract(c, '$.a,b')"])
      assert.deepEqual(indexTerms('CREATE UNIQUE INDEX y ON t(coalesce(a, (b + 1))) WHERE a > 0'), ['coalesce(a, (b + 1))'])
    })

    it('generates row types by SQLite affinity that type-check, and reject wrong rows', () => {
      const source = generateRowTypes(describeSqliteFile(sqliteFile()))
      assert.match(source, / {2}born: string \| null\n/)
      assert.match(source, / {2}photo: Uint8Array \| null\n/)
      const ok = `import type { Authors, BookTags, NamedAuthors } from './db-types.js'
        export const a: Authors = { id: 1, name: 'Ada', email: null, born: '1815-12-10', photo: new Uint8Array(2), score: 1.5 }
        export const t: BookTags = { book: 'b', tag: 't', weight: null }
        export const n: NamedAuthors = { id: null, name: null }`
      assert.deepEqual(typeErrors(source, ok), [])
      assert.match(typeErrors(source, "import type { Authors } from './db-types.js'\nexport const a: Authors = { id: '1', name: 'Ada', email: null, born: null, photo: null, score: null }").join('\n'), /Type 'string' is not assignable to type 'number'/)
    })
  })

  describe('in a node', () => {
    it('describes the primary (PeakDB\'s tables marked, others included) and named providers; unknown and file providers are refused', async () => {
      const dir = dirs.make()
      const node = await PeakNode.open({ dir, providers: { warehouse: { kind: 'postgres', url }, scratch: { kind: 'file' } }, embedder: hashEmbedder(), backgroundIndexing: false })
      open.push(node)
      const other = new Database(join(dir, 'peakdb.sqlite'))
      other.exec('CREATE TABLE app_notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)')
      other.close()

      const primary = await node.describeSchema()
      assert.equal(primary.engine, 'sqlite')
      assert.equal(table(primary, 'main', 'app_notes').peakdb, false)
      for (const name of ['entries', 'docs', 'meta', 'fts']) assert.equal(table(primary, 'main', name).peakdb, true, name)
      assert.ok(!primary.tables.some(t => t.name.startsWith('fts_')), 'FTS5 shadow tables left out')

      const warehouse = await node.describeSchema({ provider: 'warehouse', schema: 'public' })
      assert.equal(warehouse.engine, 'postgres')
      assert.deepEqual(warehouse.tables.map(t => t.name), ['active_users', 'items', 'users'])

      await rejectsNamed(() => node.describeSchema({ provider: 'nope' }), 'InvalidOptionError', '"provider" expected "primary" or "warehouse" or "scratch", got "nope"')
      await rejectsNamed(() => node.describeSchema({ provider: 'scratch' }), 'InvalidOptionError', 'provider scratch (file) cannot describe its schema')
    })
  })

  describe('CLI', () => {
    // CLI tests run the built bin: `npm run build` first
    async function nodeDir (): Promise<string> {
      const dir = dirs.make()
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ providers: { warehouse: { kind: 'postgres', url } } }))
      const init = await runCli(['init', '--dir', dir, '--json'])
      assert.equal(init.code, 0, init.stderr)
      const s = new Database(join(dir, 'peakdb.sqlite'))
      s.exec(SQLITE_SETUP)
      s.close()
      return dir
    }

    it('peakdb schema shows tables readably and as JSON, and writes row types', async () => {
      const dir = await nodeDir()
      const human = await runCli(['schema', '--dir', dir])
      assert.equal(human.code, 0, human.stderr)
      assert.ok(human.stdout.includes('main.authors (table)\n  id     INTEGER   not null\n  name   TEXT      not null\n'), human.stdout)
      assert.ok(human.stdout.includes('\n  born   DATETIME  null      default CURRENT_TIMESTAMP\n'), human.stdout)
      assert.match(human.stdout, /^ {2}primary key: book, tag$/m)
      assert.match(human.stdout, /^ {4}authors_lower_name \(lower\(name\), score\)$/m)
      assert.match(human.stdout, /^ {4}authors_email \(email\) {2}unique$/m)
      assert.match(human.stdout, /^PeakDB's own tables in main \(--all shows them\): .*\bentries\b/m)
      assert.doesNotMatch(human.stdout, /^main\.entries/m)
      assert.match((await runCli(['schema', '--all', '--dir', dir])).stdout, /^main\.entries \(table, PeakDB\)$/m)

      const json = await runCli(['schema', '--provider', 'warehouse', '--schema', 'app', '--json', '--dir', dir])
      assert.equal(json.code, 0, json.stderr)
      const d = JSON.parse(json.stdout) as SchemaDescription
      assert.deepEqual(d.tables.map(t => [t.schema, t.name, t.primaryKey]), [['app', 'memberships', ['user_id', 'team']]])

      const out = join(dir, 'db-types.ts')
      const types = await runCli(['schema', 'types', '--provider', 'warehouse', '--out', out, '--dir', dir])
      assert.equal(types.code, 0, types.stderr)
      assert.match(types.stdout, /^wrote 4 row type\(s\) to /)
      const source = readFileSync(out, 'utf8')
      assert.match(source, /export interface Items \{/)
      assert.deepEqual(typeErrors(source, "import type { Items } from './db-types.js'\nexport const i: Items = { id: 1, embedding: [1, 2, 3], note: 'n' }"), [])
      const stdout = await runCli(['schema', 'types', '--dir', dir])
      assert.match(stdout.stdout, /export interface BookTags \{/)

      const bad = await runCli(['schema', '--provider', 'nope', '--json', '--dir', dir])
      assert.equal(bad.code, 1)
      assert.equal((JSON.parse(bad.stderr.trim().split('\n').at(-1) ?? '') as { error: { name: string } }).error.name, 'InvalidOptionError')
    })

    it('works through a running daemon too', async () => {
      const dir = await nodeDir()
      const d = await startDaemon(['--dir', dir])
      daemons.push(d)
      const r = await runCli(['schema', '--json', '--dir', dir])
      assert.equal(r.code, 0, r.stderr)
      const described = JSON.parse(r.stdout) as SchemaDescription
      assert.ok(described.tables.some(t => t.name === 'authors' && !t.peakdb))
      const types = await runCli(['schema', 'types', '--provider', 'warehouse', '--schema', 'app', '--dir', dir])
      assert.equal(types.code, 0, types.stderr)
      assert.match(types.stdout, /export interface AppMemberships \{/)
      assert.equal(await d.stop('SIGTERM'), 0)
    })
  })

  it('names interfaces in PascalCase', () => {
    assert.deepEqual(['user_accounts', 'book tags', '2fa-codes', 'Orders'].map(pascalCase), ['UserAccounts', 'BookTags', 'T2faCodes', 'Orders'])
  })
})
