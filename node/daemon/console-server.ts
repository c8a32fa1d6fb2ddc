/**
 * The web console, served by the daemon next to its local API (same 127.0.0.1 address).
 *
 * Access: `peakdb ui` asks the daemon (with the API token) for a one-time login link. Opening it
 * trades the code for a session cookie (HttpOnly, SameSite=Strict, named after the port, since
 * browsers share cookies between ports of one host) and redirects to `/ui/`, so neither the API
 * token nor a usable code stays in the browser's history. Without a session every console URL
 * answers 401 and nothing else.
 *
 * Defences: the Host header must name this loopback address (DNS rebinding); state-changing
 * requests are POSTs that must carry the session's CSRF token in `x-peakdb-csrf` and a matching
 * Origin; every answer carries a strict Content-Security-Policy (no inline script or style,
 * nothing from elsewhere) and is never framed.
 *
 * Routes (all under `/ui/`): `login?code=`, the page and its `assets/`, `api/session` (the CSRF
 * token), `api/<method>` (the local API's methods), `api/logout`, and `events`, a Server-Sent
 * Events stream of changes, peers, sync and indexing progress.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { extname, join, relative } from 'node:path'
import type { PeakNodeEvents } from '../peak-node.js'
import { LOCAL_PREFIX } from '../../storage/index.js'
import { packageRoot, packageVersion } from '../package-info.js'
import { callMethod, type MethodContext } from './rpc.js'
import { readJsonBody, sendError, sendJson } from './http.js'

/** How long a login link works, in ms. */
export const LOGIN_CODE_TTL_MS = 2 * 60_000
/** How long a session lasts without being used, in ms. */
export const SESSION_IDLE_MS = 12 * 3600_000
/** Sessions kept at most (the least recently used one goes first). */
const MAX_SESSIONS = 32
/** Login links outstanding at most (the oldest one goes first). */
const MAX_CODES = 16
/** Comment lines that keep an idle event stream open through proxies and sleep, in ms. */
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
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8'
}

/** Methods of the local API the console does not offer. */
const NOT_FROM_CONSOLE = new Set(['uiLogin'])

