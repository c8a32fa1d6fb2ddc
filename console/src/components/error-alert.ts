/**
 * `ErrorAlert`: a failed call or invalid input, announced to screen readers (`role="alert"`) and
 * shown beside what caused it.
 */
import type { VNode } from 'preact'
import { html } from '../html.js'

/** Props of {@link ErrorAlert}. */
export interface ErrorAlertProps {
  /** The error, or a message; nothing renders for `undefined`. */
  readonly error: Error | string | undefined
}

/** Error names that are plain words already ("Error") add nothing to the message. */
const PLAIN = new Set(['Error', 'TypeError', 'SyntaxError'])

/** Renders an error as an alert, with the server's error name when it tells something. */
export function ErrorAlert ({ error }: ErrorAlertProps): VNode | null {
  if (error === undefined) return null
  const message = typeof error === 'string' ? error : error.message
  const name = typeof error === 'string' || PLAIN.has(error.name) ? undefined : error.name
  return html`<p role="alert" class="alert">
    ${name !== undefined ? html`<strong>${name}</strong>: ` : null}${message}
  </p>`
}
