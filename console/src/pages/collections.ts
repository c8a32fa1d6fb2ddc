/**
 * Collections page: every collection with its document count and indexes, and a form to open
 * (or start) a collection by name. Follows `change` events.
 */
import type { VNode } from 'preact'
import { useState } from 'preact/hooks'
import { COLLECTION_NAME } from '../api-types.js'
import { useApp } from '../app-context.js'
import { ErrorAlert } from '../components/error-alert.js'
import { formatCount } from '../format.js'
import { html } from '../html.js'
import { hrefOf, navigate } from '../router.js'
import { useResource } from '../use-resource.js'
import { useRefreshOn } from '../use-server-event.js'


/** The collection list. */
export function CollectionsPage (): VNode {
  const { api } = useApp()
  const collections = useResource(signal => api.call('collections', {}, { signal }), [])
  useRefreshOn(['change'], collections.reload, { throttleMs: 1000 })

  return html`<div class="page">
    <h1>Collections</h1>
    <${OpenCollectionForm} />
    <${ErrorAlert} error=${collections.error} />
    ${collections.data === undefined
      ? html`<p class="muted">${collections.error === undefined ? 'Loading…' : ''}</p>`
      : collections.data.length === 0
        ? html`<p class="muted">No collections yet. Open one by name above and add a document to create it.</p>`
        : html`<div class="table-wrap">
          <table data-testid="collections">
            <thead><tr>
              <th scope="col">Name</th><th scope="col" class="num">Documents</th><th scope="col">Indexes</th><th scope="col">Kept</th>
            </tr></thead>
            <tbody>
              ${collections.data.map(c => html`<tr key=${c.name} data-collection=${c.name}>
                <td><a href=${hrefOf({ page: 'collection', name: c.name })}>${c.name}</a></td>
                <td class="num">${formatCount(c.count)}</td>
                <td>${c.indexes.length > 0 ? c.indexes.map(i => html`<code key=${i}>${i}</code> `) : html`<span class="muted">—</span>`}</td>
                <td>${c.local === true ? 'on this device only' : 'replicated'}</td>
              </tr>`)}
            </tbody>
          </table>
        </div>`}
  </div>`
}

/** Opens a collection by name (a new name starts an empty collection). */
function OpenCollectionForm (): VNode {
  const [name, setName] = useState('')
  const [error, setError] = useState<string | undefined>(undefined)
  const submit = (ev: Event): void => {
    ev.preventDefault()
    const trimmed = name.trim()
    if (!COLLECTION_NAME.test(trimmed)) {
      setError('A collection name starts with a letter, then up to 63 letters, digits, "_", "." or "-".')
      return
    }
    setError(undefined)
    navigate({ page: 'collection', name: trimmed })
  }
  return html`<form class="inline-form" onSubmit=${submit} aria-label="Open a collection">
    <div class="field">
      <label for="open-collection">Collection name</label>
      <input id="open-collection" type="text" autocomplete="off" spellcheck=${false} value=${name}
        aria-invalid=${error !== undefined ? 'true' : undefined}
        onInput=${(ev: Event) => { setName((ev.currentTarget as HTMLInputElement).value) }} />
    </div>
    <button type="submit">Open</button>
    <${ErrorAlert} error=${error} />
  </form>`
}
