/**
 * Agent memory: remember, recall (current and as of a time), history, forget, list, context
 * scope, expiry and budget, and consolidation on the cases users of other memory layers report
 * (the same memory twice, a contradiction that must stay retrievable, unrelated facts that must
 * stay untouched); replication of knowledge, and context staying on its device.
 */
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { namesIn, PeakNode, type Memory, type MemoryRecord } from '../node/index.js'
import { LlmDecider, relationKey, RuleDecider } from '../node/memory/decider.js'
import { connect, LOOPBACK, TestSwarm, waitForConvergence } from './helpers/nodes.js'
import { hashEmbedder } from './helpers/embedders.js'
import { rejectsNamed } from './helpers/errors.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { waitFor } from './helpers/wait-for.js'

const dirs = new TmpDirs()
const DAY = 86_400_000

/** A node on the real default embedder (the decider compares meanings), with a clock the test moves. */
async function openNode (options: { budget?: number } = {}): Promise<{ node: PeakNode, memory: Memory, clock: { now: number } }> {
  const clock = { now: Date.parse('2026-01-10T09:00:00Z') }
  const node = await PeakNode.open({ dir: dirs.make(), memory: { now: () => clock.now, ...(options.budget !== undefined ? { contextBudget: options.budget } : {}) } })
  return { node, memory: node.memory, clock }
}

const ids = (list: readonly MemoryRecord[]): string[] => list.map(m => m.id).sort()

