/**
 * The document editor of a collection: JSON in a textarea, saved with `put`. Invalid JSON and
 * the server's errors show inline and keep the text.
 */
import type { VNode } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import type { Doc } from '../api-types.js'
import { useApp } from '../app-context.js'
import { JsonEditor, parseJsonObject } from '../components/json-editor.js'
import { html } from '../html.js'
import { asError } from '../use-resource.js'

/** Props of {@link DocEditor}. */
export interface DocEditorProps {
  readonly collection: string
  /** The document to edit, or `undefined` for a new one. */
  readonly doc: Doc | undefined
  /** Called with the saved document's id. */
  readonly onSaved: (id: string) => void
  readonly onCancel: () => void
}

/** Edits one document (or a new one) as JSON. */
export function DocEditor ({ collection, doc, onSaved, onCancel }: DocEditorProps): VNode {
  const { api } = useApp()
  const [text, setText] = useState(() => JSON.stringify(doc ?? {}, null, 2))
  const [error, setError] = useState<Error | string | undefined>(undefined)
  const [saving, setSaving] = useState(false)
  const sectionRef = useRef<HTMLElement>(null)

  useEffect(() => {
    sectionRef.current?.querySelector('textarea')?.focus()
  }, [])

  const save = async (ev: Event): Promise<void> => {
    ev.preventDefault()
    const parsed = parseJsonObject(text, 'Document')
    if (!parsed.ok) {
      setError(parsed.message)
      return
    }
    // an edit keeps its document's id, even when the text left it out
    const value = doc !== undefined && parsed.value._id === undefined ? { ...parsed.value, _id: doc._id } : parsed.value
    setSaving(true)
    setError(undefined)
    try {
      const result = await api.call('put', { collection, doc: value })
      onSaved(result.id)
    } catch (err) {
      setError(asError(err))
    } finally {
      setSaving(false)
    }
  }

  const title = doc === undefined ? 'New document' : 'Edit document'
  return html`<section class="editor" ref=${sectionRef} aria-labelledby="editor-heading">
    <h2 id="editor-heading">${title}${doc !== undefined ? html` <code class="id">${doc._id}</code>` : null}</h2>
    <form onSubmit=${(ev: Event) => { void save(ev) }} onKeyDown=${(ev: KeyboardEvent) => { if (ev.key === 'Escape') onCancel() }}>
      <${JsonEditor}
        label="Document JSON"
        hint=${doc === undefined ? 'Leave out "_id" for a new id.' : 'The document keeps its "_id".'}
        rows=${14}
        value=${text}
        onInput=${setText}
        error=${error}
      />
      <div class="actions">
        <button type="submit" class="primary" disabled=${saving}>Save</button>
        <button type="button" onClick=${onCancel}>Cancel</button>
      </div>
    </form>
  </section>`
}
