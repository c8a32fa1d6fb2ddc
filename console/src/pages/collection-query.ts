/**
 * The query form of a collection: where filter (JSON), order and page size. It checks the
 * filter before any query runs; the server checks the rest.
 */
import type { VNode } from 'preact'
import { useState } from 'preact/hooks'
import type { JsonObject } from '../api-types.js'
import { JsonEditor, parseJsonObject } from '../components/json-editor.js'
import { html } from '../html.js'
import { isPageSize, PAGE_SIZES, type PageSize } from '../preferences.js'

/** A query of the document table. */
export interface DocQuery {
  readonly where: JsonObject | undefined
  readonly orderBy: readonly string[] | undefined
  readonly pageSize: PageSize
}

/** Props of {@link QueryForm}. */
export interface QueryFormProps {
  readonly query: DocQuery
  /** Called with a valid query on Apply, and when the page size changes. */
  readonly onApply: (query: DocQuery) => void
}

/** The form above the document table. */
export function QueryForm ({ query, onApply }: QueryFormProps): VNode {
  const [whereText, setWhereText] = useState(query.where !== undefined ? JSON.stringify(query.where) : '')
  const [orderText, setOrderText] = useState(query.orderBy?.join(', ') ?? '')
  const [error, setError] = useState<string | undefined>(undefined)

  const parsed = (pageSize: PageSize): DocQuery | undefined => {
    const where = parseJsonObject(whereText, 'Where filter', true)
    if (!where.ok) {
      setError(where.message)
      return undefined
    }
    setError(undefined)
    return { where: Object.keys(where.value).length > 0 ? where.value : undefined, orderBy: parseOrderBy(orderText), pageSize }
  }
  const submit = (ev: Event): void => {
    ev.preventDefault()
    const q = parsed(query.pageSize)
    if (q !== undefined) onApply(q)
  }
  const changeSize = (ev: Event): void => {
    const size = Number((ev.currentTarget as HTMLSelectElement).value)
    if (!isPageSize(size)) return
    // a new page size applies at once, with the filter as last applied
    onApply({ ...query, pageSize: size })
  }

  return html`<form class="query-form" onSubmit=${submit} aria-label="Query">
    <${JsonEditor}
      label="Where filter (JSON)"
      hint=${'Blank for every document. Example: {"status":"open","year":{"gte":2020}}'}
      rows=${3}
      value=${whereText}
      placeholder=${'{"status":"open"}'}
      onInput=${setWhereText}
      error=${error}
    />
    <div class="row">
      <div class="field">
        <label for="order-by">Order by</label>
        <input id="order-by" type="text" autocomplete="off" spellcheck=${false} placeholder="-updated, title" value=${orderText}
          onInput=${(ev: Event) => { setOrderText((ev.currentTarget as HTMLInputElement).value) }} />
      </div>
      <div class="field">
        <label for="page-size">Page size</label>
        <select id="page-size" value=${String(query.pageSize)} onChange=${changeSize}>
          ${PAGE_SIZES.map(n => html`<option key=${n} value=${String(n)}>${n}</option>`)}
        </select>
      </div>
      <button type="submit" class="primary">Apply</button>
    </div>
  </form>`
}

/** `-updated, title` as `['-updated', 'title']`; blank as no order. */
export function parseOrderBy (text: string): string[] | undefined {
  const fields = text.split(/[,\s]+/).map(f => f.trim()).filter(f => f !== '')
  return fields.length > 0 ? fields : undefined
}
