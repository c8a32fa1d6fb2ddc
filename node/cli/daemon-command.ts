/**
 * `peakdb start`: run the node in the foreground with its local API until SIGINT/SIGTERM.
 */
import { join } from 'node:path'
import cliProgress from 'cli-progress'
import type { StorageSpec } from '../storage-binding.js'
import { PeakNode } from '../peak-node.js'
import { ApiServer } from '../daemon/api-server.js'
import { announceDaemon, dataDirPaths, ensureDataDir } from '../data-dir.js'
import { createLogger } from '../logger.js'
import { watchedFolders } from '../daemon/rpc.js'
import type { SyncProgress } from '../../transport/index.js'
import { emit, table } from './output.js'
import { phraseBanner } from './init-command.js'
import { configuredEmbedder, configuredRouting, readConfig } from './config.js'
import { passphrase } from './target.js'

const log = createLogger('daemon')

/** How long `peakdb start` waits for short-lived commands to release the data dir, in ms. */
export const DAEMON_LOCK_WAIT_MS = 30_000

/** Options of `peakdb start` (flags; each overrides the config file). */
export interface DaemonOptions {
  dir: string
  json: boolean
  apiPort?: number
  name?: string
  listen?: string[]
  bootstrap?: string[]
  relays?: string[]
  relay?: boolean
  announce?: string[]
  upnp?: boolean
  mdns?: boolean
  dht?: boolean
  confirmations?: number
  config?: string
  passphraseFile?: string
}

/** Shows pulls of large logs: a bar on a terminal, a log line per quarter otherwise. */
function progressReporter (json: boolean): (p: SyncProgress) => void {
  const bars = new Map<string, cliProgress.SingleBar>()
  const logged = new Map<string, number>()
  return (p) => {
    if (p.total < 200 && !bars.has(p.peer)) return
    if (!json && process.stderr.isTTY === true) {
      let bar = bars.get(p.peer)
      if (bar === undefined && !p.done) {
        bar = new cliProgress.SingleBar({ stream: process.stderr, format: `sync ${p.peer.slice(-8)} [{bar}] {value}/{total} entries {eta_formatted}`, hideCursor: true, clearOnComplete: false }, cliProgress.Presets.shades_classic)
        bar.start(p.total, p.received)
        bars.set(p.peer, bar)
      } else if (bar !== undefined) {
        bar.setTotal(Math.max(p.total, p.received))
        bar.update(p.received)
        if (p.done) {
          bar.stop()
          bars.delete(p.peer)
        }
      }
      return
    }
    const quarter = p.done ? 4 : Math.floor((p.received / Math.max(1, p.total)) * 4)
    if (quarter > (logged.get(p.peer) ?? -1)) {
      logged.set(p.peer, quarter)
      log.info('sync progress', { peer: p.peer, received: p.received, total: p.total })
    }
    if (p.done) logged.delete(p.peer)
  }
}

/** The `upnp` network option when a flag or the config file sets it (else the node's default). */
function upnpOption (upnp: boolean | undefined): { upnp?: boolean } {
  return upnp !== undefined ? { upnp } : {}
}

