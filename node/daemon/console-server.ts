/**
 * The web console, served by the daemon next to its local API (same 127.0.0.1 address).
 *
 * Access: `peakdb ui` asks the daemon (with the API token) for a one-time login link,
 * `/ui/#login=<code>`. The code sits in the fragment, which browsers never send to a server;
 * the page trades it (`POST /ui/api/login`) for a session token, keeps that in its tab's
 * `sessionStorage` and drops the code from the address bar. Every call then carries the token
 * in an `Authorization` header. No cookie is ever set: browsers send a host's cookies to all of
 * its ports, so a cookie would reach any other local server the browser visits, while storage
 * is per origin, port included.
 *
 * Without a token the console serves its static page (public code, no data) and answers 401
 * to everything else. A header-borne token cannot be forged cross-site (a page elsewhere has
 * no ambient credential to ride on); state-changing calls also need this Origin, and the Host
 * header must be the loopback address the daemon listens on (no DNS rebinding). Every answer
 * carries a strict Content-Security-Policy and is never framed.
 *
 * Routes (all under `/ui/`): the page and its `assets/`, `api/login`, `api/session`,
 * `api/logout`, `api/<method>` (the local API's methods the console uses), and `events`, a
 * Server-Sent Events stream of changes, peers, sync and indexing progress.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { extname, join, relative } from 'node:path'
import type { PeakNodeEvents } from '../peak-node.js'
import { LOCAL_PREFIX } from '../../storage/index.js'
import { InvalidOptionError } from '../errors.js'
import { packageRoot, packageVersion } from '../package-info.js'
import { callMethod, type MethodContext, type MethodName } from './rpc.js'
import { readJsonBody, sendError, sendJson } from './http.js'

/** How long a login link works, in ms. */
export const LOGIN_CODE_TTL_MS = 2 * 60_000
/** How long a session lasts without being used, in ms. */
export const SESSION_IDLE_MS = 12 * 3600_000
/** Sessions kept at most (the least recently used one goes first). */
const MAX_SESSIONS = 32
/** Login links outstanding at most (the oldest one goes first). */
const MAX_CODES = 16
/** Event streams per session at most (the oldest one is ended first). */
const MAX_STREAMS_PER_SESSION = 8
/** An event stream whose reader fell this far behind, in bytes, is ended (the page reconnects and reloads). */
const MAX_STREAM_BACKLOG = 1 << 20
/** Comment lines that keep an idle event stream open, and the check for expired sessions, in ms. */
const HEARTBEAT_MS = 20_000

/** The Content-Security-Policy of every console answer. */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store'
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon'
}

/** The local API's methods the console offers (a new method is not exposed until listed here). */
const CONSOLE_METHODS: ReadonlySet<MethodName> = new Set<MethodName>([
  'status', 'peers', 'sync', 'devices', 'revoke', 'invite', 'providers', 'indexStatus',
  'collections', 'find', 'count', 'get', 'put', 'delete', 'search', 'swarmSearch',
  'profileGet', 'profileSet',
  'memoryRecall', 'memoryList', 'memoryGet', 'memoryHistory', 'memoryRemember', 'memoryForget', 'memoryConsolidate'
])

interface Session {
  lastUsed: number
}

interface Asset {
  readonly type: string
  readonly body: Buffer
}

/** A one-time login link. */
export interface LoginLink {
  readonly url: string
  /** When the link stops working (ISO time). */
  readonly expires: string
}

