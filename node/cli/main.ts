/**
 * The `peakdb` command line. Every command takes `--dir` (or `$PEAKDB_DIR`) and `--json`.
 * Commands run through the daemon's local API when `peakdb start` runs on that data dir, and on
 * the data dir directly otherwise. Only commander and small modules load up front: the node,
 * the daemon and the progress bars are imported by the commands that use them.
 */
import '../polyfills.js'
import { writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import type { MultiBar, SingleBar } from 'cli-progress'
import { defaultDataDir, dataDirPaths } from '../data-dir.js'
import { packageVersion } from '../package-info.js'
import { CommandUnfinishedError, InvalidOptionError } from '../errors.js'
import { EXIT, emit, note, reportError, table } from './output.js'
import { invoke, openTarget, passphrase } from './target.js'
import type { WatchLine } from '../daemon/rpc.js'
import { readStdin } from './input.js'
import { schemaText } from './schema-output.js'
import type { SchemaDescription } from '../../storage/introspect.js'
import { addMigrateCommand } from './migrate-command.js'
import { addMemoryCommand } from './memory-command.js'
import type { DaemonOptions } from './daemon-command.js'
import type { FolderIndexResult, FolderProgress } from '../files.js'
import type { PlacementReport } from '../placement/placement.js'
import { DaemonUnreachableError, callApi, callsInFlight, readApiInfo } from '../daemon/api-client.js'

interface GlobalOptions { dir?: string, json?: boolean, passphraseFile?: string }

interface Globals { dir: string, json: boolean, passphraseFile?: string }

function globals (cmd: Command): Globals {
  const o = cmd.optsWithGlobals<GlobalOptions>()
  return { dir: o.dir ?? defaultDataDir(), json: o.json === true, ...(o.passphraseFile !== undefined ? { passphraseFile: o.passphraseFile } : {}) }
}

/** Runs a local API method for the command's data dir (daemon or direct). */
async function call (g: Globals, method: string, params: unknown): Promise<unknown> {
  return await invoke(g.dir, method, params, g.passphraseFile !== undefined ? { passphraseFile: g.passphraseFile } : {})
}

/**
 * A duration option: `90s`, `10m`, `1h` (or milliseconds), between `min` and `max` ms. The
 * message names the option and what it accepts, in the units a person types.
 */
function durationOption (name: string, min: number, max: number) {
  const human = (ms: number): string => ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
  return (value: string): number => {
    const m = /^(\d+)(ms|s|m|h|d)?$/.exec(value.trim())
    const ms = m === null ? Number.NaN : Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd' | undefined ?? 'ms']
    if (!(ms >= min && ms <= max)) throw new InvalidArgumentError(`${name} expected a duration such as 90s, 10m or 1h, at least ${human(min)} and at most ${human(max)}`)
    return ms
  }
}

/** A size option: `500MB`, `2GB`, `64KB`, a byte count, or `none` (null). */
function sizeOption (name: string) {
  return (value: string): number | null => {
    if (value === 'none') return null
    const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)?$/i.exec(value.trim())
    const bytes = m === null ? Number.NaN : Math.round(Number(m[1]) * 1024 ** ['B', 'KB', 'MB', 'GB', 'TB'].indexOf((m[2] ?? 'B').toUpperCase()))
    if (!(Number.isSafeInteger(bytes) && bytes >= 1)) throw new InvalidArgumentError(`${name} expected a size such as 500MB, 2GB or 65536 (bytes), or none`)
    return bytes
  }
}

/** The progress-bar library, loaded only when a bar is shown (on a terminal, without --json). */
async function progressBars (g: Globals): Promise<typeof import('cli-progress') | undefined> {
  if (g.json || process.stderr.isTTY !== true) return undefined
  return (await import('cli-progress')).default
}

/** The query of `find` and `watch` from their options. */
async function queryOption (opts: { where?: string, orderBy?: string[], limit?: number, offset?: number }): Promise<Record<string, unknown>> {
  return {
    ...(opts.where !== undefined ? { where: await jsonArg('--where', opts.where) } : {}),
    ...(opts.orderBy !== undefined ? { orderBy: opts.orderBy } : {}),
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    ...(opts.offset !== undefined ? { offset: opts.offset } : {})
  }
}

/** Parses a JSON argument, or reads it from stdin when it is `-`. */
async function jsonArg (what: string, text: string): Promise<unknown> {
  const source = text === '-' ? await readStdin() : text
  try {
    return JSON.parse(source)
  } catch (err) {
    throw new InvalidOptionError(`${what} is not valid JSON: ${(err as Error).message}`)
  }
}

