/**
 * A benchmark replica: one PeakDB node in its own process, driven over IPC by
 * bench/replication.ts. Timestamps are wall-clock milliseconds with sub-millisecond precision
 * (performance.timeOrigin + performance.now()), comparable across processes on one machine.
 */
import '../node/polyfills.js'
import { PeakNode } from '../node/index.js'
import { peakRssMb } from './stats.js'

type Command =
  | { cmd: 'open', dir: string, phrase?: string }
  | { cmd: 'fill', n: number, mode: 'single' | 'batch' }
  | { cmd: 'connect', addr: string }
  | { cmd: 'waitCount', n: number }
  | { cmd: 'put', id: string }
  | { cmd: 'close' }

const now = (): number => performance.timeOrigin + performance.now()
const BODY = 'x'.repeat(1024)
let node: PeakNode | undefined
let countWaiter: { n: number, resolve: () => void } | undefined

function send (msg: Record<string, unknown>): void {
  process.send?.(msg)
}

async function count (): Promise<number> {
  return await (node as PeakNode).collection('docs').count()
}

async function handle (c: Command): Promise<Record<string, unknown>> {
  switch (c.cmd) {
    case 'open': {
      // replication alone: search indexing (measured in embedding.ts) does not run alongside
      node = await PeakNode.open({ dir: c.dir, ...(c.phrase !== undefined ? { recoveryPhrase: c.phrase } : {}), network: { listen: ['/ip4/127.0.0.1/tcp/0'], dht: false }, backgroundIndexing: false })
      node.on('change', ev => {
        const t = now()
        for (const ch of ev.changes) if (ev.origin === 'remote' && ch.id.startsWith('live-')) send({ event: 'seen', id: ch.id, t })
        if (countWaiter !== undefined) {
          const w = countWaiter
          void count().then(n => { if (n >= w.n && countWaiter === w) { countWaiter = undefined; w.resolve() } })
        }
      })
      return { phrase: node.recoveryPhrase, addr: node.network?.multiaddrs()[0], deviceId: node.deviceId }
    }
    case 'fill': {
      const docs = node!.collection('docs')
      if (c.mode === 'batch') await docs.putMany(Array.from({ length: c.n }, (_, i) => ({ _id: `d${i}`, n: i, body: BODY })))
      else for (let i = 0; i < c.n; i++) await docs.put({ _id: `d${i}`, n: i, body: BODY })
      return { entries: (await node!.status()).entries }
    }
    case 'connect': {
      const t0 = now()
      await node!.connect(c.addr)
      return { t0 }
    }
    case 'waitCount': {
      // register first, then check, so a change between the two is not missed
      const reached = new Promise<void>(resolve => { countWaiter = { n: c.n, resolve } })
      if (await count() >= c.n) countWaiter = undefined
      else await reached
      return { t: now(), entries: (await node!.status()).entries }
    }
    case 'put': {
      const t0 = now()
      await node!.collection('docs').put({ _id: c.id, n: 0, body: BODY })
      return { t0 }
    }
    case 'close': {
      const rss = peakRssMb()
      await node?.close()
      return { peakRssMb: rss }
    }
  }
}

process.on('message', (msg: Command & { seq: number }) => {
  handle(msg).then(r => send({ seq: msg.seq, ok: true, ...r }), err => send({ seq: msg.seq, ok: false, error: (err as Error).message }))
})
send({ event: 'ready' })
