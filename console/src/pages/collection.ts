/**
 * Collection page (`#/collections/<name>`): query its documents a page at a time, and add,
 * edit and delete them. The current query runs again when a `change` event touches the
 * collection, so writes from elsewhere appear without a reload.
 */
import type { VNode } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import type { Doc, FindQuery } from '../api-types.js'
import { useApp } from '../app-context.js'
import { ConfirmDialog } from '../components/confirm-dialog.js'
import { ErrorAlert } from '../components/error-alert.js'
import { formatCount, previewDoc } from '../format.js'
import { html } from '../html.js'
import { loadPreferences } from '../preferences.js'
import { useResource } from '../use-resource.js'
import { useRefreshOn } from '../use-server-event.js'
import { DocEditor } from './collection-editor.js'
import { QueryForm, type DocQuery } from './collection-query.js'

/** Wait after the last change event before querying again, ms. */
const LIVE_DEBOUNCE_MS = 150

/** The editor's state: closed, a new document, or an existing one. */
type Editing = undefined | { readonly doc: Doc | undefined }

/** One collection's documents. */
export function CollectionPage ({ name }: { readonly name: string }): VNode {
  const { api } = useApp()
  const [query, setQuery] = useState<DocQuery>(() => ({ where: undefined, orderBy: undefined, pageSize: loadPreferences().pageSize }))
  const [page, setPage] = useState(0)
  const [editing, setEditing] = useState<Editing>(undefined)
  const [deleting, setDeleting] = useState<string | undefined>(undefined)

  const result = useResource(async signal => {
    const find: FindQuery = {
      ...(query.where !== undefined ? { where: query.where } : {}),
      ...(query.orderBy !== undefined ? { orderBy: query.orderBy } : {}),
      limit: query.pageSize,
      offset: page * query.pageSize
    }
    const [docs, total] = await Promise.all([
      api.call('find', { collection: name, query: find }, { signal }),
      api.call('count', { collection: name, ...(query.where !== undefined ? { where: query.where } : {}) }, { signal })
    ])
    return { docs, total }
  }, [name, query, page])

  useRefreshOn(['change'], result.reload, { debounceMs: LIVE_DEBOUNCE_MS },
    (_, ev) => ev.changes.some(c => c.collection === name))

  const pages = Math.max(1, Math.ceil((result.data?.total ?? 0) / query.pageSize))
  // a delete (here or elsewhere) can empty the last page: show the new last one
  useEffect(() => {
    if (result.data !== undefined && page > 0 && page >= pages) setPage(pages - 1)
  }, [result.data, page, pages])

  const apply = (q: DocQuery): void => {
    setQuery(q)
    setPage(0)
  }
  const remove = async (): Promise<void> => {
    if (deleting === undefined) return
    await api.call('delete', { collection: name, id: deleting })
    result.reload()
  }

  const docs = result.data?.docs
  return html`<div class="page">
    <p class="breadcrumb"><a href="#/collections">Collections</a> /</p>
    <h1>${name}</h1>
    <${QueryForm} query=${query} onApply=${apply} />
    <div class="toolbar">
      <button type="button" onClick=${() => { setEditing({ doc: undefined }) }}>New document</button>
      <span class="muted" aria-live="polite">${result.data !== undefined ? `${formatCount(result.data.total)} ${result.data.total === 1 ? 'document' : 'documents'}` : result.loading ? 'Loading…' : ''}</span>
    </div>
    ${editing !== undefined
      ? html`<${DocEditor}
          key=${editing.doc?._id ?? '\0new'}
          collection=${name}
          doc=${editing.doc}
          onSaved=${() => { setEditing(undefined); result.reload() }}
          onCancel=${() => { setEditing(undefined) }}
        />`
      : null}
    <${ErrorAlert} error=${result.error} />
    ${docs !== undefined
      ? docs.length === 0
        ? html`<p class="muted" data-testid="no-documents">No documents${query.where !== undefined ? ' match the filter' : ''}.</p>`
        : html`<div class="table-wrap">
          <table data-testid="documents" class="docs">
            <thead><tr><th scope="col">_id</th><th scope="col">Document</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>
              ${docs.map(doc => html`<tr key=${doc._id} data-doc-id=${doc._id}>
                <td><code class="id">${doc._id}</code></td>
                <td><code class="preview">${previewDoc(doc)}</code></td>
                <td class="row-actions">
                  <button type="button" class="small" onClick=${() => { setEditing({ doc }) }}>Edit</button>
                  <button type="button" class="small danger" onClick=${() => { setDeleting(doc._id) }}>Delete</button>
                </td>
              </tr>`)}
            </tbody>
          </table>
        </div>`
      : null}
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled=${page === 0} onClick=${() => { setPage(p => Math.max(0, p - 1)) }}>Previous page</button>
      <span data-testid="page-number">Page ${page + 1} of ${pages}</span>
      <button type="button" disabled=${page + 1 >= pages} onClick=${() => { setPage(p => p + 1) }}>Next page</button>
    </nav>
    <${ConfirmDialog}
      open=${deleting !== undefined}
      title="Delete document?"
      confirmLabel="Delete document"
      onConfirm=${remove}
      onClose=${() => { setDeleting(undefined) }}
    >
      <p>Delete <code class="id">${deleting ?? ''}</code> from ${name}? The delete replicates to every device.</p>
    <//>
  </div>`
}