describe('memory', function () {
  this.timeout(60_000)
  let open: PeakNode | undefined
  afterEach(async () => {
    await open?.close()
    open = undefined
    dirs.cleanup()
  })

  it('remembers the same fact twice as one, keeping both sources; the same context again counts a repeat', async () => {
    const { node, memory } = await openNode()
    open = node
    const a = await memory.remember('Ada lives in Lisbon', { kind: 'knowledge', source: 'chat-1' })
    const b = await memory.remember('Ada lives in Lisbon.', { kind: 'knowledge', source: 'chat-2' })
    assert.equal(b, a)
    assert.deepEqual((await memory.get(a))?.provenance, ['chat-1', 'chat-2'])
    assert.deepEqual((await memory.history(a)).map(v => v.change), ['created', 'repeated'])
    const c1 = await memory.remember('the user wants short answers', { scope: { agent: 'writer', session: 's1' } })
    const c2 = await memory.remember('the user wants short answers', { scope: { agent: 'writer', session: 's1' } })
    const other = await memory.remember('the user wants short answers', { scope: { agent: 'writer', session: 's2' } })
    assert.equal(c2, c1)
    assert.notEqual(other, c1, 'another session is another scope')
    assert.equal((await memory.get(c1))?.repeats, 1)
    assert.equal((await memory.list({ kind: 'knowledge' })).length, 1)
    assert.deepEqual(await node.collections(), [], 'memory lives in collections of PeakDB\'s own, not listed with the user\'s')
  })

  it('a contradiction retires the old fact, still found as of a time it was valid; unrelated facts stay untouched', async () => {
    const { node, memory } = await openNode()
    open = node
    const lisbon = await memory.remember('Ada lives in Lisbon', { kind: 'knowledge', entities: ['Ada'], validFrom: '2024-01-01T00:00:00Z' })
    const bob = await memory.remember('Bob lives in Lisbon', { kind: 'knowledge', entities: ['Bob'], validFrom: '2024-01-01T00:00:00Z' })
    const french = await memory.remember('Ada speaks French', { kind: 'knowledge', entities: ['Ada'], validFrom: '2024-02-01T00:00:00Z' })
    const jazz = await memory.remember('Ada likes jazz', { kind: 'knowledge', entities: ['Ada'], validFrom: '2024-03-01T00:00:00Z' })
    const berlin = await memory.remember('Ada moved to Berlin', { kind: 'knowledge', entities: ['Ada'], validFrom: '2025-06-01T00:00:00Z' })
    const german = await memory.remember('Ada speaks German', { kind: 'knowledge', entities: ['Ada'], validFrom: '2025-07-01T00:00:00Z' })
    const plan = await memory.consolidate({ dryRun: true })
    assert.deepEqual(plan.invalidations.map(i => [i.id, i.by, i.at]), [[lisbon, berlin, '2025-06-01T00:00:00.000Z']])
    assert.equal((await memory.get(lisbon))?.invalidFrom, undefined, 'a dry run changes nothing')

    const done = await memory.consolidate()
    assert.deepEqual(done.invalidations.map(i => i.id), [lisbon])
    assert.deepEqual(done.merges, [])
    const old = await memory.get(lisbon)
    assert.equal(old?.invalidFrom, '2025-06-01T00:00:00.000Z')
    assert.equal(old?.invalidatedBy, berlin)
    for (const id of [bob, french, jazz, berlin, german]) assert.equal((await memory.get(id))?.invalidFrom, undefined, `${id} is about something else and stays valid`)

    const now = await memory.recall('Where does Ada live?', { k: 1 })
    assert.equal(now[0]?.memory.id, berlin, JSON.stringify(now.map(h => [h.memory.content, h.score])))
    const then = await memory.recall('Where does Ada live?', { k: 1, asOf: '2024-06-01T00:00:00Z' })
    assert.equal(then[0]?.memory.id, lisbon, `the old fact is what was true then; got ${JSON.stringify(then.map(h => [h.memory.content, h.score]))}`)
    assert.equal((await memory.recall('Where does Ada live?', { asOf: '2023-06-01T00:00:00Z', where: { entities: 'ada' } })).length, 0, 'nothing was known of Ada then')
    assert.deepEqual((await memory.history(lisbon)).map(v => v.change), ['created', 'invalidated'])
    assert.ok(ids(await memory.list({ kind: 'knowledge', all: true })).includes(lisbon), 'never a hard delete')
    assert.ok(!ids(await memory.list({ kind: 'knowledge' })).includes(lisbon), 'the current list leaves it out')
    assert.equal((await memory.consolidate()).examined, 0, 'consolidated facts are not examined again')
  })

  it('merges a paraphrase into the older fact, keeping all provenance and the earlier validity', async () => {
    const { node, memory } = await openNode()
    open = node
    const first = await memory.remember('Maya works at Globex', { kind: 'knowledge', entities: ['Maya'], source: 'email', validFrom: '2025-01-01T00:00:00Z' })
    const again = await memory.remember('Maya is employed by Globex Corporation', { kind: 'knowledge', entities: ['Maya'], source: 'meeting', validFrom: '2025-02-01T00:00:00Z' })
    const r = await memory.consolidate()
    assert.deepEqual(r.merges.map(m => [m.into, m.from]), [[first, again]])
    const kept = await memory.get(first)
    assert.deepEqual(kept?.provenance, ['email', again, 'meeting'])
    assert.equal(kept?.validFrom, '2025-01-01T00:00:00.000Z')
    assert.equal((await memory.get(again))?.mergedInto, first)
    const hits = await memory.recall('Where does Maya work?', { k: 5 })
    assert.deepEqual(hits.map(h => h.memory.id).filter(id => id === first || id === again), [first], 'only the surviving fact is recalled')
    assert.deepEqual((await memory.history(first)).map(v => v.change), ['created', 'absorbed'])
    assert.deepEqual((await memory.history(again)).map(v => v.change), ['created', 'merged'])
  })

  it('keeps context per scope, expires it, drops the least used past the budget, and promotes what was recalled or repeated', async () => {
    const { node, memory, clock } = await openNode({ budget: 3 })
    open = node
    const scope = { agent: 'planner', session: 'trip' }
    const flight = await memory.remember('The flight to Oslo leaves at 7:40', { scope })
    const hotel = await memory.remember('The hotel in Oslo is near the station', { scope })
    const short = await memory.remember('the user is in a hurry today', { scope, ttl: 60_000 })
    assert.equal((await memory.recall('When does the flight leave?', { k: 1, scope }))[0]?.memory.id, flight)
    assert.equal((await memory.recall('When does the flight leave?', { k: 1, scope: { agent: 'other' } })).length, 0, 'another agent sees none of it')
    clock.now += 120_000
    assert.ok(!ids(await memory.list({ kind: 'context', scope })).includes(short), 'expired context is gone from list and recall')
    // a fourth item: over the budget of 3, the least used goes (the expired one, never recalled)
    const taxi = await memory.remember('A taxi is booked for the airport', { scope })
    assert.equal(await memory.get(short), null)
    assert.ok(await memory.get(hotel) !== null && await memory.get(taxi) !== null)
    await memory.remember('A taxi is booked for the airport', { scope })
    const r = await memory.consolidate({ scope })
    assert.deepEqual(r.promotions.map(p => p.from).sort(), [[flight], [taxi]].sort(), 'recalled and repeated context, not the rest')
    const fact = await memory.get(r.promotions.find(p => p.from[0] === flight)?.fact as string)
    assert.equal(fact?.kind, 'knowledge')
    assert.deepEqual(fact?.provenance, [flight])
    assert.equal((await memory.get(flight))?.promotedTo, fact?.id)
    assert.deepEqual((await memory.history(flight)).map(v => v.change), ['created', 'recalled', 'promoted'])
    assert.equal((await memory.consolidate({ scope })).promotions.length, 0, 'promoted once')
    clock.now += 2 * DAY
    assert.deepEqual([...(await memory.consolidate()).expired].sort(), [flight, hotel, taxi].sort(), 'consolidation removes expired context')
  })

  it('consolidates in the background when quiet, with progress, and stops cleanly', async () => {
    const { node, memory, clock } = await openNode()
    open = node
    const old = await memory.remember('Ada works at Initech', { kind: 'knowledge', entities: ['Ada'], validFrom: '2024-01-01T00:00:00Z' })
    await memory.remember('Ada joined Globex', { kind: 'knowledge', entities: ['Ada'], validFrom: '2025-01-01T00:00:00Z' })
    const progress: number[] = []
    const runs: Array<{ invalidations: number }> = []
    const skips: string[] = []
    const stop = memory.startBackground({ intervalMs: 20, idleMs: 60_000, onProgress: done => progress.push(done), onDone: r => runs.push({ invalidations: r.invalidations.length }), onSkip: why => skips.push(why) })
    try {
      await waitFor(() => skips.includes('busy'), { timeoutMs: 20_000, message: 'a check while the memory is in use' })
      assert.equal(runs.length, 0, 'not while the memory is in use')
      clock.now += 120_000
      await waitFor(() => runs.length > 0, { timeoutMs: 20_000, message: 'a background consolidation' })
      assert.deepEqual(runs[0], { invalidations: 1 })
      assert.deepEqual(progress, [1, 2])
      assert.ok((await memory.get(old))?.invalidFrom !== undefined)
      await waitFor(() => skips.includes('no-work'), { timeoutMs: 20_000, message: 'a check that finds nothing to do' })
      assert.equal(runs.length, 1, 'no work, no run')
    } finally {
      await stop()
    }
  })

  it('forgets a memory with the content of its history, and refuses bad input with typed errors', async () => {
    const { node, memory } = await openNode()
    open = node
    const id = await memory.remember('The door code is 4411', { kind: 'knowledge', entities: ['office'] })
    assert.equal(await memory.forget(id), true)
    assert.equal(await memory.get(id), null)
    const history = await memory.history(id)
    assert.deepEqual(history.map(v => v.change), ['created', 'forgotten'])
    assert.ok(history.every(v => v.content === undefined), 'the forgotten text is not kept in the history')
    assert.equal(await memory.forget(id), false)
    await rejectsNamed(() => memory.remember('  '), 'InvalidOptionError', '"content"')
    await rejectsNamed(() => memory.remember('x', { kind: 'knowledge', ttl: 5 }), 'InvalidOptionError', '"ttl" is for context')
    await rejectsNamed(() => memory.recall('x', { asOf: 'last tuesday' }), 'InvalidOptionError', 'ISO 8601')
    await rejectsNamed(() => memory.recall('x', { k: 0 }), 'InvalidOptionError', '"k"')
    await rejectsNamed(() => memory.history('nope'), 'DocumentNotFoundError', 'nope')
  })
})