/** Runs the daemon; resolves after a clean stop. */
export async function runDaemon (o: DaemonOptions): Promise<void> {
  const paths = dataDirPaths(o.dir)
  const config = readConfig(o.config ?? join(paths.dir, 'config.json'), o.config !== undefined)
  const name = o.name ?? config.deviceName
  const dht = o.dht ?? config.dht
  const mdns = o.mdns ?? config.mdns
  const network = {
    listen: o.listen ?? config.listen ?? ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [...(config.bootstrap ?? []), ...(o.bootstrap ?? [])],
    relays: [...(config.relays ?? []), ...(o.relays ?? [])],
    relay: o.relay ?? config.relay ?? false,
    announce: [...(config.announce ?? []), ...(o.announce ?? [])],
    ...upnpOption(o.upnp ?? config.upnp),
    ...(dht !== undefined ? { dht } : {}),
    ...(mdns !== undefined ? { mdns } : {})
  }
  const apiPort = o.apiPort ?? config.apiPort
  const confirmations = o.confirmations ?? config.confirmations
  const pass = passphrase(o.passphraseFile)
  const embedder = configuredEmbedder(config)
  ensureDataDir(paths.dir)
  // until the local API is up, commands wait for this daemon instead of taking the data dir
  const announcement = announceDaemon(paths, { waitMs: DAEMON_LOCK_WAIT_MS })
  let node: PeakNode
  try {
    node = await PeakNode.open({
      dir: o.dir,
      network,
      lock: {
        kind: 'daemon',
        waitMs: DAEMON_LOCK_WAIT_MS,
        onWait: holder => emit(o.json, { event: 'waiting', pid: holder.pid, holder: holder.kind }, () => `waiting for ${holder.pid} (a short-lived command) to release the data dir...`)
      },
      ...(embedder !== undefined ? { embedder } : {}),
      ...(pass !== undefined ? { passphrase: pass } : {}),
      ...(name !== undefined ? { deviceName: name } : {}),
      ...(confirmations !== undefined ? { confirmations } : {}),
      ...(config.storage !== undefined ? { storage: config.storage as StorageSpec } : {}),
      ...configuredRouting(config)
    })
  } catch (err) {
    announcement.withdraw()
    throw err
  }
  node.on('sync:progress', progressReporter(o.json))
  node.on('peer:connect', ev => log.info('device connected', { device: ev.device, name: ev.name }))
  node.on('peer:disconnect', ev => log.info('device disconnected', { device: ev.device }))
  const startedAt = Date.now()
  let stopping: Promise<void> | undefined
  /** Background work to stop before the node closes. */
  const background: { stop?: () => Promise<void> } = {}
  let resolveStopped!: () => void
  const stopped = new Promise<void>(resolve => { resolveStopped = resolve })

  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info('stopping', { reason })
      try {
        await api.stop()
        await background.stop?.()
        await node.close()
      } finally {
        emit(o.json, { event: 'stopped', reason }, () => `PeakDB node stopped (${reason})`)
        resolveStopped()
      }
    })()
    return stopping
  }

  const api: ApiServer = new ApiServer({
    node,
    daemon: (): Record<string, unknown> => ({ pid: process.pid, api: api.url, uptimeMs: Date.now() - startedAt })
  }, {
    infoPath: node.paths.api,
    ...(apiPort !== undefined ? { port: apiPort } : {}),
    onShutdown: () => { void stop('stop requested') }
  })
  let info
  try {
    info = await api.start()
  } catch (err) {
    await node.close()
    throw err
  } finally {
    announcement.withdraw()
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping !== undefined) {
      log.warn('second signal: exiting now', { signal })
      process.exit(130)
    }
    void stop(signal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  if (node.recoveryPhrase !== undefined && !o.json) process.stdout.write(phraseBanner(node.recoveryPhrase) + '\n')
  const multiaddrs = node.network?.multiaddrs() ?? []
  emit(o.json, { event: 'started', deviceId: node.deviceId, swarmId: node.swarmId, deviceName: node.deviceName, dir: node.dir, api: info.url, pid: process.pid, multiaddrs, ...(node.recoveryPhrase !== undefined ? { recoveryPhrase: node.recoveryPhrase } : {}) }, () => [
    'PeakDB node running',
    table([['DeviceId', node.deviceId], ['SwarmId', node.swarmId], ['Device name', node.deviceName], ['Data dir', node.dir], ['Local API', info.url], ['Web console', `peakdb ui --dir ${node.dir} (prints a login link)`]]),
    'Listening on:',
    ...multiaddrs.map(a => `  ${a}`),
    `Add another device: run \`peakdb pair invite --dir ${node.dir}\` here, then \`peakdb pair join <code>\` on it.`,
    'Press Ctrl+C to stop.'
  ].join('\n'))

  // folders this daemon keeps indexed (peakdb index <folder> --watch)
  for (const w of await watchedFolders(node)) {
    const handle = node.files.watch(w.root, { collection: w.collection })
    handle.ready.then(r => log.info('watching a folder', { root: r.root, files: r.files }), err => log.warn('cannot watch a folder', { root: w.root, error: (err as Error).message }))
  }

  // agent memory consolidates when the node is quiet
  background.stop = node.memory.startBackground({
    onDone: r => {
      if (r.promotions.length + r.merges.length + r.invalidations.length + r.expired.length === 0) return
      const counts = { promotions: r.promotions.length, merges: r.merges.length, invalidations: r.invalidations.length, expired: r.expired.length, examined: r.examined }
      api.console.publish('memory', counts)
      emit(o.json, { event: 'memory:consolidated', ...counts, ms: Math.round(r.ms) }, () => `memory consolidated: ${counts.promotions} promoted, ${counts.merges} merged, ${counts.invalidations} retired, ${counts.expired} expired (${counts.examined} fact(s) in ${Math.round(r.ms)} ms)`)
    },
    onProgress: (done, total) => { if (done % 100 === 0) log.info('memory consolidation', { done, total }) },
    onError: err => log.warn('memory consolidation failed', { error: `${err.name}: ${err.message}` })
  })

  // this device's metrics (room, budget) for placement, kept from expiring while it runs
  const stopMemory = background.stop
  const stopPlacement = node.placement.startRefresh({ onError: err => log.warn('could not publish placement metrics', { error: `${err.name}: ${err.message}` }) })
  background.stop = async () => { await stopPlacement(); await stopMemory?.() }

  await stopped
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
}
