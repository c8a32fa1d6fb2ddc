/**
 * Pair page: create an invite (code, QR code, countdown to its expiry) and watch the devices
 * that join with it. Follows `devices` and `peer` events.
 */
import type { VNode } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import type { InviteInfo } from '../api-types.js'
import { useApp } from '../app-context.js'
import { CopyButton } from '../components/copy-button.js'
import { ErrorAlert } from '../components/error-alert.js'
import { formatCountdown, formatTime } from '../format.js'
import { html } from '../html.js'
import { asError, useResource } from '../use-resource.js'
import { useRefreshOn } from '../use-server-event.js'

/** Inviting a new device. */
export function PairPage (): VNode {
  const { api } = useApp()
  const [invite, setInvite] = useState<InviteInfo | undefined>(undefined)
  const [creating, setCreating] = useState(false)
  const [error, setError] = useState<Error | undefined>(undefined)
  /** DeviceIds known when the invite was created: any other is a device that joined since. */
  const [known, setKnown] = useState<ReadonlySet<string> | undefined>(undefined)
  const devices = useResource(signal => api.call('devices', {}, { signal }), [])
  useRefreshOn(['devices', 'peer'], devices.reload, { throttleMs: 500 })

  const create = async (): Promise<void> => {
    setCreating(true)
    setError(undefined)
    try {
      const before = await api.call('devices', {})
      const created = await api.call('invite', {})
      setKnown(new Set(before.map(d => d.device)))
      setInvite(created)
      devices.reload()
    } catch (err) {
      setError(asError(err))
    } finally {
      setCreating(false)
    }
  }

  const joined = known === undefined ? [] : (devices.data ?? []).filter(d => !known.has(d.device))
  return html`<div class="page">
    <h1>Pair a device</h1>
    <p class="lead">An invite lets one new device join this swarm. It works once and expires after a few minutes.</p>
    <div class="actions">
      <button type="button" class="primary" disabled=${creating} onClick=${() => { void create() }}>
        ${invite === undefined ? 'Create invite' : 'Create another invite'}
      </button>
    </div>
    <${ErrorAlert} error=${error} />
    ${invite !== undefined ? html`<${Invite} invite=${invite} />` : null}
    <section aria-labelledby="joined-heading">
      <h2 id="joined-heading">Devices that joined</h2>
      <${ErrorAlert} error=${devices.error} />
      ${known === undefined
        ? html`<p class="muted">Devices that join with the invite appear here.</p>`
        : joined.length === 0 ? html`<p class="muted" role="status">Waiting for a device to join…</p>` : null}
      <ul data-testid="joined-devices" class="joined">
        ${joined.map(d => html`<li key=${d.device} data-device=${d.device}>
          <strong>${d.name}</strong> <code class="id">${d.device}</code>
          <span class="muted"> joined ${formatTime(d.certified)}</span>
        </li>`)}
      </ul>
    </section>
  </div>`
}

/** An invite: its code, QR code, expiry and what to run on the new device. */
function Invite ({ invite }: { readonly invite: InviteInfo }): VNode {
  const left = useSecondsUntil(invite.expires)
  const qr = useQrCode(invite.code)
  const command = `peakdb pair join ${invite.code}`
  return html`<section class="invite" aria-labelledby="invite-heading">
    <h2 id="invite-heading">Invite</h2>
    <div class="invite-body">
      ${typeof qr === 'string'
        ? html`<img data-testid="invite-qr" class="qr" alt="Invite QR code" src=${qr} width="220" height="220" />`
        : qr === undefined
          ? html`<div class="qr qr-pending" aria-hidden="true"></div>`
          : html`<div class="qr qr-pending"><${ErrorAlert} error=${qr} /></div>`}
      <div class="invite-text">
        <p>Invite code:</p>
        <p><code data-testid="invite-code" class="invite-code">${invite.code}</code></p>
        <p><${CopyButton} text=${invite.code} label="Copy code" /></p>
        <p>
          ${left > 0 ? 'Expires in ' : 'Status: '}<span data-testid="invite-countdown" class="countdown">${formatCountdown(left)}</span>
        </p>
        <p>On the new device, run:</p>
        <pre class="command"><code>${command}</code></pre>
        <p><${CopyButton} text=${command} label="Copy command" /></p>
        ${invite.addrs.length === 0
          ? html`<p class="alert-box">This device is not on the network, so the new device cannot reach it. Start it with <code>peakdb start</code> first.</p>`
          : null}
      </div>
    </div>
  </section>`
}

/**
 * The QR code of `code` as an image URL, once it is drawn and decoded (so the image shows at
 * once, at its full size). The QR encoder is loaded on first use: only this page needs it.
 */
function useQrCode (code: string): string | Error | undefined {
  const [qr, setQr] = useState<string | Error | undefined>(undefined)
  useEffect(() => {
    let current = true
    setQr(undefined)
    import('uqr').then(async ({ renderSVG }) => {
      const src = `data:image/svg+xml;base64,${btoa(renderSVG(code, { border: 2 }))}`
      const img = new Image()
      img.src = src
      // a failed decode still leaves the <img> to try (and show its alt text)
      await img.decode().catch(() => {})
      if (current) setQr(src)
    }, (err: unknown) => {
      if (current) setQr(new Error('The QR code could not be drawn: copy the code instead.', { cause: err }))
    })
    return () => { current = false }
  }, [code])
  return qr
}

/** Whole seconds until `iso`, counting down once a second (0 once past). */
function useSecondsUntil (iso: string): number {
  const target = new Date(iso).getTime()
  const left = (): number => Math.max(0, Math.floor((target - Date.now()) / 1000))
  const [seconds, setSeconds] = useState(left)
  useEffect(() => {
    setSeconds(left())
    const timer = setInterval(() => {
      const s = left()
      setSeconds(s)
      if (s <= 0) clearInterval(timer)
    }, 1000)
    return () => { clearInterval(timer) }
  }, [target])
  return seconds
}
