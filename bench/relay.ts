/**
 * Relayed vs direct, in one topology of network namespaces (needs root, iproute2, nftables; the
 * same topology as test/relay.test.ts): a relay node on the "wan", device A in a home behind
 * NAT, device B in a home whose NAT picks a random port per connection (it reaches A only
 * through the relay: hole punching fails there), device D in a home whose NAT keeps ports (it
 * punches a hole to A), device C on A's LAN.
 *
 *   node dist/bench/relay.js [docs]     # default 5000 documents
 *
 * - catch-up: a new device joins with an invite from A, which already holds N documents
 *   (`peakdb pair join` syncs before it returns): through the relay from B's home, from D's
 *   home (through the relay until a hole punch succeeds, which may happen during the join), and
 *   directly on A's LAN; the median of 3 joins each (the whole command, pairing included).
 * - live latency: A's daemon is sent one document at a time (through its local API, from a
 *   process in A's namespace); the time until a `peakdb watch` on B, D (once directly connected
 *   through the punched hole) or C prints it, p50 and p95 of 20.
 *
 * Every step is a whole CLI process, as users run it. Prints one JSON object on stdout.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildTopology, RELAY_IP, type Topology } from '../test/helpers/netns.js'
import { percentile, round } from './stats.js'
import { BIN, benchEnv, startDaemon, type BenchDaemon } from './daemon.js'

const N = Number(process.argv[2] ?? 5000)
const LIVE_WRITES = 20
const CATCH_UP_ROUNDS = 3
const PORT = 4011

/** Runs `peakdb <args>` in a namespace; resolves with stdout, rejects on a non-zero exit. */
async function cli (ns: string, args: string[], input?: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const c = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, ...args], { env: benchEnv, stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    c.stdout.on('data', (d: Buffer) => { out += d.toString() })
    c.stderr.on('data', (d: Buffer) => { err += d.toString() })
    c.on('error', reject)
    c.on('close', code => code === 0 ? resolve(out) : reject(new Error(`peakdb ${args.slice(0, 3).join(' ')} exited with ${String(code)}: ${err.trim()}`)))
    c.stdin.end(input ?? '')
  })
}

async function timed<T> (fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now()
  const r = await fn()
  return [performance.now() - t, r]
}

/**
 * Writes to A's daemon from a process of its own inside A's namespace, one document per line of
 * its stdin, through the local API (as the CLI does, without a process start per write); it
 * prints each id once the write is committed.
 */
const WRITER = `
const { readFileSync } = require('node:fs')
const { request } = require('node:http')
const api = JSON.parse(readFileSync(process.argv[1], 'utf8'))
require('node:readline').createInterface({ input: process.stdin }).on('line', line => {
  const body = JSON.stringify({ collection: 'live', doc: JSON.parse(line) })
  const req = request(api.url + '/api/v1/put', { method: 'POST', headers: { authorization: 'Bearer ' + api.token, 'content-type': 'application/json' } }, res => {
    res.resume()
    res.on('end', () => process.stdout.write(JSON.parse(line)._id + '\\n'))
  })
  req.end(body)
})`

/** Latency from a write on A (sent to its daemon) to the line of a `peakdb watch` on another device. */
async function liveLatency (ns: string, dir: string, writerNs: string, writerDir: string, tag: string): Promise<number[]> {
  const watch = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, 'watch', 'live', '--json', '--dir', dir], { env: benchEnv, stdio: ['ignore', 'pipe', 'inherit'] })
  const writer = spawn('ip', ['netns', 'exec', writerNs, process.execPath, '-e', WRITER, join(writerDir, 'api.json')], { stdio: ['pipe', 'ignore', 'inherit'] })
  let lines = ''
  const seen = new Map<string, () => void>()
  watch.stdout.on('data', (d: Buffer) => {
    lines += d.toString()
    for (const [id, done] of seen) if (lines.includes(`"id":"${id}"`)) { seen.delete(id); done() }
  })
  try {
    await until(() => lines.includes('"type":"initial"'), 30_000, 'the watch to start')
    const out: number[] = []
    for (let i = 0; i < LIVE_WRITES + 1; i++) {
      const id = `${tag}-${i}`
      const arrived = new Promise<void>(resolve => seen.set(id, resolve))
      const t = performance.now()
      writer.stdin.write(JSON.stringify({ _id: id, n: i }) + '\n')
      await Promise.race([arrived, new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`write ${id} did not arrive within 30 s`)), 30_000))])
      if (i > 0) out.push(performance.now() - t)
    }
    return out
  } finally {
    watch.kill('SIGTERM')
    writer.kill('SIGTERM')
  }
}