describe('memory: the rule decider', () => {
  const d = new RuleDecider()
  const fact = (id: string, content: string, entities: string[], attribute?: string): { id: string, content: string, entities: string[], attribute?: string } => ({ id, content, entities, ...(attribute !== undefined ? { attribute } : {}) })
  const decide = async (newer: ReturnType<typeof fact>, older: ReturnType<typeof fact>, similarity = 0.5): Promise<string | undefined> => (await d.decide([{ newer, older, similarity }]))[0]

  it('relates only facts about the same subject, and tells a new value from the same one said again', async () => {
    assert.equal(await decide(fact('2', 'Ada moved to Berlin', ['ada', 'berlin']), fact('1', 'Ada lives in Lisbon', ['ada', 'lisbon'])), 'contradiction')
    assert.equal(await decide(fact('2', 'Ada resides in Lisbon, Portugal', ['ada', 'lisbon', 'portugal']), fact('1', 'Ada lives in Lisbon', ['ada', 'lisbon'])), 'duplicate')
    assert.equal(await decide(fact('2', 'Bob lives in Lisbon', ['bob', 'lisbon']), fact('1', 'Ada lives in Lisbon', ['ada', 'lisbon'])), 'unrelated')
    assert.equal(await decide(fact('2', 'Ada likes jazz', ['ada']), fact('1', 'Ada lives in Lisbon', ['ada'])), 'unrelated')
    assert.equal(await decide(fact('2', 'Ada speaks German', ['ada']), fact('1', 'Ada speaks French', ['ada'])), 'unrelated', 'a thing one has many of')
    assert.equal(await decide(fact('2', 'Ada is 35 years old', ['ada']), fact('1', 'Ada is 34 years old', ['ada'])), 'contradiction')
    assert.equal(await decide(fact('2', 'Ada prefers tea', ['ada'], 'drink'), fact('1', 'Ada drinks coffee every morning', ['ada'], 'drink')), 'contradiction')
    assert.equal(await decide(fact('2', 'Ada prefers tea', ['ada'], 'drink'), fact('1', 'Ada enjoys tea', ['ada'], 'music')), 'unrelated')
    assert.equal(await decide(fact('2', 'the sky was clear', []), fact('1', 'the sky was clear', [])), 'duplicate')
    // "for a living" speaks of a job: it neither retires a home nor is taken for one
    assert.equal(await decide(fact('2', 'Ada paints for a living', ['ada']), fact('1', 'Ada lives in Lisbon', ['ada', 'lisbon'])), 'unrelated')
    assert.equal(await decide(fact('2', 'Ada is living in Porto now', ['ada', 'porto']), fact('1', 'Ada lives in Lisbon', ['ada', 'lisbon'])), 'contradiction')
    assert.equal(relationKey('What does Ada do for a living?'), 'role')
    assert.equal(relationKey('Where is Ada living?'), 'residence')
  })
})

