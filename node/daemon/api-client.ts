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

/** A call waiting for the daemon's answer. */
export interface CallInFlight { readonly info: ApiInfo, readonly method: string }

const inFlight = new Set<CallInFlight>()

/**
 * The calls of this process still waiting for a daemon's answer. A command that ends while one
 * is listed lost its answer: the CLI then reports {@link DaemonUnreachableError} for it.
 */
export function callsInFlight (): readonly CallInFlight[] {
  return [...inFlight]
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
  const call: CallInFlight = { info, method }
  inFlight.add(call)
  try {
    return await request(info, method, params, options.timeoutMs ?? 120_000)
  } finally {
    inFlight.delete(call)
  }
}

/** One HTTP POST on its own connection; resolves with the whole answer, or rejects if it is cut off. */
async function post (url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<{ status: number, text: string }> {
  // node:http rather than fetch: undici costs ~30 ms of start-up that a CLI call pays in full
  // (and loaded here, not at import: `peakdb --version` needs no HTTP)
  const { request: httpRequest } = await import('node:http')
  return await new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent: false, signal: AbortSignal.timeout(timeoutMs) }, res => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
      res.on('close', () => { if (!res.complete) reject(new Error('the connection closed before the whole answer arrived')) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function request (info: ApiInfo, method: string, params: unknown, timeoutMs: number): Promise<unknown> {
  let res: { status: number, text: string }
  try {
    res = await post(`${info.url}/api/v1/${method}`, { authorization: `Bearer ${info.token}`, 'content-type': 'application/json' }, JSON.stringify(params ?? {}), timeoutMs)
  } catch (err) {
    const reason = (err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError' ? `no answer within ${Math.round(timeoutMs / 1000)} s` : (err as Error).message
    throw new DaemonUnreachableError(`the daemon (pid ${info.pid}) at ${info.url} did not answer ${method}: ${reason}`, { cause: err })
  }
  let body: { ok: boolean, result?: unknown, error?: { name: string, message: string, code?: string } }
  try {
    body = JSON.parse(res.text) as typeof body
    if (typeof body !== 'object' || body === null) throw new TypeError('not an object')
  } catch {
    throw new DaemonUnreachableError(`the daemon at ${info.url} sent a response that is not JSON (HTTP ${res.status})`)
  }
  if (!body.ok) {
    const e = body.error ?? { name: 'Error', message: `HTTP ${res.status}` }
    throw new RemoteError(e.name, e.message, e.code)
  }
  return body.result
}

/**
 * Opens a streaming method (`watch`): `onLine` gets each JSON line as it arrives. Resolves when
 * `signal` aborts (the caller stopped); rejects with {@link DaemonUnreachableError} when the
 * daemon goes away, or with the daemon's error when it refuses the call.
 */
export async function streamApi (info: ApiInfo, method: string, params: unknown, onLine: (line: unknown) => void, signal: AbortSignal): Promise<void> {
  const { request: httpRequest } = await import('node:http')
  const body = JSON.stringify(params ?? {})
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest(`${info.url}/api/v1/${method}`, { method: 'POST', headers: { authorization: `Bearer ${info.token}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, agent: false }, res => {
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          try {
            const e = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error: { name: string, message: string, code?: string } }).error
            reject(new RemoteError(e.name, e.message, e.code))
          } catch {
            reject(new DaemonUnreachableError(`the daemon at ${info.url} refused ${method} (HTTP ${res.statusCode ?? 0})`))
          }
        })
        return
      }
      let buffer = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          const line = buffer.slice(0, nl)
          buffer = buffer.slice(nl + 1)
          if (line.length > 0) onLine(JSON.parse(line))
        }
      })
      res.on('close', () => {
        if (signal.aborted) resolve()
        else reject(new DaemonUnreachableError(`the daemon (pid ${info.pid}) at ${info.url} ended the ${method} stream (it stopped)`))
      })
    })
    req.on('error', err => {
      if (signal.aborted) resolve()
      else reject(new DaemonUnreachableError(`the daemon (pid ${info.pid}) at ${info.url} did not answer ${method}: ${err.message}`, { cause: err }))
    })
    signal.addEventListener('abort', () => req.destroy(), { once: true })
    req.end(body)
  })
}
