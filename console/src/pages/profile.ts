/**
 * Profile page: the user's replicated profile (`profileGet` / `profileSet`) as JSON, this
 * browser's preferences (theme, page size), and signing out.
 */
import type { VNode } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { useApp } from '../app-context.js'
import { ErrorAlert } from '../components/error-alert.js'
import { JsonEditor, parseJsonObject } from '../components/json-editor.js'
import { html } from '../html.js'
import { isPageSize, isTheme, loadPreferences, PAGE_SIZES, savePreferences, type Preferences } from '../preferences.js'
import { asError, useResource } from '../use-resource.js'

/** Profile, preferences and sign-out. */
export function ProfilePage (): VNode {
  return html`<div class="page">
    <h1>Profile</h1>
    <${ProfileSection} />
    <${PreferencesSection} />
    <${SignOutSection} />
  </div>`
}

/** The replicated profile as a JSON form. */
function ProfileSection (): VNode {
  const { api } = useApp()
  const profile = useResource(signal => api.call('profileGet', {}, { signal }), [])
  const [text, setText] = useState<string | undefined>(undefined)
  const [error, setError] = useState<Error | string | undefined>(undefined)
  const [saving, setSaving] = useState(false)
  const [saved, setSaved] = useState(false)

  // the text follows the loaded profile until the user edits it
  useEffect(() => {
    if (profile.data !== undefined && text === undefined) setText(JSON.stringify(profile.data, null, 2))
  }, [profile.data])

  const save = async (ev: Event): Promise<void> => {
    ev.preventDefault()
    const parsed = parseJsonObject(text ?? '', 'Profile', true)
    if (!parsed.ok) {
      setError(parsed.message)
      return
    }
    setSaving(true)
    setError(undefined)
    setSaved(false)
    try {
      const updated = await api.call('profileSet', { fields: parsed.value })
      setText(JSON.stringify(updated, null, 2))
      setSaved(true)
    } catch (err) {
      setError(asError(err))
    } finally {
      setSaving(false)
    }
  }

  return html`<section aria-labelledby="profile-heading">
    <h2 id="profile-heading">Profile</h2>
    <p class="lead">Replicated and encrypted: the same on every device of this swarm.</p>
    <${ErrorAlert} error=${profile.error} />
    <form onSubmit=${(ev: Event) => { void save(ev) }}>
      <${JsonEditor}
        label="Profile JSON"
        hint="Saving merges these fields into the profile: fields left out are kept; set a field to null to clear it."
        rows=${10}
        value=${text ?? ''}
        onInput=${(value: string) => { setText(value); setSaved(false) }}
        error=${error}
      />
      <div class="actions">
        <button type="submit" class="primary" disabled=${saving || text === undefined}>Save profile</button>
        <span class="hint" role="status">${saved ? 'Saved' : ''}</span>
      </div>
    </form>
  </section>`
}

/** Theme and default page size, kept in this browser. */
function PreferencesSection (): VNode {
  const [prefs, setPrefs] = useState<Preferences>(loadPreferences)
  const update = (next: Preferences): void => {
    setPrefs(next)
    savePreferences(next)
  }
  return html`<section aria-labelledby="prefs-heading">
    <h2 id="prefs-heading">Preferences</h2>
    <p class="lead">Kept in this browser only.</p>
    <div class="row">
      <div class="field">
        <label for="pref-theme">Theme</label>
        <select id="pref-theme" value=${prefs.theme} onChange=${(ev: Event) => {
          const theme = (ev.currentTarget as HTMLSelectElement).value
          if (isTheme(theme)) update({ ...prefs, theme })
        }}>
          <option value="system">System</option>
          <option value="light">Light</option>
          <option value="dark">Dark</option>
        </select>
      </div>
      <div class="field">
        <label for="pref-page-size">Default page size</label>
        <select id="pref-page-size" value=${String(prefs.pageSize)} onChange=${(ev: Event) => {
          const size = Number((ev.currentTarget as HTMLSelectElement).value)
          if (isPageSize(size)) update({ ...prefs, pageSize: size })
        }}>
          ${PAGE_SIZES.map(n => html`<option key=${n} value=${String(n)}>${n}</option>`)}
        </select>
      </div>
    </div>
  </section>`
}

/** Ends this browser's session. */
function SignOutSection (): VNode {
  const { api } = useApp()
  const [error, setError] = useState<Error | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const signOut = async (): Promise<void> => {
    setBusy(true)
    setError(undefined)
    try {
      // the app shows "Signed out" once the client reports the session's end
      await api.logout()
    } catch (err) {
      setError(asError(err))
      setBusy(false)
    }
  }
  return html`<section aria-labelledby="session-heading">
    <h2 id="session-heading">Session</h2>
    <div class="actions">
      <button type="button" disabled=${busy} onClick=${() => { void signOut() }}>Sign out</button>
    </div>
    <${ErrorAlert} error=${error} />
  </section>`
}
