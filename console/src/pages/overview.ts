/**
 * Overview page: this device, its peers and their sync progress, the log (size, version
 * vector, pending work) and the storage providers. Follows peer, sync and change events.
 */
import { Fragment, type VNode } from 'preact'
import { useState } from 'preact/hooks'
import type { DeviceInfo, NodeStatus, ProviderInfo, ServerEvents, SyncState } from '../api-types.js'
import { useApp } from '../app-context.js'
import { ErrorAlert } from '../components/error-alert.js'
import { Facts } from '../components/facts.js'
import { formatAgo, formatCount, formatMs, shortId } from '../format.js'
import { html } from '../html.js'
import { useResource } from '../use-resource.js'
import { useRefreshOn, useServerEvent } from '../use-server-event.js'

/** The overview of this device and its swarm. */
export function OverviewPage (): VNode {
  const { api } = useApp()
  const status = useResource(signal => api.call('status', {}, { signal }), [])
  const index = useResource(signal => api.call('indexStatus', {}, { signal }), [])
  const providers = useResource(signal => api.call('providers', {}, { signal }), [])
  const devices = useResource(signal => api.call('devices', {}, { signal }), [])
  const [liveSync, setLiveSync] = useState<Readonly<Record<string, ServerEvents['sync']>>>({})

  useServerEvent('sync', ev => { setLiveSync(s => ({ ...s, [ev.peer]: ev })) })
  useRefreshOn(['peer'], status.reload)
  useRefreshOn(['sync'], status.reload, { throttleMs: 1000 })
  useRefreshOn(['change'], () => { status.reload(); index.reload() }, { throttleMs: 1000 })
  useRefreshOn(['index'], index.reload, { throttleMs: 1000 })
  useRefreshOn(['devices', 'peer'], devices.reload, { throttleMs: 1000 })

  const s = status.data
  const names = namesOf(devices.data, s)
  return html`<div class="page">
    <h1>Overview</h1>
    <${ErrorAlert} error=${status.error} />
    ${s === undefined
      ? html`<p class="muted" aria-live="polite">${status.error === undefined ? 'Loading…' : ''}</p>`
      : html`<${Fragment}>
        <section aria-labelledby="device-heading">
          <h2 id="device-heading">This device</h2>
          <${DeviceFacts} status=${s} />
        </section>
        <section aria-labelledby="peers-heading">
          <h2 id="peers-heading">Peers online</h2>
          <${Peers} status=${s} live=${liveSync} names=${names} />
        </section>
        <section aria-labelledby="log-heading">
          <h2 id="log-heading">Log</h2>
          <${Facts} items=${[
            ['Log size', html`<span data-testid="log-entries">${formatCount(s.entries)} entries</span>`],
            ['Pending entries', html`<span data-testid="pending-entries">${formatCount(s.pendingEntries)}</span>`],
            ['Waiting to be indexed', html`<span data-testid="index-pending">${index.data !== undefined ? `${formatCount(index.data.pending)} documents` : '…'}</span>`],
            ['Confirmed up to', `seq ${s.confirmedSeq}`]
          ]} />
          <${ErrorAlert} error=${index.error} />
          <${VersionVector} status=${s} names=${names} />
        </section>
      <//>`}
    <section aria-labelledby="providers-heading">
      <h2 id="providers-heading">Storage providers</h2>
      <${ErrorAlert} error=${providers.error} />
      ${providers.data !== undefined ? html`<${Providers} providers=${providers.data} />` : null}
    </section>
  </div>`
}

/** Who this device is and where it keeps its data. */
function DeviceFacts ({ status: s }: { readonly status: NodeStatus }): VNode {
  return html`<div>
    ${s.revoked !== undefined ? html`<p class="alert-box">This device was revoked (${s.revoked.at}).</p>` : null}
    <${Facts} items=${[
      ['Name', s.deviceName],
      ['Device ID', html`<code data-testid="device-id" class="id">${s.deviceId}</code>`],
      ['Swarm ID', html`<code data-testid="swarm-id" class="id">${s.swarmId}</code>`],
      ['Storage', `${s.storage.kind} · ${s.storage.location}`],
      ['Network', s.network !== undefined
        ? html`<span>online, reachable ${REACHABILITY[s.network.reachability]}${s.network.multiaddrs.length > 0 ? html`, listening on <span class="addrs">${s.network.multiaddrs.map(a => html`<code key=${a}>${a}</code> `)}</span>` : null}</span>`
        : 'not on the network']
    ]} />
  </div>`
}

interface PeersProps {
  readonly status: NodeStatus
  readonly live: Readonly<Record<string, ServerEvents['sync']>>
  readonly names: ReadonlyMap<string, string>
}

/** How other devices reach this one, in words. */
const REACHABILITY: Record<'public' | 'relayed' | 'private' | 'local', string> = {
  public: 'from anywhere',
  relayed: 'through a relay',
  private: 'on private networks only',
  local: 'from this machine only'
}

/** Connected peers with their sync state. */
function Peers ({ status, live, names }: PeersProps): VNode {
  if (status.network === undefined) return html`<p class="muted">This device is not on the network: start it with <code>peakdb start</code>.</p>`
  const peers = status.network.peers.filter(p => p.verified)
  if (peers.length === 0) return html`<p class="muted" data-testid="no-peers">No peers online.</p>`
  const polled = new Map<string, SyncState>(status.network.syncing.map(x => [x.peer, x]))
  return html`<div class="table-wrap">
    <table data-testid="peers">
      <thead><tr><th scope="col">Device</th><th scope="col">Device ID</th><th scope="col">Connection</th><th scope="col">Sync</th><th scope="col">Last sync</th></tr></thead>
      <tbody>
        ${peers.map(p => {
          const name = p.name ?? names.get(p.device) ?? 'unnamed'
          return html`<tr key=${p.device} data-peer=${p.device}>
            <td>${name}</td>
            <td><code class="id" title=${p.device}>${shortId(p.device)}</code></td>
            <td>${p.relayed ? html`relayed via <code class="id" title=${p.relay}>${shortId(p.relay ?? '')}</code>` : 'direct'}</td>
            <td><${SyncCell} name=${name} event=${live[p.device]} polled=${polled.get(p.device)} syncing=${p.syncing} /></td>
            <td>${p.lastSync !== undefined ? formatAgo(p.lastSync) : '—'}</td>
          </tr>`
        })}
      </tbody>
    </table>
  </div>`
}

interface SyncCellProps {
  readonly name: string
  readonly event: ServerEvents['sync'] | undefined
  readonly polled: SyncState | undefined
  readonly syncing: boolean
}

/** A pull's progress: the live event when there is one, else the last status. */
function SyncCell ({ name, event, polled, syncing }: SyncCellProps): VNode {
  const running = event !== undefined ? (event.done ? undefined : event) : polled
  if (running === undefined) {
    return html`<span class="muted">${syncing ? 'syncing…' : event?.done === true ? `up to date (${formatCount(event.received)} received)` : 'up to date'}</span>`
  }
  const total = Math.max(running.total, running.received, 1)
  return html`<span class="sync">
    <progress max=${total} value=${running.received} aria-label=${`Sync from ${name}`}></progress>
    <span>${formatCount(running.received)} / ${formatCount(running.total)}</span>
  </span>`
}

/** How far this device holds each device's chain. */
function VersionVector ({ status, names }: { readonly status: NodeStatus, readonly names: ReadonlyMap<string, string> }): VNode {
  const rows = Object.entries(status.versionVector).sort(([, a], [, b]) => b - a)
  if (rows.length === 0) return html`<p class="muted">The log is empty.</p>`
  return html`<div class="table-wrap">
    <table data-testid="version-vector">
      <caption>Version vector: the last entry held of each device's chain</caption>
      <thead><tr><th scope="col">Device</th><th scope="col">Device ID</th><th scope="col" class="num">Seq</th></tr></thead>
      <tbody>
        ${rows.map(([device, seq]) => html`<tr key=${device}>
          <td>${names.get(device) ?? '—'}${device === status.deviceId ? html` <span class="tag">this device</span>` : null}</td>
          <td><code class="id" title=${device}>${shortId(device)}</code></td>
          <td class="num">${formatCount(seq)}</td>
        </tr>`)}
      </tbody>
    </table>
  </div>`
}

/** The storage providers and their health. */
function Providers ({ providers }: { readonly providers: readonly ProviderInfo[] }): VNode {
  return html`<div class="table-wrap">
    <table data-testid="providers">
      <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Location</th><th scope="col">Health</th><th scope="col" class="num">Round trip</th><th scope="col">Routes</th></tr></thead>
      <tbody>
        ${providers.map(p => html`<tr key=${p.name}>
          <td>${p.name}</td>
          <td>${p.kind}</td>
          <td class="wrap">${p.location}</td>
          <td>${p.healthy ? html`<span class="ok">healthy</span>` : html`<span class="bad">failing</span>${p.error !== undefined ? html`: ${p.error}` : null}`}
            ${p.pool !== undefined ? html`<br /><span class="muted">pool ${p.pool.inUse}/${p.pool.max} in use, ${p.pool.waiting} waiting</span>` : null}</td>
          <td class="num">${formatMs(p.rttMs)}</td>
          <td>${p.routes.length > 0 ? p.routes.join(', ') : html`<span class="muted">—</span>`}</td>
        </tr>`)}
      </tbody>
    </table>
  </div>`
}

/** Device names by DeviceId, from the device list and this device's status. */
function namesOf (devices: readonly DeviceInfo[] | undefined, status: NodeStatus | undefined): ReadonlyMap<string, string> {
  const names = new Map<string, string>()
  for (const d of devices ?? []) names.set(d.device, d.name)
  for (const p of status?.network?.peers ?? []) if (p.name !== undefined) names.set(p.device, p.name)
  if (status !== undefined) names.set(status.deviceId, status.deviceName)
  return names
}
