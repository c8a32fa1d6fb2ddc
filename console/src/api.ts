/**
 * The console's client of the daemon's API: signing in with the one-time code of a login link
 * (`POST /ui/api/login`), the session (`GET /ui/api/session`), method calls
 * (`POST /ui/api/<method>`) and sign-out. The session token lives in this tab's sessionStorage
 * (per origin, port included; gone with the tab) and goes in an `Authorization` header, never
 * in a cookie. A 401 means the session is gone; listeners registered with `onSessionEnd` hear
 * of it once, as they hear of a sign-out.
 */
import type { MethodName, ParamsOf, ResultOf, SessionInfo } from './api-types.js'

/** Name of the error a call fails with when the session is gone (HTTP 401). */
export const SESSION_EXPIRED = 'SessionExpiredError'

/** Name of the error a call fails with when the daemon cannot be reached. */
export const NETWORK_ERROR = 'NetworkError'

/**
 * A failed call: `name` and `message` are the server's (`InvalidDocumentError`, …), `status`
 * the HTTP status (0 when the daemon could not be reached).
 */
export class ApiError extends Error {
  readonly status: number

  constructor (name: string, message: string, status: number, options?: ErrorOptions) {
    super(message, options)
    this.name = name
    this.status = status
  }
}

/**
 * Why there is no session: there never was one in this tab, the login link was used already or
 * expired, the session expired (or was ended elsewhere), or the user signed out here.
 */
export type SessionEnd = 'none' | 'link-used' | 'expired' | 'signed-out'

/** Where this tab keeps its session token. */
const TOKEN_KEY = 'peakdb.console.token'

/** What signing in answers: the token and who the console talks to. */
interface LoginResult extends SessionInfo {
  readonly token: string
}

/** Options of every call. */
export interface CallOptions {
  readonly signal?: AbortSignal
}

/** The answer envelope of every endpoint. */
type Envelope<T> = { ok: true, result: T } | { ok: false, error?: { name?: string, message?: string } }

/**
 * Talks to the daemon that served the page (same origin).
 *
 * @example
 * ```ts
 * const api = new ApiClient()
 * const docs = await api.call('find', { collection: 'notes', query: { limit: 25 } })
 * ```
 */
export class ApiClient {
  private sessionInfo: Promise<SessionInfo> | undefined
  private readonly endListeners = new Set<(reason: SessionEnd) => void>()
  private ended: SessionEnd | undefined
  private token: string | undefined
  private loginCode: string | undefined

  /**
   * @param base where the console's endpoints live (`/ui`).
   * @param options.loginCode the code of the login link the page was opened with, if any.
   */
  constructor (private readonly base = '/ui', options: { readonly loginCode?: string } = {}) {
    this.loginCode = options.loginCode
    this.token = sessionStorage.getItem(TOKEN_KEY) ?? undefined
  }

  /** The session: signs in first when the page came with a login code (once; again after a failure). */
  async session (options: CallOptions = {}): Promise<SessionInfo> {
    if (this.sessionInfo === undefined) {
      const pending = this.loginCode !== undefined ? this.login(this.loginCode, options) : this.request<SessionInfo>('GET', '/api/session', undefined, options)
      this.sessionInfo = pending
      pending.catch(() => { if (this.sessionInfo === pending) this.sessionInfo = undefined })
    }
    return await this.sessionInfo
  }

  /** The header that proves the session, for requests made outside {@link call} (the event stream). */
  authorization (): Record<string, string> {
    return this.token !== undefined ? { authorization: `Bearer ${this.token}` } : {}
  }

  /** Calls a method of the local API; fails with an {@link ApiError}. */
  async call<M extends MethodName> (method: M, params: ParamsOf<M>, options: CallOptions = {}): Promise<ResultOf<M>> {
    await this.session(options)
    return await this.request<ResultOf<M>>('POST', `/api/${method}`, params, options)
  }

  /** Ends the session on the server; the session's end listeners hear `signed-out`. */
  async logout (): Promise<void> {
    await this.session()
    await this.request<unknown>('POST', '/api/logout', {}, {})
    this.end('signed-out')
  }

  private async login (code: string, options: CallOptions): Promise<SessionInfo> {
    this.loginCode = undefined
    this.token = undefined
    sessionStorage.removeItem(TOKEN_KEY)
    let result: LoginResult
    try {
      result = await this.request<LoginResult>('POST', '/api/login', { code }, options)
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this.end('link-used')
      throw err
    }
    this.token = result.token
    sessionStorage.setItem(TOKEN_KEY, result.token)
    return { deviceId: result.deviceId, deviceName: result.deviceName, version: result.version }
  }

  /** Why the session ended, once it has. */
  get sessionEnd (): SessionEnd | undefined {
    return this.ended
  }

  /**
   * Calls `fn` once when the session ends: it turned out to be gone (a 401), or the user signed
   * out. Returns the unsubscribe function.
   */
  onSessionEnd (fn: (reason: SessionEnd) => void): () => void {
    this.endListeners.add(fn)
    return () => { this.endListeners.delete(fn) }
  }

  private async request<T> (method: 'GET' | 'POST', path: string, body: unknown, options: CallOptions): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json', ...this.authorization() }
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(this.base + path, {
        method,
        headers,
        credentials: 'omit',
        cache: 'no-store',
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {})
      })
    } catch (err) {
      if (options.signal?.aborted === true) throw err
      throw new ApiError(NETWORK_ERROR, 'cannot reach the PeakDB daemon: is it still running?', 0, { cause: err })
    }
    if (res.status === 401 && path !== '/api/login') {
      this.end(this.token === undefined ? 'none' : 'expired')
      throw new ApiError(SESSION_EXPIRED, 'no session', 401)
    }
    let envelope: Envelope<T>
    try {
      envelope = await res.json() as Envelope<T>
    } catch (err) {
      throw new ApiError('HttpError', `the daemon answered HTTP ${res.status} without JSON`, res.status, { cause: err })
    }
    if (envelope.ok) return envelope.result
    throw new ApiError(envelope.error?.name ?? 'Error', envelope.error?.message ?? `HTTP ${res.status}`, res.status)
  }

  private end (reason: SessionEnd): void {
    if (this.ended !== undefined) return
    this.ended = reason
    this.token = undefined
    sessionStorage.removeItem(TOKEN_KEY)
    for (const fn of [...this.endListeners]) fn(reason)
  }
}
