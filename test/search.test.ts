import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { AddressInfo } from 'node:net'
import { PeakNode, createHttpEmbedder, type IndexProgress } from '../node/index.js'
import { chunkText, documentText, ftsTerms } from '../node/embedding/text.js'
import { FlatIndex } from '../node/embedding/ann-index.js'
import { normalise } from '../node/embedding/embedder.js'
import { rejectsNamed } from './helpers/errors.js'
import { hashEmbedder } from './helpers/embedders.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { prng } from './helpers/prng.js'
import { rareWordsQuery, WordStats } from '../storage/sqlite/rare-words.js'
import { ftsMatch, ftsString, TEXT_TERM_COUNTS_SQL, type TermCount } from '../storage/sqlite/search-tables.js'

// about forty notes; a few share words with the queries, one holds a rare code
const CORPUS = [
  { _id: 'cat', title: 'Our cat', body: 'The cat sits on the mat by the window every morning.', year: 2024 },
  { _id: 'stocks', title: 'Portfolio review', body: 'Rebalance the index funds and bonds at the end of the quarter.', year: 2025 },
  { _id: 'bread', title: 'Sourdough', body: 'Feed the starter, then bake the loaf at 230 degrees for forty minutes.', year: 2023 },
  { _id: 'rare', title: 'Warranty card', body: 'Kept the warranty card for the kitchen kettle, serial ZQX-4417, in the drawer.', year: 2022 },
  { _id: 'lookalike', title: 'Vacuum receipt', body: 'Receipt for the vacuum cleaner, model QZX-4471, kept in the folder.', year: 2022 },
  { _id: 'toaster', title: 'Toaster warranty', body: 'Warranty card for the toaster, serial BNM-1290, filed with the manuals.', year: 2021 },
  ...['Invoice for the plumber who fixed the sink.', 'Electricity bill for March was higher than expected.', 'Paid the water bill online.',
    'The dentist appointment moved to Thursday.', 'Booked train tickets to the coast for the holidays.', 'Gym: three sets of squats and deadlifts.',
    'Planted tomatoes and basil in the raised bed.', 'Meeting notes: launch moved to next sprint.', 'Read two chapters of a history of Rome.',
    'The car needs new winter tyres before December.', 'Grocery list: eggs, milk, flour, coffee.', 'Call the landlord about the broken heater.',
    'Photography: shoot at golden hour with a low ISO.', 'Guitar practice: scales and a new chord progression.', 'Renew the passport before the trip.',
    'Insurance renewal quote came in cheaper this year.', 'Recipe: lentil soup with cumin and lemon.', 'Woodworking: sand the oak shelf and oil it.',
    'Biology notes on cell membranes and transport.', 'Physics notes on friction and inclined planes.', 'Backup the laptop to the external drive.',
    'Birthday gift ideas for my sister.', 'The kettle stopped working after two years.', 'Morning run along the river, five kilometres.',
    'Tax return documents: payslips and receipts.', 'Newsletter draft about the garden club.', 'Fix the squeaky hinge on the bedroom door.',
    'Podcast episode about sleep and memory.', 'Flight check-in opens tomorrow at noon.', 'Notes from the parent-teacher evening.',
    'Compare prices for a new washing machine.', 'Rent increase letter from the agency.', 'Knitting pattern for a winter scarf.',
    'Vaccination record for the dog.', 'Wifi password for the guest network is on the fridge.', 'Ideas for the weekend hike.']
    .map((body, i) => ({ _id: `n${i}`, title: body.split(' ').slice(0, 3).join(' '), body, year: 2020 + (i % 6) }))
]

