import assert from 'node:assert/strict'
import { closeSync, openSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { SqliteProvider, normaliseQuery, parseFieldPath } from '../storage/index.js'
import { compileFind } from '../storage/sqlite/query-sql.js'
import { SCHEMA_VERSION } from '../storage/sqlite/schema.js'
import { runStorageProviderTests } from './storage-compliance.js'
import { rejectsNamed } from './helpers/errors.js'
import { damageTablePages } from './helpers/sqlite-damage.js'
import { TmpDirs } from './helpers/tmp-dir.js'

const dirs = new TmpDirs()
runStorageProviderTests('sqlite', { setup: async () => SqliteProvider.open({ path: join(dirs.make(), 'db.sqlite') }), teardown: async () => dirs.cleanup() })

describe('storage: SQLite specifics', () => {
  afterEach(() => dirs.cleanup())

  it('uses the expression index for range filters on an indexed field', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    const s = SqliteProvider.open({ path })
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
    const s = SqliteProvider.open({ path })
    for (let i = 0; i < 50; i++) {
      await s.commit([{ cid: Uint8Array.from([1, 0x71, 0x12, 0x20, ...Buffer.alloc(32, i)]), author: 'a', seq: i + 1, bytes: Buffer.alloc(3000, i), stamp: `0000000000000000a${i}` as never, ops: [], control: [] }])
    }
    await s.close()
    truncateSync(path, Math.floor(statSync(path).size / 2))
    await rejectsNamed(() => SqliteProvider.open({ path }), 'StorageCorruptError', 'truncated')
  })

  it('reports damaged pages when they are read', async () => {
    const path = join(dirs.make(), 'db.sqlite')
    const s = SqliteProvider.open({ path })
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
      const s2 = SqliteProvider.open({ path })
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
    const clean = SqliteProvider.open({ path: cleanPath })
    await fill(clean)
    await clean.close()
    damageTablePages(cleanPath, 'entries', 3)
    await SqliteProvider.open({ path: cleanPath }).close()
    // a process that dies leaves the marker 'open': the next open checks and refuses
    const path = join(dirs.make(), 'db.sqlite')
    const crashed = SqliteProvider.open({ path })
    await fill(crashed)
    ;(crashed as unknown as { db: Database.Database }).db.close() // the handle goes away without close()
    damageTablePages(path, 'entries', 3)
    const err = await rejectsNamed(() => SqliteProvider.open({ path }), 'StorageCorruptError', path)
    assert.match(err.message, /previous shutdown was not clean, and SQLite's quick check found \d+ problem\(s\): "/)
    assert.match(err.message, /move it away .* continues under a new DeviceId and resyncs from your other devices/)
    // without damage, an unclean shutdown only costs the check
    const intact = join(dirs.make(), 'db.sqlite')
    const killed = SqliteProvider.open({ path: intact })
    await fill(killed)
    ;(killed as unknown as { db: Database.Database }).db.close()
    const s = SqliteProvider.open({ path: intact })
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

  it('throws StorageClosedError after close', async () => {
    const s = SqliteProvider.open({ path: join(dirs.make(), 'db.sqlite') })
    await s.close()
    await s.close()
    await rejectsNamed(() => s.heads(), 'StorageClosedError')
  })
})
