/**
 * `peakdb watch`: the current result, then each change as it happens, through a daemon's stream
 * (SQLite and PostgreSQL nodes) or a live query of the command itself, until Ctrl+C.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, runCli, startDaemon } from './helpers/cli.js'
import { TestDatabase } from './helpers/postgres.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { waitFor, withTimeout } from './helpers/wait-for.js'

const dirs = new TmpDirs()
const db = new TestDatabase()
after(async () => {
  dirs.cleanup()
  await db.drop()
})

/** A running `peakdb watch`, with the lines it printed. */
function watch (args: string[]): { child: ChildProcess, lines: () => string[], exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, 'watch', ...args], { env: { ...process.env, PEAKDB_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  void exited.then(code => { if (code !== 0 && code !== null) process.stderr.write(`watch exited ${code}: ${err}\n`) })
  return { child, lines: () => out.split('\n').filter(l => l.length > 0), exited }
}

describe('peakdb watch', function () {
  this.timeout(90_000)

  for (const storage of ['sqlite', 'postgres'] as const) {
    it(`through a daemon (${storage}): the result, then added, changed and removed, until Ctrl+C`, async () => {
      const dir = dirs.make()
      const init = await runCli(['init', '--dir', dir, '--json', ...(storage === 'postgres' ? ['--storage', await db.url()] : [])])
      assert.equal(init.code, 0, init.stderr)
      assert.equal((await runCli(['put', 'tasks', '[{"_id":"t1","done":false},{"_id":"t2","done":true}]', '--dir', dir])).code, 0)
      const daemon = await startDaemon(['--dir', dir])
      const w = watch(['tasks', '--where', '{"done":false}', '--dir', dir, '--json'])
      try {
        await waitFor(() => w.lines().length >= 1, { timeoutMs: 20_000, message: 'the initial result' })
        assert.deepEqual(JSON.parse(w.lines()[0] as string), { type: 'initial', docs: [{ _id: 't1', done: false }] })
        assert.equal((await runCli(['put', 'tasks', '{"_id":"t3","done":false,"title":"new"}', '--dir', dir])).code, 0)
        await waitFor(() => w.lines().length >= 2, { timeoutMs: 20_000, message: 'the added document' })
        assert.deepEqual(JSON.parse(w.lines()[1] as string), { type: 'added', id: 't3', doc: { _id: 't3', done: false, title: 'new' }, origin: 'local' })
        assert.equal((await runCli(['put', 'tasks', '{"_id":"t3","done":false,"title":"renamed"}', '--dir', dir])).code, 0)
        assert.equal((await runCli(['put', 'tasks', '{"_id":"t1","done":true}', '--dir', dir])).code, 0)
        await waitFor(() => w.lines().length >= 4, { timeoutMs: 20_000, message: 'the changed and removed documents' })
        assert.deepEqual(w.lines().slice(2).map(l => JSON.parse(l) as { type: string, id: string }).map(l => [l.type, l.id]), [['changed', 't3'], ['removed', 't1']])
        assert.equal((await runCli(['put', 'tasks', '{"_id":"t9","done":true}', '--dir', dir])).code, 0)
        w.child.kill('SIGINT')
        assert.equal(await withTimeout(w.exited, 10_000, 'watch to stop on Ctrl+C'), 0)
        assert.equal(w.lines().length, 4, 'a document outside the filter is no change to the result')
      } finally {
        w.child.kill('SIGKILL')
        assert.equal(await daemon.stop(), 0, daemon.output())
      }
    })
  }

  it('two node processes on one PostgreSQL database, each its own device, see each other\'s writes', async () => {
    const url = await db.url()
    const dirA = dirs.make()
    const dirB = dirs.make()
    assert.equal((await runCli(['init', '--dir', dirA, '--name', 'web-1', '--storage', url])).code, 0)
    const a = await startDaemon(['--dir', dirA, '--no-dht'])
    let b: Awaited<ReturnType<typeof startDaemon>> | undefined
    const watches: Array<ReturnType<typeof watch>> = []
    try {
      const invite = await runCli(['pair', 'invite', '--json', '--dir', dirA])
      assert.equal(invite.code, 0, invite.stderr)
      writeFileSync(join(dirB, 'config.json'), JSON.stringify({ storage: url }))
      const join2 = await runCli(['pair', 'join', (JSON.parse(invite.stdout) as { code: string }).code, '--name', 'web-2', '--dir', dirB])
      assert.equal(join2.code, 0, join2.stderr)
      b = await startDaemon(['--dir', dirB, '--no-dht', '--bootstrap', (a.started.multiaddrs as string[])[0] as string])
      const statusB = JSON.parse((await runCli(['status', '--json', '--dir', dirB])).stdout) as { storage: { kind: string, location: string } }
      assert.equal(statusB.storage.kind, 'postgres', 'the second process keeps its data in the same database')
      const wa = watch(['orders', '--dir', dirA, '--json'])
      const wb = watch(['orders', '--dir', dirB, '--json'])
      watches.push(wa, wb)
      await waitFor(() => wa.lines().length >= 1 && wb.lines().length >= 1, { timeoutMs: 20_000, message: 'both initial results' })
      assert.equal((await runCli(['put', 'orders', '{"_id":"o1","item":"apples"}', '--dir', dirB])).code, 0)
      assert.equal((await runCli(['put', 'orders', '{"_id":"o2","item":"pears"}', '--dir', dirA])).code, 0)
      const seen = (w: ReturnType<typeof watch>): string[] => w.lines().slice(1).map(l => (JSON.parse(l) as { id: string }).id).sort()
      await waitFor(() => seen(wa).length >= 2 && seen(wb).length >= 2, { timeoutMs: 30_000, message: 'each watch to see both writes' })
      assert.deepEqual(seen(wa), ['o1', 'o2'])
      assert.deepEqual(seen(wb), ['o1', 'o2'])
      const fromB = wa.lines().slice(1).map(l => JSON.parse(l) as { id: string, origin: string }).find(c => c.id === 'o1')
      assert.equal(fromB?.origin, 'remote', 'the other process\'s write arrives as a remote change')
    } finally {
      for (const w of watches) w.child.kill('SIGKILL')
      if (b !== undefined) assert.equal(await b.stop(), 0, b.output())
      assert.equal(await a.stop(), 0, a.output())
    }
  })

  it('a watch whose daemon stops ends with a typed error; bad input is refused at once', async () => {
    const dir = dirs.make()
    assert.equal((await runCli(['init', '--dir', dir])).code, 0)
    const daemon = await startDaemon(['--dir', dir])
    const w = watch(['tasks', '--dir', dir])
    let stopped = false
    try {
      await waitFor(() => w.lines().length >= 1, { timeoutMs: 20_000, message: 'the initial result' })
      assert.match(w.lines()[0] as string, /^0 document\(s\) now; watching for changes/)
      const bad = await runCli(['watch', '9bad', '--dir', dir])
      assert.equal(bad.code, 1)
      assert.match(bad.stderr, /InvalidCollectionNameError/)
      assert.equal(await daemon.stop(), 0, daemon.output())
      stopped = true
      assert.equal(await withTimeout(w.exited, 10_000, 'watch to end with its daemon'), 1)
    } finally {
      w.child.kill('SIGKILL')
      if (!stopped) await daemon.stop()
    }
  })

  it('without a daemon: the result from the data dir, then until Ctrl+C', async () => {
    const dir = dirs.make()
    assert.equal((await runCli(['init', '--dir', dir])).code, 0)
    assert.equal((await runCli(['put', 'tasks', '{"_id":"a","n":1}', '--dir', dir])).code, 0)
    const w = watch(['tasks', '--dir', dir, '--json'])
    try {
      await waitFor(() => w.lines().length >= 1, { timeoutMs: 20_000, message: 'the initial result' })
      assert.deepEqual(JSON.parse(w.lines()[0] as string), { type: 'initial', docs: [{ _id: 'a', n: 1 }] })
      w.child.kill('SIGINT')
      assert.equal(await withTimeout(w.exited, 10_000, 'watch to stop on Ctrl+C'), 0)
    } finally {
      w.child.kill('SIGKILL')
    }
  })
})