describe('search: text, vectors, filters (default offline embedder)', function () {
  this.timeout(120_000)
  const dirs = new TmpDirs()
  let node: PeakNode
  let realFetch: typeof fetch
  const progress: IndexProgress[] = []
  before(async () => {
    // nothing may reach the network: the default embedder must work with fetch failing
    realFetch = globalThis.fetch
    globalThis.fetch = (async () => { throw new Error('network access in a test') }) as typeof fetch
    node = await PeakNode.open({ dir: dirs.make() })
    node.on('index:progress', p => progress.push(p))
    await node.collection('notes').putMany(CORPUS)
  })
  after(async () => {
    globalThis.fetch = realFetch
    await node.close()
    dirs.cleanup()
  })

  it('indexes saved documents off the write path and reports progress', async () => {
    const notes = node.collection('notes')
    const left = await notes.indexed()
    assert.equal(left, 0)
    assert.equal(await notes.pendingIndex(), 0)
    const ofNotes = progress.filter(p => p.collection === 'notes')
    assert.ok(ofNotes.length > 0, 'progress events')
    assert.equal(ofNotes.reduce((n, p) => n + p.done, 0), CORPUS.length, 'every document reported done once')
    assert.equal(ofNotes[ofNotes.length - 1]?.pending, 0, 'the last event says nothing is left')
  })

  it('finds meaning, not words: a paraphrase with no shared word ranks above unrelated notes', async () => {
    const r = await node.collection('notes').search({ text: 'a kitten is on the rug', mode: 'vector', k: 5 })
    assert.equal(r[0]?.id, 'cat', JSON.stringify(r.map(h => h.id)))
    assert.ok(r[0]!.score > (r[1]?.score ?? 0))
    const h = await node.collection('notes').search({ text: 'a kitten is on the rug', k: 3 })
    assert.equal(h[0]?.id, 'cat', 'hybrid keeps the paraphrase on top')
  })

  it('hybrid finds an exact rare term that pure vector search misses', async () => {
    const vector = await node.collection('notes').search({ text: 'ZQX-4417', mode: 'vector', k: 1 })
    assert.notEqual(vector[0]?.id, 'rare', 'the sentence encoder has no idea what ZQX-4417 is')
    const hybrid = await node.collection('notes').search({ text: 'ZQX-4417', k: 1 })
    assert.equal(hybrid[0]?.id, 'rare')
    const text = await node.collection('notes').search({ text: 'serial ZQX-4417', mode: 'text', k: 3 })
    assert.equal(text[0]?.id, 'rare')
  })

  it('keyword relevance is BM25 over its ceiling: rare words weigh most, and hybrid adds it to cosine', async () => {
    const text = await node.collection('notes').search({ text: 'warranty card ZQX-4417', mode: 'text', k: 10 })
    assert.equal(text[0]?.id, 'rare')
    const hybrid = await node.collection('notes').search({ text: 'warranty card ZQX-4417', k: 3 })
    assert.equal(hybrid[0]?.id, 'rare')
    const rare = hybrid[0]?.scores?.text as number
    const toaster = (await node.collection('notes').search({ text: 'warranty card ZQX-4417', k: 20 })).find(h => h.id === 'toaster')?.scores?.text as number
    assert.ok(rare > 0.3 && rare <= 1, `all four words, rare ones among them: ${rare}`)
    assert.ok(toaster > 0 && toaster < rare / 2, `the toaster note has the common words only: ${toaster} vs ${rare}`)
    assert.ok(Math.abs((hybrid[0]?.score as number) - ((hybrid[0]?.scores?.vector as number) + rare)) < 1e-9, 'cosine + relevance')
  })

  it('filters are exact: no result outside `where`', async () => {
    for (const mode of ['vector', 'text', 'hybrid'] as const) {
      const r = await node.collection('notes').search({ text: 'paying the bill', where: { year: { gte: 2022 } }, k: 20, mode })
      assert.ok(r.length > 0, mode)
      assert.ok(r.every(h => (h.doc.year as number) >= 2022), `${mode}: ${JSON.stringify(r.map(h => h.doc.year))}`)
      const all = await node.collection('notes').search({ text: 'paying the bill', k: 40, mode })
      assert.ok(all.some(h => (h.doc.year as number) < 2022), `${mode}: without the filter, older notes match too`)
    }
    const none = await node.collection('notes').search({ text: 'cat', where: { year: 1999 } })
    assert.equal(none.length, 0)
  })

  it('hybrid ranks the best `candidates` of each list together: k of them rank the first k of each part', async () => {
    const notes = node.collection('notes')
    const wide = await notes.search({ text: 'paying the bill', k: 3, candidates: 100 })
    const narrow = await notes.search({ text: 'paying the bill', k: 3, candidates: 3 })
    const vector = (await notes.search({ text: 'paying the bill', k: 3, mode: 'vector' })).map(h => h.id)
    const text = (await notes.search({ text: 'paying the bill', k: 3, mode: 'text' })).map(h => h.id)
    assert.equal(wide.length, 3)
    assert.ok(narrow.every(h => vector.includes(h.id) || text.includes(h.id)), JSON.stringify({ narrow: narrow.map(h => h.id), vector, text }))
    // a part counts only where its list brought the document
    for (const h of narrow) {
      assert.equal(h.scores?.text === 0, !text.includes(h.id), `${h.id}: text part ${String(h.scores?.text)}`)
      assert.equal(h.scores?.vector === 0, !vector.includes(h.id), `${h.id}: vector part ${String(h.scores?.vector)}`)
    }
    assert.ok(narrow.some(h => h.scores?.text === 0 || h.scores?.vector === 0), 'the two parts disagree on this query')
  })

  it('updated and deleted documents never show stale vectors or words', async () => {
    const notes = node.collection('notes')
    const before = (await notes.search({ text: 'kitten on a rug', mode: 'vector', k: 40 })).find(h => h.id === 'cat')?.score as number
    await notes.put({ _id: 'cat', title: 'Our dog', body: 'The dog sleeps in the garden shed.', year: 2024 })
    const after = (await notes.search({ text: 'kitten on a rug', mode: 'vector', k: 40 })).find(h => h.id === 'cat')?.score ?? 0
    assert.ok(after < before, `the old text no longer scores (${before} -> ${after})`)
    const chunks = await node.storage.indexedChunks('notes', 'cat')
    assert.ok(chunks.length > 0 && chunks.every(c => !c.text.includes('mat') && c.text.includes('dog')), JSON.stringify(chunks))
    assert.equal((await notes.search({ text: 'mat window morning', mode: 'text', k: 40 })).some(h => h.id === 'cat'), false)
    await notes.delete('stocks')
    assert.equal((await notes.search({ text: 'index funds bonds', k: 40 })).some(h => h.id === 'stocks'), false)
  })

  it('rejects bad queries with typed errors', async () => {
    const notes = node.collection('notes')
    await rejectsNamed(() => notes.search({ text: '' }), 'InvalidQueryError', 'empty')
    await rejectsNamed(() => notes.search({ text: 'x'.repeat(9000) }), 'InvalidQueryError', 'cap')
    await rejectsNamed(() => notes.search({ text: 'a', k: 0 }), 'InvalidQueryError', '"k"')
    await rejectsNamed(() => notes.search({ text: 'a', k: 1001 }), 'InvalidQueryError', '"k"')
    await rejectsNamed(() => notes.search({ text: 'a', mode: 'fuzzy' as never }), 'InvalidQueryError', '"mode"')
    await rejectsNamed(() => notes.search({ text: 'a', k: 10, candidates: 5 }), 'InvalidQueryError', '"candidates"')
    await rejectsNamed(() => notes.search({ text: 'a', candidates: 5001 }), 'InvalidQueryError', '"candidates"')
    await rejectsNamed(() => notes.search({ text: 'a', candidates: 1.5 }), 'InvalidQueryError', '"candidates"')
    await rejectsNamed(() => notes.search({} as never), 'InvalidQueryError')
    await rejectsNamed(() => notes.search({ vector: [1, 2, 3] }), 'InvalidQueryError', '512')
    await rejectsNamed(() => notes.search({ text: 'a', where: { year: { near: 1 } } as never }), 'InvalidQueryError')
  })
})

