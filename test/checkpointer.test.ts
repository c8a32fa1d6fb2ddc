import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Checkpointer, WAL_LIMIT_FRAMES } from '../storage/sqlite/checkpointer.js'
import { SqliteProvider } from '../storage/index.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { waitFor } from './helpers/wait-for.js'

const PAGE = 4096

describe('storage: background WAL checkpoints', function () {
  this.timeout(60_000)
  const dirs = new TmpDirs()
  let db: Database.Database | undefined
  let checkpoints: Checkpointer | undefined
  afterEach(async () => {
    await checkpoints?.close()
    db?.close()
    checkpoints = undefined
    db = undefined
    dirs.cleanup()
  })

  /** A WAL database with one table, and its checkpointer: started at once (and waited for) unless `startAfter` writes. */
  async function open (startAfter = 0): Promise<{ db: Database.Database, checkpoints: Checkpointer, path: string }> {
    const path = join(dirs.make(), 'db.sqlite')
    db = new Database(path)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB NOT NULL)')
    checkpoints = new Checkpointer(db, { path, synchronous: 'NORMAL' }, startAfter)
    if (startAfter === 0) await waitFor(() => checkpoints!.background, { message: 'the checkpointer thread to start' })
    return { db, checkpoints, path }
  }

  it('copies the WAL on its thread, and the WAL starts over under a steady stream of writes', async () => {
    const { db, checkpoints, path } = await open()
    assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 0, 'the writer no longer checkpoints itself')
    const insert = db.prepare('INSERT INTO t (b) VALUES (?)')
    // ~3 pages per commit, 8x the limit in all: without starting over the WAL would hold all of it
    const commits = Math.ceil(8 * WAL_LIMIT_FRAMES / 3)
    for (let i = 0; i < commits; i++) {
      await checkpoints.ready()
      db.transaction(() => { insert.run(Buffer.alloc(3 * PAGE, i % 251)) }).immediate()
      checkpoints.wrote()
    }
    const { passes, drains } = checkpoints.stats
    assert.ok(passes > 0, 'passes ran on the thread')
    assert.ok(drains > 0, 'writers waited for the WAL to start over')
    const walPages = statSync(`${path}-wal`).size / PAGE
    assert.ok(walPages < 3 * WAL_LIMIT_FRAMES, `the WAL stayed bounded: ${Math.round(walPages)} pages for ${commits * 3} written`)
    assert.equal(db.prepare('SELECT count(*) FROM t').pluck().get(), commits)
    assert.deepEqual(db.pragma('integrity_check', { simple: true }), 'ok')
  })

  it('copies the last writes once they stop', async () => {
    const { db, checkpoints, path } = await open()
    const insert = db.prepare('INSERT INTO t (b) VALUES (?)')
    // a burst without a turn of the event loop: passes start, and writes land during them
    for (let i = 0; i < 300; i++) {
      insert.run(Buffer.alloc(PAGE, i % 251))
      checkpoints.wrote()
    }
    const pages = db.pragma('page_count', { simple: true }) as number
    // the database file holds every page once the WAL is copied in whole
    await waitFor(() => statSync(path).size === pages * PAGE, { message: `the database file to reach ${pages} pages (WAL copied)` })
  })

  it('starts no thread for a database written only a little', async () => {
    const { db, checkpoints } = await open(50)
    const insert = db.prepare('INSERT INTO t (b) VALUES (?)')
    const write = async (): Promise<void> => {
      await checkpoints.ready()
      insert.run(Buffer.alloc(PAGE))
      checkpoints.wrote()
    }
    for (let i = 0; i < 49; i++) await write()
    assert.equal(checkpoints.started, false, 'no thread after 49 writes')
    assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 1000, 'SQLite checkpoints as usual meanwhile')
    await write()
    assert.equal(checkpoints.started, true, 'the 50th write starts it')
    await waitFor(() => checkpoints.background, { message: 'the checkpointer thread to start' })
  })

  it('hands checkpoints back to the writer when its thread is gone', async () => {
    const { db, checkpoints } = await open()
    // the thread ends as if it had crashed
    await (checkpoints as unknown as { worker: { terminate: () => Promise<number> } }).worker.terminate()
    await waitFor(() => !checkpoints.background, { message: 'the checkpointer to notice' })
    assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 1000)
    // writes go on, and none waits for a thread that is not there
    const insert = db.prepare('INSERT INTO t (b) VALUES (?)')
    for (let i = 0; i < 100; i++) {
      await checkpoints.ready()
      insert.run(Buffer.alloc(PAGE))
      checkpoints.wrote()
    }
    assert.equal(db.prepare('SELECT count(*) FROM t').pluck().get(), 100)
  })

  it('a provider keeps its data across close and reopen with its WAL copied by the thread', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    const s = await SqliteProvider.open({ path })
    for (let i = 0; i < 300; i++) await s.setMeta(`k${i}`, 'v'.repeat(2000))
    await s.close()
    assert.throws(() => statSync(`${path}-wal`), /ENOENT/, 'the last connection to close removed the WAL')
    const again = await SqliteProvider.open({ path })
    try {
      assert.equal(await again.getMeta('k299'), 'v'.repeat(2000))
    } finally {
      await again.close()
    }
  })
})
