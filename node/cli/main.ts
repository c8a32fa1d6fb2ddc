/**
 * The `peakdb` command line. Every command takes `--dir` (or `$PEAKDB_DIR`) and `--json`.
 * Commands run through the daemon's local API when `peakdb start` runs on that data dir, and on
 * the data dir directly otherwise.
 */
import '../polyfills.js'
import { readFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { defaultDataDir, dataDirPaths } from '../data-dir.js'
import { InvalidOptionError } from '../errors.js'
import { EXIT, emit, reportError, table } from './output.js'
import { invoke } from './target.js'
import { runDaemon } from './daemon-command.js'
import { runInit } from './init-command.js'
import { callApi, readApiInfo } from '../daemon/api-client.js'

interface GlobalOptions { dir?: string, json?: boolean }

function packageVersion (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'package.json')
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'peakdb') return pkg.version ?? '0.0.0'
    }
    dir = dirname(dir)
  }
  return '0.0.0'
}

function globals (cmd: Command): { dir: string, json: boolean } {
  const o = cmd.optsWithGlobals<GlobalOptions>()
  return { dir: o.dir ?? defaultDataDir(), json: o.json === true }
}

/** Parses a JSON argument, or reads it from stdin when it is `-`. */
function jsonArg (what: string, text: string): unknown {
  const source = text === '-' ? readFileSync(0, 'utf8') : text
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
    .showHelpAfterError('(run with --help for usage)')
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
    .action(async (opts: { recover?: string, name?: string }, cmd: Command) => {
      await runInit({ ...globals(cmd), ...opts })
    })

  program.command('start')
    .description('run the node in the foreground until SIGINT/SIGTERM (creates an identity on first run)')
    .option('--listen <multiaddr...>', 'addresses to listen on (default: /ip4/127.0.0.1/tcp/0; e.g. /ip4/0.0.0.0/tcp/4011 for the LAN)')
    .option('--bootstrap <multiaddr...>', 'devices to connect to, as /ip4/<ip>/tcp/<port>/p2p/<DeviceId>')
    .option('--mdns', 'find devices on the LAN with mDNS')
    .option('--no-mdns', 'do not use mDNS (default)')
    .option('--dht', 'find devices through the DHT rendezvous (default)')
    .option('--no-dht', 'do not use the DHT')
    .option('--confirmations <n>', 'other devices that must hold a write to confirm it (default 1)', intOption('--confirmations'))
    .option('--config <path>', 'configuration file (default: <dir>/config.json when present)')
    .option('--api-port <port>', 'port of the local API on 127.0.0.1 (default: any free port)', intOption('--api-port'))
    .option('--name <name>', 'device name, when a new identity is created')
    .action(async (opts: Omit<Parameters<typeof runDaemon>[0], 'dir' | 'json'>, cmd: Command) => {
      await runDaemon({ ...globals(cmd), ...opts })
    })

  program.command('peers')
    .description('list connected devices and devices seen before (needs a running daemon for live data)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await invoke(g.dir, 'peers', {}) as { online: boolean, connected: Array<{ device: string, name?: string, verified: boolean, addrs: string[], lastSync?: number, syncing: boolean }>, known: Array<{ device: string, name: string, addrs: string[], seen: number }> }
      emit(g.json, r, () => {
        if (!r.online) return `not on the network (no daemon runs on ${g.dir}); devices seen before: ${r.known.length}`
        const lines = r.connected.map(p => `${p.device}  ${p.name ?? '?'}  ${p.verified ? 'member' : 'unverified'}  ${p.syncing ? 'syncing' : p.lastSync !== undefined ? `synced ${new Date(p.lastSync).toISOString()}` : ''}  ${p.addrs.join(' ')}`)
        return lines.length === 0 ? '(no connected devices)' : lines.join('\n')
      })
    })

  program.command('connect')
    .description('connect the running daemon to a device by multiaddr (/ip4/<ip>/tcp/<port>/p2p/<DeviceId>)')
    .argument('<multiaddr>', 'address of the device')
    .action(async (addr: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await invoke(g.dir, 'connect', { addr }) as { device: string, name: string }
      emit(g.json, r, () => `connected to ${r.name} (${r.device})`)
    })

  program.command('sync')
    .description('pull from every connected device now and wait until done (needs a running daemon)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await invoke(g.dir, 'sync', {}) as { peers: Array<{ device: string, ok: boolean, error?: string }>, status: { entries: number } }
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

  program.command('status')
    .description('show this device, its swarm, the log and collections (and the daemon, if running)')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const s = await invoke(g.dir, 'status', {}) as Record<string, unknown> & {
        collections: Array<{ name: string, count: number }>
        versionVector: Record<string, number>
        pendingEntries: number
        network?: { multiaddrs: string[], peers: Array<{ device: string, name?: string, verified: boolean, syncing: boolean }>, syncing: Array<{ peer: string, received: number, total: number }> }
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
        if (s.pendingEntries > 0) rows.push(['Waiting for keys', `${s.pendingEntries} entries`])
        if (s.network !== undefined) {
          rows.push(['Listening', s.network.multiaddrs.join(' ')])
          rows.push(['Peers', s.network.peers.length === 0 ? '(none)' : s.network.peers.map(p => `${p.name ?? '?'} (${p.device.slice(-8)}${p.verified ? '' : ', unverified'}${p.syncing ? ', syncing' : ''})`).join(', ')])
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
      const doc = jsonArg('<json>', json)
      const r = await invoke(g.dir, 'put', { collection, doc }) as { id?: string, ids?: string[] }
      emit(g.json, r, () => (r.ids ?? [r.id]).join('\n'))
    })

  program.command('get')
    .description('print one document')
    .argument('<collection>', 'collection name')
    .argument('<id>', 'document id')
    .action(async (collection: string, id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const doc = await invoke(g.dir, 'get', { collection, id })
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
      const query: Record<string, unknown> = {}
      if (opts.where !== undefined) query.where = jsonArg('--where', opts.where)
      if (opts.orderBy !== undefined) query.orderBy = opts.orderBy
      if (opts.limit !== undefined) query.limit = opts.limit
      if (opts.offset !== undefined) query.offset = opts.offset
      const docs = await invoke(g.dir, 'find', { collection, query }) as unknown[]
      emit(g.json, docs, () => docLines(docs))
    })

  program.command('count')
    .description('count the documents matching a filter')
    .argument('<collection>', 'collection name')
    .option('--where <json>', 'filter (as for find)')
    .action(async (collection: string, opts: { where?: string }, cmd: Command) => {
      const g = globals(cmd)
      const params: Record<string, unknown> = { collection }
      if (opts.where !== undefined) params.where = jsonArg('--where', opts.where)
      const n = await invoke(g.dir, 'count', params) as number
      emit(g.json, { count: n }, () => String(n))
    })

  program.command('delete')
    .description('delete a document')
    .argument('<collection>', 'collection name')
    .argument('<id>', 'document id')
    .action(async (collection: string, id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await invoke(g.dir, 'delete', { collection, id }) as { existed: boolean }
      emit(g.json, r, () => r.existed ? `deleted ${id}` : `deleted ${id} (it did not exist here)`)
    })

  program.command('collections')
    .description('list collections with their document counts and indexes')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const list = await invoke(g.dir, 'collections', {}) as Array<{ name: string, count: number, indexes: string[] }>
      emit(g.json, list, () => list.length === 0 ? '(no collections)' : list.map(c => `${c.name}\t${c.count} docs${c.indexes.length > 0 ? `\tindexes: ${c.indexes.join(', ')}` : ''}`).join('\n'))
    })

  program.command('collection')
    .description('show a collection and change its settings')
    .argument('<name>', 'collection name')
    .option('--index <fields>', 'comma-separated field paths to index (e.g. year,author.name)')
    .action(async (name: string, opts: { index?: string }, cmd: Command) => {
      const g = globals(cmd)
      for (const field of (opts.index ?? '').split(',').map(s => s.trim()).filter(s => s.length > 0)) {
        await invoke(g.dir, 'createIndex', { collection: name, field })
      }
      const list = await invoke(g.dir, 'collections', {}) as Array<{ name: string, count: number, indexes: string[] }>
      const info = list.find(c => c.name === name) ?? { name, count: 0, indexes: [] }
      emit(g.json, info, () => table([['Collection', info.name], ['Documents', info.count], ['Indexes', info.indexes.length === 0 ? '(none)' : info.indexes.join(', ')]]))
    })

  program.command('verify')
    .description('re-verify the whole log (hashes, signatures, chains, membership, decryption) and the database')
    .option('--rebuild', 'also replay the log and compare the documents with the stored ones')
    .action(async (opts: { rebuild?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const r = await invoke(g.dir, 'verify', { rebuild: opts.rebuild === true }) as { ok: boolean, entries: number, authors: number, problems: Array<{ pos: number, error: string, message: string }>, integrity: string[], stateMatches?: boolean }
      emit(g.json, r, () => [
        r.ok ? `ok: ${r.entries} entries from ${r.authors} device(s) verified` : `FAILED: ${r.problems.length} problem(s) in ${r.entries} entries`,
        ...r.problems.slice(0, 20).map(p => `  at ${p.pos}: ${p.error}: ${p.message}`),
        ...r.integrity.map(i => `  database: ${i}`),
        ...(r.stateMatches === undefined ? [] : [`documents match a replay of the log: ${r.stateMatches ? 'yes' : 'NO'}`])
      ].join('\n'))
      if (!r.ok) process.exitCode = EXIT.error
    })

  return program
}

/** Runs the CLI with `argv` (as in process.argv) and returns the exit code. */
export async function main (argv: string[]): Promise<number> {
  const program = buildProgram()
  const json = argv.includes('--json')
  try {
    await program.parseAsync(argv)
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit with 0; parse errors were already printed by commander
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage
    }
    return reportError(json, err)
  }
}
