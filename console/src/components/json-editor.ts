/**
 * `JsonEditor`: a labelled textarea for JSON, with its parse or server error shown inline; and
 * `parseJsonObject`, the check every JSON form runs before it calls the API.
 */
import type { VNode } from 'preact'
import { useId } from 'preact/hooks'
import type { JsonObject } from '../api-types.js'
import { html } from '../html.js'
import { ErrorAlert } from './error-alert.js'

/** Props of {@link JsonEditor}. */
export interface JsonEditorProps {
  readonly label: string
  readonly value: string
  readonly onInput: (value: string) => void
  /** Invalid JSON or a server error about the text; the text stays as typed. */
  readonly error?: Error | string | undefined
  readonly rows?: number
  /** Extra help under the label. */
  readonly hint?: string
  readonly placeholder?: string
}

/** A JSON textarea with its label, hint and error. */
export function JsonEditor ({ label, value, onInput, error, rows = 8, hint, placeholder }: JsonEditorProps): VNode {
  const id = useId()
  const hintId = `${id}-hint`
  const errorId = `${id}-error`
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${hint !== undefined ? html`<p id=${hintId} class="hint">${hint}</p>` : null}
    <textarea
      id=${id}
      class="code"
      rows=${rows}
      spellcheck=${false}
      autocapitalize="off"
      placeholder=${placeholder}
      aria-invalid=${error !== undefined ? 'true' : undefined}
      aria-describedby=${[hint !== undefined ? hintId : '', error !== undefined ? errorId : ''].join(' ').trim() || undefined}
      value=${value}
      onInput=${(ev: Event) => { onInput((ev.currentTarget as HTMLTextAreaElement).value) }}
    ></textarea>
    <div id=${errorId}><${ErrorAlert} error=${error} /></div>
  </div>`
}

/** The outcome of {@link parseJsonObject}. */
export type ParsedJson = { readonly ok: true, readonly value: JsonObject } | { readonly ok: false, readonly message: string }

/**
 * Parses text that must hold a JSON object. Blank text is `{}` when `blankIsEmpty`.
 *
 * @example
 * ```ts
 * parseJsonObject('{"status":"open"}', 'Where filter') // { ok: true, value: { status: 'open' } }
 * ```
 */
export function parseJsonObject (text: string, what: string, blankIsEmpty = false): ParsedJson {
  if (text.trim() === '') {
    return blankIsEmpty ? { ok: true, value: {} } : { ok: false, message: `${what}: expected a JSON object, got nothing` }
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    return { ok: false, message: `${what} is not valid JSON: ${(err as Error).message}` }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, message: `${what}: expected a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}` }
  }
  return { ok: true, value: value as JsonObject }
}
