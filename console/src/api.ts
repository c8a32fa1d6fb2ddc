/**
 * The console's client of the daemon's API: the session (`GET /ui/api/session`), method calls
 * (`POST /ui/api/<method>` with the CSRF header) and sign-out. A 401 means the session is gone;
 * listeners registered with `onSessionEnd` hear of it once, as they hear of a sign-out.
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

/** Why a session ended: it expired (or was ended elsewhere), or the user signed out here. */
export type SessionEnd = 'expired' | 'signed-out'

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

  /** @param base where the console's endpoints live (`/ui`). */
  constructor (private readonly base = '/ui') {}

  /** The session (fetched once, and again after a failure). */
  async session (options: CallOptions = {}): Promise<SessionInfo> {
    if (this.sessionInfo === undefined) {
      const pending = this.request<SessionInfo>('GET', '/api/session', undefined, undefined, options)
      this.sessionInfo = pending
      pending.catch(() => { if (this.sessionInfo === pending) this.sessionInfo = undefined })
    }
    return await this.sessionInfo
  }

  /** Calls a method of the local API; fails with an {@link ApiError}. */
  async call<M extends MethodName> (method: M, params: ParamsOf<M>, options: CallOptions = {}): Promise<ResultOf<M>> {
    const { csrf } = await this.session(options)
    return await this.request<ResultOf<M>>('POST', `/api/${method}`, params, csrf, options)
  }

  /** Ends the session on the server; the session's end listeners hear `signed-out`. */
  async logout (): Promise<void> {
    const { csrf } = await this.session()
    await this.request<unknown>('POST', '/api/logout', {}, csrf, {})
    this.end('signed-out')
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

  private async request<T> (method: 'GET' | 'POST', path: string, body: unknown, csrf: string | undefined, options: CallOptions): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (csrf !== undefined) headers['x-peakdb-csrf'] = csrf
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(this.base + path, {
        method,
        headers,
        credentials: 'same-origin',
        cache: 'no-store',
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {})
      })
    } catch (err) {
      if (options.signal?.aborted === true) throw err
      throw new ApiError(NETWORK_ERROR, 'cannot reach the PeakDB daemon: is it still running?', 0, { cause: err })
    }
    if (res.status === 401) {
      this.end('expired')
      throw new ApiError(SESSION_EXPIRED, 'the session expired', 401)
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
    for (const fn of [...this.endListeners]) fn(reason)
  }
}