describe('search: index lifecycle', function () {
  this.timeout(60_000)
  const dirs = new TmpDirs()
  afterEach(() => dirs.cleanup())

  it('the index survives a restart, and a model change re-embeds', async () => {
    const dir = dirs.make()
    const a = hashEmbedder('hash-a')
    let node = await PeakNode.open({ dir, embedder: a })
    await node.collection('c').putMany([{ _id: 'x', t: 'alpha beta' }, { _id: 'y', t: 'gamma delta' }])
    await node.collection('c').indexed()
    assert.equal(a.texts, 2)
    await node.close()
    const again = hashEmbedder('hash-a')
    node = await PeakNode.open({ dir, embedder: again })
    const r = await node.collection('c').search({ text: 'alpha', mode: 'vector', k: 1 })
    assert.equal(r[0]?.id, 'x')
    assert.equal(again.texts, 1, 'only the query was embedded: stored vectors were reused')
    await node.close()
    const b = hashEmbedder('hash-b', 32)
    node = await PeakNode.open({ dir, embedder: b })
    const r2 = await node.collection('c').search({ text: 'gamma', mode: 'vector', k: 1 })
    assert.equal(r2[0]?.id, 'y')
    assert.equal(b.texts, 3, 'both documents re-embedded with the new model, plus the query')
    assert.deepEqual(await node.storage.embeddersOf('c'), ['hash-b'])
    await node.close()
  })

  it('a bulk index build leaves the full-text index merged into one segment, and keyword relevance unchanged by the merge', async () => {
    const dir = dirs.make()
    const node = await PeakNode.open({ dir, embedder: hashEmbedder() })
    const docs = Array.from({ length: 1500 }, (_, i) => ({ _id: `d${i}`, t: `note ${i} about ${i % 3 === 0 ? 'gardens' : 'kettles'} and person${i % 50}` }))
    await node.collection('c').putMany(docs)
    await node.collection('c').indexed()
    const db = (node.storage as unknown as { db: { prepare: (s: string) => { pluck: () => { get: () => unknown } } } }).db
    assert.equal(db.prepare('SELECT count(DISTINCT segid) FROM fts_idx').pluck().get(), 1, 'one segment after the build')
    const hits = await node.storage.textSearch('c', ['gardens', 'person7'], 40, undefined)
    // both words: i = 57, 207, ... (i % 150 === 57), ten documents; then person7 alone (twenty,
    // rarer than gardens), then gardens alone
    const both = hits.slice(0, 10)
    assert.ok(both.every(h => Number(h.id.slice(1)) % 150 === 57), JSON.stringify(both))
    assert.ok(hits.slice(10, 30).every(h => Number(h.id.slice(1)) % 50 === 7), JSON.stringify(hits.slice(10, 30)))
    assert.ok(hits.slice(10).every(h => h.relevance < (both[9] as { relevance: number }).relevance), 'one word scores less')
    assert.ok(hits.every(h => h.relevance > 0 && h.relevance < 1), JSON.stringify(hits.map(h => h.relevance)))
    await node.close()
  })

  it('a document saved by a short-lived process without background indexing is indexed later, and search drains first', async () => {
    const dir = dirs.make()
    const e = hashEmbedder()
    let node = await PeakNode.open({ dir, embedder: e, backgroundIndexing: false })
    await node.collection('c').put({ _id: 'later', t: 'written by the cli' })
    assert.equal(await node.collection('c').pendingIndex(), 1)
    assert.equal(e.calls, 0, 'the write did not embed')
    await node.close()
    node = await PeakNode.open({ dir, embedder: e, backgroundIndexing: false })
    assert.equal(await node.collection('c').pendingIndex(), 1, 'the queue survived the restart')
    const r = await node.collection('c').search({ text: 'cli', mode: 'text' })
    assert.equal(r[0]?.id, 'later')
    assert.equal(r.pending, 0)
    await node.close()
  })

  it('collections choose the embedded fields or opt out', async () => {
    const e = hashEmbedder()
    const node = await PeakNode.open({ dir: dirs.make(), embedder: e })
    const c = node.collection('c', { embed: ['title'] })
    await c.put({ _id: 'a', title: 'lighthouse keeper', body: 'volcano eruption' })
    await c.indexed()
    assert.equal((await c.search({ text: 'volcano', mode: 'vector' })).length === 0 || (await c.search({ text: 'volcano', mode: 'vector' }))[0]!.score < 0.01, true)
    assert.equal((await c.search({ text: 'lighthouse', mode: 'vector' }))[0]?.id, 'a')
    const off = node.collection('plain', { embed: false })
    await off.put({ _id: 'b', body: 'only words here' })
    await off.indexed()
    await rejectsNamed(() => off.search({ text: 'words', mode: 'vector' }), 'InvalidQueryError', 'embedding turned off')
    assert.equal((await off.search({ text: 'words' }))[0]?.id, 'b', 'keyword search still works')
    await node.close()
  })

  it('an OpenAI-compatible and an Ollama endpoint can be the embedder (local test server)', async () => {
    const requests: Array<{ url: string, body: { model: string, input: string[] } }> = []
    const server: Server = createServer((req, res) => {
      let body = ''
      req.on('data', d => { body += d })
      req.on('end', () => {
        const parsed = JSON.parse(body) as { model: string, input: string[] }
        requests.push({ url: req.url ?? '', body: parsed })
        const vectors = parsed.input.map(t => [t.length, t.includes('sun') ? 1 : 0, 1])
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify(req.url === '/api/embed' ? { embeddings: vectors } : { data: vectors.map((embedding, index) => ({ embedding, index })) }))
      })
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const openai = await createHttpEmbedder({ url: `${url}/v1`.replace('/v1', ''), model: 'm1' })
      assert.equal(openai.dims, 3)
      assert.equal(openai.id, 'openai:m1')
      const ollama = await createHttpEmbedder({ url, model: 'm2', kind: 'ollama' })
      const node = await PeakNode.open({ dir: dirs.make(), embedder: ollama })
      await node.collection('c').putMany([{ _id: 's', t: 'sunny day' }, { _id: 'r', t: 'rain' }])
      const r = await node.collection('c').search({ text: 'sun', mode: 'vector', k: 1 })
      assert.equal(r[0]?.id, 's')
      await node.close()
      assert.ok(requests.some(q => q.url === '/embeddings' && q.body.model === 'm1'))
      assert.ok(requests.some(q => q.url === '/api/embed' && q.body.model === 'm2'))
      await rejectsNamed(() => createHttpEmbedder({ url: 'http://127.0.0.1:1', model: 'x' }), 'EmbedderError')
    } finally {
      server.close()
    }
  })

  it('text helpers: fields, chunks, keyword queries', () => {
    assert.equal(documentText({ title: 'A', tags: ['b', 'c'], n: 1, nested: { x: 'no' } }, 'auto'), 'A\nb\nc')
    assert.equal(documentText({ title: 'A', nested: { x: 'yes' } }, ['nested.x']), 'yes')
    const long = Array.from({ length: 40 }, (_, i) => `Sentence number ${i} is here.`).join(' ')
    const chunks = chunkText(long)
    assert.ok(chunks.length > 1 && chunks.every(c => c.length <= 500))
    assert.equal(chunks.join(' '), long)
    assert.deepEqual(ftsTerms('a kitten is on the rug'), ['kitten', 'rug'])
    // contraction endings are no words; a letter on its own is
    assert.deepEqual(ftsTerms('What is Dora Laine\'s phone number? We\u2019ll see; it won\'t ring'), ['dora', 'laine', 'phone', 'number', 'see', 'won', 'ring'])
    assert.deepEqual(ftsTerms('vitamin C and O\'Neil'), ['vitamin', 'c', 'o', 'neil'])
    assert.deepEqual(ftsTerms('"; DROP TABLE'), ['drop', 'table'])
    assert.deepEqual(ftsTerms('!!!'), [])
  })
})

