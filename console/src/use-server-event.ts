/**
 * Hooks onto the live event hub: run code on a server event, refresh on a burst of events
 * (throttled or debounced), and follow the connection's state.
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import type { ServerEventName, ServerEvents } from './api-types.js'
import { useApp } from './app-context.js'
import type { ConnectionState } from './events.js'
import { debounce, throttle } from './timing.js'

/**
 * Calls `handler` with the payload of every server event named `name` while the component is
 * mounted.
 *
 * @example
 * ```ts
 * useServerEvent('sync', ev => setProgress(p => ({ ...p, [ev.peer]: ev })))
 * ```
 */
export function useServerEvent<K extends ServerEventName> (name: K, handler: (data: ServerEvents[K]) => void): void {
  const { events } = useApp()
  const latest = useRef(handler)
  latest.current = handler
  useEffect(() => events.subscribe(name, data => { latest.current(data) }), [events, name])
}

/** How often a refresh may run. */
export type RefreshRate =
  | { readonly throttleMs: number }
  | { readonly debounceMs: number }

/**
 * Calls `refresh` on server events, at most once per `throttleMs` or once `debounceMs` after a
 * burst. `accept` picks the events that matter (default: all of them).
 *
 * @example
 * ```ts
 * useRefreshOn(['change'], status.reload, { throttleMs: 1000 })
 * ```
 */
export function useRefreshOn<K extends ServerEventName> (
  names: readonly K[],
  refresh: () => void,
  rate: RefreshRate = { throttleMs: 0 },
  accept?: (name: K, data: ServerEvents[K]) => boolean
): void {
  const { events } = useApp()
  const latest = useRef({ refresh, accept })
  latest.current = { refresh, accept }
  const throttleMs = 'throttleMs' in rate ? rate.throttleMs : undefined
  const debounceMs = 'debounceMs' in rate ? rate.debounceMs : undefined
  const key = names.join(',')
  useEffect(() => {
    const run = (): void => { latest.current.refresh() }
    const limited = debounceMs !== undefined ? debounce(run, debounceMs) : throttle(run, throttleMs ?? 0)
    const offs = (key.split(',') as K[]).map(name => events.subscribe(name, data => {
      const accept = latest.current.accept
      if (accept === undefined || accept(name, data)) limited()
    }))
    return () => {
      for (const off of offs) off()
      limited.cancel()
    }
  }, [events, key, throttleMs, debounceMs])
}

/** The live connection's state, following its changes. */
export function useConnectionState (): ConnectionState {
  const { events } = useApp()
  const [state, setState] = useState(events.state)
  useEffect(() => {
    setState(events.state)
    return events.onState(setState)
  }, [events])
  return state
}
