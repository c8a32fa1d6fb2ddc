/**
 * Client side of the local API: find a running daemon of a data dir (its `api.json`, a live
 * pid) and call its methods.
 */
import { readFileSync } from 'node:fs'
import { processAlive } from '../data-dir.js'
import type { ApiInfo } from './api-server.js'

/** An error returned by the daemon, carrying the daemon-side name, code and message. */
export class RemoteError extends Error {
  override readonly name: string
  readonly code: string | undefined
  constructor (name: string, message: string, code?: string) {
    super(message)
    this.name = name
    this.code = code
  }
}

/** The daemon could not be reached although its info file names a live process. */
export class DaemonUnreachableError extends Error {
  static readonly code = 'ERR_DAEMON_UNREACHABLE'
  override readonly name = 'DaemonUnreachableError'
  readonly code = DaemonUnreachableError.code
}

/** The running daemon's API info, or undefined when no live daemon owns the data dir. */
export function readApiInfo (path: string): ApiInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(path, 'utf8')) as ApiInfo
    if (typeof info.url !== 'string' || typeof info.token !== 'string' || !processAlive(info.pid)) return undefined
    return info
  } catch {
    return undefined
  }
}

/** Calls one method of a daemon's local API. */
export async function callApi (info: ApiInfo, method: string, params: unknown, options: { timeoutMs?: number } = {}): Promise<unknown> {
  let res: Response
  try {
    res = await fetch(`${info.url}/api/v1/${method}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${info.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(params ?? {}),
      signal: AbortSignal.timeout(options.timeoutMs ?? 120_000)
    })
  } catch (err) {
    throw new DaemonUnreachableError(`the daemon (pid ${info.pid}) at ${info.url} did not answer: ${(err as Error).message}`)
  }
  let body: { ok: boolean, result?: unknown, error?: { name: string, message: string, code?: string } }
  try {
    body = await res.json() as typeof body
  } catch {
    throw new DaemonUnreachableError(`the daemon at ${info.url} sent a response that is not JSON (HTTP ${res.status})`)
  }
  if (!body.ok) {
    const e = body.error ?? { name: 'Error', message: `HTTP ${res.status}` }
    throw new RemoteError(e.name, e.message, e.code)
  }
  return body.result
}
