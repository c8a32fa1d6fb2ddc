/**
 * Devices page: every device of the swarm, online or not, and revoking one (after a
 * confirmation). Follows `devices` and `peer` events.
 */
import type { VNode } from 'preact'
import { useState } from 'preact/hooks'
import type { DeviceInfo } from '../api-types.js'
import { useApp } from '../app-context.js'
import { ConfirmDialog } from '../components/confirm-dialog.js'
import { ErrorAlert } from '../components/error-alert.js'
import { formatAgo, formatTime } from '../format.js'
import { html } from '../html.js'
import { useResource } from '../use-resource.js'
import { useRefreshOn } from '../use-server-event.js'

/** The device list. */
export function DevicesPage (): VNode {
  const { api } = useApp()
  const devices = useResource(signal => api.call('devices', {}, { signal }), [])
  const [revoking, setRevoking] = useState<DeviceInfo | undefined>(undefined)
  useRefreshOn(['devices', 'peer'], devices.reload, { throttleMs: 500 })

  const revoke = async (): Promise<void> => {
    if (revoking === undefined) return
    await api.call('revoke', { device: revoking.device })
    devices.reload()
  }

  return html`<div class="page">
    <h1>Devices</h1>
    <p class="lead">Every device of this swarm. Revoking a device disconnects it for good: it keeps what it had and can read nothing written afterwards.</p>
    <${ErrorAlert} error=${devices.error} />
    ${devices.data === undefined
      ? html`<p class="muted">${devices.error === undefined ? 'Loading…' : ''}</p>`
      : html`<div class="table-wrap">
        <table data-testid="devices">
          <thead><tr>
            <th scope="col">Name</th><th scope="col">Device ID</th><th scope="col">Status</th>
            <th scope="col">Last seen</th><th scope="col">Joined</th><th scope="col"><span class="visually-hidden">Actions</span></th>
          </tr></thead>
          <tbody>
            ${devices.data.map(d => html`<${DeviceRow} key=${d.device} device=${d} onRevoke=${() => { setRevoking(d) }} />`)}
          </tbody>
        </table>
      </div>`}
    <${ConfirmDialog}
      open=${revoking !== undefined}
      title="Revoke device?"
      confirmLabel="Revoke device"
      onConfirm=${revoke}
      onClose=${() => { setRevoking(undefined) }}
    >
      ${revoking !== undefined
        ? html`<p>Revoke <strong>${revoking.name}</strong> (<code class="id">${revoking.device}</code>)? It is disconnected and refused from now on. This cannot be undone.</p>`
        : null}
    <//>
  </div>`
}

/** One device with its state and, for the other devices, a Revoke button. */
function DeviceRow ({ device: d, onRevoke }: { readonly device: DeviceInfo, readonly onRevoke: () => void }): VNode {
  const state = d.revoked ? 'revoked' : d.online ? 'online' : 'offline'
  return html`<tr data-device=${d.device} class=${d.revoked ? 'is-revoked' : undefined}>
    <td>${d.name}${d.self ? html` <span class="tag">this device</span>` : null}</td>
    <td><code class="id">${d.device}</code></td>
    <td><span class=${`state state-${state}`} data-testid="device-state">${state}</span>
      ${d.revokedAt !== undefined ? html`<br /><span class="muted">${formatTime(d.revokedAt)}</span>` : null}</td>
    <td>${d.self ? 'now' : d.online ? 'now' : d.lastSeen !== undefined ? html`<time datetime=${d.lastSeen} title=${formatTime(d.lastSeen)}>${formatAgo(d.lastSeen)}</time>` : html`<span class="muted">unknown</span>`}</td>
    <td><time datetime=${d.certified}>${formatTime(d.certified)}</time></td>
    <td>${!d.self && !d.revoked
      ? html`<button type="button" class="danger small" onClick=${onRevoke}>Revoke</button>`
      : null}</td>
  </tr>`
}
