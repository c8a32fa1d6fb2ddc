/**
 * `Facts`: a short list of labelled values (a `<dl>`), as the overview shows a device.
 */
import type { ComponentChildren, VNode } from 'preact'
import { html } from '../html.js'

/** One labelled value; `undefined` values are left out. */
export type Fact = readonly [label: string, value: ComponentChildren]

/** Renders labelled values as a description list. */
export function Facts ({ items }: { readonly items: readonly Fact[] }): VNode {
  return html`<dl class="facts">
    ${items.filter(([, value]) => value !== undefined).map(([label, value]) => html`<div key=${label}><dt>${label}</dt><dd>${value}</dd></div>`)}
  </dl>`
}
