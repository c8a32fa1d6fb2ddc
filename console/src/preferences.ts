/**
 * Preferences of this browser (not replicated): the colour theme and the default page size,
 * kept in localStorage. The theme is a class on `<html>` (`theme-light`, `theme-dark`; none
 * follows the system).
 */

/** Colour themes. */
export type Theme = 'system' | 'light' | 'dark'

/** Page sizes of document tables. */
export const PAGE_SIZES = [25, 50, 100] as const

/** A page size of document tables. */
export type PageSize = (typeof PAGE_SIZES)[number]

/** The console's preferences. */
export interface Preferences {
  readonly theme: Theme
  readonly pageSize: PageSize
}

const KEY = 'peakdb.console.preferences'
const DEFAULTS: Preferences = { theme: 'system', pageSize: 25 }

/** The saved preferences, or the defaults. */
export function loadPreferences (): Preferences {
  let saved: Partial<Record<keyof Preferences, unknown>> = {}
  try {
    saved = JSON.parse(localStorage.getItem(KEY) ?? '{}') as typeof saved
  } catch {
    // storage blocked or garbled: the defaults serve
  }
  return {
    theme: isTheme(saved.theme) ? saved.theme : DEFAULTS.theme,
    pageSize: isPageSize(saved.pageSize) ? saved.pageSize : DEFAULTS.pageSize
  }
}

/** Saves preferences and applies the theme. */
export function savePreferences (prefs: Preferences): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(prefs))
  } catch {
    // storage blocked: the choice lasts until the page is reloaded
  }
  applyTheme(prefs.theme)
}

/** Sets the theme's class on `<html>`. */
export function applyTheme (theme: Theme): void {
  const root = document.documentElement
  root.classList.toggle('theme-light', theme === 'light')
  root.classList.toggle('theme-dark', theme === 'dark')
}

/** True for a theme name. */
export function isTheme (value: unknown): value is Theme {
  return value === 'system' || value === 'light' || value === 'dark'
}

/** True for a page size the tables offer. */
export function isPageSize (value: unknown): value is PageSize {
  return (PAGE_SIZES as readonly unknown[]).includes(value)
}