/** Options of {@link ConsoleServer}. */
export interface ConsoleOptions {
  /** Folder of the built console (default: `dist/console` in the package). */
  readonly assetsDir?: string
  /** Clock, for tests of expiry. */
  readonly now?: () => number
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

function htmlPage (title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body><main><h1>${title}</h1><p>${body}</p></main></body></html>`
}

function unauthorized (res: ServerResponse): void {
  sendJson(res, 401, { ok: false, error: { name: 'Unauthorized', message: 'no console session: run `peakdb ui` for a login link' } }, SECURITY_HEADERS)
}

/** The web console of one daemon. */
export class ConsoleServer {
  /** sha-256 of each outstanding login code → expiry time. */
  private readonly codes = new Map<string, number>()
  /** sha-256 of each session token → session, least recently used first. */
  private readonly sessions = new Map<string, Session>()
  /** Open event streams → the session (its key) they belong to. */
  private readonly streams = new Map<ServerResponse, string>()
  private readonly now: () => number
  private readonly assetsDir: string | undefined
  private assets: Map<string, Asset> | undefined
  private origin: URL | undefined
  private heartbeat: NodeJS.Timeout | undefined
  private readonly unsubscribe: Array<() => void> = []

  constructor (private readonly ctx: MethodContext, options: ConsoleOptions = {}) {
    this.now = options.now ?? Date.now
    const root = packageRoot()
    this.assetsDir = options.assetsDir ?? (root !== undefined ? join(root, 'dist', 'console') : undefined)
  }

  /** Starts serving for the API's address (`http://127.0.0.1:<port>`) and follows the node's events. */
  start (origin: string): void {
    if (this.origin !== undefined) throw new InvalidOptionError('the console is already started')
    this.origin = new URL(origin)
    const node = this.ctx.node
    const on = <E extends keyof PeakNodeEvents>(event: E, listener: (...args: PeakNodeEvents[E]) => void): void => {
      node.on(event, listener as never)
      this.unsubscribe.push(() => node.off(event, listener as never))
    }
    on('change', ev => {
      if (this.streams.size === 0) return
      const changes = ev.changes.map(c => ({
        collection: userName(c.collection),
        id: c.id,
        type: c.before === null ? 'added' : c.after === null ? 'removed' : 'changed'
      }))
      this.publish('change', { origin: ev.origin, changes })
    })
    on('peer:connect', ev => this.publish('peer', { type: 'connect', device: ev.device, name: ev.name }))
    on('peer:disconnect', ev => this.publish('peer', { type: 'disconnect', device: ev.device }))
    on('sync:progress', ev => this.publish('sync', ev))
    on('index:progress', ev => this.publish('index', { ...ev, collection: userName(ev.collection) }))
    on('devices', () => this.publish('devices', {}))
    on('revoked', ev => this.publish('revoked', ev))
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS)
    this.heartbeat.unref()
  }

  /** Ends every event stream and forgets every session and login link. */
  stop (): void {
    for (const off of this.unsubscribe.splice(0)) off()
    clearInterval(this.heartbeat)
    for (const res of this.streams.keys()) res.end()
    this.streams.clear()
    this.sessions.clear()
    this.codes.clear()
    this.origin = undefined
  }

  /** Sends an event to every open console (e.g. `memory` after a background consolidation). */
  publish (event: string, data: unknown): void {
    if (this.streams.size === 0) return
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
    for (const res of this.streams.keys()) {
      // a reader that stopped reading is cut off rather than buffered for without bound
      if (res.writableLength > MAX_STREAM_BACKLOG) this.endStream(res)
      else res.write(frame)
    }
  }

  /** A new one-time login link, good for {@link LOGIN_CODE_TTL_MS}. */
  loginLink (): LoginLink {
    if (this.origin === undefined) throw new InvalidOptionError('the web console is not running')
    const now = this.now()
    for (const [hash, expires] of this.codes) if (expires <= now) this.codes.delete(hash)
    while (this.codes.size >= MAX_CODES) this.codes.delete(this.codes.keys().next().value as string)
    const code = randomBytes(32).toString('base64url')
    const expires = now + LOGIN_CODE_TTL_MS
    this.codes.set(sha256(code), expires)
    return { url: new URL(`/ui/#login=${code}`, this.origin).href, expires: new Date(expires).toISOString() }
  }

  /** True for the paths the console answers: `/` and everything under `/ui`. */
  static owns (pathname: string): boolean {
    return pathname === '/' || pathname === '/ui' || pathname.startsWith('/ui/')
  }