describe('memory: default entities', () => {
  it('are the capitalised names of a text, not the words that start a question or a request', () => {
    assert.deepEqual(namesIn('Where does Ada live?'), ['ada'])
    assert.deepEqual(namesIn('Ada Lovelace met Charles Babbage in London.'), ['ada lovelace', 'charles babbage', 'london'])
    assert.deepEqual(namesIn('Remind me to call Bob on Friday'), ['bob'])
    assert.deepEqual(namesIn('the kettle is broken'), [])
  })
})

describe('memory: the LLM decider', () => {
  /** An endpoint on 127.0.0.1 speaking the OpenAI or Ollama chat API, answering `answer`. */
  async function endpoint (answer: (body: { messages: Array<{ content: string }> }) => string, status = 200): Promise<{ url: string, requests: Array<{ path: string, body: { model: string, messages: Array<{ content: string }> }, auth?: string }>, close: () => Promise<void> }> {
    const requests: Array<{ path: string, body: { model: string, messages: Array<{ content: string }> }, auth?: string }> = []
    const server = createServer((req, res) => {
      let text = ''
      req.on('data', (d: Buffer) => { text += d.toString() })
      req.on('end', () => {
        const body = JSON.parse(text) as { model: string, messages: Array<{ content: string }> }
        requests.push({ path: req.url ?? '', body, ...(req.headers.authorization !== undefined ? { auth: req.headers.authorization } : {}) })
        const content = answer(body)
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(req.url === '/api/chat' ? { message: { role: 'assistant', content } } : { choices: [{ message: { role: 'assistant', content } }] }))
      })
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    return { url: `http://127.0.0.1:${port}`, requests, close: async () => await new Promise<void>(resolve => server.close(() => resolve())) }
  }
  const pair = { newer: { id: 'n', content: 'Ada moved to Berlin', entities: ['ada'] }, older: { id: 'o', content: 'Ada lives in Lisbon', entities: ['ada'] }, similarity: 0.6 }

  it('asks an OpenAI-compatible endpoint and an Ollama one, and reads their answers', async () => {
    const ep = await endpoint(body => body.messages[1]?.content.includes('Berlin') === true ? '{"decision":"contradiction"}' : 'not json')
    try {
      const openai = new LlmDecider({ url: `${ep.url}/v1`, model: 'small', apiKey: 'sk-test' })
      assert.deepEqual(await openai.decide([pair, { ...pair, newer: { ...pair.newer, content: 'Ada likes tea' } }]), ['contradiction', 'unrelated'], 'an answer that is not a decision changes nothing')
      assert.equal(ep.requests[0]?.path, '/v1/chat/completions')
      assert.equal(ep.requests[0]?.auth, 'Bearer sk-test')
      assert.equal(ep.requests[0]?.body.model, 'small')
      assert.match(ep.requests[0]?.body.messages[1]?.content ?? '', /OLD: Ada lives in Lisbon\nNEW: Ada moved to Berlin/)
      const ollama = new LlmDecider({ url: ep.url, model: 'llama3', api: 'ollama' })
      assert.deepEqual(await ollama.decide([pair]), ['contradiction'])
      assert.equal(ep.requests[2]?.path, '/api/chat')
    } finally {
      await ep.close()
    }
  })

  it('fails with MemoryDeciderError when the endpoint fails or is gone, and a consolidation then changes nothing', async () => {
    const ep = await endpoint(() => 'oops', 500)
    await rejectsNamed(() => new LlmDecider({ url: ep.url + '/v1', model: 'm' }).decide([pair]), 'MemoryDeciderError', 'HTTP 500')
    await ep.close()
    await rejectsNamed(() => new LlmDecider({ url: ep.url + '/v1', model: 'm' }).decide([pair]), 'MemoryDeciderError', 'cannot reach')
    const dir = dirs.make()
    let node = await PeakNode.open({ dir, embedder: hashEmbedder(), memory: { decider: new LlmDecider({ url: ep.url + '/v1', model: 'm' }) } })
    try {
      const a = await node.memory.remember('Ada lives in Lisbon', { kind: 'knowledge', entities: ['Ada'], validFrom: '2024-01-01T00:00:00Z' })
      await node.memory.remember('Ada moved to Berlin', { kind: 'knowledge', entities: ['Ada'] })
      await rejectsNamed(() => node.memory.consolidate(), 'MemoryDeciderError')
      assert.equal((await node.memory.get(a))?.invalidFrom, undefined)
      await node.close()
      // nothing was marked consolidated: the default decider takes both facts up again
      node = await PeakNode.open({ dir, embedder: hashEmbedder() })
      const r = await node.memory.consolidate()
      assert.equal(r.examined, 2)
      assert.deepEqual(r.invalidations.map(i => i.id), [a])
    } finally {
      await node.close()
      dirs.cleanup()
    }
  })
})

describe('memory across devices', function () {
  this.timeout(60_000)
  const swarm = new TestSwarm()
  after(async () => await swarm.close())

  it('replicates knowledge encrypted through the log, keeps context on its device, and recalls the others\' context with swarm', async () => {
    const a = await swarm.add({ embedder: hashEmbedder('hash-128', 128) })
    const b = await swarm.add({ embedder: hashEmbedder('hash-128', 128) })
    await connect(a, b)
    const fact = await a.memory.remember('Ada lives in Lisbon near the river', { kind: 'knowledge', entities: ['Ada'] })
    const ctx = await a.memory.remember('the laptop user is drafting the quarterly report', { scope: { agent: 'writer' } })
    await waitForConvergence([a, b])
    assert.equal((await b.memory.get(fact))?.content, 'Ada lives in Lisbon near the river')
    assert.equal(await b.memory.get(ctx), null, 'context stays on the device it was made on')
    assert.equal((await b.memory.recall('where does Ada live', { k: 1 }))[0]?.memory.id, fact)
    const remote = await b.memory.recall('quarterly report', { k: 3, swarm: true, kinds: ['context'] })
    assert.deepEqual(remote.map(h => [h.memory.id, h.device]), [[ctx, a.deviceId]])
    // the log that carries it holds no plain text of it, on either device
    for (const n of [a, b]) {
      const entries = await n.storage.scanEntries(0, 100_000)
      assert.ok(entries.length > 0)
      for (const e of entries) assert.ok(!Buffer.from(e.bytes).includes('Lisbon near the river'), 'memories are sealed in the log')
    }
    // a history made on one device reads the same on the other
    await a.memory.remember('Ada moved to Berlin last spring', { kind: 'knowledge', entities: ['Ada'] })
    await a.memory.consolidate()
    await waitForConvergence([a, b])
    await waitFor(async () => (await b.memory.get(fact))?.invalidFrom !== undefined, { timeoutMs: 20_000, message: 'the invalidation to reach b' })
    assert.deepEqual((await b.memory.history(fact)).map(v => v.change), ['created', 'invalidated'])
  })
})

// reopening keeps memory (knowledge, context and where consolidation stopped)
describe('memory on reopen', function () {
  this.timeout(60_000)
  after(() => dirs.cleanup())
  it('keeps knowledge, context and what was consolidated', async () => {
    const dir = dirs.make()
    let node = await PeakNode.open({ dir, embedder: hashEmbedder() })
    const k = await node.memory.remember('Leo plays the cello', { kind: 'knowledge' })
    const c = await node.memory.remember('remind the user about the concert', { scope: { agent: 'a' } })
    await node.memory.consolidate()
    await node.close()
    node = await PeakNode.open({ dir, embedder: hashEmbedder(), network: { listen: LOOPBACK, dht: false } })
    try {
      assert.equal((await node.memory.get(k))?.content, 'Leo plays the cello')
      assert.equal((await node.memory.get(c))?.kind, 'context')
      assert.equal((await node.memory.consolidate()).examined, 0)
    } finally {
      await node.close()
    }
  })
})
