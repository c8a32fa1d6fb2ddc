/**
 * The page of an address the console does not know.
 */
import type { VNode } from 'preact'
import { html } from '../html.js'

/** Says the page does not exist and points back to the overview. */
export function NotFoundPage ({ path }: { readonly path: string }): VNode {
  return html`<div class="page">
    <h1>Page not found</h1>
    <p>There is no page <code>#/${path}</code>. Go to the <a href="#/overview">overview</a>.</p>
  </div>`
}
