/**
 * `useResource`: data loaded from the API for a component, with its error, a loading flag and
 * `reload` (for live refreshes). The previous data stays on screen while a reload runs.
 */
import { useCallback, useEffect, useRef, useState, type Inputs } from 'preact/hooks'

/** Loaded data and its state. */
export interface Resource<T> {
  /** The last data loaded (kept while reloading and after a failed reload). */
  readonly data: T | undefined
  /** Why the last load failed. */
  readonly error: Error | undefined
  readonly loading: boolean
  /**
   * Loads again. Reloads asked for while a load runs collapse into one more load after it, so
   * a stream of events never starves the page of answers.
   */
  readonly reload: () => void
}

/**
 * Runs `load` when the component mounts, when `deps` change, and on `reload()`. A change of
 * `deps` (or the component going away) aborts the load running and ignores its answer.
 *
 * @example
 * ```ts
 * const devices = useResource(signal => api.call('devices', {}, { signal }), [])
 * ```
 */
export function useResource<T> (load: (signal: AbortSignal) => Promise<T>, deps: Inputs): Resource<T> {
  const [state, setState] = useState<{ data: T | undefined, error: Error | undefined, loading: boolean }>({ data: undefined, error: undefined, loading: true })
  const reloadRef = useRef<() => void>(() => {})
  const latestLoad = useRef(load)
  latestLoad.current = load

  useEffect(() => {
    const controller = new AbortController()
    const { signal } = controller
    let running = false
    let again = false
    const run = (): void => {
      running = true
      setState(s => (s.loading ? s : { ...s, loading: true }))
      latestLoad.current(signal).then(
        data => { if (!signal.aborted) setState({ data, error: undefined, loading: false }) },
        (err: unknown) => { if (!signal.aborted) setState(s => ({ data: s.data, error: asError(err), loading: false })) }
      ).finally(() => {
        running = false
        if (again && !signal.aborted) {
          again = false
          run()
        }
      })
    }
    reloadRef.current = () => {
      if (signal.aborted) return
      if (running) again = true
      else run()
    }
    run()
    return () => { controller.abort() }
  }, deps)

  const reload = useCallback(() => { reloadRef.current() }, [])
  return { ...state, reload }
}

/** Anything thrown, as an Error. */
export function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