interface Session {
  readonly csrf: string
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

function htmlPage (title: string, text: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body><main><h1>${title}</h1><p>${text}</p></main></body></html>`
}

/** The web console of one daemon. */
export class ConsoleServer {
  /** sha-256 of each outstanding login code → expiry time. */
  private readonly codes = new Map<string, number>()
  /** sha-256 of each session id → session. */
  private readonly sessions = new Map<string, Session>()
  /** Open event streams. */
  private readonly streams = new Set<ServerResponse>()
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
    this.origin = new URL(origin)
    const node = this.ctx.node
    const on = <E extends keyof PeakNodeEvents>(event: E, listener: (...args: PeakNodeEvents[E]) => void): void => {
      node.on(event, listener as never)
      this.unsubscribe.push(() => node.off(event, listener as never))
    }
    on('change', ev => {
      const changes = ev.changes.map(c => ({
        collection: c.collection.startsWith(LOCAL_PREFIX) ? c.collection.slice(LOCAL_PREFIX.length) : c.collection,
        id: c.id,
        type: c.before === null ? 'added' : c.after === null ? 'removed' : 'changed'
      }))
      this.publish('change', { origin: ev.origin, changes })
    })
    on('peer:connect', ev => this.publish('peer', { type: 'connect', device: ev.device, name: ev.name }))
    on('peer:disconnect', ev => this.publish('peer', { type: 'disconnect', device: ev.device }))
    on('sync:progress', ev => this.publish('sync', ev))
    on('index:progress', ev => this.publish('index', ev))
    on('devices', () => this.publish('devices', {}))
    on('revoked', ev => this.publish('revoked', ev))
    this.heartbeat = setInterval(() => { for (const res of this.streams) res.write(': ping\n\n') }, HEARTBEAT_MS)
    this.heartbeat.unref()
  }

  /** Ends every event stream and forgets every session. */
  stop (): void {
    for (const off of this.unsubscribe.splice(0)) off()
    clearInterval(this.heartbeat)
    for (const res of this.streams) res.end()
    this.streams.clear()
    this.sessions.clear()
    this.codes.clear()
  }

  /** Sends an event to every open console (e.g. `memory` after a background consolidation). */
  publish (event: string, data: unknown): void {
    if (this.streams.size === 0) return
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
    for (const res of this.streams) res.write(frame)
  }

  /** A new one-time login link, good for {@link LOGIN_CODE_TTL_MS}. */
  loginLink (): LoginLink {
    if (this.origin === undefined) throw new Error('the console is not started')
    const now = this.now()
    for (const [hash, expires] of this.codes) if (expires <= now) this.codes.delete(hash)
    while (this.codes.size >= MAX_CODES) this.codes.delete(this.codes.keys().next().value as string)
    const code = randomBytes(32).toString('base64url')
    const expires = now + LOGIN_CODE_TTL_MS
    this.codes.set(sha256(code), expires)
    return { url: new URL(`/ui/login?code=${code}`, this.origin).href, expires: new Date(expires).toISOString() }
  }

  /** True for the paths the console answers: `/` and everything under `/ui`. */
  static owns (pathname: string): boolean {
    return pathname === '/' || pathname === '/ui' || pathname.startsWith('/ui/')
  }

  /** Answers one request for a path {@link owns} accepts. */
  async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (!this.hostAllowed(req.headers.host)) {
      this.text(res, 421, 'Misdirected Request', 'This console answers only on its own loopback address.')
      return
    }
    if (url.pathname === '/' || url.pathname === '/ui') {
      res.writeHead(302, { ...SECURITY_HEADERS, location: '/ui/' })
      res.end()
      return
    }
    if (url.pathname === '/ui/login') {
      this.login(req, res, url.searchParams.get('code') ?? '')
      return
    }
    const session = this.session(req)
    if (session === undefined) {
      if (url.pathname.startsWith('/ui/api/')) sendJson(res, 401, { ok: false, error: { name: 'Unauthorized', message: 'no console session: run `peakdb ui` for a login link' } }, SECURITY_HEADERS)
      else this.text(res, 401, 'Sign in to PeakDB', 'Run <code>peakdb ui</code> on this machine and open the link it prints.')
      return
    }
    if (url.pathname.startsWith('/ui/api/')) {
      await this.api(req, res, session, url.pathname.slice('/ui/api/'.length))
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.text(res, 405, 'Method Not Allowed', 'Only GET here.')
      return
    }
    if (url.pathname === '/ui/events') {
      this.events(req, res)
      return
    }
    const path = url.pathname === '/ui/' ? 'index.html' : url.pathname.slice('/ui/'.length)
    const asset = this.asset(path)
    if (asset === undefined) {
      if (this.loadAssets().size === 0) this.text(res, 503, 'Console not built', 'Run <code>npm run build</code> in the PeakDB folder.')
      else this.text(res, 404, 'Not Found', 'No such page.')
      return
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': asset.type, 'content-length': String(asset.body.length) })
    res.end(req.method === 'HEAD' ? undefined : asset.body)
  }

  /** Requests must name this server by its loopback address, never a name an attacker controls. */
  private hostAllowed (host: string | undefined): boolean {
    if (host === undefined || this.origin === undefined) return false
    const port = this.origin.port
    return host === `127.0.0.1:${port}` || host === `localhost:${port}` || host === `[::1]:${port}`
  }

  private originAllowed (origin: string | undefined): boolean {
    return origin !== undefined && origin.startsWith('http://') && this.hostAllowed(origin.slice('http://'.length))
  }

  /** The cookie's name: per port, since a browser shares one host's cookies across ports. */
  private get cookieName (): string {
    return `peakdb_ui_${this.origin?.port ?? '0'}`
  }

  private login (req: IncomingMessage, res: ServerResponse, code: string): void {
    const site = req.headers['sec-fetch-site']
    const hash = sha256(code)
    const expires = this.codes.get(hash)
    this.codes.delete(hash)
    if (expires === undefined || expires <= this.now() || (site !== undefined && site !== 'none' && site !== 'same-origin')) {
      this.text(res, 401, 'Link expired', 'This login link was used already, expired, or came from another site. Run <code>peakdb ui</code> for a new one.')
      return
    }
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string)
    const sid = randomBytes(32).toString('base64url')
    this.sessions.set(sha256(sid), { csrf: randomBytes(32).toString('base64url'), lastUsed: this.now() })
    res.writeHead(303, {
      ...SECURITY_HEADERS,
      location: '/ui/',
      'set-cookie': `${this.cookieName}=${sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_IDLE_MS / 1000}`
    })
    res.end()
  }

  private session (req: IncomingMessage): Session | undefined {
    const cookies = req.headers.cookie ?? ''
    const prefix = `${this.cookieName}=`
    const sid = cookies.split(';').map(c => c.trim()).find(c => c.startsWith(prefix))?.slice(prefix.length)
    if (sid === undefined || sid === '') return undefined
    const key = sha256(sid)
    const s = this.sessions.get(key)
    if (s === undefined) return undefined
    if (this.now() - s.lastUsed > SESSION_IDLE_MS) {
      this.sessions.delete(key)
      return undefined
    }
    s.lastUsed = this.now()
    // most recently used last: the first one is the one to drop
    this.sessions.delete(key)
    this.sessions.set(key, s)
    return s
  }

  private async api (req: IncomingMessage, res: ServerResponse, session: Session, method: string): Promise<void> {
    if (method === 'session' && req.method === 'GET') {
      const node = this.ctx.node
      sendJson(res, 200, { ok: true, result: { csrf: session.csrf, deviceId: node.deviceId, deviceName: node.deviceName, version: packageVersion() } }, SECURITY_HEADERS)
      return
    }
    if (req.method !== 'POST') {
      sendJson(res, 405, { ok: false, error: { name: 'MethodNotAllowed', message: 'console API calls are POSTs' } }, SECURITY_HEADERS)
      return
    }
    const site = req.headers['sec-fetch-site']
    if (req.headers['x-peakdb-csrf'] !== session.csrf || !this.originAllowed(req.headers.origin) || (site !== undefined && site !== 'same-origin')) {
      sendJson(res, 403, { ok: false, error: { name: 'Forbidden', message: 'cross-site request refused' } }, SECURITY_HEADERS)
      return
    }
    if (method === 'logout') {
      for (const [key, s] of this.sessions) if (s === session) this.sessions.delete(key)
      sendJson(res, 200, { ok: true, result: { signedOut: true } }, { ...SECURITY_HEADERS, 'set-cookie': `${this.cookieName}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0` })
      return
    }
    try {
      if (NOT_FROM_CONSOLE.has(method)) throw Object.assign(new Error(`${method} is not offered to the console`), { name: 'InvalidOptionError' })
      const result = await callMethod(this.ctx, method, await readJsonBody(req))
      sendJson(res, 200, { ok: true, result: result ?? null }, SECURITY_HEADERS)
    } catch (err) {
      sendError(res, err, SECURITY_HEADERS)
    }
  }

  private events (req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' })
    res.write('retry: 2000\n\nevent: ready\ndata: {}\n\n')
    this.streams.add(res)
    const end = (): void => { this.streams.delete(res) }
    req.on('close', end)
    res.on('close', end)
  }

  private text (res: ServerResponse, status: number, title: string, html: string): void {
    const body = htmlPage(title, html)
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) })
    res.end(body)
  }

  private asset (path: string): Asset | undefined {
    return this.loadAssets().get(path)
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
