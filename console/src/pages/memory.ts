/**
 * Memory page: recall memories (now, or as of a past time, here or across devices), read each
 * one's history, list recent memories, and plan or run a consolidation. Follows `memory` events.
 */
import { Fragment, type VNode } from 'preact'
import { useId, useState } from 'preact/hooks'
import type { ConsolidationResult, MemoryRecord, RecallHit, ServerEvents } from '../api-types.js'
import { useApp } from '../app-context.js'
import { ErrorAlert } from '../components/error-alert.js'
import { formatScore, formatTime, shortId } from '../format.js'
import { html } from '../html.js'
import { asError, useResource } from '../use-resource.js'
import { useServerEvent } from '../use-server-event.js'

/** The agent memory of this swarm. */
export function MemoryPage (): VNode {
  const { api } = useApp()
  const list = useResource(signal => api.call('memoryList', { limit: 50 }, { signal }), [])
  const [background, setBackground] = useState<ServerEvents['memory'] | undefined>(undefined)
  useServerEvent('memory', ev => {
    setBackground(ev)
    list.reload()
  })

  return html`<div class="page">
    <h1>Memory</h1>
    <${RecallSection} />
    <${ConsolidateSection} onDone=${list.reload} />
    <section aria-labelledby="list-heading">
      <h2 id="list-heading">Recent memories</h2>
      ${background !== undefined
        ? html`<p class="muted" role="status" data-testid="memory-background">Background consolidation ran: ${summary(background)}.</p>`
        : null}
      <${ErrorAlert} error=${list.error} />
      ${list.data === undefined
        ? html`<p class="muted">${list.error === undefined ? 'Loading…' : ''}</p>`
        : list.data.length === 0
          ? html`<p class="muted">No memories yet.</p>`
          : html`<ul class="memories" data-testid="memory-list">
            ${list.data.map(m => html`<${MemoryItem} key=${m.id} memory=${m} />`)}
          </ul>`}
    </section>
  </div>`
}

/** The recall form and its results. */
function RecallSection (): VNode {
  const { api } = useApp()
  const [query, setQuery] = useState('')
  const [asOf, setAsOf] = useState('')
  const [swarm, setSwarm] = useState(false)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<Error | string | undefined>(undefined)
  const [hits, setHits] = useState<RecallHit[] | undefined>(undefined)

  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault()
    if (query.trim() === '') { setError('Type what to recall.'); return }
    const when = asOf !== '' ? new Date(asOf) : undefined
    if (when !== undefined && Number.isNaN(when.getTime())) { setError('"As of" is not a valid date and time.'); return }
    setBusy(true)
    setError(undefined)
    try {
      setHits(await api.call('memoryRecall', {
        query,
        ...(when !== undefined ? { asOf: when.toISOString() } : {}),
        ...(swarm ? { swarm: true } : {})
      }))
    } catch (err) {
      setError(asError(err))
    } finally {
      setBusy(false)
    }
  }

  return html`<section aria-labelledby="recall-heading">
    <h2 id="recall-heading">Recall</h2>
    <form class="search-form" onSubmit=${(ev: Event) => { void submit(ev) }} aria-label="Recall">
      <div class="field grow">
        <label for="recall-query">Recall query</label>
        <input id="recall-query" type="search" value=${query} onInput=${(ev: Event) => { setQuery((ev.currentTarget as HTMLInputElement).value) }} />
      </div>
      <div class="row">
        <div class="field">
          <label for="recall-as-of">As of</label>
          <input id="recall-as-of" type="datetime-local" step="1" value=${asOf} onInput=${(ev: Event) => { setAsOf((ev.currentTarget as HTMLInputElement).value) }} />
        </div>
        <div class="field check">
          <input id="recall-swarm" type="checkbox" checked=${swarm} onChange=${(ev: Event) => { setSwarm((ev.currentTarget as HTMLInputElement).checked) }} />
          <label for="recall-swarm">Across all devices</label>
        </div>
        <button type="submit" class="primary" disabled=${busy}>Recall</button>
      </div>
      <${ErrorAlert} error=${error} />
    </form>
    ${hits !== undefined
      ? hits.length === 0
        ? html`<p class="muted" role="status">Nothing recalled.</p>`
        : html`<ol class="memories" data-testid="recall-results">
          ${hits.map(h => html`<${MemoryItem} key=${`${h.device ?? ''}/${h.memory.id}`} memory=${h.memory} score=${h.score} device=${h.device} />`)}
        </ol>`
      : null}
  </section>`
}

interface MemoryItemProps {
  readonly memory: MemoryRecord
  readonly score?: number
  /** The device that holds it, for context from another device. */
  readonly device?: string | undefined
}

/** One memory: content, kind, validity, and its history on demand. */
function MemoryItem ({ memory: m, score, device }: MemoryItemProps): VNode {
  const [open, setOpen] = useState(false)
  const historyId = useId()
  return html`<li class="memory" data-memory-id=${m.id}>
    <p class="memory-content">${m.content}</p>
    <p class="memory-meta">
      <span class="tag">${m.kind}</span>
      ${score !== undefined ? html`<span class="score">score ${formatScore(score)}</span>` : null}
      <span>${validity(m)}</span>
      ${m.entities.length > 0 ? html`<span>about ${m.entities.join(', ')}</span>` : null}
      ${device !== undefined ? html`<span title=${device}>on ${shortId(device)}</span>` : null}
      <button type="button" class="small" aria-expanded=${open ? 'true' : 'false'} aria-controls=${historyId} onClick=${() => { setOpen(o => !o) }}>History</button>
    </p>
    ${open ? html`<${MemoryHistory} id=${m.id} domId=${historyId} />` : null}
  </li>`
}

