/**
 * Where a CLI command runs: through the local API of the daemon that owns the data dir, or, when
 * none runs, on the data dir opened directly for the duration of the command.
 */
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { PeakNode } from '../peak-node.js'
import { dataDirPaths } from '../data-dir.js'
import { DataDirLockedError } from '../errors.js'
import { callApi, readApiInfo } from '../daemon/api-client.js'
import { callMethod } from '../daemon/rpc.js'
import { configuredEmbedder, dataDirConfig } from './config.js'

/** The keystore passphrase from `$PEAKDB_PASSPHRASE` or `--passphrase-file`, if any. */
export function passphrase (file?: string): string | undefined {
  if (file !== undefined) return readFileSync(file, 'utf8').replace(/\r?\n$/, '')
  const env = process.env.PEAKDB_PASSPHRASE
  return env !== undefined && env !== '' ? env : undefined
}

/**
 * Opens a data dir for one command: no network, no background indexing (a search indexes what
 * it needs), the configured embedder.
 */
export async function openDirect (dir: string, options: { passphraseFile?: string } = {}): Promise<PeakNode> {
  const pass = passphrase(options.passphraseFile)
  const embedder = configuredEmbedder(dataDirConfig(dir))
  return await PeakNode.open({
    dir,
    create: false,
    backgroundIndexing: false,
    ...(pass !== undefined ? { passphrase: pass } : {}),
    ...(embedder !== undefined ? { embedder } : {})
  })
}

/** True when a daemon runs on the data dir. */
export function daemonRunning (dir: string): boolean {
  return readApiInfo(dataDirPaths(dir).api) !== undefined
}

/** Runs one local API method against the data dir `dir`. */
export async function invoke (dir: string, method: string, params: unknown, options: { passphraseFile?: string } = {}): Promise<unknown> {
  const paths = dataDirPaths(dir)
  // a daemon that is still starting holds the lock before it writes api.json: wait a little
  for (let attempt = 0; ; attempt++) {
    const info = readApiInfo(paths.api)
    if (info !== undefined) return await callApi(info, method, params)
    let node: PeakNode
    try {
      node = await openDirect(dir, options)
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