describe('search: in-memory vector indexes (HNSW graph, int8 scan)', function () {
  this.timeout(60_000)
  const dirs = new TmpDirs()
  afterEach(() => dirs.cleanup())

  type SearchHits = Awaited<ReturnType<ReturnType<PeakNode['collection']>['search']>>
  for (const [label, minRecall, use] of [['HNSW graph', undefined, 'hnsw'], ['int8 scan (graph below the recall floor)', 1.01, 'scan']] as const) {
    it(`large collections get indexes that follow updates, survive restarts, and agree with exact search: ${label}`, async () => {
      const dir = dirs.make()
      const words = ['apple', 'river', 'stone', 'cloud', 'piano', 'tiger', 'lemon', 'rocket', 'violet', 'anchor', 'candle', 'desert']
      const docs = Array.from({ length: 400 }, (_, i) => ({ _id: `d${i}`, t: `${words[i % 12]} ${words[(i * 7) % 12]} ${words[(i * 5) % 12]} item${i}`, group: i % 10 }))
      const options = { dir, embedder: hashEmbedder('hash-ann', 64), annMinChunks: 100, ...(minRecall !== undefined ? { annMinRecall: minRecall } : {}) }
      let node = await PeakNode.open(options)
      const c = node.collection('c')
      await c.putMany(docs)
      await c.indexed()
      const exact = await c.search({ text: 'apple river', mode: 'vector', k: 5, exact: true })
      await c.search({ text: 'apple river', mode: 'vector', k: 5 })
      await node.ann.settled()
      const [status] = node.ann.status()
      assert.deepEqual([status?.collection, status?.vectors, status?.source, status?.search], ['c', 400, 'built', use])
      assert.ok(status?.recall !== undefined && status.recall >= 0 && status.recall <= 1, `self-checked recall ${status?.recall}`)
      const approx = await c.search({ text: 'apple river', mode: 'vector', k: 5 })
      // the scan's scores come from int8 vectors: within 0.01 of the float32 ones
      const close = (a: SearchHits, b: SearchHits): boolean => a.length === b.length && a.every((h, i) => Math.abs(h.score - (b[i]?.score ?? NaN)) < (use === 'scan' ? 0.01 : 1e-4))
      assert.ok(close(approx, exact), JSON.stringify([approx.map(h => h.score), exact.map(h => h.score)]))
      const filtered = await c.search({ text: 'apple river', mode: 'vector', k: 5, where: { group: 3 } })
      const filteredExact = await c.search({ text: 'apple river', mode: 'vector', k: 5, where: { group: 3 }, exact: true })
      assert.ok(filtered.length === 5 && filtered.every(h => h.doc.group === 3))
      assert.ok(close(filtered, filteredExact), JSON.stringify([filtered.map(h => h.score), filteredExact.map(h => h.score)]))
      // a filter most pass, over more candidates than one filter query checks: it stops early, with the same answer
      const most = await c.search({ text: 'apple river', mode: 'vector', k: 100, where: { group: { lt: 9 } } })
      const mostExact = await c.search({ text: 'apple river', mode: 'vector', k: 100, where: { group: { lt: 9 } }, exact: true })
      assert.ok(most.length === 100 && most.every(h => (h.doc.group as number) < 9))
      assert.ok(close(most, mostExact), JSON.stringify([most.map(h => h.score), mostExact.map(h => h.score)]))
      await c.delete('d0')
      await c.put({ _id: 'new', t: 'zebra quartz', group: 1 })
      await c.indexed()
      assert.equal(node.ann.status()[0]?.vectors, 400, 'one removed, one added')
      assert.equal((await c.search({ text: 'zebra quartz', mode: 'vector', k: 1 }))[0]?.id, 'new')
      assert.equal((await c.search({ text: 'apple river', mode: 'vector', k: 50 })).some(h => h.id === 'd0'), false)
      await node.close()
      node = await PeakNode.open(options)
      assert.equal((await node.collection('c').search({ text: 'zebra quartz', mode: 'vector', k: 1 }))[0]?.id, 'new')
      assert.deepEqual(node.ann.status().map(s => [s.vectors, s.source, s.search]), [[400, 'loaded', use]], 'loaded from disk, not rebuilt')
      // short documents teach the index one chunk per document; long ones whose chunks crowd the
      // nearest then take more chunks per document: the search asks for more, with the same answer
      const reopened = node.collection('c')
      for (const w of words) await reopened.search({ text: `${w} item`, mode: 'vector', k: 5 })
      const long = Array.from({ length: 4 }, (_, i) => ({ _id: `long${i}`, t: Array.from({ length: 120 }, (_, j) => `comet nebula ${words[(i + j) % 12] as string} part${j}`).join('. '), group: 0 }))
      await reopened.putMany(long)
      await reopened.indexed()
      const chunks = node.ann.status()[0]?.vectors ?? 0
      assert.ok(chunks >= 400 + 4 * 5, `the long documents are several chunks each (${chunks} vectors)`)
      const crowded = await reopened.search({ text: 'comet nebula', mode: 'vector', k: 6 })
      const crowdedExact = await reopened.search({ text: 'comet nebula', mode: 'vector', k: 6, exact: true })
      assert.deepEqual(crowded.slice(0, 4).map(h => h.id).sort(), ['long0', 'long1', 'long2', 'long3'])
      assert.ok(close(crowded, crowdedExact), JSON.stringify([crowded.map(h => [h.id, h.score]), crowdedExact.map(h => [h.id, h.score])]))
      await node.close()
    })
  }

  it('the int8 flat index adds, replaces, removes, round-trips, and ranks like float32 brute force', () => {
    const seed = 7
    let a = seed
    const rand = (): number => { a = (a * 1103515245 + 12345) % 2147483648; return a / 2147483648 - 0.5 }
    const vec = (): Float32Array => normalise(Float32Array.from({ length: 32 }, rand))
    const vectors = new Map<number, Float32Array>()
    const flat = new FlatIndex(32, 4) // grows
    for (let rid = 1; rid <= 300; rid++) vectors.set(rid, vec())
    flat.add([...vectors.keys()], [...vectors.values()])
    for (const rid of [5, 17, 300]) vectors.delete(rid)
    flat.remove([5, 17, 300, 999])
    const replaced = vec()
    vectors.set(42, replaced)
    flat.add([42], [replaced])
    assert.equal(flat.size, vectors.size)
    const q = vec()
    const brute = [...vectors].map(([rid, v]) => ({ rid, s: v.reduce((sum, x, i) => sum + x * (q[i] as number), 0) })).sort((x, y) => y.s - x.s)
    const top = (f: FlatIndex): number[] => f.search(q, 20).map(h => h.rid)
    const got = top(flat)
    assert.ok(brute.slice(0, 5).every(b => got.includes(b.rid)), `seed ${seed}: the true top 5 are among the 20 nearest by int8 vectors`)
    assert.equal(got.includes(5) || got.includes(300), false)
    const back = FlatIndex.deserialise(flat.serialise(), 32, flat.size)
    assert.deepEqual(top(back), got)
  })
})

