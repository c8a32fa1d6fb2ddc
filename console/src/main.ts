/**
 * Entry point of the console: applies the saved theme, then renders the app into `#app` at once
 * (data loads after the first paint).
 */
import { render } from 'preact'
import { ApiClient } from './api.js'
import { App } from './app.js'
import { EventHub } from './events.js'
import { html } from './html.js'
import { applyTheme, loadPreferences } from './preferences.js'

applyTheme(loadPreferences().theme)

// a login link (`peakdb ui`) carries a one-time code in the fragment: take it out of the
// address bar (and history) before anything renders, and sign in with it
const login = /^#login=([\w-]{1,128})$/.exec(location.hash)
if (login !== null) history.replaceState(null, '', `${location.pathname}#/overview`)

const api = new ApiClient('/ui', login?.[1] !== undefined ? { loginCode: login[1] } : {})
const events = new EventHub({
  url: '/ui/events',
  headers: () => api.authorization(),
  // a 401 may mean the session is gone: any call finds that out (and ends the session) for us
  onUnauthorized: () => { api.call('status', {}).catch(() => {}) }
})

const root = document.getElementById('app')
if (root !== null) render(html`<${App} api=${api} events=${events} />`, root)