function intOption (name: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} expects a non-negative integer`)
    return n
  }
}

/** `field`, `-field` or `field:desc` -> the query form (`-field` for descending). */
function orderByOption (value: string): string[] {
  return value.split(',').map(s => s.trim()).filter(s => s.length > 0).map(s => {
    if (s.endsWith(':desc')) return '-' + s.slice(0, -5)
    if (s.endsWith(':asc')) return s.slice(0, -4)
    return s
  })
}

/** One line to show for a document: its first text fields, shortened. */
function preview (doc: Record<string, unknown>): string {
  const text = Object.entries(doc).filter(([k, v]) => k !== '_id' && typeof v === 'string').map(([, v]) => v as string).join(' | ')
  return text.length > 100 ? text.slice(0, 97) + '...' : text
}

/** Sets a collection's embedding and shows the re-indexing it starts (a bar on a terminal). */
/** One `watch` event as printed: NDJSON with --json, else a line a person reads. */
function printWatchLine (g: Globals, line: WatchLine): void {
  if (g.json) {
    process.stdout.write(JSON.stringify(line) + '\n')
  } else if (line.type === 'initial') {
    process.stdout.write(`${line.docs.length} document(s) now; watching for changes (Ctrl+C to stop)\n`)
    for (const d of line.docs) process.stdout.write(JSON.stringify(d) + '\n')
  } else {
    process.stdout.write(`${line.type.padEnd(7)} ${line.id}${line.doc !== null ? `  ${JSON.stringify(line.doc)}` : ''}${line.origin === 'remote' ? '  (from another device)' : ''}\n`)
  }
}

/** `peakdb watch`: through the daemon's stream, or a live query of this process, until Ctrl+C. */
async function watchCommand (g: Globals, collection: string, query: Record<string, unknown>): Promise<void> {
  const stop = new AbortController()
  const onSignal = (): void => stop.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const target = await openTarget(g.dir, g.passphraseFile !== undefined ? { passphraseFile: g.passphraseFile } : {})
    if ('api' in target) {
      const { streamApi } = await import('../daemon/api-client.js')
      await streamApi(target.api, 'watch', { collection, query }, line => printWatchLine(g, line as WatchLine), stop.signal)
      return
    }
    try {
      const { startWatch } = await import('../daemon/rpc.js')
      const unwatch = startWatch({ node: target.node }, { collection, query }, line => printWatchLine(g, line))
      // nothing else keeps this process up while it waits for Ctrl+C
      const alive = setInterval(() => {}, 2 ** 30)
      await new Promise<void>(resolve => stop.signal.addEventListener('abort', () => resolve(), { once: true }))
      clearInterval(alive)
      unwatch()
    } finally {
      await target.node.close()
    }
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** Moves a collection to another provider, with a progress bar of the log entries read. */
async function moveWithProgress (g: Globals, collection: string, provider: string): Promise<void> {
  const cliProgress = await progressBars(g)
  let bar: { update: (done: number, total: number) => void, stop: () => void } = { update: () => {}, stop: () => {} }
  if (cliProgress !== undefined) {
    let b: InstanceType<typeof cliProgress.SingleBar> | undefined
    bar = {
      update: (done, total) => {
        if (b === undefined) {
          b = new cliProgress.SingleBar({ stream: process.stderr, format: `moving ${collection} to ${provider} [{bar}] {value}/{total} log entries {eta_formatted}`, hideCursor: true }, cliProgress.Presets.shades_classic)
          b.start(total, 0)
        }
        b.setTotal(total)
        b.update(done)
      },
      stop: () => b?.stop()
    }
  }
  const target = await openTarget(g.dir, g.passphraseFile !== undefined ? { passphraseFile: g.passphraseFile } : {})
  try {
    if ('api' in target) {
      await call(g, 'moveCollection', { collection, provider })
      for (;;) {
        const s = await call(g, 'moveStatus', { collection }) as { done: number, total: number, finished: boolean, error?: { name: string, message: string } }
        if (s.total > 0) bar.update(s.done, s.total)
        if (s.error !== undefined) throw Object.assign(new Error(s.error.message), { name: s.error.name })
        if (s.finished) return
        await new Promise(resolve => setTimeout(resolve, 200))
      }
    }
    // no daemon: this process does the work
    try {
      await target.node.moveCollection(collection, provider, { onProgress: (done, total) => bar.update(done, total) })
    } finally {
      await target.node.close()
    }
  } finally {
    bar.stop()
  }
}

async function setEmbedWithProgress (g: Globals, collection: string, embed: 'auto' | false | string[], wait: boolean): Promise<void> {
  const cliProgress = await progressBars(g)
  const bar = (total: number): { update: (left: number) => void, stop: () => void } => {
    if (cliProgress === undefined || total === 0) return { update: () => {}, stop: () => {} }
    const b = new cliProgress.SingleBar({ stream: process.stderr, format: `indexing ${collection} [{bar}] {value}/{total} documents {eta_formatted}`, hideCursor: true }, cliProgress.Presets.shades_classic)
    b.start(total, 0)
    return { update: left => b.update(total - left), stop: () => b.stop() }
  }
  const target = await openTarget(g.dir, g.passphraseFile !== undefined ? { passphraseFile: g.passphraseFile } : {})
  if ('api' in target) {
    const r = await call(g, 'setEmbed', { collection, embed }) as { pending: number }
    if (!wait) return
    const progress = bar(r.pending)
    try {
      for (;;) {
        const s = await call(g, 'indexStatus', { collection }) as { pending: number }
        progress.update(s.pending)
        if (s.pending === 0) return
        await new Promise(resolve => setTimeout(resolve, 250))
      }
    } finally {
      progress.stop()
    }
  }
  // no daemon: this process does the work
  const node = target.node
  try {
    const c = node.collection(collection)
    await c.setEmbed(embed)
    if (!wait) return
    const progress = bar(await c.pendingIndex())
    node.on('index:progress', p => { if (p.collection === collection) progress.update(p.pending) })
    try {
      await c.indexed()
    } finally {
      progress.stop()
    }
  } finally {
    await node.close()
  }
}

/** Progress bars of a folder index: files checked, then documents embedded (on a terminal). */
async function folderBars (g: Globals): Promise<{ update: (p: FolderProgress) => void, stop: () => void }> {
  const cliProgress = await progressBars(g)
  if (cliProgress === undefined) return { update: () => {}, stop: () => {} }
  const multi: MultiBar = new cliProgress.MultiBar({ stream: process.stderr, format: '{what} [{bar}] {value}/{total} {unit}', hideCursor: true, clearOnComplete: false }, cliProgress.Presets.shades_classic)
  let files: SingleBar | undefined
  let embed: SingleBar | undefined
  let embedTotal = 0
  let stopped = false
  return {
    update: p => {
      if (stopped) return
      files ??= multi.create(Math.max(1, p.found), 0, { what: 'files    ', unit: 'checked' })
      files.setTotal(Math.max(1, p.found))
      files.update(p.checked)
      if (p.phase === 'embed') {
        embedTotal = Math.max(embedTotal, p.pendingIndex)
        embed ??= multi.create(Math.max(1, embedTotal), 0, { what: 'embedding', unit: 'documents' })
        embed.setTotal(Math.max(1, embedTotal))
        embed.update(embedTotal - p.pendingIndex)
      }
    },
    stop: () => {
      if (stopped) return
      stopped = true
      multi.stop()
    }
  }
}

/** What `verify` returns (node/log.ts VerifyReport, as JSON). */
interface VerifyOutput { ok: boolean, entries: number, authors: number, problems: Array<{ pos: number, error: string, message: string }>, integrity: string[], stateMatches?: boolean }

/** Problems of each kind listed in full by `verify` before "... N more" (`--json` has them all). */
const VERIFY_SHOWN = 5

/** What to do when `verify` fails: the other devices hold the data; a device without its database resyncs. */
function verifyAdvice (database: string): string {
  return `To repair: stop the daemon if one runs (peakdb stop), move ${database} away (with its -wal and -shm files) and start again: ` +
    'this device then continues under a new DeviceId and resyncs everything from your other devices. ' +
    'If no other device holds the data, keep the file and restore a backup.'
}

/** The human form of a verify report: counts, the first problems of each kind, and what to do. */
function verifyLines (r: VerifyOutput, advice: string): string[] {
  if (r.ok) {
    return [
      `ok: ${r.entries} entries from ${r.authors} device(s) verified; the database file is intact`,
      ...(r.stateMatches === undefined ? [] : ['documents match a replay of the log: yes'])
    ]
  }
  // SQLite's integrity check stops listing at 100 problems
  const dbCount = `${r.integrity.length}${r.integrity.length >= 100 ? ' or more' : ''}`
  const parts = [
    ...(r.problems.length > 0 ? [`${r.problems.length} in the log`] : []),
    ...(r.integrity.length > 0 ? [`${dbCount} in the database file`] : [])
  ]
  const total = r.problems.length + r.integrity.length
  const section = <T>(items: readonly T[], line: (item: T) => string, what: string): string[] => [
    ...items.slice(0, VERIFY_SHOWN).map(line),
    ...(items.length > VERIFY_SHOWN ? [`  ... ${items.length - VERIFY_SHOWN} more ${what} (--json lists them all)`] : [])
  ]
  return [
    `FAILED: ${total}${r.integrity.length >= 100 ? ' or more' : ''} problem(s) (${parts.join(', ')}) in ${r.entries} entries`,
    ...section(r.problems, p => `  log${p.pos >= 0 ? ` at ${p.pos}` : ''}: ${p.error}: ${p.message}`, 'log problem(s)'),
    ...section(r.integrity, i => `  database: ${i.replace(/\s+/g, ' ').trim()}`, 'database problem(s)'),
    ...(r.stateMatches === undefined ? [] : [`documents match a replay of the log: ${r.stateMatches ? 'yes' : 'NO'}`]),
    advice
  ]
}

/**
 * Opens the console's login link in the desktop's browser, when there is a desktop; true when a
 * browser was started. The browser is given a file (mode 0600, in the data dir) that forwards to
 * the link, never the link itself: a program's arguments are visible to every local user.
 */
async function openInBrowser (dir: string, url: string): Promise<boolean> {
  const command = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? undefined : (process.env.DISPLAY ?? process.env.WAYLAND_DISPLAY ?? '') !== '' ? 'xdg-open' : undefined
  if (command === undefined) return false
  const [{ spawn }, { rmSync, writeFileSync }, { join }] = await Promise.all([import('node:child_process'), import('node:fs'), import('node:path')])
  const file = join(dir, 'ui-login.html')
  const href = url.replace(/&/g, '&amp;').replace(/"/g, '&quot;')
  rmSync(file, { force: true })
  writeFileSync(file, `<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${href}"><title>PeakDB console</title><p><a href="${href}">Open the PeakDB console</a></p>\n`, { mode: 0o600, flag: 'wx' })
  return await new Promise<boolean>(resolve => {
    const child = spawn(command, [file], { detached: true, stdio: 'ignore' })
    child.once('error', () => resolve(false))
    child.once('spawn', () => {
      child.unref()
      resolve(true)
    })
  })
}

