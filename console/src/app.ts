/**
 * The console's shell: skip link, header (device, live indicator, main navigation), the page of
 * the current route in `<main>`, and the full-page states once the session has ended.
 */
import type { ComponentChildren, VNode } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import type { ServerEvents, SessionInfo } from './api-types.js'
import type { SessionEnd } from './api.js'
import { AppContext, useApp, type AppServices } from './app-context.js'
import { LiveIndicator } from './components/live-indicator.js'
import { formatTime } from './format.js'
import { html } from './html.js'
import { CollectionPage } from './pages/collection.js'
import { CollectionsPage } from './pages/collections.js'
import { DevicesPage } from './pages/devices.js'
import { MemoryPage } from './pages/memory.js'
import { NotFoundPage } from './pages/not-found.js'
import { OverviewPage } from './pages/overview.js'
import { PairPage } from './pages/pair.js'
import { ProfilePage } from './pages/profile.js'
import { SearchPage } from './pages/search.js'
import { hrefOf, NAV_PAGES, useRoute, type Route } from './router.js'
import { useServerEvent } from './use-server-event.js'

/**
 * The whole console. It renders at once; the session and each page's data load after.
 *
 * @example
 * ```ts
 * render(html`<${App} api=${new ApiClient()} events=${new EventHub()} />`, root)
 * ```
 */
export function App (services: AppServices): VNode {
  const { api, events } = services
  const [session, setSession] = useState<SessionInfo | undefined>(undefined)
  const [ended, setEnded] = useState<SessionEnd | undefined>(api.sessionEnd)

  useEffect(() => {
    const off = api.onSessionEnd(reason => {
      events.stop()
      setEnded(reason)
    })
    api.session().then(info => {
      setSession(info)
      events.start()
    }, () => {
      // a 401 ends the session (handled above); other failures show on the pages' own calls
    })
    return () => {
      off()
      events.stop()
    }
  }, [api, events])

  if (ended === 'none') {
    return html`<${EndedPage} title="Sign in to PeakDB">
      Run <code>peakdb ui</code> on this machine and open the link it prints.
    <//>`
  }
  if (ended === 'link-used') {
    return html`<${EndedPage} title="Login link expired">
      This login link was used already or expired. Run <code>peakdb ui</code> for a new one.
    <//>`
  }
  if (ended === 'expired') {
    return html`<${EndedPage} title="Session expired">
      Session expired. Run <code>peakdb ui</code> for a new link.
    <//>`
  }
  if (ended === 'signed-out') {
    return html`<${EndedPage} title="Signed out">
      Signed out. Run <code>peakdb ui</code> to open the console again.
    <//>`
  }
  return html`<${AppContext.Provider} value=${services}>
    <${Shell} session=${session} />
  <//>`
}

/** The header, navigation and current page. */
function Shell ({ session }: { readonly session: SessionInfo | undefined }): VNode {
  const route = useRoute()
  const mainRef = useRef<HTMLElement>(null)
  const first = useRef(true)
  const href = hrefOf(route)

  useEffect(() => {
    document.title = `${titleOf(route)} · PeakDB`
    // after a navigation (not the first render), start reading and tabbing at the new page
    if (first.current) first.current = false
    else mainRef.current?.focus({ preventScroll: false })
  }, [href])

  const skip = (ev: Event): void => {
    ev.preventDefault()
    mainRef.current?.focus()
  }

  return html`<div class="shell">
    <a class="skip-link" href="#main" onClick=${skip}>Skip to content</a>
    <header class="top">
      <div class="top-line">
        <a class="brand" href="#/overview">PeakDB</a>
        <span class="device-name">${session !== undefined ? session.deviceName : ''}</span>
        ${session !== undefined ? html`<span class="version">v${session.version}</span>` : null}
        <${LiveIndicator} />
      </div>
      <nav aria-label="Main">
        <ul>
          ${NAV_PAGES.map(p => {
            const current = route.page === p.page || (p.page === 'collections' && route.page === 'collection')
            return html`<li key=${p.page}>
              <a href=${`#/${p.page}`} aria-current=${current ? 'page' : undefined}>${p.label}</a>
            </li>`
          })}
        </ul>
      </nav>
    </header>
    <${RevokedBanner} />
    <main id="main" ref=${mainRef} tabindex="-1">
      ${pageOf(route)}
    </main>
  </div>`
}

/** The page component of a route. */
function pageOf (route: Route): VNode {
  switch (route.page) {
    case 'overview': return html`<${OverviewPage} />`
    case 'devices': return html`<${DevicesPage} />`
    case 'pair': return html`<${PairPage} />`
    case 'collections': return html`<${CollectionsPage} />`
    case 'collection': return html`<${CollectionPage} key=${route.name} name=${route.name} />`
    case 'search': return html`<${SearchPage} />`
    case 'memory': return html`<${MemoryPage} />`
    case 'profile': return html`<${ProfilePage} />`
    case 'not-found': return html`<${NotFoundPage} path=${route.path} />`
  }
}

/** The document title of a route. */
function titleOf (route: Route): string {
  if (route.page === 'collection') return `${route.name} · Collections`
  if (route.page === 'not-found') return 'Not found'
  return NAV_PAGES.find(p => p.page === route.page)?.label ?? 'PeakDB'
}

/** Shown on every page once this device learns it was revoked. */
function RevokedBanner (): VNode | null {
  const { api } = useApp()
  const [revoked, setRevoked] = useState<ServerEvents['revoked'] | undefined>(undefined)
  useServerEvent('revoked', setRevoked)
  useEffect(() => {
    const controller = new AbortController()
    api.call('status', {}, { signal: controller.signal }).then(s => { if (s.revoked !== undefined) setRevoked(s.revoked) }, () => {
      // the overview shows status errors; the banner only cares about a revocation
    })
    return () => { controller.abort() }
  }, [api])
  if (revoked === undefined) return null
  return html`<div class="banner" role="alert">
    This device was revoked on ${formatTime(revoked.at)} by <code>${revoked.by}</code>. It keeps what it had, writes nothing more, and stays off the swarm.
  </div>`
}

/** A full page once the session ended (nothing else works then). */
function EndedPage ({ title, children }: { readonly title: string, readonly children: ComponentChildren }): VNode {
  useEffect(() => { document.title = `${title} · PeakDB` }, [title])
  return html`<main class="ended" id="main">
    <h1>${title}</h1>
    <p>${children}</p>
  </main>`
}