describe('search: keyword search that skips the rows of common words', function () {
  this.timeout(120_000)
  const dirs = new TmpDirs()
  afterEach(() => dirs.cleanup())

  it('gives exactly the scores of scoring every match, whether it could skip them or not (seeded)', async () => {
    const seed = Number(process.env.SEED ?? 20261201)
    const rand = prng(seed)
    const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)] as T
    const name = (prefix: string, i: number): string => prefix + [i % 26, Math.floor(i / 26) % 26, Math.floor(i / 676)].map(n => String.fromCharCode(97 + n)).join('')
    const common = Array.from({ length: 6 }, (_, i) => name('ember', i))
    const mid = Array.from({ length: 40 }, (_, i) => name('mid', i))
    const rare = Array.from({ length: 3000 }, (_, i) => name('quor', i))
    // 30,000 short texts: each common word in about an eighth of them, lengths 3-13
    const docs = Array.from({ length: 30_000 }, (_, i) => {
      const words: string[] = []
      for (let n = 3 + Math.floor(rand() * 11); words.length < n;) {
        const r = rand()
        const w = r < 0.1 ? pick(common) : r < 0.4 ? pick(mid) : pick(rare)
        words.push(w)
        // a word twice: often for the others, seldom for the common ones (their most per row bounds the skip)
        if (rand() < (common.includes(w) ? 0.0005 : 0.1)) words.push(w)
      }
      return { _id: `d${i}`, t: words.join(' ') }
    })
    const dir = dirs.make()
    const node = await PeakNode.open({ dir, embedder: hashEmbedder() })
    const db = new Database(join(dir, 'peakdb.sqlite'))
    try {
      const c = node.collection('words', { embed: false })
      await c.putMany(docs)
      await c.indexed()
      const all = db.prepare('SELECT d.id AS id, bm25(fts) AS s FROM fts JOIN docs d ON d.rid = fts.rowid WHERE fts MATCH ? AND d.collection = ? AND d.body IS NOT NULL')
      const counts = db.prepare(TEXT_TERM_COUNTS_SQL)
      const stats = new WordStats(db)
      let skipped = 0
      let scoredAll = 0
      for (let q = 0; q < 40; q++) {
        // two common words and one or two rare ones (sometimes a word of middling frequency instead)
        const terms = [...new Set([pick(common), pick(common), ...(rand() < 0.25 ? [pick(mid)] : Array.from({ length: 1 + Math.floor(rand() * 2) }, () => pick(rare)))])]
        const k = pick([5, 20, 50, 100])
        const hits = await c.search({ text: terms.join(' '), mode: 'text', k })
        const truth = new Map((all.all(ftsMatch(terms), 'words') as Array<{ id: string, s: number }>).map(r => [r.id, -r.s]))
        const best = [...truth.values()].sort((a, b) => b - a).slice(0, k)
        const context = `seed ${seed}, query ${q}: ${terms.join(' ')} (k ${k})`
        assert.deepEqual(hits.map(h => h.score.toFixed(9)), best.map(s => s.toFixed(9)), context)
        for (const h of hits) assert.equal(h.score.toFixed(9), truth.get(h.id)?.toFixed(9), `${context}: ${h.id}`)
        // which way it went: the rare words' rows alone, or every match
        const plan = rareWordsQuery(terms, counts.all(JSON.stringify(terms.map(ftsString))) as TermCount[], words => stats.maxFrequencies(words))
        const kth = plan === undefined ? undefined : (all.all(plan.match, 'words') as Array<{ s: number }>).map(r => -r.s).sort((a, b) => b - a)[k - 1]
        if (plan !== undefined && kth !== undefined && kth > plan.bound) skipped++
        else scoredAll++
      }
      assert.ok(skipped >= 5 && scoredAll >= 5, `seed ${seed}: both ways taken (${skipped} skipped the common words' rows, ${scoredAll} scored every match)`)
    } finally {
      db.close()
      await node.close()
    }
  })
})