  /** Answers one request for a path {@link owns} accepts. */
  async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (!this.hostAllowed(req.headers.host)) {
      this.htmlAnswer(res, 421, 'Misdirected Request', 'This console answers only on its own loopback address.')
      return
    }
    if (url.pathname === '/' || url.pathname === '/ui') {
      res.writeHead(302, { ...SECURITY_HEADERS, location: '/ui/' })
      res.end()
      return
    }
    if (url.pathname.startsWith('/ui/api/')) {
      await this.api(req, res, url.pathname.slice('/ui/api/'.length))
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.htmlAnswer(res, 405, 'Method Not Allowed', 'Only GET here.')
      return
    }
    if (url.pathname === '/ui/events') {
      const key = this.session(req)
      if (key === undefined) unauthorized(res)
      else this.events(req, res, key)
      return
    }
    this.serveAsset(req, res, url.pathname === '/ui/' ? 'index.html' : url.pathname.slice('/ui/'.length))
  }

  /** Requests must name this server by its loopback address, never a name an attacker controls. */
  private hostAllowed (host: string | undefined): boolean {
    if (host === undefined || this.origin === undefined) return false
    const port = this.origin.port
    return host === `127.0.0.1:${port}` || host === `localhost:${port}` || host === `[::1]:${port}`
  }

  /** A call from a page of this console: its Origin is this server, and the browser says same-origin (when it says). */
  private sameOrigin (req: IncomingMessage): boolean {
    const origin = req.headers.origin
    const site = req.headers['sec-fetch-site']
    return origin !== undefined && origin.startsWith('http://') && this.hostAllowed(origin.slice('http://'.length)) &&
      (site === undefined || site === 'same-origin')
  }

  /** The key of the request's session (from `Authorization: Bearer <token>`), if it is live. */
  private session (req: IncomingMessage): string | undefined {
    const header = req.headers.authorization ?? ''
    if (!header.startsWith('Bearer ')) return undefined
    const key = sha256(header.slice('Bearer '.length))
    const s = this.sessions.get(key)
    if (s === undefined) return undefined
    if (this.now() - s.lastUsed > SESSION_IDLE_MS) {
      this.endSession(key)
      return undefined
    }
    s.lastUsed = this.now()
    // most recently used last: the first one is the one to drop
    this.sessions.delete(key)
    this.sessions.set(key, s)
    return key
  }

  /** Trades a login code for a session token. */
  private async login (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody(req) as { code?: unknown }
    const hash = sha256(typeof body.code === 'string' ? body.code : '')
    const expires = this.codes.get(hash)
    this.codes.delete(hash)
    if (expires === undefined || expires <= this.now()) {
      sendJson(res, 401, { ok: false, error: { name: 'LoginLinkExpired', message: 'this login link was used already or expired: run `peakdb ui` for a new one' } }, SECURITY_HEADERS)
      return
    }
    while (this.sessions.size >= MAX_SESSIONS) this.endSession(this.sessions.keys().next().value as string)
    const token = randomBytes(32).toString('base64url')
    this.sessions.set(sha256(token), { lastUsed: this.now() })
    sendJson(res, 200, { ok: true, result: { token, ...this.about() } }, SECURITY_HEADERS)
  }

  private about (): { deviceId: string, deviceName: string, version: string } {
    return { deviceId: this.ctx.node.deviceId, deviceName: this.ctx.node.deviceName, version: packageVersion() }
  }

  private async api (req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    try {
      if (req.method !== 'POST' && !(req.method === 'GET' && method === 'session')) {
        sendJson(res, 405, { ok: false, error: { name: 'MethodNotAllowed', message: 'console API calls are POSTs' } }, SECURITY_HEADERS)
        return
      }
      if (req.method === 'POST' && !this.sameOrigin(req)) {
        sendJson(res, 403, { ok: false, error: { name: 'Forbidden', message: 'cross-site request refused' } }, SECURITY_HEADERS)
        return
      }
      if (method === 'login') {
        await this.login(req, res)
        return
      }
      const key = this.session(req)
      if (key === undefined) {
        unauthorized(res)
        return
      }
      if (method === 'session') {
        sendJson(res, 200, { ok: true, result: this.about() }, SECURITY_HEADERS)
        return
      }
      if (method === 'logout') {
        this.endSession(key)
        sendJson(res, 200, { ok: true, result: { signedOut: true } }, SECURITY_HEADERS)
        return
      }
      if (!CONSOLE_METHODS.has(method as MethodName)) throw new InvalidOptionError(`unknown console method ${JSON.stringify(method.slice(0, 64))}`)
      const result = await callMethod(this.ctx, method, await readJsonBody(req))
      sendJson(res, 200, { ok: true, result: result ?? null }, SECURITY_HEADERS)
    } catch (err) {
      sendError(res, err, SECURITY_HEADERS)
    }
  }

  private events (req: IncomingMessage, res: ServerResponse, key: string): void {
    const mine = [...this.streams].filter(([, k]) => k === key).map(([r]) => r)
    for (const old of mine.slice(0, Math.max(0, mine.length - MAX_STREAMS_PER_SESSION + 1))) this.endStream(old)
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8' })
    res.write(': PeakDB events\n\n')
    this.streams.set(res, key)
    const end = (): void => { this.streams.delete(res) }
    req.on('close', end)
    res.on('close', end)
  }

  private endStream (res: ServerResponse): void {
    this.streams.delete(res)
    res.end()
  }

  /** Forgets a session and ends its event streams. */
  private endSession (key: string): void {
    this.sessions.delete(key)
    for (const [res, k] of this.streams) if (k === key) this.endStream(res)
  }

  /** Keeps idle streams open, and ends the sessions (and streams) left idle too long. */
  private beat (): void {
    const now = this.now()
    for (const [key, s] of this.sessions) if (now - s.lastUsed > SESSION_IDLE_MS) this.endSession(key)
    for (const res of this.streams.keys()) res.write(': ping\n\n')
  }

  private htmlAnswer (res: ServerResponse, status: number, title: string, body: string): void {
    const page = htmlPage(title, body)
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': String(Buffer.byteLength(page)) })
    res.end(page)
  }

  /** The page and its assets: public code, no data (the data needs a session). */
  private serveAsset (req: IncomingMessage, res: ServerResponse, path: string): void {
    const assets = this.loadAssets()
    const asset = assets.get(path)
    if (asset === undefined) {
      if (assets.size === 0) this.htmlAnswer(res, 503, 'Console not built', 'Run <code>npm run build</code> in the PeakDB folder.')
      else this.htmlAnswer(res, 404, 'Not Found', 'No such page.')
      return
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': asset.type, 'content-length': String(asset.body.length) })
    res.end(req.method === 'HEAD' ? undefined : asset.body)
  }

  /** The built console's files, read once: only these are ever served. */
  private loadAssets (): Map<string, Asset> {
    if (this.assets !== undefined) return this.assets
    const assets = new Map<string, Asset>()
    const walk = (dir: string): void => {
      let names: string[]
      try { names = readdirSync(dir) } catch { return }
      for (const name of names) {
        const full = join(dir, name)
        if (statSync(full).isDirectory()) walk(full)
        else {
          const type = CONTENT_TYPES[extname(name)]
          if (type !== undefined) assets.set(relative(this.assetsDir as string, full).split('\\').join('/'), { type, body: readFileSync(full) })
        }
      }
    }
    if (this.assetsDir !== undefined) walk(this.assetsDir)
    // a console not built yet is looked for again on the next request
    if (assets.size > 0) this.assets = assets
    return assets
  }
}

/** A collection's name as users know it (device-local ones are stored with a prefix). */
function userName (stored: string): string {
  return stored.startsWith(LOCAL_PREFIX) ? stored.slice(LOCAL_PREFIX.length) : stored
}
