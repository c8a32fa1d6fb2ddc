/**
 * `LiveIndicator`: whether the console hears the daemon's live events right now.
 */
import type { VNode } from 'preact'
import { html } from '../html.js'
import { useConnectionState } from '../use-server-event.js'

const LABELS = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', closed: 'Offline' } as const

/** A dot and a word: live, reconnecting, … (announced politely when it changes). */
export function LiveIndicator (): VNode {
  const state = useConnectionState()
  return html`<span class=${`live live-${state}`} role="status" data-testid="live-indicator">
    <span class="dot" aria-hidden="true"></span>${LABELS[state]}
  </span>`
}
