/**
 * Where a CLI command runs: through the local API of the daemon that owns the data dir, or, when
 * none runs, on the data dir opened directly for the duration of the command. The node (libp2p,
 * SQLite, the embedder) is imported only on the direct path: a call to a daemon loads none of it.
 */
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { PeakNode } from '../peak-node.js'
import { dataDirPaths, pendingDaemon } from '../data-dir.js'
import { DaemonStartingError, DataDirLockedError } from '../errors.js'
import { callApi, readApiInfo } from '../daemon/api-client.js'
import type { ApiInfo } from '../daemon/api-server.js'

/** The keystore passphrase from `$PEAKDB_PASSPHRASE` or `--passphrase-file`, if any. */
export function passphrase (file?: string): string | undefined {
  if (file !== undefined) return readFileSync(file, 'utf8').replace(/\r?\n$/, '')
  const env = process.env.PEAKDB_PASSPHRASE
  return env !== undefined && env !== '' ? env : undefined
}

/**
 * How long a command waits, in ms, for a daemon that is starting to open its local API, or for
 * another command to release the data dir.
 */
export const COMMAND_WAIT_MS = 30_000

/** How long a command waits for a long-running owner without a local API (an application, a daemon stopping), in ms. */
const OWNER_WAIT_MS = 5_000

const POLL_MS = 100

/**
 * Opens a data dir for one command: no network, no background indexing (a search indexes what
 * it needs), the configured embedder. The command takes the lock as a short-lived one: it
 * throws {@link DaemonStartingError} rather than keep a starting daemon out.
 */
export async function openDirect (dir: string, options: { passphraseFile?: string } = {}): Promise<PeakNode> {
  const pass = passphrase(options.passphraseFile)
  const [{ PeakNode }, { configuredEmbedder, configuredRouting, dataDirConfig }] = await Promise.all([import('../peak-node.js'), import('./config.js')])
  const config = dataDirConfig(dir)
  const embedder = configuredEmbedder(config)
  return await PeakNode.open({
    dir,
    create: false,
    backgroundIndexing: false,
    lock: { kind: 'command' },
    ...(pass !== undefined ? { passphrase: pass } : {}),
    ...(embedder !== undefined ? { embedder } : {}),
    ...configuredRouting(config)
  })
}

/** Where a command runs: the daemon's local API, or the data dir opened by this process (close it). */
export type Target = { readonly api: ApiInfo } | { readonly node: PeakNode }

/**
 * Finds where a command runs. A daemon that is starting (it announced itself, or holds the lock
 * before its API is up) is waited for rather than raced for the data dir, as is another command
 * holding it; both waits are bounded.
 */
export async function openTarget (dir: string, options: { passphraseFile?: string } = {}): Promise<Target> {
  const paths = dataDirPaths(dir)
  const started = Date.now()
  for (;;) {
    const info = readApiInfo(paths.api)
    if (info !== undefined) return { api: info }
    const waited = Date.now() - started
    // checked before opening, too: a first `peakdb start` may still be creating the identity
    const pending = pendingDaemon(paths)
    if (pending !== undefined) {
      if (waited >= COMMAND_WAIT_MS) throw new DaemonStartingError(paths.dir, pending, `a daemon (pid ${pending}) is starting on ${paths.dir} and did not open its local API within ${COMMAND_WAIT_MS / 1000} s`)
    } else {
      try {
        return { node: await openDirect(dir, options) }
      } catch (err) {
        const wait = err instanceof DaemonStartingError
          ? COMMAND_WAIT_MS
          : err instanceof DataDirLockedError ? (err.holder === 'command' ? COMMAND_WAIT_MS : OWNER_WAIT_MS) : 0
        if (waited >= wait) throw err
      }
    }
    await sleep(POLL_MS)
  }
}

/** Runs one local API method against the data dir `dir` (through its daemon, or directly). */
export async function invoke (dir: string, method: string, params: unknown, options: { passphraseFile?: string } = {}): Promise<unknown> {
  const target = await openTarget(dir, options)
  if ('api' in target) return await callApi(target.api, method, params)
  try {
    const { callMethod } = await import('../daemon/rpc.js')
    return await callMethod({ node: target.node }, method, params)
  } finally {
    await target.node.close()
  }
}
