/**
 * The live feed of the daemon (`GET /ui/events`, Server-Sent Events), fanned out to subscribers
 * by event name, with the connection's state for the header's indicator. Read with `fetch`
 * rather than `EventSource`, which cannot send the session's `Authorization` header.
 */
import type { ServerEventName, ServerEvents } from './api-types.js'

/** State of the live connection. */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'closed'

/** Every event name the server sends. */
const EVENT_NAMES: readonly ServerEventName[] = ['change', 'peer', 'sync', 'index', 'devices', 'revoked', 'memory']

/** Delays before reopening a stream that ended or failed, ms. */
const RETRY_DELAYS = [1000, 2000, 5000, 10_000]

type Listener<K extends ServerEventName> = (data: ServerEvents[K]) => void

/** Options of {@link EventHub}. */
export interface EventHubOptions {
  /** The stream's URL (default `/ui/events`). */
  readonly url?: string
  /** Headers of each request for the stream (the session's `Authorization`). */
  readonly headers?: () => Record<string, string>
  /**
   * Called when the daemon refuses the stream (HTTP 401): a chance to find out whether the
   * session is gone before the hub tries again.
   */
  readonly onUnauthorized?: () => void
}

/**
 * One event stream shared by the whole console, reopened after a pause when it ends or fails.
 *
 * @example
 * ```ts
 * const hub = new EventHub({ headers: () => api.authorization() })
 * hub.start()
 * const off = hub.subscribe('change', ev => console.log(ev.changes))
 * off()
 * ```
 */
export class EventHub {
  private controller: AbortController | undefined
  private retry: ReturnType<typeof setTimeout> | undefined
  private failures = 0
  private current: ConnectionState = 'closed'
  private readonly listeners = new Map<ServerEventName, Set<(data: never) => void>>()
  private readonly stateListeners = new Set<(state: ConnectionState) => void>()
  private readonly url: string

  constructor (private readonly options: EventHubOptions = {}) {
    this.url = options.url ?? '/ui/events'
  }

  /** The connection's state now. */
  get state (): ConnectionState {
    return this.current
  }

  /** Opens the stream (again after {@link stop}). */
  start (): void {
    if (this.controller !== undefined) return
    this.setState(this.failures === 0 ? 'connecting' : 'reconnecting')
    const controller = new AbortController()
    this.controller = controller
    void this.read(controller.signal).then(() => {
      if (controller.signal.aborted) return
      this.controller = undefined
      this.setState('reconnecting')
      const delay = RETRY_DELAYS[Math.min(this.failures, RETRY_DELAYS.length - 1)]
      this.failures++
      this.retry = setTimeout(() => {
        this.retry = undefined
        if (this.current !== 'closed') this.start()
      }, delay)
    })
  }

  /** Closes the stream for good (until {@link start}). */
  stop (): void {
    clearTimeout(this.retry)
    this.retry = undefined
    this.controller?.abort()
    this.controller = undefined
    this.failures = 0
    this.setState('closed')
  }

  /** Calls `fn` with the payload of every event named `name`. Returns the unsubscribe function. */
  subscribe<K extends ServerEventName> (name: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(name)
    if (set === undefined) this.listeners.set(name, set = new Set())
    set.add(fn)
    return () => { set.delete(fn) }
  }

  /** Calls `fn` on every change of the connection's state. Returns the unsubscribe function. */
  onState (fn: (state: ConnectionState) => void): () => void {
    this.stateListeners.add(fn)
    return () => { this.stateListeners.delete(fn) }
  }

  /** Reads one connection of the stream until it ends, fails or is aborted. */
  private async read (signal: AbortSignal): Promise<void> {
    try {
      const res = await fetch(this.url, {
        headers: { accept: 'text/event-stream', ...this.options.headers?.() },
        credentials: 'omit',
        cache: 'no-store',
        signal
      })
      if (res.status === 401) this.options.onUnauthorized?.()
      if (!res.ok || res.body === null) return
      this.failures = 0
      this.setState('live')
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        buffer += value
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          this.frame(buffer.slice(0, end))
          buffer = buffer.slice(end + 2)
        }
      }
    } catch {
      // cut off or unreachable: start() tries again unless this was a stop
    }
  }

  /** One event of the stream (`event:` and `data:` lines; `:` lines are comments). */
  private frame (text: string): void {
    let name = ''
    const data: string[] = []
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'event') name = value
      else if (field === 'data') data.push(value)
    }
    if (data.length > 0 && (EVENT_NAMES as readonly string[]).includes(name)) this.dispatch(name as ServerEventName, data.join('\n'))
  }

  private dispatch (name: ServerEventName, raw: string): void {
    const set = this.listeners.get(name)
    if (set === undefined || set.size === 0) return
    let data: unknown
    try {
      data = raw === '' ? {} : JSON.parse(raw)
    } catch {
      // a malformed event carries nothing a page could use; the next refresh catches up
      return
    }
    for (const fn of [...set]) (fn as (data: unknown) => void)(data)
  }

  private setState (state: ConnectionState): void {
    if (state === this.current) return
    this.current = state
    for (const fn of [...this.stateListeners]) fn(state)
  }
}