/** The versions of a memory and why each was made. */
function MemoryHistory ({ id, domId }: { readonly id: string, readonly domId: string }): VNode {
  const { api } = useApp()
  const history = useResource(signal => api.call('memoryHistory', { id }, { signal }), [id])
  return html`<div id=${domId} class="history" data-testid="memory-history">
    <${ErrorAlert} error=${history.error} />
    ${history.data === undefined
      ? html`<p class="muted">${history.error === undefined ? 'Loading…' : ''}</p>`
      : history.data.length === 0
        ? html`<p class="muted">No history.</p>`
        : html`<ol>
          ${history.data.map((v, i) => html`<li key=${i}>
            <time datetime=${v.at}>${formatTime(v.at)}</time> · <strong>${v.change}</strong>: ${v.reason}
            ${v.content !== undefined ? html`<br /><span class="muted">“${v.content}”</span>` : null}
            ${v.other !== undefined ? html`<br /><span class="muted">other memory: <code>${v.other}</code></span>` : null}
          </li>`)}
        </ol>`}
  </div>`
}

/** Plan or run a consolidation (promote context, merge duplicates, invalidate the contradicted). */
function ConsolidateSection ({ onDone }: { readonly onDone: () => void }): VNode {
  const { api } = useApp()
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<Error | undefined>(undefined)
  const [result, setResult] = useState<ConsolidationResult | undefined>(undefined)

  const run = async (dryRun: boolean): Promise<void> => {
    setBusy(true)
    setError(undefined)
    try {
      setResult(await api.call('memoryConsolidate', { dryRun }))
      if (!dryRun) onDone()
    } catch (err) {
      setError(asError(err))
    } finally {
      setBusy(false)
    }
  }

  return html`<section aria-labelledby="consolidate-heading">
    <h2 id="consolidate-heading">Consolidation</h2>
    <p class="lead">Promotes repeated context to knowledge, merges duplicate facts and invalidates contradicted ones. Nothing is deleted.</p>
    <div class="actions">
      <button type="button" disabled=${busy} onClick=${() => { void run(true) }}>Plan consolidation</button>
      <button type="button" class="primary" disabled=${busy} onClick=${() => { void run(false) }}>Consolidate</button>
    </div>
    <${ErrorAlert} error=${error} />
    ${result !== undefined ? html`<${Consolidation} result=${result} />` : null}
  </section>`
}

/** What a consolidation did or would do. */
function Consolidation ({ result: r }: { readonly result: ConsolidationResult }): VNode {
  return html`<div class="consolidation" data-testid="consolidation" role="status">
    <p><strong>${r.dryRun ? 'Plan' : 'Done'}</strong>: ${summary(r)} (decider: ${r.decider}).</p>
    ${r.promotions.length > 0 ? html`<${Fragment}><h3>Promotions</h3><ul>${r.promotions.map(p => html`<li key=${p.fact}>${p.content} <span class="muted">from ${p.from.length} context items</span></li>`)}</ul><//>` : null}
    ${r.merges.length > 0 ? html`<${Fragment}><h3>Merges</h3><ul>${r.merges.map(m => html`<li key=${m.from}>${m.content} <span class="muted">into <code>${m.into}</code></span></li>`)}</ul><//>` : null}
    ${r.invalidations.length > 0 ? html`<${Fragment}><h3>Invalidations</h3><ul>${r.invalidations.map(i => html`<li key=${i.id}>${i.content} <span class="muted">invalidated by <code>${i.by}</code> from ${formatTime(i.at)}</span></li>`)}</ul><//>` : null}
  </div>`
}

type Counted = { readonly [K in 'promotions' | 'merges' | 'invalidations' | 'expired' | 'examined']?: number | readonly unknown[] }

/** `2 promotions, 1 merge, 0 invalidations, 3 expired, 40 examined`. */
function summary (r: Counted): string {
  const n = (v: number | readonly unknown[] | undefined): number => (typeof v === 'number' ? v : v?.length ?? 0)
  const plural = (count: number, one: string, many: string): string => `${count} ${count === 1 ? one : many}`
  return [
    plural(n(r.promotions), 'promotion', 'promotions'),
    plural(n(r.merges), 'merge', 'merges'),
    plural(n(r.invalidations), 'invalidation', 'invalidations'),
    `${n(r.expired)} expired`,
    `${n(r.examined)} examined`
  ].join(', ')
}

/** When a memory holds: valid from/until, expiry, merged. */
function validity (m: MemoryRecord): string {
  if (m.mergedInto !== undefined) return `merged into ${shortId(m.mergedInto)}`
  if (m.invalidFrom !== undefined) return `valid ${m.validFrom !== undefined ? `${formatTime(m.validFrom)} ` : ''}until ${formatTime(m.invalidFrom)}`
  if (m.validFrom !== undefined) return `valid since ${formatTime(m.validFrom)}`
  if (m.expiresAt !== undefined) return `expires ${formatTime(m.expiresAt)}`
  return `recorded ${formatTime(m.recordedAt)}`
}
