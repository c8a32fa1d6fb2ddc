/**
 * Hash routes of the console (`#/overview`, `#/collections/notes`, …): parsing, building, and a
 * hook that follows the address bar.
 */
import { useEffect, useState } from 'preact/hooks'

/** A page of the console. */
export type Route =
  | { readonly page: 'overview' | 'devices' | 'pair' | 'collections' | 'search' | 'memory' | 'profile' }
  | { readonly page: 'collection', readonly name: string }
  | { readonly page: 'not-found', readonly path: string }

/** The pages of the main navigation, in order. */
export const NAV_PAGES = [
  { page: 'overview', label: 'Overview' },
  { page: 'devices', label: 'Devices' },
  { page: 'pair', label: 'Pair' },
  { page: 'collections', label: 'Collections' },
  { page: 'search', label: 'Search' },
  { page: 'memory', label: 'Memory' },
  { page: 'profile', label: 'Profile' }
] as const

const SIMPLE = new Set<string>(NAV_PAGES.map(p => p.page))

/** The route of a location hash (`''` and `#/` are the overview). */
export function parseRoute (hash: string): Route {
  const path = hash.replace(/^#\/?/, '')
  const [first = '', ...rest] = path.split('/')
  if (first === '') return { page: 'overview' }
  if (first === 'collections' && rest.length > 0 && rest.join('/') !== '') {
    return { page: 'collection', name: safeDecode(rest.join('/')) }
  }
  if (rest.length === 0 && SIMPLE.has(first)) return { page: first as 'overview' }
  return { page: 'not-found', path }
}

/** The hash of a route. */
export function hrefOf (route: Route): string {
  if (route.page === 'collection') return `#/collections/${encodeURIComponent(route.name)}`
  if (route.page === 'not-found') return `#/${route.path}`
  return `#/${route.page}`
}

/** Goes to a route (a new history entry). */
export function navigate (route: Route): void {
  location.hash = hrefOf(route)
}

/**
 * The current route, following the address bar. Hashes that are not routes (`#main`, from a
 * skip link) leave it where it was.
 */
export function useRoute (): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash))
  useEffect(() => {
    const onChange = (): void => {
      if (location.hash === '' || location.hash.startsWith('#/')) setRoute(parseRoute(location.hash))
    }
    window.addEventListener('hashchange', onChange)
    // the address may have changed between the first render and this effect
    onChange()
    return () => { window.removeEventListener('hashchange', onChange) }
  }, [])
  return route
}

function safeDecode (text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
