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

const api = new ApiClient('/ui')
const events = new EventHub({
  url: '/ui/events',
  // the browser gives up on an HTTP error: a 401 here means the session is gone, and any call
  // finds that out (and ends the session) for us
  onGiveUp: () => { api.call('status', {}).catch(() => {}) }
})

const root = document.getElementById('app')
if (root !== null) render(html`<${App} api=${api} events=${events} />`, root)
