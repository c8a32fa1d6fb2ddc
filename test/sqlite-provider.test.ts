import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { stampOf, type DataOp } from '../crdt/index.js'
import { SqliteProvider, normaliseQuery, normaliseWhere, parseFieldPath, type CommitItem } from '../storage/index.js'
import { compileFind } from '../storage/sqlite/query-sql.js'
import type { ReadPool } from '../storage/sqlite/read-pool.js'
import { MIGRATIONS, SCHEMA_VERSION } from '../storage/sqlite/schema.js'
import { logWriter, runDocumentStoreTests, runSearchStoreTests, runStorageProviderTests } from './storage-compliance.js'
import { rejectsNamed } from './helpers/errors.js'
import { damageTablePages } from './helpers/sqlite-damage.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { waitFor, withTimeout } from './helpers/wait-for.js'

const dirs = new TmpDirs()
runStorageProviderTests('sqlite', { setup: async () => await SqliteProvider.open({ path: join(dirs.make(), 'db.sqlite') }), teardown: async () => dirs.cleanup() })
// the roles whose long reads go to reader threads, again with a thread ready from the first read
const pooled = { setup: async () => await openPooled(join(dirs.make(), 'db.sqlite')), teardown: async () => dirs.cleanup() }
runDocumentStoreTests('sqlite, reader threads', pooled, { write: logWriter(), local: false })
runSearchStoreTests('sqlite, reader threads', pooled)

