/**
 * Replication benchmark: two processes on loopback.
 * - catch-up: A holds N documents of 1 KiB (written one put at a time, then as one batch);
 *   B starts empty (same swarm) and dials A; time until B holds all N.
 * - live: with both connected, A writes 200 documents one at a time, each after B saw the
 *   previous; latency from A's put() to B's change event.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { percentile, round } from './stats.js'

const here = dirname(fileURLToPath(import.meta.url))

/** A PeakDB node in its own process (bench/replica-worker.ts), driven over IPC. */
export class Replica {
  private seq = 0
  private readonly waiting = new Map<number, (r: Record<string, unknown>) => void>()
  readonly seen = new Map<string, number>()
  private constructor (readonly child: ChildProcess) {
    child.on('message', (m: Record<string, unknown>) => {
      if (m.event === 'seen') this.seen.set(m.id as string, m.t as number)
      else if (typeof m.seq === 'number') this.waiting.get(m.seq)?.(m)
    })
  }

  static async start (): Promise<Replica> {
    const child = fork(join(here, 'replica-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, PEAKDB_LOG: process.env.PEAKDB_LOG ?? 'warn' } })
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve())
      child.once('exit', code => reject(new Error(`replica exited with ${String(code)}`)))
    })
    return new Replica(child)
  }

  async call (msg: Record<string, unknown>, timeoutMs = 120_000): Promise<Record<string, unknown>> {
    const seq = ++this.seq
    const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`replica did not answer ${String(msg.cmd)} within ${timeoutMs} ms`)), timeoutMs)
      this.waiting.set(seq, r => { clearTimeout(timer); resolve(r) })
      this.child.send({ ...msg, seq })
    })
    this.waiting.delete(seq)
    if (reply.ok !== true) throw new Error(`replica ${String(msg.cmd)} failed: ${String(reply.error)}`)
    return reply
  }

  async waitSeen (id: string, timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs
    while (!this.seen.has(id)) {
      if (Date.now() > deadline) throw new Error(`replica did not see ${id} within ${timeoutMs} ms`)
      await new Promise(resolve => setTimeout(resolve, 0))
    }
    return this.seen.get(id) as number
  }
}

async function catchUp (N: number, mode: 'single' | 'batch'): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-repl-'))
  const a = await Replica.start()
  const b = await Replica.start()
  try {
    const openA = await a.call({ cmd: 'open', dir: join(dir, 'a') })
    const fill = await a.call({ cmd: 'fill', n: N, mode })
    await b.call({ cmd: 'open', dir: join(dir, 'b'), phrase: openA.phrase })
    const { t0 } = await b.call({ cmd: 'connect', addr: openA.addr })
    const done = await b.call({ cmd: 'waitCount', n: N })
    const seconds = ((done.t as number) - (t0 as number)) / 1000
    const rssA = (await a.call({ cmd: 'close' })).peakRssMb
    const rssB = (await b.call({ cmd: 'close' })).peakRssMb
    return { historyWrittenAs: mode === 'single' ? `${N} single puts (${String(fill.entries)} entries)` : `one putMany (${String(fill.entries)} entries)`, seconds: round(seconds, 3), docsPerSec: round(N / seconds, 0), peakRssMbA: rssA, peakRssMbB: rssB }
  } finally {
    a.child.kill()
    b.child.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}

async function live (count: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-live-'))
  const a = await Replica.start()
  const b = await Replica.start()
  try {
    const openA = await a.call({ cmd: 'open', dir: join(dir, 'a') })
    await b.call({ cmd: 'open', dir: join(dir, 'b'), phrase: openA.phrase })
    await b.call({ cmd: 'connect', addr: openA.addr })
    // warm-up: keys shared, gossip mesh formed
    for (let i = 0; i < 20; i++) {
      await a.call({ cmd: 'put', id: `live-warm-${i}` })
      await b.waitSeen(`live-warm-${i}`, 30_000)
    }
    const latencies: number[] = []
    for (let i = 0; i < count; i++) {
      const id = `live-${i}`
      const { t0 } = await a.call({ cmd: 'put', id })
      const t1 = await b.waitSeen(id)
      latencies.push(t1 - (t0 as number))
    }
    const rssA = (await a.call({ cmd: 'close' })).peakRssMb
    const rssB = (await b.call({ cmd: 'close' })).peakRssMb
    return { writes: count, p50Ms: round(percentile(latencies, 50), 2), p95Ms: round(percentile(latencies, 95), 2), maxMs: round(Math.max(...latencies), 2), peakRssMbA: rssA, peakRssMbB: rssB }
  } finally {
    a.child.kill()
    b.child.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Runs the replication benchmarks. */
export async function replicationBench (N: number): Promise<Record<string, unknown>> {
  return {
    N,
    catchUpSinglePutHistory: await catchUp(N, 'single'),
    catchUpBatchHistory: await catchUp(N, 'batch'),
    live: await live(200)
  }
}
