import assert from 'node:assert/strict'
import { PeakNode, type SwarmHit } from '../node/index.js'
import { normalise } from '../node/embedding/embedder.js'
import { SEARCH_PROTOCOL, encodeMessage, decodeMessage, searchResponseSchema, errorSchema } from '../transport/index.js'
import { lpStream } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { LOOPBACK, TestSwarm, connect, waitForConvergence } from './helpers/nodes.js'
import { hashEmbedder } from './helpers/embedders.js'
import { runCli, startDaemon, type Daemon } from './helpers/cli.js'
import { rejectsNamed } from './helpers/errors.js'
import { waitFor } from './helpers/wait-for.js'

const WORDS = ['tax', 'return', 'receipt', 'invoice', 'cat', 'garden', 'piano', 'river', 'holiday', 'train', 'kettle', 'warranty', 'bread', 'oven', 'lemon', 'stone']

/** A seeded sentence of 4..7 words. */
function sentence (seed: number): string {
  let a = seed * 2654435761 >>> 0
  const next = (): number => { a = (a * 1103515245 + 12345) >>> 0; return a }
  return Array.from({ length: 4 + next() % 4 }, () => WORDS[next() % WORDS.length]).join(' ')
}

function cosine (a: Float32Array, b: Float32Array): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number)
  return s
}