describe('storage: SQLite specifics', () => {
  afterEach(() => dirs.cleanup())

  it('uses the expression index for range filters on an indexed field', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    const s = await SqliteProvider.open({ path })
    try {
      await s.ensureIndex('notes', parseFieldPath('year'))
      const q = compileFind('notes', normaliseQuery({ where: { year: { gte: 2020 } } }))
      const db = (s as unknown as { db: Database.Database }).db
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${q.text}`).all(...q.params) as Array<{ detail: string }>
      assert.ok(plan.some(p => /USING INDEX ix_/.test(p.detail)), JSON.stringify(plan))
    } finally {
      await s.close()
    }
  })

  it('reports a file that is not a database, naming it, and leaves it untouched', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    writeFileSync(path, 'this is not a database at all, just some text that is long enough to be read')
    const before = statSync(path).size
    const err = await rejectsNamed(() => SqliteProvider.open({ path }), 'StorageCorruptError', path)
    assert.match(err.message, /not an SQLite database/)
    assert.equal(statSync(path).size, before)
  })

  it('reports a truncated database file', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    const s = await SqliteProvider.open({ path })
    for (let i = 0; i < 50; i++) {
      await s.commit([{ cid: Uint8Array.from([1, 0x71, 0x12, 0x20, ...Buffer.alloc(32, i)]), author: 'a', seq: i + 1, bytes: Buffer.alloc(3000, i), stamp: `0000000000000000a${i}` as never, ops: [], control: [] }])
    }
    await s.close()
    truncateSync(path, Math.floor(statSync(path).size / 2))
    await rejectsNamed(() => SqliteProvider.open({ path }), 'StorageCorruptError', 'truncated')
  })

  it('reports damaged pages when they are read', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    const s = await SqliteProvider.open({ path })
    for (let i = 0; i < 200; i++) {
      await s.commit([{ cid: Uint8Array.from([1, 0x71, 0x12, 0x20, ...Buffer.alloc(32, i % 256), i >> 8]), author: 'a', seq: i + 1, bytes: Buffer.alloc(2000, i % 256), stamp: `0000000000000000a${i}` as never, ops: [], control: [] }])
    }
    await s.close()
    const fd = openSync(path, 'r+')
    // overwrite pages in the middle of the file with garbage
    writeSync(fd, Buffer.alloc(4096 * 20, 0xab), 0, 4096 * 20, 4096 * 10)
    closeSync(fd)
    // either reading the damaged pages fails with StorageCorruptError naming the file, or the
    // integrity check (what `peakdb verify` runs) lists the damage
    let reported: string
    try {
      const s2 = await SqliteProvider.open({ path })
      try {
        await s2.scanEntries(0, 1000)
        const problems = await s2.checkIntegrity()
        reported = problems.length > 0 ? 'integrity' : 'nothing'
      } finally {
        await s2.close()
      }
    } catch (e) {
      assert.equal((e as Error).name, 'StorageCorruptError')
      assert.ok((e as Error).message.includes(path))
      reported = 'error'
    }
    assert.notEqual(reported, 'nothing', 'damage must be reported')
  })

  it('runs a quick check at open after an unclean shutdown, and refuses damaged pages with advice', async () => {
    const fill = async (s: SqliteProvider): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        await s.commit([{ cid: Uint8Array.from([1, 0x71, 0x12, 0x20, ...Buffer.alloc(32, i)]), author: 'a', seq: i + 1, bytes: Buffer.alloc(2000, i), stamp: `0000000000000000a${i}` as never, ops: [], control: [] }])
      }
    }
    // after a clean close the check is skipped (it reads the whole file): such damage is left to
    // the reads that hit it and to `peakdb verify`
    const cleanPath = join(dirs.make(), 'db.sqlite')
    const clean = await SqliteProvider.open({ path: cleanPath })
    await fill(clean)
    await clean.close()
    damageTablePages(cleanPath, 'entries', 3)
    await (await SqliteProvider.open({ path: cleanPath })).close()
    // a process that dies leaves the marker 'open': the next open checks and refuses
    const path = join(dirs.make(), 'db.sqlite')
    const crashed = await SqliteProvider.open({ path })
    await fill(crashed)
    ;(crashed as unknown as { db: Database.Database }).db.close() // the handle goes away without close()
    damageTablePages(path, 'entries', 3)
    const err = await rejectsNamed(() => SqliteProvider.open({ path }), 'StorageCorruptError', path)
    assert.match(err.message, /previous shutdown was not clean, and SQLite's quick check found \d+ problem\(s\): "/)
    assert.match(err.message, /move it away .* continues under a new DeviceId and resyncs from your other devices/)
    // without damage, an unclean shutdown only costs the check
    const intact = join(dirs.make(), 'db.sqlite')
    const killed = await SqliteProvider.open({ path: intact })
    await fill(killed)
    ;(killed as unknown as { db: Database.Database }).db.close()
    const s = await SqliteProvider.open({ path: intact })
    assert.equal((await s.scanEntries(0, 1000)).length, 100)
    await s.close()
  })

  it('refuses a database from a newer schema version', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    const db = new Database(path)
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
    db.close()
    await rejectsNamed(() => SqliteProvider.open({ path }), 'SchemaVersionError', 'upgrade PeakDB')
  })

  it('versions its own schema through the migration engine, taking over a counter-versioned file once', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    await (await SqliteProvider.open({ path })).close()
    const names = (): string[] => {
      const db = new Database(path, { readonly: true })
      try {
        return db.prepare('SELECT name FROM peakdb_schema ORDER BY name').pluck().all() as string[]
      } finally {
        db.close()
      }
    }
    assert.deepEqual(names(), MIGRATIONS.map(m => m.name))
    // a file from before the history was kept: the schema is there, counted by user_version only
    const legacy = new Database(path)
    legacy.exec('DROP TABLE peakdb_schema')
    legacy.prepare("INSERT INTO meta (key, value) VALUES ('kept', 'yes')").run()
    legacy.close()
    const s = await SqliteProvider.open({ path })
    assert.equal(await s.getMeta('kept'), 'yes', 'taking the history over runs no migration again')
    await s.close()
    assert.deepEqual(names(), MIGRATIONS.map(m => m.name))
    // a migration this build does not know: a newer PeakDB wrote the file
    const newer = new Database(path)
    newer.prepare("INSERT INTO peakdb_schema (name, applied_at) VALUES ('9999_from_the_future', '2030-01-01T00:00:00.000Z')").run()
    newer.close()
    const err = await rejectsNamed(() => SqliteProvider.open({ path }), 'SchemaVersionError', 'upgrade PeakDB')
    assert.match(err.message, /9999_from_the_future/)
  })

  it('matches every document with an empty where', async () => {
    const s = await SqliteProvider.open({ path: join(dirs.make(), 'db.sqlite'), readers: 0 })
    try {
      await s.commit([putDocs(0, 3)])
      assert.deepEqual((await s.find('docs', normaliseQuery({ where: {} }))).map(r => r.id), ['d000000', 'd000001', 'd000002'])
      assert.equal(await s.count('docs', normaliseWhere({})), 3)
    } finally {
      await s.close()
    }
  })

  it('throws StorageClosedError after close', async () => {
    const s = await SqliteProvider.open({ path: join(dirs.make(), 'db.sqlite') })
    await s.close()
    await s.close()
    await rejectsNamed(() => s.heads(), 'StorageClosedError')
  })
})

const AUTHOR = '12D3KooWPoolPoolPoolPoolPoolPoolPoolPoolPoolPoolPool'
let seq = 0

/** One log entry putting documents `{ n, group, text }` (ids `d<n>`, zero-padded) into `docs`. */
function putDocs (from: number, to: number): CommitItem {
  seq++
  const ops: DataOp[] = []
  for (let n = from; n < to; n++) {
    ops.push({ t: 'put', c: 'docs' as never, id: `d${String(n).padStart(6, '0')}` as never, f: { n, group: n % 10, text: `note ${n} about ${n % 3 === 0 ? 'bread' : 'tea'}` } })
  }
  return { cid: Uint8Array.from([1, 0x71, 0x12, 0x20, ...randomBytes(32)]), author: AUTHOR, seq, bytes: randomBytes(64), stamp: stampOf({ ms: seq, c: 0 }, AUTHOR), ops, control: [] }
}

async function fillDocs (s: SqliteProvider, count: number): Promise<void> {
  for (let n = 0; n < count; n += 1000) await s.commit([putDocs(n, Math.min(count, n + 1000))])
}

const poolOf = (s: SqliteProvider): ReadPool => (s as unknown as { pool: ReadPool }).pool
const threadsOf = (s: SqliteProvider): Worker[] => (poolOf(s) as unknown as { readers: Array<{ worker: Worker } | undefined> }).readers.flatMap(r => (r === undefined ? [] : [r.worker]))

/** Opens with reader threads and waits (bounded) until `ready` of them are ready. */
async function openPooled (path: string, ready = 1, readers = 2): Promise<SqliteProvider> {
  const s = await SqliteProvider.open({ path, readers })
  // reads start the threads (the second one once the first is busy); whether they succeed does not matter here
  const nudge = async (): Promise<void> => { await s.count('docs', undefined).catch(() => {}) }
  await waitFor(async () => {
    await Promise.all([nudge(), nudge()])
    return poolOf(s).ready >= ready
  }, { timeoutMs: 15_000, message: `${ready} reader thread(s) ready` })
  return s
}

describe('storage: SQLite reader threads', () => {
  afterEach(() => dirs.cleanup())
  // a scan: equality on a JSON field without an index
  const scan = normaliseQuery({ where: { group: 3 }, orderBy: '_id' })

  it('answers queries, counts, keyword and vector search as the connection does', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    const ask = async (s: SqliteProvider): Promise<unknown[]> => [
      await s.find('docs', scan),
      await s.find('docs', normaliseQuery({ where: { n: { gte: 1990 } }, orderBy: '-n', limit: 5, offset: 2 })),
      await s.find('docs', normaliseQuery({ where: { _id: 'd000042' } })),
      await s.count('docs', normaliseWhere({ text: { contains: 'bread' } })),
      await s.count('docs', undefined),
      await s.collections(),
      await s.textSearch('docs', ['bread'], 7, normaliseWhere({ group: { lt: 5 } })),
      await s.vectorSearch('docs', 'e', Float32Array.from([1, 0, 0, 0]), 5, undefined),
      await s.vectorSearch('docs', 'e', Float32Array.from([0, 1, 0, 0]), 3, normaliseWhere({ group: 2 })),
      await s.checkIntegrity()
    ]
    const pooled = await openPooled(path)
    let expected: unknown[]
    try {
      await fillDocs(pooled, 2000)
      await pooled.applyIndexUpdates(Array.from({ length: 300 }, (_, n) => ({
        collection: 'docs',
        id: `d${String(n).padStart(6, '0')}`,
        ver: 0,
        text: `note ${n} about ${n % 3 === 0 ? 'bread' : 'tea'}`,
        embedder: { id: 'e', dims: 4 },
        chunks: [{ text: `chunk ${n}`, vector: Float32Array.from([Math.cos(n / 50), Math.sin(n / 50), 0, 0]) }]
      })))
      expected = await ask(pooled)
      assert.ok(poolOf(pooled).active && poolOf(pooled).ready >= 1, 'the reads went to a reader thread')
      const ids = await poolOf(pooled).run({ kind: 'rows', sql: 'SELECT id FROM docs WHERE rid <= ? ORDER BY rid', params: [2], mode: 'pluck' })
      assert.deepEqual(ids, ['d000000', 'd000001'])
    } finally {
      await pooled.close()
    }
    const direct = await SqliteProvider.open({ path, readers: 0 })
    try {
      assert.equal((direct as unknown as { pool: unknown }).pool, undefined)
      assert.deepEqual(await ask(direct), expected)
    } finally {
      await direct.close()
    }
    const [found, , byId, breadCount, all, , text, near, nearFiltered, integrity] = expected as [unknown[], unknown, unknown[], number, number, unknown, unknown[], unknown[], unknown[], string[]]
    assert.equal(found.length, 200)
    assert.equal(byId.length, 1)
    assert.equal(breadCount, 667)
    assert.equal(all, 2000)
    assert.equal(text.length, 7)
    assert.deepEqual(near.map(r => (r as { id: string }).id), ['d000000', 'd000001', 'd000002', 'd000003', 'd000004'])
    assert.equal(nearFiltered.length, 3)
    assert.deepEqual(integrity, [])
  })

  it('sees every commit that returned before the read was issued', async () => {
    const s = await openPooled(join(dirs.make(), 'db.sqlite'), 2)
    try {
      for (let i = 0; i < 40; i++) {
        await s.commit([putDocs(i * 10, i * 10 + 10)])
        const [count, found] = await Promise.all([s.count('docs', undefined), s.find('docs', normaliseQuery({ where: { n: { gte: i * 10 } } }))])
        assert.equal(count, i * 10 + 10)
        assert.equal(found.length, 10)
      }
      await s.commit([{ ...putDocs(0, 0), ops: [{ t: 'del', c: 'docs' as never, id: 'd000000' as never }] }])
      assert.equal(await s.count('docs', undefined), 399)
      assert.ok(poolOf(s).ready === 2 && poolOf(s).active)
    } finally {
      await s.close()
    }
  })

  it('keeps the event loop turning during a long scan', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    const ticksDuringScan = async (s: SqliteProvider): Promise<number> => {
      let ticks = 0
      let scanning = true
      const spin = (): void => { if (scanning) { ticks++; setImmediate(spin) } }
      setImmediate(spin)
      const found = await s.find('docs', scan)
      scanning = false
      assert.equal(found.length, 3000)
      return ticks
    }
    const direct = await SqliteProvider.open({ path, readers: 0 })
    try {
      await fillDocs(direct, 30_000)
      // on the connection the scan holds the thread: not one tick
      assert.equal(await ticksDuringScan(direct), 0)
    } finally {
      await direct.close()
    }
    const pooled = await openPooled(path)
    try {
      const ticks = await ticksDuringScan(pooled)
      assert.ok(ticks >= 10, `the event loop turned ${ticks} times during the scan`)
    } finally {
      await pooled.close()
    }
  })

  it('runs the reads of a reader thread that dies on the connection, and starts another', async () => {
    const s = await openPooled(join(dirs.make(), 'db.sqlite'), 1, 1)
    try {
      await fillDocs(s, 20_000)
      for (let kill = 1; kill <= 2; kill++) {
        const [thread] = threadsOf(s)
        assert.ok(thread !== undefined)
        const pending = s.find('docs', scan)
        await thread.terminate()
        const found = await withTimeout(pending, 15_000, 'a read of a terminated reader thread')
        assert.equal(found.length, 2000)
        await waitFor(async () => { await s.count('docs', undefined); return poolOf(s).ready === 1 }, { timeoutMs: 15_000, message: 'a new reader thread' })
        assert.notEqual(threadsOf(s)[0], thread)
      }
      // three threads in a row die with no answer in between: every read stays on the connection
      await threadsOf(s)[0]?.terminate()
      for (let i = 0; i < 2; i++) {
        assert.equal(poolOf(s).active, true)
        await s.count('docs', undefined) // on the connection; starts a thread
        const [starting] = threadsOf(s)
        assert.ok(starting !== undefined && poolOf(s).ready === 0)
        await starting.terminate()
      }
      assert.equal(poolOf(s).active, false)
      assert.equal((await withTimeout(s.find('docs', scan), 15_000, 'a read without reader threads')).length, 2000)
      assert.deepEqual(threadsOf(s), [])
    } finally {
      await s.close()
    }
  })

  it('stops its threads on close, fails reads in flight with StorageClosedError, and closes once', async () => {
    const s = await openPooled(join(dirs.make(), 'db.sqlite'), 2)
    await fillDocs(s, 20_000)
    const threads = threadsOf(s)
    assert.equal(threads.length, 2)
    const exited = threads.map(async t => await new Promise(resolve => t.once('exit', resolve)))
    const inFlight = s.find('docs', scan).then(() => undefined, (err: Error) => err)
    await Promise.all([s.close(), s.close()])
    await withTimeout(Promise.all(exited), 10_000, 'reader threads exiting')
    assert.equal((await inFlight)?.name, 'StorageClosedError')
    await rejectsNamed(() => s.find('docs', scan), 'StorageClosedError')
    await s.close()
  })

  it('reports damage found by a reader thread as StorageCorruptError, naming the file', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    const s = await SqliteProvider.open({ path, readers: 0 })
    await fillDocs(s, 5000)
    await s.close()
    damageTablePages(path, 'docs', 3)
    const damaged = await openPooled(path)
    try {
      await rejectsNamed(() => damaged.find('docs', scan), 'StorageCorruptError', path)
      assert.ok((await damaged.checkIntegrity()).length > 0)
      assert.ok(poolOf(damaged).active)
    } finally {
      await damaged.close()
    }
  })

  it('takes 0 readers to read on the connection, and refuses a reader count that is not a whole number', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    await rejectsNamed(() => SqliteProvider.open({ path, readers: -1 }), 'RangeError', '"readers"')
    await rejectsNamed(() => SqliteProvider.open({ path, readers: 1.5 }), 'RangeError', '"readers"')
    const s = await SqliteProvider.open({ path, readers: 0 })
    assert.equal((s as unknown as { pool: unknown }).pool, undefined)
    await s.close()
    const memory = await SqliteProvider.open({ path: ':memory:', readers: 2 })
    assert.equal((memory as unknown as { pool: unknown }).pool, undefined)
    await memory.close()
  })
})
