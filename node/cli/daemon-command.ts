/**
 * `peakdb start`: run the node in the foreground with its local API until SIGINT/SIGTERM.
 */
import { PeakNode } from '../peak-node.js'
import { ApiServer } from '../daemon/api-server.js'
import { createLogger } from '../logger.js'
import { emit, table } from './output.js'
import { phraseBanner } from './init-command.js'

const log = createLogger('daemon')

/** Runs the daemon; resolves after a clean stop. */
export async function runDaemon (o: { dir: string, json: boolean, apiPort?: number, name?: string }): Promise<void> {
  const node = await PeakNode.open({ dir: o.dir, ...(o.name !== undefined ? { deviceName: o.name } : {}) })
  const startedAt = Date.now()
  let stopping: Promise<void> | undefined
  let resolveStopped!: () => void
  const stopped = new Promise<void>(resolve => { resolveStopped = resolve })

  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      log.info('stopping', { reason })
      try {
        await api.stop()
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
    ...(o.apiPort !== undefined ? { port: o.apiPort } : {}),
    onShutdown: () => { void stop('stop requested') }
  })
  let info
  try {
    info = await api.start()
  } catch (err) {
    await node.close()
    throw err
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
  emit(o.json, { event: 'started', deviceId: node.deviceId, swarmId: node.swarmId, dir: node.dir, api: info.url, pid: process.pid, ...(node.recoveryPhrase !== undefined ? { recoveryPhrase: node.recoveryPhrase } : {}) }, () => [
    'PeakDB node running',
    table([['DeviceId', node.deviceId], ['SwarmId', node.swarmId], ['Device name', node.deviceName], ['Data dir', node.dir], ['Local API', info.url]]),
    'Press Ctrl+C to stop.'
  ].join('\n'))

  await stopped
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
}