/** What each reachability of `status` means, for people. */
const REACHABILITY: Record<string, string> = {
  public: 'public (devices anywhere can dial this one)',
  relayed: 'through a relay (this device is behind a NAT or firewall)',
  private: 'private networks only (LAN; add --relays to be reachable from elsewhere)',
  local: 'this machine only'
}

function docLines (docs: unknown[]): string {
  return docs.map(d => JSON.stringify(d)).join('\n')
}

/** Builds the CLI program (exported for tests of its help text). */
export function buildProgram (): Command {
  const program = new Command('peakdb')
  program
    .description('PeakDB: the local-first, peer-to-peer, end-to-end encrypted data layer of PeakOS')
    .version(packageVersion(), '-v, --version')
    .option('--dir <path>', 'data dir (default: $PEAKDB_DIR, else ~/.peakdb)')
    .option('--json', 'machine-readable JSON output')
    .option('--passphrase-file <path>', 'file holding the keystore passphrase (or set $PEAKDB_PASSPHRASE)')
    .showHelpAfterError('(run with --help for usage)')
    // every subcommand's --help lists --dir, --json and --passphrase-file too
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({ writeErr: s => process.stderr.write(s) })
    .addHelpText('after', `
The CLI talks to the daemon (\`peakdb start\`) of the data dir through its local API when one
runs, and opens the data dir directly otherwise; commands behave the same either way.

Examples:
  peakdb init
  peakdb start
  peakdb put notes '{"title":"hi","tags":["a"],"year":2024}'
  peakdb find notes --where '{"tags":"a","year":{"gte":2020}}' --order-by title --limit 20
  peakdb get notes <id>
  peakdb status --json`)

  program.command('init')
    .description('create this device\'s identity and print the 24-word recovery phrase (once)')
    .option('--recover <words>', 'restore the identity from a recovery phrase instead ("-" reads it from stdin)')
    .option('--name <name>', 'name of this device in the swarm (default: host name)')
    .option('--storage <where>', 'where the log and documents live: sqlite (default, a file in the data dir) or a postgres://user@host/db connection string (default: "storage" in <dir>/config.json)')
    .action(async (opts: { recover?: string, name?: string, storage?: string }, cmd: Command) => {
      const { runInit } = await import('./init-command.js')
      await runInit({ ...globals(cmd), ...opts })
    })

  program.command('start')
    .description('run the node in the foreground until SIGINT/SIGTERM (creates an identity on first run)')
    .option('--listen <multiaddr...>', 'addresses to listen on (default: /ip4/127.0.0.1/tcp/0; e.g. /ip4/0.0.0.0/tcp/4011 for the LAN)')
    .option('--bootstrap <multiaddr...>', 'devices to connect to, as /ip4/<ip>/tcp/<port>/p2p/<DeviceId>')
    .option('--relays <multiaddr...>', 'relay nodes of the swarm to keep a reservation on, so devices on other networks reach this one (as /ip4/<ip>/tcp/<port>/p2p/<DeviceId>)')
    .option('--relay', 'serve as the swarm\'s relay (a PeakCloud node on a reachable machine): relays for verified members only')
    .option('--announce <multiaddr...>', 'public addresses to announce beside the listen addresses, e.g. /ip4/203.0.113.7/tcp/4011 on a relay node')
    .option('--upnp', 'ask the router to forward the listening port (UPnP), so devices elsewhere dial this one directly (default with --relays)')
    .option('--no-upnp', 'do not ask the router to forward the listening port')
    .option('--mdns', 'find devices on the LAN with mDNS')
    .option('--no-mdns', 'do not use mDNS (default)')
    .option('--dht', 'find devices through the DHT rendezvous (default)')
    .option('--no-dht', 'do not use the DHT')
    .option('--confirmations <n>', 'other devices that must hold a write to confirm it (default 1)', intOption('--confirmations'))
    .option('--config <path>', 'configuration file (default: <dir>/config.json when present)')
    .option('--api-port <port>', 'port of the local API on 127.0.0.1 (default: any free port)', intOption('--api-port'))
    .option('--name <name>', 'device name, when a new identity is created')
    .action(async (opts: Omit<DaemonOptions, 'dir' | 'json'>, cmd: Command) => {
      const { runDaemon } = await import('./daemon-command.js')
      await runDaemon({ ...globals(cmd), ...opts })
    })

  const pair = program.command('pair').description('pair a new device with an invite instead of the recovery phrase')
  pair.command('invite')
    .description('create a short-lived, single-use invite for a new device (needs a running daemon)')
    .option('--ttl <duration>', 'how long the invite works: 90s, 10m, 1h (default 10m; 1s to 24h)', durationOption('--ttl', 1000, 86_400_000))
    .action(async (opts: { ttl?: number }, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'invite', opts.ttl !== undefined ? { ttl: opts.ttl } : {}) as { code: string, qr: string, expires: string, inviter: string, addrs: string[] }
      emit(g.json, { code: r.code, expires: r.expires, inviter: r.inviter, addrs: r.addrs }, () => [
        `Invite for a new device (single use, valid until ${r.expires}):`,
        '',
        `  ${r.code}`,
        '',
        r.qr,
        'On the new device, with a fresh data dir:',
        `  peakdb pair join ${r.code}`
      ].join('\n'))
    })
  pair.command('join')
    .description('turn a fresh data dir into a new device of the inviter\'s swarm, and sync it')
    .argument('<code>', 'the invite code (or - to read it from stdin)')
    .option('--name <name>', 'name of this device (default: host name)')
    .option('--listen <multiaddr...>', 'addresses to listen on while joining (default /ip4/127.0.0.1/tcp/0)')
    .action(async (code: string, opts: { name?: string, listen?: string[] }, cmd: Command) => {
      const g = globals(cmd)
      const text = code === '-' ? (await readStdin()).trim() : code
      const pass = passphrase(g.passphraseFile)
      const { PeakNode } = await import('../peak-node.js')
      const node = await PeakNode.join({
        dir: g.dir,
        code: text,
        network: { listen: opts.listen ?? ['/ip4/127.0.0.1/tcp/0'], dht: false },
        // the daemon indexes what arrived; a command that indexed would wait for its batch to close
        backgroundIndexing: false,
        lock: { kind: 'command' },
        ...(opts.name !== undefined ? { deviceName: opts.name } : {}),
        ...(pass !== undefined ? { passphrase: pass } : {})
      })
      try {
        const s = await node.status()
        const out = { deviceId: node.deviceId, swarmId: node.swarmId, deviceName: node.deviceName, dir: node.dir, entries: s.entries }
        emit(g.json, out, () => [
          `Joined swarm ${node.swarmId} as ${node.deviceName} (${node.deviceId}); ${s.entries} entries synced.`,
          `Run \`peakdb start --dir ${node.dir}\` to keep this device in sync.`
        ].join('\n'))
      } finally {
        await node.close()
      }
    })

  const devices = program.command('devices')
    .description('list the swarm\'s devices (name, DeviceId, last seen, online)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const list = await call(g, 'devices', {}) as Array<{ device: string, name: string, self: boolean, online: boolean, revoked: boolean, lastSeen?: string }>
      emit(g.json, list, () => list.map(d => `${d.self ? '*' : ' '} ${d.name.padEnd(16)} ${d.device}  ${d.revoked ? 'revoked' : d.online ? 'online' : 'offline'}  ${d.self ? '(this device)' : d.lastSeen !== undefined ? `last seen ${d.lastSeen}` : 'never seen here'}`).join('\n'))
    })
  devices.command('revoke')
    .description('remove a device: it is disconnected, its later writes change nothing, and new data is sealed under a key it does not have')
    .argument('<deviceId>', 'the device to remove')
    .action(async (device: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'revoke', { device }) as { device: string, epoch: number, keptUpTo: number }
      emit(g.json, r, () => `revoked ${r.device} (its entries up to seq ${r.keptUpTo} stay valid; new data-key epoch ${r.epoch})`)
    })

  program.command('placement')
    .description('which of your devices the plan gives each replicated collection (set with `peakdb collection <name> --replicas n`), bytes, moves pending, and why')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'placement', {}) as PlacementReport
      const names = new Map(r.devices.map(d => [d.device, d.name]))
      const who = (d: string): string => `${names.get(d) ?? '?'} (${d.slice(0, 12)}…)`
      const mib = (b: number): string => `${(b / 1_048_576).toFixed(b < 10_485_760 ? 2 : 0)} MiB`
      emit(g.json, r, () => [
        ...r.collections.map(c => [
          `${c.name}: ${c.replicas === null ? 'every device' : `${c.replicas} replica(s)`}${c.pin.length > 0 ? `, pinned to ${c.pin.map(who).join(', ')}` : ''}, ${mib(c.bytes)}`,
          ...c.holders.map(h => `  ${who(h)}: ${mib(c.bytesByDevice[h] ?? 0)}`),
          `  pending: ${c.pending} shard cop${c.pending === 1 ? 'y' : 'ies'} to move${c.short > 0 ? `; ${c.short} shard(s) short of replicas (too few devices or too little room)` : ''}`
        ].join('\n')),
        r.collections.length === 0 ? 'no replicated collections yet' : '',
        'devices: ' + r.devices.map(d => `${who(d.device)} budget ${mib(d.budgetBytes)}${d.placed ? '' : ` (not placed: ${d.metrics === 'none' ? 'no metrics published yet' : d.metrics === 'expired' ? 'away: its metrics expired' : 'its metrics were not written by itself'})`}`).join('; '),
        r.enacted ? '' : 'planned only: this release does not move data yet, every device keeps every body'
      ].filter(l => l !== '').join('\n'))
    })

  const profile = program.command('profile')
    .description('show the user\'s profile and preferences (the same on every device)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const p = await call(g, 'profileGet', {})
      emit(g.json, p, () => JSON.stringify(p, null, 2))
    })
  profile.command('set')
    .description('set profile fields, keeping the others, e.g. \'{"name":"Ada","preferences":{"theme":"dark"}}\'')
    .argument('<json>', 'fields as a JSON object (or - for stdin)')
    .action(async (json: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const p = await call(g, 'profileSet', { fields: await jsonArg('<json>', json) })
      emit(g.json, p, () => JSON.stringify(p, null, 2))
    })

  const pass = program.command('passphrase').description('protect the keystore with a passphrase, change it, or remove it')
  pass.command('set')
    .description('set or change the passphrase: the new one comes from $PEAKDB_NEW_PASSPHRASE or the first line of stdin')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const next = process.env.PEAKDB_NEW_PASSPHRASE ?? (await readStdin()).split(/\r?\n/)[0] ?? ''
      const r = await call(g, 'setPassphrase', { passphrase: next })
      emit(g.json, r, () => 'keystore protected by the new passphrase (opening it now needs $PEAKDB_PASSPHRASE or --passphrase-file)')
    })
  pass.command('remove')
    .description('store the keystore without a passphrase (still readable by this user only)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'setPassphrase', { passphrase: null })
      emit(g.json, r, () => 'passphrase removed')
    })

  program.command('peers')
    .description('list connected devices and devices seen before (needs a running daemon for live data)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'peers', {}) as { online: boolean, connected: Array<{ device: string, name?: string, verified: boolean, addrs: string[], lastSync?: number, syncing: boolean, relayed: boolean, relay?: string, holePunch?: { result: string } }>, known: Array<{ device: string, name: string, addrs: string[], seen: number }> }
      emit(g.json, r, () => {
        if (!r.online) return `not on the network (no daemon runs on ${g.dir}); devices seen before: ${r.known.length}`
        const lines = r.connected.map(p => `${p.device}  ${p.name ?? '?'}  ${p.verified ? 'member' : 'unverified'}  ${p.relayed ? `relayed via ${(p.relay ?? '?').slice(-8)}` : 'direct'}${p.holePunch !== undefined ? ` (hole punch ${p.holePunch.result === 'direct' ? 'succeeded' : 'failed'})` : ''}  ${p.syncing ? 'syncing' : p.lastSync !== undefined ? `synced ${new Date(p.lastSync).toISOString()}` : ''}  ${p.addrs.join(' ')}`)
        return lines.length === 0 ? '(no connected devices)' : lines.join('\n')
      })
    })

  program.command('connect')
    .description('connect the running daemon to a device by multiaddr (/ip4/<ip>/tcp/<port>/p2p/<DeviceId>)')
    .argument('<multiaddr>', 'address of the device')
    .action(async (addr: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'connect', { addr }) as { device: string, name: string }
      emit(g.json, r, () => `connected to ${r.name} (${r.device})`)
    })

  program.command('sync')
    .description('pull from every connected device now and wait until done (needs a running daemon)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'sync', {}) as { peers: Array<{ device: string, ok: boolean, error?: string }>, status: { entries: number } }
      emit(g.json, r, () => r.peers.length === 0 ? 'no connected devices to sync with' : [...r.peers.map(p => `${p.device}: ${p.ok ? 'in sync' : `failed: ${p.error ?? '?'}`}`), `${r.status.entries} entries held`].join('\n'))
      if (r.peers.some(p => !p.ok)) process.exitCode = EXIT.error
    })

  program.command('stop')
    .description('ask the daemon of the data dir to stop')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const info = readApiInfo(dataDirPaths(g.dir).api)
      if (info === undefined) {
        emit(g.json, { stopped: false, running: false }, () => `no daemon is running on ${g.dir}`)
        return
      }
      await callApi(info, 'shutdown', {})
      emit(g.json, { stopped: true, pid: info.pid }, () => `asked daemon ${info.pid} to stop`)
    })

  program.command('ui')
    .description('print a one-time login link to the web console of the running daemon, and open it where a desktop is present')
    .option('--no-open', 'only print the link, do not open a browser')
    .action(async (opts: { open: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const info = readApiInfo(dataDirPaths(g.dir).api)
      if (info === undefined) throw new InvalidOptionError(`no daemon is running on ${g.dir}: the web console is served by the daemon, start it with \`peakdb start\``)
      const link = await callApi(info, 'uiLogin', {}) as { url: string, expires: string }
      const opened = opts.open && !(g.json ?? false) && await openInBrowser(dataDirPaths(g.dir).dir, link.url)
      emit(g.json, link, () => [
        `Web console of ${info.deviceId}: open this link (it works once, for 2 minutes):`,
        `  ${link.url}`,
        ...(opened ? ['(opening it in your browser)'] : [])
      ].join('\n'))
    })

  program.command('status')
    .description('show this device, its swarm, the log and collections (and the daemon, if running)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const s = await call(g, 'status', {}) as Record<string, unknown> & {
        collections: Array<{ name: string, count: number }>
        versionVector: Record<string, number>
        pendingEntries: number
        retiredDevices?: Array<{ device: string, at: string }>
        revoked?: { at: string, by: string, after: number }
        network?: { multiaddrs: string[], reachability: string, peers: Array<{ device: string, name?: string, verified: boolean, syncing: boolean, relayed: boolean, holePunch?: { result: string } }>, syncing: Array<{ peer: string, received: number, total: number }> }
      }
      emit(g.json, s, () => {
        const rows: Array<[string, unknown]> = [
          ['DeviceId', s.deviceId],
          ['SwarmId', s.swarmId],
          ['Device name', s.deviceName],
          ['Data dir', s.dir],
          ['Daemon', s.running === true ? `running (pid ${String(s.pid)}, API ${String(s.api)})` : 'not running'],
          ['Entries', s.entries],
          ['Version vector', Object.entries(s.versionVector).map(([a, n]) => `${a.slice(-8)}:${n}`).join(' ')],
          ['Collections', s.collections.length === 0 ? '(none)' : s.collections.map(c => `${c.name} (${c.count})`).join(', ')]
        ]
        if (s.revoked !== undefined) {
          rows.splice(3, 0, ['REVOKED', `by ${s.revoked.by === 'root' ? 'the root key' : s.revoked.by} at ${s.revoked.at}: this device no longer writes or syncs (it keeps what it had); pair this machine again with a fresh data dir`])
        }
        if (s.pendingEntries > 0) rows.push(['Waiting for keys', `${s.pendingEntries} entries`])
        for (const r of s.retiredDevices ?? []) rows.push(['Previous DeviceId', `${r.device} (retired ${r.at}: the database was lost, so this device continues under a new DeviceId)`])
        if (s.network !== undefined) {
          rows.push(['Listening', s.network.multiaddrs.join(' ')])
          rows.push(['Reachable', REACHABILITY[s.network.reachability] ?? s.network.reachability])
          rows.push(['Peers', s.network.peers.length === 0 ? '(none)' : s.network.peers.map(p => `${p.name ?? '?'} (${p.device.slice(-8)}${p.verified ? '' : ', unverified'}${p.relayed ? ', relayed' : ''}${p.holePunch === undefined ? '' : p.holePunch.result === 'direct' ? ', hole punched' : ', hole punch failed'}${p.syncing ? ', syncing' : ''})`).join(', ')])
          rows.push(['Sync', s.network.syncing.length === 0 ? 'idle' : s.network.syncing.map(x => `${x.peer.slice(-8)} ${x.received}/${x.total}`).join(', ')])
        }
        return table(rows)
      })
    })

  program.command('put')
    .description('save a document (a JSON object) or many (a JSON array); prints the new id(s)')
    .argument('<collection>', 'collection name')
    .argument('<json>', 'the document as JSON, or - to read it from stdin')
    .action(async (collection: string, json: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const doc = await jsonArg('<json>', json)
      const r = await call(g, 'put', { collection, doc }) as { id?: string, ids?: string[] }
      emit(g.json, r, () => (r.ids ?? [r.id]).join('\n'))
      // stdout stays a list of ids (empty here); the person reading the terminal is told why
      if (r.ids?.length === 0 && !g.json) note(`nothing to write: the array is empty (no documents saved in ${collection})`)
    })

  program.command('get')
    .description('print one document')
    .argument('<collection>', 'collection name')
    .argument('<id>', 'document id')
    .action(async (collection: string, id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const doc = await call(g, 'get', { collection, id })
      emit(g.json, doc, () => JSON.stringify(doc, null, 2))
    })

  program.command('find')
    .description('print the documents matching a filter, one JSON document per line')
    .argument('<collection>', 'collection name')
    .option('--where <json>', 'filter, e.g. \'{"tags":"a","year":{"gte":2020}}\'')
    .option('--order-by <fields>', 'comma-separated fields; "field:desc" (or --order-by=-field) for descending', orderByOption)
    .option('--limit <n>', 'at most n documents', intOption('--limit'))
    .option('--offset <n>', 'skip the first n documents', intOption('--offset'))
    .action(async (collection: string, opts: { where?: string, orderBy?: string[], limit?: number, offset?: number }, cmd: Command) => {
      const g = globals(cmd)
      const docs = await call(g, 'find', { collection, query: await queryOption(opts) }) as unknown[]
      emit(g.json, docs, () => docLines(docs))
    })

  program.command('watch')
    .description('print the documents matching a filter, then each change to them (added, changed, removed) as it happens, until Ctrl+C')
    .argument('<collection>', 'collection name')
    .option('--where <json>', 'filter (as for find)')
    .option('--order-by <fields>', 'comma-separated fields (as for find)', orderByOption)
    .option('--limit <n>', 'watch the first n documents only', intOption('--limit'))
    .action(async (collection: string, opts: { where?: string, orderBy?: string[], limit?: number }, cmd: Command) => {
      await watchCommand(globals(cmd), collection, await queryOption(opts))
    })

  program.command('count')
    .description('count the documents matching a filter')
    .argument('<collection>', 'collection name')
    .option('--where <json>', 'filter (as for find)')
    .action(async (collection: string, opts: { where?: string }, cmd: Command) => {
      const g = globals(cmd)
      const params: Record<string, unknown> = { collection }
      if (opts.where !== undefined) params.where = await jsonArg('--where', opts.where)
      const n = await call(g, 'count', params) as number
      emit(g.json, { count: n }, () => String(n))
    })

  program.command('delete')
    .description('delete a document')
    .argument('<collection>', 'collection name')
    .argument('<id>', 'document id')
    .action(async (collection: string, id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'delete', { collection, id }) as { existed: boolean }
      emit(g.json, r, () => r.existed ? `deleted ${id}` : `deleted ${id} (it did not exist here)`)
    })

  program.command('collections')
    .description('list collections with their document counts and indexes')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const list = await call(g, 'collections', {}) as Array<{ name: string, count: number, indexes: string[] }>
      emit(g.json, list, () => list.length === 0 ? '(no collections)' : list.map(c => `${c.name}\t${c.count} docs${c.indexes.length > 0 ? `\tindexes: ${c.indexes.join(', ')}` : ''}`).join('\n'))
    })

  program.command('providers')
    .description('list the storage providers (the primary and those in "providers" of config.json) with their health and routes')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const list = await call(g, 'providers', {}) as Array<{ name: string, kind: string, location: string, healthy: boolean, rttMs: number, error?: string, pool?: { size: number, inUse: number, waiting: number, max: number }, routes: string[] }>
      emit(g.json, list, () => list.map(p => table([
        ['Provider', p.name],
        ['Kind', p.kind],
        ['Location', p.location],
        ['Health', p.healthy ? `ok (round trip ${p.rttMs} ms)` : `failing: ${p.error ?? 'unknown'}`],
        ...(p.pool !== undefined ? [['Pool', `${p.pool.size} open of ${p.pool.max}, ${p.pool.inUse} in use, ${p.pool.waiting} waiting`] as [string, unknown]] : []),
        ['Routes', p.name === 'primary' ? '(every collection not routed elsewhere)' : p.routes.length === 0 ? '(none)' : p.routes.join(', ')]
      ])).join('\n\n'))
    })

  const schema = program.command('schema')
    .description('describe the tables and views of a provider\'s database (columns, primary key, indexes), including those PeakDB did not create')
    .option('--provider <name>', 'the provider to describe (see `peakdb providers`; default: primary)')
    .option('--schema <name>', 'PostgreSQL: this schema only (default: every user schema)')
    .option('--all', 'show PeakDB\'s own tables in full too')
    .action(async (opts: { provider?: string, schema?: string, all?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const d = await call(g, 'schema', { provider: opts.provider, schema: opts.schema }) as SchemaDescription
      emit(g.json, d, () => schemaText(d, opts.all === true))
    })
  schema.command('types')
    .description('generate TypeScript row types: an interface per table or view (PeakDB\'s own left out unless --all)')
    .option('--out <file>', 'write them to this file instead of stdout')
    .action(async (opts: { out?: string }, cmd: Command) => {
      const g = globals(cmd)
      const o = cmd.optsWithGlobals<{ provider?: string, schema?: string, all?: boolean }>()
      const r = await call(g, 'schemaTypes', { provider: o.provider, schema: o.schema, all: o.all === true }) as { source: string, tables: number }
      if (opts.out === undefined) {
        emit(g.json, r, () => r.source)
        return
      }
      const out = resolve(opts.out)
      writeFileSync(out, r.source)
      emit(g.json, { file: out, tables: r.tables }, () => `wrote ${r.tables} row type(s) to ${out}`)
    })

  program.command('collection')
    .description('show a collection and change its settings on this device')
    .argument('<name>', 'collection name')
    .option('--index <fields>', 'comma-separated field paths to index (e.g. year,author.name)')
    .option('--embed <fields>', 'fields to embed for search by meaning: comma-separated paths, or "auto" (every text field)')
    .option('--no-embed', 'no vectors for this collection (keyword search still works)')
    .option('--no-wait', 'do not wait for the re-indexing a change starts')
    .option('--ttl <duration>', 'device-local collections in a file provider: documents expire this long after their last write (90s, 10m, 1h, 7d; "none" removes it)', (v: string) => v === 'none' ? null : durationOption('--ttl', 1000, 31_536_000_000)(v))
    .option('--max-size <size>', 'device-local collections in a file provider: byte budget, least recently used documents go first (500MB, 2GB, 64KB; "none" removes it)', sizeOption('--max-size'))
    .option('--provider <name>', 'move the collection to this provider (see `peakdb providers`; "primary" is the node\'s own storage): rebuilt there from the log, then removed from the old one. With --adopt: the postgres provider that holds the table')
    .option('--replicas <n>', 'how many of your devices hold this collection\'s full documents (1-64; "all", the default, is every device); replicated to every device', (v: string) => {
      if (v === 'all') return null
      const n = Number(v)
      if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError(`a whole number from 1 to 64, or "all" (got ${JSON.stringify(v)})`)
      return n
    })
    .option('--pin <device>', 'a DeviceId that always holds this collection (repeat for more; --pin none removes the pins)', (v: string, prev: string[] | undefined) => v === 'none' ? [] : [...(prev ?? []), v])
    .option('--adopt <table>', 'serve an existing PostgreSQL table (schema.table) as this collection: its primary key is _id, values are checked against column types; never in the log, never replicated')
    .action(async (name: string, opts: { index?: string, embed?: string | boolean, wait: boolean, provider?: string, ttl?: number | null, maxSize?: number | null, adopt?: string, replicas?: number | null, pin?: string[] }, cmd: Command) => {
      const g = globals(cmd)
      if (opts.adopt !== undefined) await call(g, 'adopt', { collection: name, table: opts.adopt, ...(opts.provider !== undefined ? { provider: opts.provider } : {}) })
      else if (opts.provider !== undefined) await moveWithProgress(g, name, opts.provider)
      if (opts.ttl !== undefined || opts.maxSize !== undefined) {
        await call(g, 'setPolicy', { collection: name, ...(opts.ttl !== undefined ? { ttlMs: opts.ttl } : {}), ...(opts.maxSize !== undefined ? { maxBytes: opts.maxSize } : {}) })
      }
      const placement = opts.replicas !== undefined || opts.pin !== undefined
        ? await call(g, 'setPlacement', { collection: name, ...(opts.replicas !== undefined ? { replicas: opts.replicas } : {}), ...(opts.pin !== undefined ? { pin: opts.pin } : {}) }) as { replicas?: number, pin?: string[] }
        : undefined
      for (const field of (opts.index ?? '').split(',').map(s => s.trim()).filter(s => s.length > 0)) {
        await call(g, 'createIndex', { collection: name, field })
      }
      if (opts.embed !== undefined && opts.embed !== true) {
        const embed = opts.embed === false ? false : opts.embed === 'auto' ? 'auto' : opts.embed.split(',').map(s => s.trim()).filter(s => s.length > 0)
        await setEmbedWithProgress(g, name, embed, opts.wait)
      }
      const list = await call(g, 'collections', {}) as Array<{ name: string, count: number, indexes: string[], provider?: string }>
      const info = list.find(c => c.name === name) ?? { name, count: 0, indexes: [] }
      const status = await call(g, 'indexStatus', { collection: name }) as { pending: number, embed: unknown }
      const policy = await call(g, 'policy', { collection: name }) as { ttlMs: number | null, maxBytes: number | null } | null
      const out = { ...info, provider: info.provider ?? 'primary', embed: status.embed, pendingIndex: status.pending, ...(policy !== null ? { policy } : {}), ...(placement !== undefined ? { placement: { replicas: placement.replicas ?? null, pin: placement.pin ?? [] } } : {}) }
      emit(g.json, out, () => table([
        ['Collection', info.name],
        ['Provider', out.provider],
        ...(policy !== null ? [['Time to live', policy.ttlMs === null ? '(none)' : `${policy.ttlMs / 1000} s`], ['Size budget', policy.maxBytes === null ? '(none)' : `${policy.maxBytes} bytes`]] as Array<[string, unknown]> : []),
        ...(placement !== undefined ? [['Replicas', placement.replicas ?? 'all devices'], ['Pinned to', (placement.pin ?? []).join(', ') || '(none)']] as Array<[string, unknown]> : []),
        ['Documents', info.count],
        ...(out.provider.includes(':')
          // an adopted table (provider:schema.table): its own indexes, no search
          ? [['Table', out.provider.slice(out.provider.indexOf(':') + 1)], ['Replicated', 'no: the database\'s own data, outside the log']] as Array<[string, unknown]>
          : [
              ['Indexes', info.indexes.length === 0 ? '(none)' : info.indexes.join(', ')],
              ['Embedding', status.embed === false ? 'off (keyword search only)' : status.embed === 'auto' ? 'auto (every text field)' : (status.embed as string[]).join(', ')],
              ['Waiting to be indexed', status.pending]
            ] as Array<[string, unknown]>)
      ]))
    })

  program.command('index')
    .description('index a folder into a device-local collection (paths, sizes, hashes, text), searchable here and across the swarm')
    .argument('<folder>', 'the folder to index (again: only what changed)')
    .option('--collection <name>', 'device-local collection to keep in step with the folder', 'files')
    .option('--watch', 'keep the index current: in the running daemon (remembered across restarts), else in the foreground until Ctrl+C')
    .option('--unwatch', 'stop watching the folder')
    .option('--no-wait', 'do not wait for the text to be embedded')
    .action(async (folder: string, opts: { collection: string, watch?: boolean, unwatch?: boolean, wait: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const path = resolve(folder)
      if (opts.watch === true && opts.unwatch === true) throw new InvalidOptionError('--watch or --unwatch, not both')
      if (opts.unwatch === true) {
        const r = await call(g, 'unwatchFolder', { path }) as { root: string, watched: boolean }
        emit(g.json, r, () => r.watched ? `no longer watching ${r.root}` : `${r.root} was not watched`)
        return
      }
      const summary = (r: FolderIndexResult): string => `${r.root}: ${r.files} files (${r.added} added, ${r.updated} changed, ${r.removed} removed, ${r.unchanged} unchanged${r.errors.length > 0 ? `, ${r.errors.length} unreadable` : ''}) in ${(r.ms / 1000).toFixed(1)} s -> collection ${r.collection}`
      const bars = await folderBars(g)
      const target = await openTarget(g.dir, g.passphraseFile !== undefined ? { passphraseFile: g.passphraseFile } : {})
      if ('api' in target) {
        const method = opts.watch === true ? 'watchFolder' : 'indexFolder'
        const params = opts.watch === true ? { path, collection: opts.collection } : { path, collection: opts.collection, wait: opts.wait }
        let done = false
        const poll = (async () => {
          while (!done) {
            const p = await call(g, 'folderProgress', {}).catch(() => ({ progress: null })) as { progress: FolderProgress | null }
            if (p.progress !== null) bars.update(p.progress)
            await new Promise(resolve => setTimeout(resolve, 200))
          }
        })()
        try {
          const r = await call(g, method, params) as FolderIndexResult
          done = true
          await poll
          bars.stop()
          emit(g.json, r, () => summary(r) + (opts.watch === true ? '\nthe daemon keeps it current (peakdb index --unwatch to stop)' : ''))
        } finally {
          done = true
          bars.stop()
        }
        return
      }
      const node = target.node
      try {
        if (opts.watch !== true) {
          const r = await node.files.index(path, { collection: opts.collection, waitForIndex: opts.wait, onProgress: p => bars.update(p) })
          bars.stop()
          emit(g.json, r, () => summary(r))
          return
        }
        // foreground watch: until SIGINT / SIGTERM
        const w = node.files.watch(path, { collection: opts.collection, onProgress: p => bars.update(p) })
        w.on('indexed', r => emit(g.json, r, () => summary(r)))
        const first = await w.ready
        bars.stop()
        emit(g.json, first, () => summary(first) + '\nwatching for changes; Ctrl+C stops')
        await new Promise<void>(resolve => {
          process.once('SIGINT', () => resolve())
          process.once('SIGTERM', () => resolve())
        })
        w.close()
      } finally {
        bars.stop()
        await node.close()
      }
    })

  program.command('search')
    .description('search a collection by meaning and words: peakdb search <collection> "<text>"; with --swarm, on every online device')
    .argument('<collection-or-text>', 'collection name, then the text (or only the text, with --collection or --swarm)')
    .argument('[text]', 'what to look for')
    .option('--collection <name>', 'collection to search (instead of the first argument; with --swarm default "files")')
    .option('--k <n>', 'number of results (default 10)', intOption('--k'))
    .option('--where <json>', 'exact filter on the documents, as for find')
    .option('--mode <mode>', 'hybrid (default), vector (meaning) or text (keywords, BM25)')
    .option('--swarm', 'search every online device of the swarm (through the running daemon) and merge the results')
    .option('--timeout <ms>', 'with --swarm: how long to wait for the other devices (default 2000)', intOption('--timeout'))
    .action(async (first: string, second: string | undefined, opts: { collection?: string, k?: number, where?: string, mode?: string, swarm?: boolean, timeout?: number }, cmd: Command) => {
      const g = globals(cmd)
      const collection = second !== undefined ? first : opts.collection ?? (opts.swarm === true ? 'files' : undefined)
      const text = second ?? first
      if (collection === undefined) throw new InvalidOptionError('name the collection: peakdb search <collection> "<text>" (or --collection <name>)')
      if (opts.timeout !== undefined && opts.swarm !== true) throw new InvalidOptionError('--timeout goes with --swarm')
      const params: Record<string, unknown> = { collection, text }
      if (opts.k !== undefined) params.k = opts.k
      if (opts.mode !== undefined) params.mode = opts.mode
      if (opts.where !== undefined) params.where = await jsonArg('--where', opts.where)
      if (opts.swarm === true) {
        if (opts.timeout !== undefined) params.timeout = opts.timeout
        const r = await call(g, 'swarmSearch', params) as { hits: Array<{ id: string, score: number, deviceName: string, doc: Record<string, unknown> }>, devices: Array<{ name: string, status: string, ms: number, count: number, pending?: number, error?: string, self: boolean }>, online: boolean }
        emit(g.json, r, () => [
          ...(r.hits.length === 0 ? ['(no results)'] : r.hits.map((h, i) => `${String(i + 1).padStart(2)}. ${h.score.toFixed(3)}  ${h.deviceName}  ${typeof h.doc.path === 'string' ? h.doc.path : `${h.id}  ${preview(h.doc)}`}`)),
          'devices: ' + r.devices.map(d => `${d.name}${d.self ? ' (this device)' : ''} ${d.status}${d.status === 'ok' ? ` ${Math.round(d.ms)} ms, ${d.count} hits${(d.pending ?? 0) > 0 ? `, ${d.pending as number} not indexed yet` : ''}` : d.error !== undefined ? ` (${d.error})` : ''}`).join('; '),
          ...(r.online ? [] : ['(no daemon running: searched this device only; `peakdb start` joins the swarm)'])
        ].join('\n'))
        return
      }
      const r = await call(g, 'search', params) as { hits: Array<{ id: string, score: number, doc: Record<string, unknown> }>, pending: number }
      emit(g.json, r, () => [
        ...(r.hits.length === 0 ? ['(no results)'] : r.hits.map((h, i) => `${String(i + 1).padStart(2)}. ${h.score.toFixed(3)}  ${h.id}  ${preview(h.doc)}`)),
        ...(r.pending > 0 ? [`(${r.pending} documents are not indexed yet)`] : [])
      ].join('\n'))
    })

  addMigrateCommand(program, globals)
  addMemoryCommand(program, { globals, call, duration: durationOption })

  program.command('mcp')
    .description('serve agents over the Model Context Protocol on stdin/stdout: memory (remember, recall, forget, consolidate), search, swarm search, find, get, put')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const { runMcpServer } = await import('../mcp/server.js')
      await runMcpServer({ dir: g.dir, version: packageVersion(), ...(g.passphraseFile !== undefined ? { passphraseFile: g.passphraseFile } : {}) })
    })

  program.command('verify')
    .description('re-verify the whole log (hashes, signatures, chains, membership, decryption) and the database')
    .option('--rebuild', 'also replay the log and compare the documents with the stored ones')
    .action(async (opts: { rebuild?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'verify', { rebuild: opts.rebuild === true }) as VerifyOutput
      const advice = r.ok ? undefined : verifyAdvice(dataDirPaths(g.dir).database)
      emit(g.json, advice === undefined ? r : { ...r, advice }, () => verifyLines(r, advice ?? '').join('\n'))
      if (!r.ok) process.exitCode = EXIT.error
    })

  return program
}

