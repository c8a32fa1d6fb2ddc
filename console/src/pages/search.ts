/**
 * Search page: search a collection on this device (`search`) or across every online device
 * (`swarmSearch`), by meaning, keywords or both, and show the ranked hits.
 */
import type { VNode } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { COLLECTION_NAME, type DeviceAnswer, type Doc, type SearchHit, type SearchMode, type SwarmHit } from '../api-types.js'
import { useApp } from '../app-context.js'
import { ErrorAlert } from '../components/error-alert.js'
import { clip, formatMs, formatScore, previewDoc, shortId } from '../format.js'
import { html } from '../html.js'
import { asError, useResource } from '../use-resource.js'

/** Hits asked for. */
const K = 20

/** What a search returned, local or swarm. */
interface Results {
  readonly hits: ReadonlyArray<SearchHit | SwarmHit>
  readonly pending?: number
  readonly devices?: readonly DeviceAnswer[]
  readonly ms?: number
}

/** Search across a collection. */
export function SearchPage (): VNode {
  const { api } = useApp()
  const collections = useResource(signal => api.call('collections', {}, { signal }), [])
  const [text, setText] = useState('')
  const [collection, setCollection] = useState('')
  const [mode, setMode] = useState<SearchMode>('hybrid')
  const [swarm, setSwarm] = useState(false)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<Error | string | undefined>(undefined)
  const [results, setResults] = useState<Results | undefined>(undefined)

  // default collection: `files` when it exists, else the first one
  useEffect(() => {
    const list = collections.data
    if (collection !== '' || list === undefined || list.length === 0) return
    setCollection(list.some(c => c.name === 'files') ? 'files' : list[0]?.name ?? '')
  }, [collections.data])

  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault()
    const name = collection.trim()
    if (text.trim() === '') { setError('Type something to search for.'); return }
    if (!COLLECTION_NAME.test(name)) { setError('Choose a collection to search.'); return }
    setBusy(true)
    setError(undefined)
    try {
      const params = { collection: name, text, mode, k: K }
      setResults(swarm ? await api.call('swarmSearch', params) : await api.call('search', params))
    } catch (err) {
      setError(asError(err))
    } finally {
      setBusy(false)
    }
  }

  return html`<div class="page">
    <h1>Search</h1>
    <form class="search-form" onSubmit=${(ev: Event) => { void submit(ev) }} aria-label="Search">
      <div class="field grow">
        <label for="search-query">Search query</label>
        <input id="search-query" type="search" value=${text} onInput=${(ev: Event) => { setText((ev.currentTarget as HTMLInputElement).value) }} />
      </div>
      <div class="row">
        <div class="field">
          <label for="search-collection">Collection</label>
          <input id="search-collection" type="text" list="search-collections" autocomplete="off" spellcheck=${false} value=${collection}
            onInput=${(ev: Event) => { setCollection((ev.currentTarget as HTMLInputElement).value) }} />
          <datalist id="search-collections">
            ${(collections.data ?? []).map(c => html`<option key=${c.name} value=${c.name}></option>`)}
          </datalist>
        </div>
        <div class="field">
          <label for="search-mode">Mode</label>
          <select id="search-mode" value=${mode} onChange=${(ev: Event) => { setMode((ev.currentTarget as HTMLSelectElement).value as SearchMode) }}>
            <option value="hybrid">hybrid (meaning and keywords)</option>
            <option value="text">text (keywords)</option>
            <option value="vector">vector (meaning)</option>
          </select>
        </div>
        <div class="field check">
          <input id="search-swarm" type="checkbox" checked=${swarm} onChange=${(ev: Event) => { setSwarm((ev.currentTarget as HTMLInputElement).checked) }} />
          <label for="search-swarm">Across all devices</label>
        </div>
        <button type="submit" class="primary" disabled=${busy}>Search</button>
      </div>
      <${ErrorAlert} error=${error ?? collections.error} />
    </form>
    ${busy ? html`<p class="muted" role="status">Searching…</p>` : null}
    ${results !== undefined ? html`<${SearchResults} results=${results} />` : null}
  </div>`
}

/** The ranked hits, and for a swarm search how each device answered. */
function SearchResults ({ results }: { readonly results: Results }): VNode {
  return html`<section aria-labelledby="results-heading">
    <h2 id="results-heading">Results</h2>
    ${results.devices !== undefined ? html`<${Answers} devices=${results.devices} ms=${results.ms} />` : null}
    ${results.pending !== undefined && results.pending > 0
      ? html`<p class="muted">${results.pending} documents are not indexed yet and were not searched.</p>`
      : null}
    ${results.hits.length === 0 ? html`<p class="muted" role="status">No results</p>` : null}
    <ol data-testid="search-results" class="hits">
      ${results.hits.map(hit => html`<${Hit} key=${'device' in hit ? `${hit.device}/${hit.id}` : hit.id} hit=${hit} />`)}
    </ol>
  </section>`
}

/** One hit: id, score, device, a preview and, for a file, its path. */
function Hit ({ hit }: { readonly hit: SearchHit | SwarmHit }): VNode {
  const path = typeof hit.doc.path === 'string' ? hit.doc.path : undefined
  return html`<li data-hit-id=${hit.id} class="hit">
    <div class="hit-head">
      <code class="id">${hit.id}</code>
      <span class="score" title="score">score ${formatScore(hit.score)}</span>
      ${'device' in hit
        ? html`<span class="device" data-testid="hit-device" title=${hit.device}>on ${hit.deviceName !== '' ? hit.deviceName : shortId(hit.device)}${hit.local ? ' (device-local)' : ''}</span>`
        : null}
    </div>
    ${path !== undefined ? html`<div class="path" data-testid="hit-path"><code>${path}</code></div>` : null}
    <p class="snippet">${snippetOf(hit.doc)}</p>
  </li>`
}

/** Which devices answered a swarm search, and how. */
function Answers ({ devices, ms }: { readonly devices: readonly DeviceAnswer[], readonly ms: number | undefined }): VNode {
  return html`<div class="answers" data-testid="search-devices">
    <p>Asked ${devices.length} ${devices.length === 1 ? 'device' : 'devices'}${ms !== undefined ? ` in ${formatMs(ms)}` : ''}:</p>
    <ul>
      ${devices.map(d => html`<li key=${d.device} data-device=${d.device} class=${`answer answer-${d.status}`}>
        ${d.name}${d.self ? ' (this device)' : ''}: ${d.status === 'ok' ? `answered, ${d.count} hits` : d.status === 'timeout' ? 'timed out' : `failed${d.error !== undefined ? ` (${d.error})` : ''}`}
        <span class="muted"> · ${formatMs(d.ms)}</span>
      </li>`)}
    </ul>
  </div>`
}

/** A document's most telling text: its text, content, body or title, else compact JSON. */
function snippetOf (doc: Doc): string {
  for (const field of ['text', 'content', 'body', 'title', 'name']) {
    const value = doc[field]
    if (typeof value === 'string' && value.trim() !== '') return clip(value, 240)
  }
  return previewDoc(doc, 240)
}
