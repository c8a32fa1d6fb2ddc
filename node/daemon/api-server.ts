/**
 * The daemon's local API: HTTP/1.1 on 127.0.0.1 (like Kubo's RPC API), one POST endpoint per
 * method (`/api/v1/<method>`, JSON body of parameters), authenticated by a bearer token that
 * only the data dir's owner can read (`api.json`, mode 0600). `watch` answers with a stream of
 * newline-delimited JSON events instead of one result. The web console (`/ui/`, see
 * console-server.ts) is served from the same address.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { unlinkSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { writeFileAtomic } from '../../identity/index.js'
import { callMethod, startWatch, type MethodContext } from './rpc.js'
import { readJsonBody, sendError, sendJson } from './http.js'
import { ConsoleServer, type ConsoleOptions } from './console-server.js'

export { MAX_API_BODY } from './http.js'

/** How long a stopping server lets open connections finish before it closes them, in ms. */
const STOP_GRACE_MS = 1000

/** What `api.json` holds. */
export interface ApiInfo {
  readonly url: string
  readonly token: string
  readonly pid: number
  readonly deviceId: string
}

/** Options of {@link ApiServer}. */
export interface ApiServerOptions {
  /** Listen host (default 127.0.0.1). */
  readonly host?: string
  /** Listen port (default 0: any free port). */
  readonly port?: number
  /** Where to write the API info file. */
  readonly infoPath: string
  /** Called when a client asks the daemon to stop. */
  readonly onShutdown: () => void
  /** Options of the web console served beside the API. */
  readonly console?: ConsoleOptions
}

/** The local HTTP API of a running node. */
export class ApiServer {
  private readonly server: Server
  private readonly token = randomBytes(32).toString('hex')
  private info: ApiInfo | undefined
  /** Open `watch` streams, ended when the daemon stops. */
  private readonly streams = new Set<ServerResponse>()
  private readonly ctx: MethodContext
  /** The web console, served from the same address. */
  readonly console: ConsoleServer

  constructor (ctx: MethodContext, private readonly options: ApiServerOptions) {
    this.ctx = { ...ctx, loginLink: () => this.console.loginLink() }
    this.console = new ConsoleServer(this.ctx, options.console)
    this.server = createServer((req, res) => { void this.handle(req, res) })
    this.server.keepAliveTimeout = 5000
  }

  /** Starts listening and writes the info file. */
  async start (): Promise<ApiInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const addr = this.server.address() as AddressInfo
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
    this.info = { url: `http://${host}:${addr.port}`, token: this.token, pid: process.pid, deviceId: this.ctx.node.deviceId }
    this.console.start(this.info.url)
    writeFileAtomic(this.options.infoPath, JSON.stringify(this.info, null, 2) + '\n', 0o600)
    return this.info
  }

  /** The listening URL. */
  get url (): string | undefined {
    return this.info?.url
  }

  private authorised (req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? ''
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '')
    const expected = Buffer.from(this.token)
    return given.length === expected.length && timingSafeEqual(given, expected)
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost')
      if (ConsoleServer.owns(url.pathname)) {
        await this.console.handle(req, res)
        return
      }
      const match = /^\/api\/v1\/([A-Za-z]+)$/.exec(url.pathname)
      if (req.method !== 'POST' || match === null) {
        sendJson(res, 404, { ok: false, error: { name: 'NotFound', message: 'expected POST /api/v1/<method>' } })
        return
      }
      if (!this.authorised(req)) {
        sendJson(res, 401, { ok: false, error: { name: 'Unauthorized', message: 'missing or wrong API token' } })
        return
      }
      const method = match[1] as string
      const params = await readJsonBody(req)
      if (method === 'watch') {
        this.stream(req, res, params)
        return
      }
      if (method === 'shutdown') {
        sendJson(res, 200, { ok: true, result: { stopping: true } })
        setImmediate(() => this.options.onShutdown())
        return
      }
      const result = await callMethod(this.ctx, method, params)
      sendJson(res, 200, { ok: true, result: result ?? null })
    } catch (err) {
      if (res.headersSent) res.destroy()
      else sendError(res, err)
    }
  }

  /**
   * A `watch` stream: newline-delimited JSON, one line per event, until the client goes away or
   * the daemon stops (the answer then ends).
   */
  private stream (req: IncomingMessage, res: ServerResponse, params: unknown): void {
    let stop: (() => void) | undefined
    try {
      stop = startWatch(this.ctx, params, line => res.write(JSON.stringify(line) + '\n'))
    } catch (err) {
      sendError(res, err)
      return
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' })
    this.streams.add(res)
    const end = (): void => {
      stop?.()
      stop = undefined
      this.streams.delete(res)
    }
    req.on('close', end)
    res.on('close', end)
  }

  /** Stops listening, ends idle connections and removes the info file. */
  async stop (): Promise<void> {
    try { unlinkSync(this.options.infoPath) } catch { /* already gone */ }
    this.console.stop()
    for (const res of this.streams) res.end()
    await new Promise<void>(resolve => {
      this.server.close(() => resolve())
      this.server.closeIdleConnections()
      // ended streams become idle only once flushed, and a browser may reconnect meanwhile
      setTimeout(() => this.server.closeAllConnections(), STOP_GRACE_MS).unref()
    })
  }
}
