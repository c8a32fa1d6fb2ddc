/**
 * The data-dir lock between a daemon and CLI commands: the lock rules alone (in this process,
 * with child processes as other holders), then the real CLI: a daemon that (re)starts while
 * commands write waits for them instead of dying, and commands use it once it is up.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, writeFileSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { acquireLock, announceDaemon, dataDirPaths, pendingDaemon, type LockHolder } from '../node/data-dir.js'
import { runCli, startDaemon, type Daemon } from './helpers/cli.js'
import { rejectsNamed } from './helpers/errors.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { waitFor } from './helpers/wait-for.js'

/** A pid of a process that has exited. */
async function deadPid (): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise(resolve => child.once('exit', resolve))
  assert.ok(child.pid !== undefined)
  return child.pid
}

describe('data-dir lock', function () {
  this.timeout(120_000)
  const dirs = new TmpDirs()
  const daemons: Daemon[] = []
  const others: ChildProcess[] = []
  /** A live process other than this one, to name as a holder. */
  const otherProcess = (): number => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    others.push(child)
    assert.ok(child.pid !== undefined)
    return child.pid
  }
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop('SIGKILL').catch(() => {})
    for (const c of others.splice(0)) c.kill('SIGKILL')
    dirs.cleanup()
  })

  describe('rules', () => {
    it('a daemon waits for a short-lived command to release the lock, and fails at once on another daemon', async () => {
      const paths = dataDirPaths(dirs.make())
      const command = otherProcess()
      writeFileSync(paths.lock, JSON.stringify({ pid: command, kind: 'command' }) + '\n')
      const waitedFor: LockHolder[] = []
      const acquiring = acquireLock(paths, { kind: 'daemon', waitMs: 60_000, onWait: h => waitedFor.push(h) })
      await waitFor(() => waitedFor.length === 1, { message: 'the daemon to report whom it waits for' })
      assert.deepEqual(waitedFor, [{ pid: command, kind: 'command' }])
      unlinkSync(paths.lock)
      const lock = await acquiring
      lock.release()
      assert.equal(existsSync(paths.lock), false)

      writeFileSync(paths.lock, JSON.stringify({ pid: command, kind: 'daemon' }) + '\n')
      await rejectsNamed(() => acquireLock(paths, { kind: 'daemon', waitMs: 60_000 }), 'DataDirLockedError', `a daemon (pid ${command}) already runs`)
      // a daemon that cannot wait fails at once on a command, too
      writeFileSync(paths.lock, JSON.stringify({ pid: command, kind: 'command' }) + '\n')
      await rejectsNamed(() => acquireLock(paths, { kind: 'daemon' }), 'DataDirLockedError', String(command))
    })

    it('a command steps aside for a daemon that announced itself, and leaves no lock behind', async () => {
      const paths = dataDirPaths(dirs.make())
      const daemon = otherProcess()
      writeFileSync(paths.starting, JSON.stringify({ pid: daemon, until: Date.now() + 60_000 }) + '\n')
      assert.equal(pendingDaemon(paths), daemon)
      await rejectsNamed(() => acquireLock(paths, { kind: 'command' }), 'DaemonStartingError', String(daemon))
      assert.equal(existsSync(paths.lock), false)
      // a second daemon is refused at once while the first is starting
      assert.throws(() => announceDaemon(paths, { waitMs: 30_000 }), { name: 'DataDirLockedError', message: new RegExp(`a daemon \\(pid ${daemon}\\) is starting`) })
    })

    it('markers and locks of exited processes, or past their deadline, block nobody', async () => {
      const paths = dataDirPaths(dirs.make())
      writeFileSync(paths.starting, JSON.stringify({ pid: await deadPid(), until: Date.now() + 60_000 }) + '\n')
      assert.equal(pendingDaemon(paths), undefined)
      // a live pid past the deadline without the lock: a crashed daemon's pid, reused
      writeFileSync(paths.starting, JSON.stringify({ pid: otherProcess(), until: Date.now() - 1 }) + '\n')
      assert.equal(pendingDaemon(paths), undefined)
      writeFileSync(paths.lock, JSON.stringify({ pid: await deadPid(), kind: 'daemon' }) + '\n')
      const lock = await acquireLock(paths, { kind: 'command' })
      lock.release()
      const announcement = announceDaemon(paths, { waitMs: 30_000 })
      announcement.withdraw()
      assert.equal(existsSync(paths.starting), false)
    })
  })

  describe('CLI', () => {
    it('a daemon restarted while a loop of puts runs starts every time, and every acknowledged put is kept', async () => {
      const dir = dirs.make()
      assert.equal((await runCli(['init', '--dir', dir])).code, 0)
      const acked: string[] = []
      const failures: string[] = []
      let writing = true
      // two writers keep the lock held by short-lived commands much of the time
      const writers = [0, 1].map(async w => {
        for (let i = 0; writing; i++) {
          const r = await runCli(['put', 'notes', JSON.stringify({ w, i }), '--dir', dir, '--json'], { timeoutMs: 60_000 })
          if (r.code === 0) acked.push((JSON.parse(r.stdout) as { id: string }).id)
          else failures.push(r.stderr.trim())
        }
      })
      let daemon: Daemon | undefined
      try {
        // daemons killed (or stopped) and restarted while clients write: each start must succeed
        for (let round = 0; round < 4; round++) {
          await waitFor(() => acked.length >= 2 * (round + 1), { timeoutMs: 60_000, message: `puts to go on (round ${round})` })
          daemon = await startDaemon(['--dir', dir, '--no-dht'], { timeoutMs: 60_000 })
          daemons.push(daemon)
          const before = acked.length
          await waitFor(() => acked.length >= before + 2, { timeoutMs: 60_000, message: `puts through daemon ${round}` })
          if (round < 3) await daemon.stop(round % 2 === 0 ? 'SIGKILL' : 'SIGTERM')
        }
      } finally {
        writing = false
        await Promise.all(writers)
      }
      assert.ok(daemon !== undefined)
      assert.equal(daemon.child.exitCode, null, `the last daemon exited: ${daemon.output()}`)
      const status = await runCli(['status', '--dir', dir, '--json'])
      assert.equal(status.code, 0, status.stderr)
      const s = JSON.parse(status.stdout) as { running?: boolean, pid?: number }
      assert.equal(s.running, true)
      assert.equal(s.pid, daemon.child.pid)
      const found = await runCli(['find', 'notes', '--dir', dir, '--json'])
      assert.equal(found.code, 0, found.stderr)
      const held = new Set((JSON.parse(found.stdout) as Array<{ _id: string }>).map(d => d._id))
      const lost = acked.filter(id => !held.has(id))
      assert.deepEqual(lost, [], `acknowledged puts missing (${acked.length} acknowledged; failed puts: ${failures.join(' | ')})`)
    })

    it('a second `peakdb start` on a running daemon fails at once, naming it', async () => {
      const dir = dirs.make()
      const d = await startDaemon(['--dir', dir, '--no-dht'])
      daemons.push(d)
      const second = await runCli(['start', '--dir', dir, '--no-dht', '--json'], { timeoutMs: 60_000 })
      assert.equal(second.code, 1)
      assert.doesNotMatch(second.stdout, /"event":"waiting"/, 'a daemon is not waited for')
      const { error } = JSON.parse(second.stderr.trim().split('\n').at(-1) ?? '') as { error: { name: string, message: string } }
      assert.equal(error.name, 'DataDirLockedError')
      assert.match(error.message, new RegExp(`a daemon \\(pid ${d.child.pid}\\) already runs on this dir`))
      assert.equal(d.child.exitCode, null)
      assert.equal((await runCli(['status', '--dir', dir])).code, 0)
    })

    it('a crashed daemon\'s lock and marker do not stop commands or the next start', async () => {
      const dir = dirs.make()
      assert.equal((await runCli(['init', '--dir', dir])).code, 0)
      const gone = await deadPid()
      writeFileSync(join(dir, 'LOCK'), JSON.stringify({ pid: gone, kind: 'daemon' }) + '\n')
      writeFileSync(join(dir, 'STARTING'), JSON.stringify({ pid: gone, until: Date.now() + 60_000 }) + '\n')
      const put = await runCli(['put', 'notes', '{"a":1}', '--dir', dir, '--json'])
      assert.equal(put.code, 0, put.stderr)
      writeFileSync(join(dir, 'LOCK'), JSON.stringify({ pid: gone, kind: 'daemon' }) + '\n')
      const d = await startDaemon(['--dir', dir, '--no-dht'])
      daemons.push(d)
      assert.equal(existsSync(join(dir, 'STARTING')), false, 'the daemon withdraws its marker once its API is up')
      const count = await runCli(['count', 'notes', '--dir', dir, '--json'])
      assert.equal((JSON.parse(count.stdout) as { count: number }).count, 1)
    })
  })
})
