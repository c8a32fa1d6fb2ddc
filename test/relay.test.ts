/**
 * Devices on other networks, behind real NATs: network namespaces built by the test (a public
 * relay host, and four homes each behind its own nftables masquerade: home B's picks a random
 * port for every connection, which defeats hole punching; home C's router forwards ports with
 * UPnP), CLI daemons in each. Nothing routes into a home unless its router forwards a port; the
 * others meet through the swarm's relay node, and homes A and D punch a hole to each other.
 */
import { strict as assert } from 'node:assert'
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BIN, runCli, startDaemon, type Daemon } from './helpers/cli.js'
import { buildTopology, RELAY_IP, type Home, type Topology } from './helpers/netns.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { waitFor } from './helpers/wait-for.js'

const STRANGER = fileURLToPath(new URL('./fixtures/stranger-reserve.ts', import.meta.url))
const RELAY_PORT = 4011

interface PeerView { device: string, name?: string, verified: boolean, addrs: string[], relayed: boolean, relay?: string, holePunch?: { result: string, error?: string } }
interface StatusView { deviceId: string, network: { reachability: string, multiaddrs: string[], peers: PeerView[] } }

describe('devices behind NATs, through the swarm\'s relay node (network namespaces)', function () {
  this.timeout(180_000)
  const dirs = new TmpDirs()
  const daemons = new Set<Daemon>()
  const children = new Set<ChildProcess>()
  let topo: Topology
  let homeA: Home
  let homeB: Home
  /** Behind a NAT that forwards the ports its devices ask for (UPnP). */
  let homeC: Home
  /** Behind a NAT that keeps ports, like home A's: the two can punch a hole. */
  let homeD: Home
  let dirR: string
  let dirA: string
  let dirB: string
  let dirC: string
  let dirD: string
  let relay: Daemon
  let relayAddr: string

  const cli = async (home: Home | 'relay', args: string[], timeoutMs = 60_000): Promise<string> => {
    const r = await runCli(args, { netns: home === 'relay' ? topo.relayNs : home.ns, timeoutMs })
    assert.equal(r.code, 0, `peakdb ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }
  const status = async (home: Home | 'relay', dir: string): Promise<StatusView> => JSON.parse(await cli(home, ['status', '--json', '--dir', dir])) as StatusView
  const start = async (home: Home | 'relay', args: string[]): Promise<Daemon> => {
    const d = await startDaemon(args, { netns: home === 'relay' ? topo.relayNs : home.ns })
    daemons.add(d)
    return d
  }
  const startRelay = async (): Promise<Daemon> => await start('relay', ['--dir', dirR, '--name', 'cloud', '--relay', '--listen', `/ip4/0.0.0.0/tcp/${RELAY_PORT}`, '--announce', `/ip4/${RELAY_IP}/tcp/${RELAY_PORT}`, '--no-dht'])
  /** A home device's daemon: given the relay, or left to find it among the swarm's devices. */
  const startHome = async (home: Home, dir: string, relays: string[] = []): Promise<Daemon> =>
    await start(home, ['--dir', dir, ...(relays.length > 0 ? ['--relays', ...relays] : []), '--listen', '/ip4/0.0.0.0/tcp/0', '--no-dht'])
  const relayedTo = async (home: Home, dir: string, name: string): Promise<PeerView | undefined> =>
    (await status(home, dir)).network.peers.find(p => p.name === name && p.verified && p.relayed)

  before(async function () {
    topo = buildTopology(String(process.pid % 10_000), ['masquerade', 'random', 'upnp', 'masquerade'])
    ;[homeA, homeB, homeC, homeD] = topo.homes as [Home, Home, Home, Home]
    dirR = dirs.make()
    dirA = dirs.make()
    dirB = dirs.make()
    dirC = dirs.make()
    dirD = dirs.make()
  })

  after(async function () {
    for (const c of children) c.kill('SIGKILL')
    for (const d of daemons) await d.stop().catch(() => {})
    topo?.destroy()
    dirs.cleanup()
  })

  it('the homes cannot reach each other, only the public relay host', async () => {
    const probe = (target: string): string => `require('net').connect({ host: '${target}', port: 9, timeout: 3000 }).on('error', e => { console.log(e.code); process.exit(0) }).on('timeout', () => { console.log('TIMEOUT'); process.exit(0) }).on('connect', () => { console.log('CONNECTED'); process.exit(0) })`
    const run = async (ns: string, target: string): Promise<string> => await new Promise((resolve, reject) => {
      const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', probe(target)], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      c.stdout.on('data', (d: Buffer) => { out += d.toString() })
      c.on('error', reject)
      c.on('close', () => resolve(out.trim()))
    })
    assert.equal(await run(homeA.ns, homeB.ip), 'ENETUNREACH', 'no route from home A into home B')
    assert.equal(await run(homeA.ns, RELAY_IP), 'ECONNREFUSED', 'the relay host answers (nothing listens on port 9 yet)')
    assert.equal(await run(topo.relayNs, homeA.ip), 'ENETUNREACH', 'nor into a home from outside')
  })

  it('pairs home A with the relay node, then home B with home A through the relay; B finds the relay by itself', async () => {
    relay = await startRelay()
    relayAddr = `/ip4/${RELAY_IP}/tcp/${RELAY_PORT}/p2p/${relay.started.deviceId as string}`
    const fromRelay = JSON.parse(await cli('relay', ['pair', 'invite', '--json', '--dir', dirR])) as { code: string }
    await cli(homeA, ['pair', 'join', fromRelay.code, '--name', 'homeA', '--dir', dirA, '--json'])
    await startHome(homeA, dirA, [relayAddr])
    await waitFor(async () => (await status(homeA, dirA)).network.reachability === 'relayed', { timeoutMs: 30_000, message: 'home A to hold a reservation on the relay' })
    const s = await status(homeA, dirA)
    assert.ok(s.network.multiaddrs.some(a => a.startsWith(`${relayAddr}/p2p-circuit/p2p/${s.deviceId}`)), 'home A is reachable through the relay')
    assert.equal((await status('relay', dirR)).network.reachability, 'public')
    // an invite made at home carries the way through the relay first
    const fromA = JSON.parse(await cli(homeA, ['pair', 'invite', '--json', '--dir', dirA])) as { code: string, addrs: string[] }
    assert.equal(fromA.addrs[0], `${relayAddr}/p2p-circuit`)
    await cli(homeB, ['pair', 'join', fromA.code, '--name', 'homeB', '--dir', dirB, '--json'])
    // no --relays: B meets the relay node as a member of its swarm, and reserves on it
    await startHome(homeB, dirB)
    await waitFor(async () => (await status(homeB, dirB)).network.reachability === 'relayed', { timeoutMs: 30_000, message: 'home B to find the relay node and hold a reservation on it' })
    const viaRelay = await waitFor(async () => await relayedTo(homeA, dirA, 'homeB'), { timeoutMs: 30_000, message: 'home A to be connected to home B through the relay' })
    assert.equal(viaRelay.relay, relay.started.deviceId)
    const peers = JSON.parse(await cli(homeB, ['peers', '--json', '--dir', dirB])) as { connected: PeerView[] }
    assert.equal(peers.connected.find(p => p.name === 'homeA')?.relayed, true)
  })

  it('a write in home A reaches home B and its live query; a swarm search and a memory recall from A find what only B holds', async () => {
    const watch = spawn('ip', ['netns', 'exec', homeB.ns, process.execPath, BIN, 'watch', 'notes', '--json', '--dir', dirB], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(watch)
    let lines = ''
    watch.stdout.on('data', (d: Buffer) => { lines += d.toString() })
    await waitFor(() => lines.includes('"type":"initial"'), { timeoutMs: 20_000, message: 'the watch in home B to start' })
    await cli(homeA, ['put', 'notes', '{"_id":"from-a","title":"written in home A"}', '--dir', dirA])
    await waitFor(() => lines.includes('"id":"from-a"'), { timeoutMs: 20_000, message: 'the live query in home B to see the write' })
    assert.match(lines, /"type":"added","id":"from-a".*"origin":"remote"/)
    watch.kill('SIGTERM')
    children.delete(watch)
    // a device-local folder index: it lives on B only, not on the relay's replica
    const folder = dirs.make()
    writeFileSync(join(folder, 'boiler.txt'), 'Boiler service receipt: the plumber replaced the pressure valve in March.')
    await cli(homeB, ['index', folder, '--dir', dirB, '--json'], 120_000)
    const found = JSON.parse(await cli(homeA, ['search', 'boiler pressure valve', '--swarm', '--json', '--dir', dirA])) as { hits: Array<{ deviceName: string, doc: { name: string } }>, devices: Array<{ name: string, ok: boolean }> }
    assert.equal(found.hits[0]?.deviceName, 'homeB')
    assert.equal(found.hits[0]?.doc.name, 'boiler.txt')
    // context memory stays on its device too: recalled from A through the relay
    const b = await status(homeB, dirB)
    await cli(homeB, ['memory', 'add', 'The plumber comes back on Thursday to check the boiler valve', '--agent', 'house', '--dir', dirB])
    const recalled = JSON.parse(await cli(homeA, ['memory', 'recall', 'when does the plumber come back', '--swarm', '--json', '--dir', dirA], 120_000)) as Array<{ device?: string, memory: { content: string } }>
    const remote = recalled.find(h => h.device === b.deviceId)
    assert.match(remote?.memory.content ?? '', /plumber comes back on Thursday/, `recalled from home B: ${JSON.stringify(recalled)}`)
  })

  it('homes behind NATs that keep ports punch a hole and connect directly; behind one that does not, they stay relayed', async () => {
    const fromA = JSON.parse(await cli(homeA, ['pair', 'invite', '--json', '--dir', dirA])) as { code: string }
    await cli(homeD, ['pair', 'join', fromA.code, '--name', 'homeD', '--dir', dirD, '--json'])
    await startHome(homeD, dirD)
    const punched = await waitFor(async () => (await status(homeA, dirA)).network.peers.find(p => p.name === 'homeD' && p.verified && !p.relayed), { timeoutMs: 90_000, intervalMs: 500, message: 'home A to be connected to home D directly, through a hole punch' })
    assert.equal(punched.holePunch?.result, 'direct')
    assert.ok(punched.addrs.some(a => a.startsWith(`/ip4/${homeD.publicIp}/tcp/`)), `connected at home D's NAT: ${punched.addrs.join(' ')}`)
    const fromD = (await status(homeD, dirD)).network.peers.find(p => p.name === 'homeA' && p.verified)
    assert.equal(fromD?.relayed, false, 'home D sees the direct connection too')
    await cli(homeD, ['put', 'notes', '{"_id":"from-d","title":"through the punched hole"}', '--dir', dirD])
    await waitFor(async () => (await runCli(['get', 'notes', 'from-d', '--dir', dirA], { netns: homeA.ns })).code === 0, { timeoutMs: 20_000, message: 'the write to reach home A' })
    // home B's NAT picks a new port for each connection: the punch with A is tried (on the
    // connection, or again within an anti-entropy round) and fails; they stay relayed
    const tried = await waitFor(async () => {
      const fromA = await relayedTo(homeA, dirA, 'homeB')
      return fromA?.holePunch ?? (await status(homeB, dirB)).network.peers.find(p => p.name === 'homeA' && p.relayed)?.holePunch
    }, { timeoutMs: 75_000, intervalMs: 1_000, message: 'a hole punch between homes A and B to be tried and reported' })
    assert.equal(tried.result, 'failed')
    assert.ok(await relayedTo(homeA, dirA, 'homeB') !== undefined, 'home A still reaches home B through the relay')
  })

  it('a device behind a NAT that forwards its port (UPnP) is reached directly', async () => {
    const fromA = JSON.parse(await cli(homeA, ['pair', 'invite', '--json', '--dir', dirA])) as { code: string }
    await cli(homeC, ['pair', 'join', fromA.code, '--name', 'homeC', '--dir', dirC, '--json'])
    await start(homeC, ['--dir', dirC, '--upnp', '--listen', '/ip4/0.0.0.0/tcp/0', '--no-dht'])
    const c = await waitFor(async () => {
      const s = await status(homeC, dirC)
      return s.network.reachability === 'public' && s.network.multiaddrs.some(a => a.startsWith(`${relayAddr}/p2p-circuit/`)) ? s : undefined
    }, { timeoutMs: 30_000, message: 'home C to get a forwarded port from its router, and a reservation on the relay it met' })
    assert.ok(c.network.multiaddrs.some(a => a.startsWith(`/ip4/${homeC.publicIp}/tcp/`)), 'home C announces its router\'s public address')
    // home B, behind a plain NAT, dials that address: the router forwards it, no relay
    const publicAddr = c.network.multiaddrs.find(a => a.startsWith(`/ip4/${homeC.publicIp}/tcp/`)) as string
    await cli(homeB, ['connect', publicAddr, '--dir', dirB])
    const direct = await waitFor(async () => (await status(homeB, dirB)).network.peers.find(p => p.name === 'homeC' && p.verified && !p.relayed), { timeoutMs: 30_000, message: 'home B to be connected to home C directly' })
    assert.equal(direct.relay, undefined)
    assert.ok(direct.addrs.some(a => a.startsWith(`/ip4/${homeC.publicIp}/tcp/`)), `connected at the forwarded port: ${direct.addrs.join(' ')}`)
    await cli(homeC, ['put', 'notes', '{"_id":"from-c","title":"written behind UPnP"}', '--dir', dirC])
    await waitFor(async () => (await runCli(['get', 'notes', 'from-c', '--dir', dirB], { netns: homeB.ns })).code === 0, { timeoutMs: 20_000, message: 'the write to reach home B' })
  })

  it('refuses a reservation to a stranger', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const c = spawn('ip', ['netns', 'exec', homeA.ns, process.execPath, '--import', 'tsx', STRANGER, relayAddr], { stdio: ['ignore', 'pipe', 'pipe'] })
      children.add(c)
      let text = ''
      c.stdout.on('data', (d: Buffer) => { text += d.toString() })
      const timer = setTimeout(() => { c.kill('SIGKILL'); reject(new Error('the stranger did not finish within 60 s')) }, 60_000)
      c.on('close', () => { clearTimeout(timer); children.delete(c); resolve(text.trim()) })
    })
    const r = JSON.parse(out) as { reserved: boolean, error?: string }
    assert.equal(r.reserved, false)
    assert.match(r.error ?? '', /PERMISSION_DENIED/, 'refused as a stranger, not for want of room')
  })

  it('homes reconnect through the relay by themselves after it restarts, and keep syncing', async () => {
    assert.equal(await relay.stop(), 0)
    daemons.delete(relay)
    await waitFor(async () => (await status(homeB, dirB)).network.reachability !== 'relayed', { timeoutMs: 20_000, message: 'home B to lose its reservation with the relay gone' })
    relay = await startRelay()
    await waitFor(async () => (await relayedTo(homeA, dirA, 'homeB')) !== undefined && (await status(homeB, dirB)).network.reachability === 'relayed', { timeoutMs: 60_000, intervalMs: 500, message: 'the homes to be connected through the restarted relay' })
    await cli(homeA, ['put', 'notes', '{"_id":"after-restart","title":"still in sync"}', '--dir', dirA])
    await waitFor(async () => (await runCli(['get', 'notes', 'after-restart', '--dir', dirB], { netns: homeB.ns })).code === 0, { timeoutMs: 30_000, message: 'the write to reach home B' })
  })
})
