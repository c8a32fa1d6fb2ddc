/**
 * `html`: tagged templates that build preact elements (htm bound to preact's `h`), so the
 * console needs no JSX compile step.
 */
import htm from 'htm'
import { h, type VNode } from 'preact'

/**
 * Builds preact elements from a template. Templates in this console have one root element (or
 * one `<${Fragment}>…<//>`), so the result is one node.
 *
 * @example
 * ```ts
 * html`<p class="muted">${count} documents</p>`
 * ```
 */
export const html = htm.bind(h) as (strings: TemplateStringsArray, ...values: unknown[]) => VNode