async function until (check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

const stats = (v: number[]): { p50Ms: number, p95Ms: number } => ({ p50Ms: round(percentile(v, 50), 1), p95Ms: round(percentile(v, 95), 1) })

let topo: Topology | undefined
const daemons: BenchDaemon[] = []
const root = mkdtempSync(join(tmpdir(), 'peakdb-bench-relay-'))
try {
  if (process.getuid?.() !== 0) throw new Error('the relay benchmark builds network namespaces: run it as root')
  topo = buildTopology(`b${process.pid % 1000}`, ['masquerade', 'random', 'masquerade'])
  const [homeA, homeB, homeD] = topo.homes as [typeof topo.homes[0], typeof topo.homes[0], typeof topo.homes[0]]
  const dir = (name: string): string => join(root, name)
  const relay = await startDaemon(dir('relay'), { netns: topo.relayNs, args: ['--name', 'cloud', '--relay', '--listen', `/ip4/0.0.0.0/tcp/${PORT}`, '--announce', `/ip4/${RELAY_IP}/tcp/${PORT}`] })
  daemons.push(relay)
  const relayAddr = `/ip4/${RELAY_IP}/tcp/${PORT}/p2p/${relay.started.deviceId}`
  const invite = async (ns: string, d: string): Promise<string> => (JSON.parse(await cli(ns, ['pair', 'invite', '--json', '--dir', d])) as { code: string }).code
  await cli(homeA.ns, ['pair', 'join', await invite(topo.relayNs, dir('relay')), '--name', 'homeA', '--dir', dir('a')])
  const a = await startDaemon(dir('a'), { netns: homeA.ns, args: ['--name', 'homeA', '--relays', relayAddr, '--listen', '/ip4/0.0.0.0/tcp/0'] })
  daemons.push(a)
  const docs = Array.from({ length: N }, (_, i) => ({ _id: `d${i}`, n: i, body: 'x'.repeat(200) }))
  await cli(homeA.ns, ['put', 'notes', '-', '--dir', dir('a')], JSON.stringify(docs))
  await until(async () => (await cli(homeA.ns, ['status', '--json', '--dir', dir('a')])).includes('"reachability":"relayed"'), 30_000, 'A to hold a reservation')
  const count = async (ns: string, d: string): Promise<number> => Number((await cli(ns, ['count', 'notes', '--dir', d])).trim())
  // a join syncs everything before it returns; the last round's devices stay for the live part
  const runs = { relayed: [] as number[], punched: [] as number[], direct: [] as number[] }
  for (let round = 0; round < CATCH_UP_ROUNDS; round++) {
    const name = (base: string): string => round === CATCH_UP_ROUNDS - 1 ? base : `${base}${round}`
    const join = async (ns: string, base: string): Promise<number> => (await timed(async () => await cli(ns, ['pair', 'join', await invite(homeA.ns, dir('a')), '--name', name(base), '--dir', dir(name(base))])))[0]
    runs.relayed.push(await join(homeB.ns, 'b'))
    runs.punched.push(await join(homeD.ns, 'd'))
    runs.direct.push(await join(homeA.ns, 'c'))
  }
  const catchUp = (v: number[]): { ms: number, docsPerSec: number, roundsMs: number[] } => ({ ms: round(percentile(v, 50), 0), docsPerSec: round(N / (percentile(v, 50) / 1000), 0), roundsMs: v.map(x => round(x, 0)) })
  const caughtUp = { relayed: await count(homeB.ns, dir('b')), punched: await count(homeD.ns, dir('d')), direct: await count(homeA.ns, dir('c')) }
  const b = await startDaemon(dir('b'), { netns: homeB.ns, args: ['--listen', '/ip4/0.0.0.0/tcp/0'] })
  const d = await startDaemon(dir('d'), { netns: homeD.ns, args: ['--listen', '/ip4/0.0.0.0/tcp/0'] })
  const c = await startDaemon(dir('c'), { netns: homeA.ns, args: ['--listen', '/ip4/0.0.0.0/tcp/0'] })
  daemons.push(b, d, c)
  const peerOf = async (ns: string, d: string, name: string): Promise<{ relayed: boolean, holePunch?: { result: string } } | undefined> =>
    (JSON.parse(await cli(ns, ['status', '--json', '--dir', d])) as { network: { peers: Array<{ name?: string, verified: boolean, relayed: boolean, holePunch?: { result: string } }> } }).network.peers.find(p => p.name === name && p.verified)
  await until(async () => (await peerOf(homeB.ns, dir('b'), 'homeA'))?.relayed === true, 30_000, 'B to be connected through the relay')
  await until(async () => (await peerOf(homeD.ns, dir('d'), 'homeA'))?.holePunch?.result === 'direct' && (await peerOf(homeD.ns, dir('d'), 'homeA'))?.relayed === false, 90_000, 'D to be connected to A through a punched hole')
  const relayedLive = await liveLatency(homeB.ns, dir('b'), homeA.ns, dir('a'), 'r')
  const punchedLive = await liveLatency(homeD.ns, dir('d'), homeA.ns, dir('a'), 'p')
  const directLive = await liveLatency(homeA.ns, dir('c'), homeA.ns, dir('a'), 'd')
  process.stdout.write(JSON.stringify({
    docs: N,
    catchUp: { relayed: catchUp(runs.relayed), punched: catchUp(runs.punched), direct: catchUp(runs.direct), caughtUp },
    liveLatency: { writes: LIVE_WRITES, relayed: stats(relayedLive), punched: stats(punchedLive), direct: stats(directLive) }
  }) + '\n')
} finally {
  for (const d of daemons.reverse()) await d.stop().catch(() => {})
  topo?.destroy()
  rmSync(root, { recursive: true, force: true })
}
