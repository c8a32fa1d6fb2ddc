/**
 * Where a CLI command runs: through the local API of the daemon that owns the data dir, or, when
 * none runs, on the data dir opened directly for the duration of the command.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { PeakNode } from '../peak-node.js'
import { dataDirPaths } from '../data-dir.js'
import { DataDirLockedError } from '../errors.js'
import { callApi, readApiInfo } from '../daemon/api-client.js'
import { callMethod } from '../daemon/rpc.js'

/** Runs one local API method against the data dir `dir`. */
export async function invoke (dir: string, method: string, params: unknown): Promise<unknown> {
  const paths = dataDirPaths(dir)
  // a daemon that is still starting holds the lock before it writes api.json: wait a little
  for (let attempt = 0; ; attempt++) {
    const info = readApiInfo(paths.api)
    if (info !== undefined) return await callApi(info, method, params)
    let node: PeakNode
    try {
      node = await PeakNode.open({ dir, create: false })
    } catch (err) {
      if (err instanceof DataDirLockedError && attempt < 50) {
        await sleep(100)
        continue
      }
      throw err
    }
    try {
      return await callMethod({ node }, method, params)
    } finally {
      await node.close()
    }
  }
}