describe('swarm search: one query over every online device', function () {
  this.timeout(120_000)
  const swarm = new TestSwarm()
  let a: PeakNode
  let b: PeakNode
  let c: PeakNode
  const held = new Map<string, Array<{ id: string, text: string }>>()

  before(async () => {
    a = await swarm.add({ deviceName: 'a' })
    b = await swarm.add({ deviceName: 'b' })
    c = await swarm.add({ deviceName: 'c' })
    await connect(a, b)
    await connect(a, c)
    for (const [i, n] of [a, b, c].entries()) {
      const docs = Array.from({ length: 40 }, (_, j) => ({ id: `f${j}`, text: sentence(i * 1000 + j) }))
      if (n === c) docs.push({ id: 'rare', text: 'serial ZQX4417 of the kettle' })
      held.set(n.deviceId, docs)
      await n.collection('files', { replicate: false, embed: ['text'] }).putMany(docs.map(d => ({ _id: d.id, text: d.text, path: `/${n.deviceName}/${d.id}.txt` })))
    }
  })
  after(async () => { await swarm.close() })

  it('merges the devices\' local top-k into exactly the top-k of the union', async () => {
    const query = 'tax receipt for the garden'
    const r = await a.swarm.search({ collection: 'files', text: query, mode: 'vector', k: 10, timeout: 5000 })
    assert.deepEqual(r.devices.map(d => [d.name, d.status]).sort(), [['a', 'ok'], ['b', 'ok'], ['c', 'ok']])
    // exact search over the union of the three devices' documents, computed here
    const e = hashEmbedder()
    const [qv] = await e.embed([query])
    const union: Array<{ id: string, device: string, score: number }> = []
    for (const [device, docs] of held) {
      const vs = await e.embed(docs.map(d => d.text))
      docs.forEach((d, i) => union.push({ id: d.id, device, score: cosine(normalise(qv as Float32Array), normalise(vs[i] as Float32Array)) }))
    }
    union.sort((x, y) => y.score - x.score || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0) || (x.device === a.deviceId ? -1 : y.device === a.deviceId ? 1 : x.device < y.device ? -1 : 1))
    const want = union.slice(0, 10)
    assert.equal(r.hits.length, 10)
    r.hits.forEach((h, i) => {
      assert.ok(Math.abs(h.score - (want[i]?.score as number)) < 1e-5, `rank ${i}: score ${h.score} vs ${want[i]?.score}`)
    })
    // same scores; among equal scores the order is by id, then device: compare as sets per score
    const key = (x: { id: string, device: string, score: number }): string => `${x.score.toFixed(5)} ${x.id} ${x.device}`
    const cut = (want[9] as { score: number }).score
    assert.deepEqual(r.hits.filter(h => h.score > cut + 1e-5).map(key).sort(), want.filter(w => w.score > cut + 1e-5).map(key).sort())
    assert.ok(r.hits.every(h => h.local && h.doc.path === `/${h.deviceName}/${h.id}.txt`), 'each hit names its device and carries that device\'s document')
    assert.ok(r.embedMs >= 0 && r.ms >= r.embedMs)
  })

  it('hybrid finds a rare term held by one device, first', async () => {
    const r = await a.swarm.search({ collection: 'files', text: 'ZQX4417', k: 3 })
    assert.equal(r.hits[0]?.id, 'rare')
    assert.equal(r.hits[0]?.device, c.deviceId)
    assert.equal(r.hits[0]?.deviceName, 'c')
  })

  it('device-local documents never travel: each device still holds only its own', async () => {
    await waitForConvergence([a, b, c])
    for (const n of [a, b, c]) assert.equal(await n.collection('files').count(), held.get(n.deviceId)?.length)
  })

  it('a replicated document present on every device appears once', async () => {
    await a.collection('notes').put({ _id: 'shared', text: 'holiday train to the river' })
    await b.collection('notes').put({ _id: 'b-only', text: 'holiday piano' })
    await waitForConvergence([a, b, c])
    const r = await a.swarm.search({ collection: 'notes', text: 'holiday train river', k: 10 })
    assert.deepEqual(r.hits.map(h => h.id).sort(), ['b-only', 'shared'])
    const shared = r.hits.find(h => h.id === 'shared') as SwarmHit
    assert.equal(shared.device, a.deviceId, 'ties go to the asking device\'s copy')
    assert.equal(shared.local, false)
    assert.deepEqual(r.devices.map(d => d.count), [2, 2, 2])
  })

  it('events report each device as it answers, then the merged result', async () => {
    const seen: string[] = []
    let done: SwarmHit[] | undefined
    for await (const ev of a.swarm.searchEvents({ collection: 'files', text: 'bread oven lemon', k: 5 })) {
      if (ev.type === 'answer') {
        seen.push(ev.answer.name)
        assert.ok(ev.hits.length <= 5)
      } else {
        done = ev.result.hits
      }
    }
    assert.deepEqual(seen.sort(), ['a', 'b', 'c'])
    assert.equal(done?.length, 5)
  })

  it('rejects bad queries with typed errors before asking anyone', async () => {
    await rejectsNamed(() => a.swarm.search({ collection: '_x', text: 'a' }), 'InvalidQueryError')
    await rejectsNamed(() => a.swarm.search({ collection: 'files', text: 'a', k: 101 }), 'InvalidQueryError')
    await rejectsNamed(() => a.swarm.search({ collection: 'files', text: 'a', timeout: 0 }), 'InvalidQueryError')
    await rejectsNamed(() => a.swarm.search({ collection: 'files', text: 'a', where: { $bad: 1 } as never }), 'InvalidQueryError')
  })

  it('a non-member asking a member to search gets a refusal, never results', async () => {
    // a stock libp2p host: it never says hello, so the member answers its stream (no race
    // with a hello rejection), and must answer with a refusal
    const plain = await createLibp2p({ addresses: { listen: LOOPBACK }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
    try {
      const stream = await plain.dialProtocol(multiaddr(a.network!.multiaddrs()[0]!), SEARCH_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      const lp = lpStream(stream)
      await lp.write(encodeMessage({ t: 'search', v: 1, swarm: a.swarmId, collection: 'files', mode: 'text', k: 10, text: 'tax', budget: 0 }))
      const answer = decodeMessage((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray(), z.union([searchResponseSchema, errorSchema]), 'answer')
      assert.equal(answer.t, 'error', `no results for a non-member: ${JSON.stringify(answer)}`)
      assert.equal((answer as { code: string }).code, 'not-member')
    } finally {
      await plain.stop()
    }
    // nor does a member answer a request naming another swarm
    const outsider = new TestSwarm()
    try {
      const e = await outsider.add({ deviceName: 'outsider', network: undefined as never })
      const member = await a.network!.search(b.deviceId, { t: 'search', v: 1, swarm: e.swarmId, collection: 'files', mode: 'text', k: 10, text: 'tax', budget: 0 }, AbortSignal.timeout(10_000)).catch((err: Error & { reason?: string }) => err)
      assert.ok(member instanceof Error && member.reason === 'wrong-swarm', String(member))
    } finally {
      await outsider.close()
    }
  })

  describe('with a device in another process', () => {
    let d: Daemon | undefined
    const dirs = swarm.dirs
    afterEach(async () => {
      if (d !== undefined) {
        d.child.kill('SIGCONT')
        await d.stop()
        d = undefined
      }
    })

    it('a device that stalls past the deadline is reported as timed out; the others answer on time', async () => {
      const dir = dirs.make('peakdb-stall-')
      const init = await runCli(['init', '--recover', '-', '--dir', dir, '--name', 'stalled'], { input: swarm.phrase as string })
      assert.equal(init.code, 0, init.stderr)
      d = await startDaemon(['--dir', dir, '--no-dht', '--listen', LOOPBACK[0] as string])
      const addr = (d.started.multiaddrs as string[])[0] as string
      const device = addr.split('/p2p/')[1] as string
      await a.network?.dial(addr)
      await waitFor(() => a.peers().some(p => p.device === device && p.verified), { timeoutMs: 10_000, message: 'the daemon to be verified' })
      // before it stalls: it answers, and refuses to compare vectors of another embedder
      const before = await a.swarm.search({ collection: 'files', text: 'tax return', k: 5, timeout: 10_000 })
      const other = before.devices.find(x => x.device === device)
      assert.equal(other?.status, 'error')
      assert.match(other?.error ?? '', /^embedder: /)
      d.child.kill('SIGSTOP')
      const started = performance.now()
      const r = await a.swarm.search({ collection: 'files', text: 'tax return', mode: 'text', k: 5, timeout: 1000 })
      const ms = performance.now() - started
      assert.ok(ms < 4000, `answered by the deadline, not by the stalled device (${ms.toFixed(0)} ms)`)
      assert.deepEqual(r.devices.map(x => [x.name, x.status]).sort(), [['a', 'ok'], ['b', 'ok'], ['c', 'ok'], ['stalled', 'timeout']])
      assert.equal(r.hits.length, 5)
    })
  })
})
