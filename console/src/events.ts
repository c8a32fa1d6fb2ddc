/**
 * The live feed of the daemon (`GET /ui/events`, Server-Sent Events), fanned out to subscribers
 * by event name, with the connection's state for the header's indicator.
 */
import type { ServerEventName, ServerEvents } from './api-types.js'

/** State of the live connection. */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'closed'

/** Every event name the server sends. */
const EVENT_NAMES: readonly ServerEventName[] = ['change', 'peer', 'sync', 'index', 'devices', 'revoked', 'memory']

/** Delays before reopening a connection the browser gave up on, ms. */
const RETRY_DELAYS = [1000, 2000, 5000, 10_000]

type Listener<K extends ServerEventName> = (data: ServerEvents[K]) => void

/** Options of {@link EventHub}. */
export interface EventHubOptions {
  /** The stream's URL (default `/ui/events`). */
  readonly url?: string
  /**
   * Called when the browser gives up on the stream (it does on an HTTP error such as 401): a
   * chance to find out why before the hub tries again.
   */
  readonly onGiveUp?: () => void
}

/**
 * One EventSource shared by the whole console.
 *
 * @example
 * ```ts
 * const hub = new EventHub()
 * hub.start()
 * const off = hub.subscribe('change', ev => console.log(ev.changes))
 * off()
 * ```
 */
export class EventHub {
  private source: EventSource | undefined
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
    if (this.source !== undefined) return
    this.setState(this.failures === 0 ? 'connecting' : 'reconnecting')
    const source = new EventSource(this.url)
    this.source = source
    source.addEventListener('open', () => {
      this.failures = 0
      this.setState('live')
    })
    source.addEventListener('error', () => {
      if (source.readyState !== EventSource.CLOSED) {
        // the browser reconnects by itself
        this.setState('reconnecting')
        return
      }
      this.source = undefined
      this.setState('reconnecting')
      this.options.onGiveUp?.()
      const delay = RETRY_DELAYS[Math.min(this.failures, RETRY_DELAYS.length - 1)]
      this.failures++
      this.retry = setTimeout(() => {
        this.retry = undefined
        if (this.current !== 'closed') this.start()
      }, delay)
    })
    for (const name of EVENT_NAMES) {
      source.addEventListener(name, ev => { this.dispatch(name, (ev as MessageEvent<string>).data) })
    }
  }

  /** Closes the stream for good (until {@link start}). */
  stop (): void {
    clearTimeout(this.retry)
    this.retry = undefined
    this.source?.close()
    this.source = undefined
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
