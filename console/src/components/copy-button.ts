/**
 * `CopyButton`: copies a text to the clipboard and says so.
 */
import type { VNode } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { html } from '../html.js'

/** Props of {@link CopyButton}. */
export interface CopyButtonProps {
  readonly text: string
  /** The button's label (default "Copy"). */
  readonly label?: string
}

/** A button that copies `text`; its result shows beside it for a few seconds. */
export function CopyButton ({ text, label = 'Copy' }: CopyButtonProps): VNode {
  const [result, setResult] = useState<'' | 'Copied' | 'Copy failed: select the text and copy it'>('')
  useEffect(() => {
    if (result === '') return
    const timer = setTimeout(() => { setResult('') }, 3000)
    return () => { clearTimeout(timer) }
  }, [result])
  const copy = async (): Promise<void> => {
    try {
      await navigator.clipboard.writeText(text)
      setResult('Copied')
    } catch {
      setResult('Copy failed: select the text and copy it')
    }
  }
  return html`<span class="copy">
    <button type="button" onClick=${() => { void copy() }}>${label}</button>
    <span class="hint" role="status">${result}</span>
  </span>`
}
