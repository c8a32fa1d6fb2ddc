import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawn, type ChildProcess } from 'node:child_process'
import { encodeInvite, inviteSecret } from '../identity/index.js'
import { BIN, runCli, startDaemon, type Daemon } from './helpers/cli.js'
import { damageTablePages } from './helpers/sqlite-damage.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { waitFor, withTimeout } from './helpers/wait-for.js'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

/** The `{ error }` object a `--json` command printed last on stderr. */
function jsonError (stderr: string): { name: string, message: string, code?: string } {
  return (JSON.parse(stderr.trim().split('\n').at(-1) ?? '') as { error: { name: string, message: string, code?: string } }).error
}

/** 400 documents of 1 KiB: enough pages to damage some and leave the rest readable. */
const MANY_NOTES = JSON.stringify(Array.from({ length: 400 }, (_, i) => ({ _id: `n${i}`, i, body: 'z'.repeat(1000) })))

describe('CLI', function () {
  this.timeout(60_000)
  const dirs = new TmpDirs()
  const daemons: Daemon[] = []
  const children: ChildProcess[] = []
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop('SIGKILL').catch(() => {})
    for (const c of children.splice(0)) {
      if (c.exitCode !== null || c.signalCode !== null) continue
      const exited = new Promise(resolve => c.once('exit', resolve))
      c.kill('SIGKILL')
      await exited
    }
    dirs.cleanup()
  })

  it('init prints the ids and the 24-word phrase once; a second init is refused', async () => {
    const dir = dirs.make()
    const r = await runCli(['init', '--dir', dir, '--name', 'laptop'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /DeviceId:\s+12D3KooW/)
    assert.match(r.stdout, /SwarmId:\s+b[a-z2-7]+/)
    assert.match(r.stdout, /24\. [a-z]+/)
    const again = await runCli(['init', '--dir', dir])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /already has an identity/)
    const status = await runCli(['status', '--dir', dir, '--json'])
    const s = JSON.parse(status.stdout) as Record<string, unknown>
    assert.equal(s.deviceName, 'laptop')
    assert.equal(s.running, false)
  })

  it('init --recover restores the same swarm on another data dir (phrase from stdin too)', async () => {
    const a = JSON.parse((await runCli(['init', '--json', '--dir', dirs.make()])).stdout) as { swarmId: string, recoveryPhrase: string, deviceId: string }
    const b = await runCli(['init', '--json', '--dir', dirs.make(), '--recover', a.recoveryPhrase])
    const bj = JSON.parse(b.stdout) as { swarmId: string, deviceId: string, recoveryPhrase?: string }
    assert.equal(bj.swarmId, a.swarmId)
    assert.notEqual(bj.deviceId, a.deviceId)
    assert.equal(bj.recoveryPhrase, undefined)
    const c = await runCli(['init', '--json', '--dir', dirs.make(), '--recover', '-'], { input: a.recoveryPhrase + '\n' })
    assert.equal((JSON.parse(c.stdout) as { swarmId: string }).swarmId, a.swarmId)
    const bad = await runCli(['init', '--dir', dirs.make(), '--recover', 'not a phrase'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /InvalidRecoveryPhraseError/)
  })

  it('works on the data dir directly when no daemon runs', async () => {
    const dir = dirs.make()
    await runCli(['init', '--dir', dir])
    const put = await runCli(['put', 'notes', '{"title":"hi","tags":["a"],"year":2024}', '--dir', dir, '--json'])
    assert.equal(put.code, 0, put.stderr)
    const { id } = JSON.parse(put.stdout) as { id: string }
    await runCli(['put', 'notes', '-', '--dir', dir], { input: '[{"title":"b","year":2019},{"title":"c","year":2022,"tags":["a"]}]' })
    const got = await runCli(['get', 'notes', id, '--dir', dir, '--json'])
    assert.deepEqual(JSON.parse(got.stdout), { _id: id, title: 'hi', tags: ['a'], year: 2024 })
    const found = await runCli(['find', 'notes', '--where', '{"tags":"a"}', '--order-by=-year', '--json', '--dir', dir])
    assert.deepEqual((JSON.parse(found.stdout) as Array<{ title: string }>).map(d => d.title), ['hi', 'c'])
    const human = await runCli(['find', 'notes', '--order-by', 'title', '--limit', '2', '--dir', dir])
    assert.deepEqual(human.stdout.trim().split('\n').map(l => (JSON.parse(l) as { title: string }).title), ['b', 'c'])
    const count = await runCli(['count', 'notes', '--where', '{"year":{"gte":2020}}', '--dir', dir])
    assert.equal(count.stdout.trim(), '2')
    const del = await runCli(['delete', 'notes', id, '--dir', dir, '--json'])
    assert.equal((JSON.parse(del.stdout) as { existed: boolean }).existed, true)
    const missing = await runCli(['get', 'notes', id, '--dir', dir])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /DocumentNotFoundError/)
    const verify = await runCli(['verify', '--rebuild', '--dir', dir])
    assert.equal(verify.code, 0, verify.stdout + verify.stderr)
    assert.match(verify.stdout, /^ok: 4 entries/) // identity, put, putMany (one entry), delete
  })

  it('talks to a running daemon and stops it cleanly on SIGTERM and on `peakdb stop`', async () => {
    const dir = dirs.make()
    const d = await startDaemon(['--dir', dir])
    daemons.push(d)
    assert.match(String(d.started.deviceId), /^12D3KooW/)
    assert.equal(typeof d.started.recoveryPhrase, 'string', 'first start creates the identity and shows the phrase')
    assert.ok(existsSync(join(dir, 'api.json')))
    const put = await runCli(['put', 'notes', '{"title":"via daemon"}', '--dir', dir, '--json'])
    assert.equal(put.code, 0, put.stderr)
    const status = JSON.parse((await runCli(['status', '--dir', dir, '--json'])).stdout) as Record<string, unknown>
    assert.equal(status.running, true)
    assert.equal(status.pid, d.child.pid)
    assert.equal(status.deviceId, d.started.deviceId)
    const found = JSON.parse((await runCli(['find', 'notes', '--json', '--dir', dir])).stdout) as unknown[]
    assert.equal(found.length, 1)
    const err = await runCli(['put', 'bad name', '{}', '--dir', dir, '--json'])
    assert.equal(err.code, 1)
    assert.equal((JSON.parse(err.stderr) as { error: { name: string } }).error.name, 'InvalidCollectionNameError')
    assert.equal(await d.stop('SIGTERM'), 0)
    assert.equal(existsSync(join(dir, 'api.json')), false)
    assert.equal(existsSync(join(dir, 'LOCK')), false)

    const d2 = await startDaemon(['--dir', dir])
    daemons.push(d2)
    assert.equal(d2.started.recoveryPhrase, undefined)
    const stop = await runCli(['stop', '--dir', dir])
    assert.equal(stop.code, 0)
    await waitFor(() => d2.child.exitCode !== null, { timeoutMs: 10_000, message: 'daemon to exit after `peakdb stop`' })
    assert.equal(d2.child.exitCode, 0)
    // the data written through the daemon is there when the dir is opened directly
    assert.equal((JSON.parse((await runCli(['count', 'notes', '--json', '--dir', dir])).stdout) as { count: number }).count, 1)
  })

  it('start tells how to add a device with an invite, not with --bootstrap (which makes a new swarm)', async () => {
    const dir = dirs.make()
    const child = spawn(process.execPath, [BIN, 'start', '--dir', dir, '--no-dht'], { env: { ...process.env, PEAKDB_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    await waitFor(() => out.includes('Press Ctrl+C to stop.'), { timeoutMs: 30_000, message: 'the start banner' })
    assert.ok(out.includes(`Add another device: run \`peakdb pair invite --dir ${dir}\` here, then \`peakdb pair join <code>\` on it.`), out)
    assert.doesNotMatch(out, /--bootstrap/)
  })

  it('two daemons of one swarm on this machine sync through the CLI (the README walkthrough)', async () => {
    const dirA = dirs.make()
    const dirB = dirs.make()
    const init = JSON.parse((await runCli(['init', '--dir', dirA, '--name', 'laptop', '--json'])).stdout) as { recoveryPhrase: string }
    await runCli(['init', '--dir', dirB, '--name', 'desktop', '--recover', '-'], { input: init.recoveryPhrase })
    const a = await startDaemon(['--dir', dirA])
    daemons.push(a)
    const addr = (a.started.multiaddrs as string[])[0] as string
    assert.match(addr, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)
    const b = await startDaemon(['--dir', dirB, '--bootstrap', addr])
    daemons.push(b)
    await runCli(['put', 'notes', '{"_id":"n1","title":"written on the laptop"}', '--dir', dirA])
    const got = await waitFor(async () => {
      const r = await runCli(['get', 'notes', 'n1', '--dir', dirB, '--json'])
      return r.code === 0 ? JSON.parse(r.stdout) as Record<string, unknown> : undefined
    }, { timeoutMs: 20_000, message: 'the note to reach the desktop' })
    assert.equal(got.title, 'written on the laptop')
    await runCli(['put', 'notes', '{"_id":"n2","title":"written on the desktop"}', '--dir', dirB])
    await waitFor(async () => (await runCli(['get', 'notes', 'n2', '--dir', dirA])).code === 0, { timeoutMs: 20_000, message: 'the note to reach the laptop' })
    const status = JSON.parse((await runCli(['status', '--dir', dirB, '--json'])).stdout) as { network: { peers: Array<{ name: string, verified: boolean }> }, versionVector: Record<string, number> }
    assert.deepEqual(status.network.peers.map(p => [p.name, p.verified]), [['laptop', true]])
    assert.equal(Object.keys(status.versionVector).length, 2)
    const peers = await runCli(['peers', '--dir', dirA])
    assert.match(peers.stdout, /desktop\s+member/)
    const sync = await runCli(['sync', '--dir', dirB])
    assert.equal(sync.code, 0, sync.stdout + sync.stderr)
    assert.match(sync.stdout, /in sync/)
    assert.equal(await a.stop(), 0)
    assert.equal(await b.stop(), 0)
  })

  it('pairs a new device with `pair invite` / `pair join`, lists devices, and revokes one', async () => {
    const dirA = dirs.make()
    const dirB = dirs.make()
    const a = await startDaemon(['--dir', dirA, '--name', 'laptop'])
    daemons.push(a)
    await runCli(['profile', 'set', '{"name":"Ada"}', '--dir', dirA])
    const invite = await runCli(['pair', 'invite', '--ttl', '5m', '--json', '--dir', dirA])
    assert.equal(invite.code, 0, invite.stderr)
    const { code } = JSON.parse(invite.stdout) as { code: string }
    assert.match(code, /^peak1[a-z2-7]+$/)
    const human = await runCli(['pair', 'invite', '--dir', dirA])
    assert.match(human.stdout, /peakdb pair join peak1/)
    assert.match(human.stdout, /█/, 'a QR code is printed')
    const join = await runCli(['pair', 'join', code, '--name', 'desktop', '--dir', dirB, '--json'])
    assert.equal(join.code, 0, join.stderr)
    assert.equal((JSON.parse(join.stdout) as { swarmId: string }).swarmId, (a.started.swarmId as string))
    const reuse = await runCli(['pair', 'join', code, '--dir', dirs.make()])
    assert.equal(reuse.code, 1)
    assert.match(reuse.stderr, /InviteUsedError/)
    const profile = JSON.parse((await runCli(['profile', '--json', '--dir', dirB])).stdout) as { name: string }
    assert.equal(profile.name, 'Ada', 'the joined device has the data')
    const b = await startDaemon(['--dir', dirB])
    daemons.push(b)
    await waitFor(async () => {
      const list = JSON.parse((await runCli(['devices', '--json', '--dir', dirA])).stdout) as Array<{ name: string, online: boolean }>
      return list.find(d => d.name === 'desktop')?.online === true
    }, { timeoutMs: 20_000, message: 'the desktop to be online for the laptop' })
    const listed = await runCli(['devices', '--dir', dirA])
    assert.match(listed.stdout, /laptop .*online .*\(this device\)/)
    assert.match(listed.stdout, /desktop .*online/)
    const revoke = await runCli(['devices', 'revoke', b.started.deviceId as string, '--dir', dirA])
    assert.equal(revoke.code, 0, revoke.stderr)
    assert.match(revoke.stdout, /^revoked 12D3KooW/)
    const after = JSON.parse((await runCli(['devices', '--json', '--dir', dirA])).stdout) as Array<{ name: string, revoked: boolean }>
    assert.equal(after.find(d => d.name === 'desktop')?.revoked, true)
  })

  it('searches by meaning and words, with and without a daemon, and changes what a collection embeds', async () => {
    const dir = dirs.make()
    await runCli(['init', '--dir', dir])
    await runCli(['put', 'notes', '[{"_id":"cat","title":"Our cat","body":"The cat sits on the mat"},{"_id":"tax","title":"Taxes","body":"File the tax return before April"},{"_id":"kettle","title":"Kettle","body":"Kettle serial ZQX-4417, year 2022","year":2022}]', '--dir', dir])
    const direct = await runCli(['search', 'notes', 'a kitten on a rug', '--json', '--dir', dir])
    assert.equal(direct.code, 0, direct.stderr)
    const hits = (JSON.parse(direct.stdout) as { hits: Array<{ id: string }>, pending: number })
    assert.equal(hits.hits[0]?.id, 'cat')
    assert.equal(hits.pending, 0)
    const human = await runCli(['search', 'notes', 'ZQX-4417', '--mode', 'text', '--dir', dir])
    assert.match(human.stdout, /^ 1\. \d\.\d{3} {2}kettle {2}Kettle \| Kettle serial ZQX-4417/)
    const filtered = JSON.parse((await runCli(['search', 'notes', 'kettle', '--where', '{"year":2022}', '--json', '--dir', dir])).stdout) as { hits: Array<{ id: string }> }
    assert.deepEqual(filtered.hits.map(h => h.id), ['kettle'])
    const bad = await runCli(['search', 'notes', 'x', '--mode', 'fuzzy', '--dir', dir])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /InvalidQueryError: "mode"/)
    const d = await startDaemon(['--dir', dir])
    daemons.push(d)
    const viaDaemon = JSON.parse((await runCli(['search', '--collection', 'notes', 'paying taxes', '--k', '1', '--json', '--dir', dir])).stdout) as { hits: Array<{ id: string }> }
    assert.deepEqual(viaDaemon.hits.map(h => h.id), ['tax'])
    const off = await runCli(['collection', 'notes', '--no-embed', '--json', '--dir', dir])
    assert.equal((JSON.parse(off.stdout) as { embed: unknown, pendingIndex: number }).embed, false)
    const on = JSON.parse((await runCli(['collection', 'notes', '--embed', 'title,body', '--json', '--dir', dir])).stdout) as { embed: unknown, pendingIndex: number }
    assert.deepEqual(on.embed, ['title', 'body'])
    assert.equal(on.pendingIndex, 0, 'the command waited for the re-indexing')
  })

  it('reports usage errors (exit 2) and bad input (exit 1) clearly', async () => {
    const dir = dirs.make()
    await runCli(['init', '--dir', dir])
    const unknown = await runCli(['put', 'notes', '{}', '--frobnicate', '--dir', dir])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown option '--frobnicate'/)
    const badJson = await runCli(['put', 'notes', '{oops', '--dir', dir])
    assert.equal(badJson.code, 1)
    assert.match(badJson.stderr, /<json> is not valid JSON/)
    const badWhere = await runCli(['find', 'notes', '--where', '{"a":{"like":1}}', '--dir', dir])
    assert.equal(badWhere.code, 1)
    assert.match(badWhere.stderr, /InvalidQueryError: "a": unknown operator "like"/)
    const missingArg = await runCli(['get', 'notes', '--dir', dir])
    assert.equal(missingArg.code, 2)
    const noInit = await runCli(['status', '--dir', join(dir, 'nope')])
    assert.equal(noInit.code, 1)
    assert.match(noInit.stderr, /run `peakdb init` first/)
    const envDir = await runCli(['status', '--json'], { env: { PEAKDB_DIR: dir } })
    assert.equal(envDir.code, 0, envDir.stderr)
  })

  it('refuses a --dir that is a file, or inside one, with DataDirError for every command', async () => {
    const file = join(dirs.make(), 'notes.txt')
    writeFileSync(file, 'not a data dir\n')
    // a well-formed invite to nowhere: the dir is checked before anything is dialed
    const code = encodeInvite({ inviterKey: new Uint8Array(32).fill(7), addrs: [new Uint8Array([4, 127, 0, 0, 1, 6, 0x9c, 0x40])], secret: inviteSecret(), expires: Math.floor(Date.now() / 1000) + 600 })
    for (const args of [['status'], ['init'], ['put', 'notes', '{"a":1}'], ['start', '--no-dht'], ['stop'], ['pair', 'join', code]]) {
      const r = await runCli([...args, '--dir', file, '--json'])
      assert.equal(r.code, 1, `${args[0] ?? ''}: ${r.stdout}${r.stderr}`)
      const { error } = JSON.parse(r.stderr.trim().split('\n').at(-1) ?? '') as { error: { name: string, message: string } }
      assert.equal(error.name, 'DataDirError', `${args[0] ?? ''}: ${error.message}`)
      assert.equal(error.message, `${file} is a file, not a directory: the data dir (--dir) must be a directory`)
    }
    const inside = await runCli(['init', '--dir', join(file, 'sub'), '--json'])
    assert.equal(inside.code, 1)
    assert.match(inside.stderr, /"name":"DataDirError".*lies inside a file, not a directory/)
    assert.equal(readFileSync(file, 'utf8'), 'not a data dir\n')
  })

  it('prints help for every command', async () => {
    const top = await runCli(['--help'])
    assert.equal(top.code, 0)
    for (const cmd of ['init', 'start', 'stop', 'status', 'peers', 'connect', 'sync', 'pair', 'devices', 'profile', 'passphrase', 'search', 'put', 'get', 'find', 'count', 'delete', 'collections', 'collection', 'verify', 'ui']) {
      assert.match(top.stdout, new RegExp(`\\n  ${cmd}\\b`), `top-level help lists ${cmd}`)
      const r = await runCli([cmd, '--help'])
      assert.equal(r.code, 0, `${cmd} --help`)
      assert.match(r.stdout, new RegExp(`Usage: peakdb ${cmd}`))
      for (const global of ['--dir <path>', '--json', '--passphrase-file <path>']) assert.ok(r.stdout.includes(global), `${cmd} --help shows ${global}:\n${r.stdout}`)
    }
  })

  it('says which rule a bad collection name or --ttl breaks, and what an empty array wrote', async () => {
    const dir = dirs.make()
    await runCli(['init', '--dir', dir])
    for (const name of ['', 'a'.repeat(300), '9lives']) {
      const r = await runCli(['put', name, '{"a":1}', '--dir', dir, '--json'])
      assert.equal(r.code, 1, r.stderr)
      const error = jsonError(r.stderr)
      assert.equal(error.name, 'InvalidCollectionNameError', error.message)
      assert.match(error.message, /^collection name ".*" .*is invalid: expected a letter, then up to 63 letters, digits, "_", "-" or "\."$/)
    }
    const long = jsonError((await runCli(['find', 'a'.repeat(300), '--dir', dir, '--json'])).stderr)
    assert.equal(long.name, 'InvalidCollectionNameError')
    assert.match(long.message, /\(300 characters\)/)
    for (const ttl of ['0', '500ms', '25h', 'soon']) {
      const r = await runCli(['pair', 'invite', '--ttl', ttl, '--dir', dir])
      assert.equal(r.code, 2, `--ttl ${ttl}: ${r.stderr}`)
      assert.match(r.stderr, /--ttl expected a duration such as 90s, 10m or 1h, at least 1s and at most 24h/)
      assert.doesNotMatch(r.stderr, />=|Too small|Too big/)
    }
    const empty = await runCli(['put', 'notes', '[]', '--dir', dir])
    assert.equal(empty.code, 0, empty.stderr)
    assert.equal(empty.stdout, '')
    assert.match(empty.stderr, /nothing to write: the array is empty/)
    const emptyJson = await runCli(['put', 'notes', '[]', '--dir', dir, '--json'])
    assert.deepEqual((JSON.parse(emptyJson.stdout) as { ids: string[] }).ids, [])
  })

  it('put - reads a JSON array larger than a pipe buffer from stdin', async () => {
    const dir = dirs.make()
    await runCli(['init', '--dir', dir])
    // 400 KiB: a synchronous read of a non-blocking stdin pipe failed with EAGAIN past 64 KiB
    const r = await runCli(['put', 'notes', '-', '--dir', dir], { input: MANY_NOTES })
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim().split('\n').length, 400)
  })

  it('verify counts the problems in a damaged database, shows the first few and says what to do', async () => {
    const dir = dirs.make()
    await runCli(['init', '--dir', dir])
    assert.equal((await runCli(['put', 'notes', '-', '--dir', dir], { input: MANY_NOTES })).code, 0)
    // the documents' pages are damaged; the log's stay readable
    damageTablePages(join(dir, 'peakdb.sqlite'), 'docs', 5, { cells: true })
    const r = await runCli(['verify', '--dir', dir])
    assert.equal(r.code, 1, r.stdout + r.stderr)
    const lines = r.stdout.trim().split('\n')
    const head = /^FAILED: (\d+) problem\(s\) \((\d+) in the database file\) in \d+ entries$/.exec(lines[0] ?? '')
    assert.ok(head !== null, r.stdout)
    const total = Number(head[1])
    assert.equal(Number(head[2]), total)
    assert.ok(total > 5, r.stdout)
    assert.equal(lines.filter(l => l.startsWith('  database: ')).length, 5)
    assert.ok(lines.includes(`  ... ${total - 5} more database problem(s) (--json lists them all)`), r.stdout)
    assert.match(lines.at(-1) ?? '', new RegExp(`move ${join(dir, 'peakdb.sqlite').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} away .*continues under a new DeviceId and resyncs`))
    const json = JSON.parse((await runCli(['verify', '--dir', dir, '--json'])).stdout) as { ok: boolean, integrity: string[], advice: string }
    assert.equal(json.ok, false)
    assert.equal(json.integrity.length, total)
    assert.ok(json.integrity.every(l => !l.includes('\n') && !l.startsWith('***')), 'one problem per line')
    assert.match(json.advice, /new DeviceId/)
  })

  it('start refuses a database with damaged pages after an unclean shutdown, with advice', async () => {
    const dir = dirs.make()
    const d = await startDaemon(['--dir', dir, '--no-dht'])
    daemons.push(d)
    assert.equal((await runCli(['put', 'notes', '-', '--dir', dir], { input: MANY_NOTES })).code, 0)
    await d.stop('SIGKILL')
    damageTablePages(join(dir, 'peakdb.sqlite'), 'docs', 5, { cells: true })
    const r = await runCli(['start', '--dir', dir, '--no-dht', '--json'], { timeoutMs: 30_000 })
    assert.equal(r.code, 1, r.stdout + r.stderr)
    const error = jsonError(r.stderr)
    assert.equal(error.name, 'StorageCorruptError')
    assert.ok(error.message.includes(join(dir, 'peakdb.sqlite')), error.message)
    assert.match(error.message, /the previous shutdown was not clean, and SQLite's quick check found \d+ problem\(s\)/)
    assert.match(error.message, /move it away .*start again: this device then continues under a new DeviceId and resyncs from your other devices/)
  })

  it('a daemon killed while a command waits for its answer gives DaemonUnreachableError, exit 1', async () => {
    const dir = dirs.make()
    const mute = spawn(process.execPath, ['--import', 'tsx', fixture('mute-daemon.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(mute)
    let out = ''
    mute.stdout.on('data', (d: Buffer) => { out += d.toString() })
    await waitFor(() => out.includes('listening'), { timeoutMs: 20_000, message: 'the stand-in daemon to listen' })
    const put = runCli(['put', 'notes', '{"a":1}', '--dir', dir, '--json'])
    await waitFor(() => out.includes('request /api/v1/put'), { timeoutMs: 20_000, message: 'the put to reach the stand-in daemon' })
    mute.kill('SIGKILL')
    const r = await put
    assert.equal(r.code, 1, r.stdout + r.stderr)
    const error = jsonError(r.stderr)
    assert.equal(error.name, 'DaemonUnreachableError')
    assert.match(error.message, /did not answer/)
  })

  it('a command left with nothing to wait for exits 1 with a typed error, never 13 in silence', async () => {
    const dir = dirs.make()
    // a live pid and an address: the command takes the daemon path, and its request never settles
    writeFileSync(join(dir, 'api.json'), JSON.stringify({ url: 'http://127.0.0.1:9', token: 'test', pid: process.pid, deviceId: 'none' }))
    const r = await withTimeout(runCli(['put', 'notes', '{"a":1}', '--dir', dir, '--json'], { env: { NODE_OPTIONS: `--import=${fixture('request-never-settles.mjs')}` } }), 30_000, 'the command to exit')
    assert.equal(r.code, 1, `exit ${String(r.code)}: ${r.stdout}${r.stderr}`)
    const error = jsonError(r.stderr)
    assert.equal(error.name, 'DaemonUnreachableError')
    assert.match(error.message, /never answered put: the connection was lost; whether put took effect is unknown/)
  })
})