/**
 * The error for a command that never finished: the process is exiting because nothing is left
 * to wait for (a connection dropped without a word, a timer that does not keep the process
 * alive), while the command still waits for it.
 */
function unfinished (): Error {
  const call = callsInFlight()[0]
  if (call !== undefined) {
    return new DaemonUnreachableError(`the daemon (pid ${call.info.pid}) at ${call.info.url} never answered ${call.method}: the connection was lost; whether ${call.method} took effect is unknown (check, then retry)`)
  }
  return new CommandUnfinishedError('the command stopped before it finished: what it waited for went away without an answer; whether it took effect is unknown (check, then retry)')
}

/** Runs the CLI with `argv` (as in process.argv) and returns the exit code. */
export async function main (argv: string[]): Promise<number> {
  // the daemon reports what it does; one-shot commands only warnings (unless asked otherwise)
  process.env.PEAKDB_LOG ??= argv.includes('start') ? 'info' : 'warn'
  const program = buildProgram()
  const json = argv.includes('--json')
  // the event loop emptied while the command still waits: say so rather than end in silence
  // (Node's exit code 13 for an unsettled top-level await). An explicit process.exit() (a
  // daemon's second Ctrl+C) does not come here.
  let settled = false
  const onEmptyLoop = (): void => {
    if (!settled) process.exitCode = reportError(json, unfinished())
  }
  process.once('beforeExit', onEmptyLoop)
  try {
    await program.parseAsync(argv)
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit with 0; parse errors were already printed by commander
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage
    }
    return reportError(json, err)
  } finally {
    settled = true
    process.off('beforeExit', onEmptyLoop)
  }
}
