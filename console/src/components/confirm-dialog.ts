/**
 * `ConfirmDialog`: a modal `<dialog>` that asks before something that cannot be undone (revoke a
 * device, delete a document) and runs it, showing its error inside the dialog.
 */
import type { ComponentChildren, VNode } from 'preact'
import { useEffect, useId, useRef, useState } from 'preact/hooks'
import { html } from '../html.js'
import { asError } from '../use-resource.js'
import { ErrorAlert } from './error-alert.js'

/** Props of {@link ConfirmDialog}. */
export interface ConfirmDialogProps {
  /** Shown (as a modal) while true. */
  readonly open: boolean
  readonly title: string
  /** What will happen. */
  readonly children: ComponentChildren
  /** Label of the button that does it ("Revoke device"). */
  readonly confirmLabel: string
  /** Does it; the dialog closes when it resolves and shows the error when it rejects. */
  readonly onConfirm: () => Promise<void>
  /** Called when the dialog closes, whether confirmed, cancelled or dismissed with Escape. */
  readonly onClose: () => void
}

/**
 * A confirmation as a native modal dialog: focus moves to its Cancel button, Escape cancels,
 * and the page behind it is inert.
 */
export function ConfirmDialog ({ open, title, children, confirmLabel, onConfirm, onClose }: ConfirmDialogProps): VNode {
  const ref = useRef<HTMLDialogElement>(null)
  const cancelRef = useRef<HTMLButtonElement>(null)
  const titleId = useId()
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<Error | undefined>(undefined)

  useEffect(() => {
    const dialog = ref.current
    if (dialog === null) return
    if (open && !dialog.open) {
      setError(undefined)
      setBusy(false)
      dialog.showModal()
      // the safe choice has the focus: Enter right away cancels
      cancelRef.current?.focus()
    } else if (!open && dialog.open) {
      dialog.close()
    }
  }, [open])

  const confirm = async (): Promise<void> => {
    setBusy(true)
    setError(undefined)
    try {
      await onConfirm()
      ref.current?.close()
    } catch (err) {
      setError(asError(err))
    } finally {
      setBusy(false)
    }
  }

  return html`<dialog ref=${ref} class="dialog" aria-labelledby=${titleId} onClose=${onClose}>
    <h2 id=${titleId}>${title}</h2>
    <div class="dialog-body">${children}</div>
    <${ErrorAlert} error=${error} />
    <div class="actions">
      <button type="button" class="danger" disabled=${busy} onClick=${() => { void confirm() }}>${confirmLabel}</button>
      <button type="button" ref=${cancelRef} disabled=${busy} onClick=${() => ref.current?.close()}>Cancel</button>
    </div>
  </dialog>`
}
