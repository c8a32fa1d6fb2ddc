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
  | { cmd: 'openSearch', dir: string, phrase?: string, name: string }
  | { cmd: 'fillNotes', n: number, seed: number }
  | { cmd: 'swarmSearch', text: string, k: number }
  | { cmd: 'close' }

const now = (): number => performance.timeOrigin + performance.now()
const TOPICS = ['tax return', 'sourdough bread', 'garden shed', 'the cat', 'quarterly review', 'train to the coast', 'broken heater', 'guitar practice', 'dentist appointment', 'insurance renewal', 'birthday gift', 'winter tyres']
const VERBS = ['remember', 'sort out', 'ask about', 'write down', 'look into', 'pay for', 'plan']
/** A short synthetic note (about 12 words). */
function note (i: number): string {
  return `${VERBS[i % VERBS.length] as string} ${TOPICS[(i >> 3) % TOPICS.length] as string} before day ${i % 28} and note what changed since ${i % 12} weeks`
}
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
    case 'openSearch': {
      // swarm search: the default embedder, indexing on demand (fillNotes waits for it)
      node = await PeakNode.open({ dir: c.dir, deviceName: c.name, ...(c.phrase !== undefined ? { recoveryPhrase: c.phrase } : {}), network: { listen: ['/ip4/127.0.0.1/tcp/0'], dht: false }, backgroundIndexing: false })
      return { phrase: node.recoveryPhrase, addr: node.network?.multiaddrs()[0], deviceId: node.deviceId }
    }
    case 'fillNotes': {
      const notes = node!.collection('files', { replicate: false })
      const t0 = now()
      await notes.putMany(Array.from({ length: c.n }, (_, i) => ({ _id: `n${i}`, text: note(c.seed * 1_000_003 + i) })))
      await notes.indexed()
      const seconds = (now() - t0) / 1000
      // a first search starts the in-memory indexes of a large collection: wait for them
      await notes.search({ text: 'warm up', k: 1 })
      await node!.ann.settled()
      return { seconds, vectorIndexes: node!.ann.status().map(s => s.search) }
    }
    case 'swarmSearch': {
      const r = await node!.swarm.search({ collection: 'files', text: c.text, k: c.k, timeout: 10_000 })
      return { ms: r.ms, embedMs: r.embedMs, hits: r.hits.length, devices: r.devices.map(d => ({ status: d.status, ms: d.ms, self: d.self })) }
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
