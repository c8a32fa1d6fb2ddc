/**
 * What every page gets from the app: the API client and the live event hub, handed down through
 * a preact context instead of module-level singletons.
 */
import { createContext } from 'preact'
import { useContext } from 'preact/hooks'
import type { ApiClient } from './api.js'
import type { EventHub } from './events.js'

/** The services of the console. */
export interface AppServices {
  readonly api: ApiClient
  readonly events: EventHub
}

/** Provides {@link AppServices} to the pages. */
export const AppContext = createContext<AppServices | undefined>(undefined)

/** The console's services; a component outside the app's provider is a programming error. */
export function useApp (): AppServices {
  const services = useContext(AppContext)
  if (services === undefined) throw new TypeError('useApp() called outside <AppContext.Provider>')
  return services
}
