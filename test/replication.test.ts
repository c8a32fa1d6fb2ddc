import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { decodeEntry } from '../crdt/index.js'
import { PeakNode, type LiveEvent } from '../node/index.js'
import { hashEmbedder } from './helpers/embedders.js'
import { connect, LOOPBACK, TestSwarm, waitForConvergence } from './helpers/nodes.js'
import { waitFor, withTimeout } from './helpers/wait-for.js'
import { TestDatabase } from './helpers/postgres.js'
import { asSent } from './helpers/log.js'

const pg = new TestDatabase()
after(async () => await pg.drop())

for (const postgres of [undefined, pg]) {
  describe(`replication over libp2p (127.0.0.1)${postgres === undefined ? '' : ', every second device on PostgreSQL'}`, function () {
    this.timeout(60_000)
    let swarm: TestSwarm
    beforeEach(() => { swarm = new TestSwarm(postgres === undefined ? {} : { postgres }) })
    afterEach(async () => { await swarm.close() })

    it('two nodes: writes on each appear on both; heads and documents end identical', async () => {
      const a = await swarm.add({ deviceName: 'a' })
      await a.collection('notes').put({ _id: 'before', by: 'a' })
      const b = await swarm.add({ deviceName: 'b' })
      await connect(a, b)
      await b.collection('notes').put({ _id: 'from-b', by: 'b' })
      await a.collection('notes').putMany([{ _id: 'm1', n: 1 }, { _id: 'm2', n: 2 }])
      await b.collection('notes').delete('before')
      await waitForConvergence([a, b])
      assert.deepEqual((await a.collection('notes').find({ orderBy: '_id' })).map(d => d._id), ['from-b', 'm1', 'm2'])
      // a device may still add a control entry of its own (sharing a key epoch) after the
      // documents converged: the heads then meet again shortly
      const heads = (n: PeakNode): string => JSON.stringify(n.log.heads().sort((x, y) => x.author.localeCompare(y.author)))
      await waitFor(() => heads(a) === heads(b), { timeoutMs: 20_000, message: 'the heads of a and b to be identical' })
      const ra = await a.verify({ rebuild: true })
      assert.equal(ra.ok, true, JSON.stringify(ra))
      const rb = await b.verify({ rebuild: true })
      assert.equal(rb.ok, true, JSON.stringify(rb))
    })

    it('a history longer than a sync page, under chain signatures every 256 entries, arrives whole and verifies (also relayed)', async () => {
      const a = await swarm.add({ deviceName: 'a' })
      // one loop without a turn of the event loop: runs are cut by their bound, and the
      // 1,000-entry pages have to end on signed entries inside them
      for (let i = 0; i < 1300; i++) await a.collection('notes').put({ _id: `n${i}`, i })
      const b = await swarm.add({ deviceName: 'b' })
      await connect(a, b)
      await waitFor(async () => (await b.collection('notes').count()) === 1300, { timeoutMs: 30_000, message: 'b to hold a\'s 1,300 notes' })
      const rows = await b.storage.scanEntries(0, 10_000)
      const signedOfA = rows.filter(r => r.author === a.deviceId && r.sig != null).length
      assert.ok(signedOfA >= 2 && signedOfA <= 7, `b keeps the signatures that ended its batches (${signedOfA})`)
      // c learns a's history from b only: b hands on the signatures it kept
      const c = await swarm.add({ deviceName: 'c' })
      await connect(b, c)
      await waitFor(async () => (await c.collection('notes').count()) === 1300, { timeoutMs: 30_000, message: 'c to hold the notes through b' })
      for (const n of [b, c]) {
        const report = await n.verify()
        assert.equal(report.ok, true, JSON.stringify(report.problems.slice(0, 3)))
      }
    })

    it('five nodes in a line: writes on each reach all (relayed by sync and gossip)', async () => {
      const nodes: PeakNode[] = []
      for (let i = 0; i < 5; i++) nodes.push(await swarm.add({ deviceName: `n${i}` }))
      for (let i = 1; i < 5; i++) await connect(nodes[i - 1]!, nodes[i]!)
      await Promise.all(nodes.map((n, i) => n.collection('c').put({ _id: `doc-${i}`, i })))
      await waitFor(async () => (await nodes[2]!.collection('c').get('doc-0')) !== null, { timeoutMs: 30_000, message: 'doc-0 to reach n2 over two hops' })
      await nodes[2]!.collection('c').patch('doc-0', { touchedBy: 2 })
      await waitForConvergence(nodes, 30_000)
      for (const n of nodes) {
        assert.equal(await n.collection('c').count(), 5)
        assert.deepEqual(await n.collection('c').get('doc-0'), { _id: 'doc-0', i: 0, touchedBy: 2 })
      }
    })

    it('concurrent edits of the same field converge to the same winner everywhere', async () => {
      const a = await swarm.add()
      const b = await swarm.add()
      await a.collection('c').put({ _id: 'x', title: 'A', body: 'from a' })
      await b.collection('c').put({ _id: 'x', title: 'B' })
      await a.collection('c').patch('x', { tag: 'a' })
      await connect(a, b)
      await waitForConvergence([a, b])
      assert.deepEqual(await a.collection('c').get('x'), await b.collection('c').get('x'))
    })

    it('optimistic writes: pending while alone, confirmed once another device holds the entry', async () => {
      const a = await swarm.add()
      const w = await a.collection('c').put({ v: 1 })
      assert.equal(w.status, 'pending')
      let settled = false
      void w.confirmed.then(() => { settled = true })
      // only another device's heads confirm a write, and a has no peer yet
      assert.deepEqual(a.peers(), [])
      assert.ok(a.confirmations.confirmedSeq() < w.seq)
      assert.equal(settled, false)
      const b = await swarm.add()
      await connect(a, b)
      await waitFor(() => settled, { timeoutMs: 10_000, message: 'write to be confirmed' })
      assert.equal(w.status, 'confirmed')
      const w2 = await a.collection('c').put({ v: 2 })
      await withTimeout(w2.confirmed, 20_000, 'the second write to be confirmed')
      assert.ok(a.confirmations.confirmedSeq() >= w2.seq)
    })

    it('a live query fires for a remote change within a bounded wait', async () => {
      const a = await swarm.add()
      const b = await swarm.add()
      await connect(a, b)
      const events: LiveEvent[] = []
      const stop = b.collection('todo').watch({ where: { done: false }, orderBy: 'title' }, ev => events.push(ev))
      await waitFor(() => events.length >= 1, { message: 'initial result' })
      assert.equal(events[0]!.origin, 'initial')
      assert.deepEqual(events[0]!.docs, [])
      await a.collection('todo').put({ _id: 't1', title: 'write tests', done: false })
      await waitFor(() => events.some(e => e.origin === 'remote' && e.docs.some(d => d._id === 't1')), { timeoutMs: 5_000, message: 'remote change to reach the live query' })
      await a.collection('todo').patch('t1', { done: true })
      await waitFor(() => events.at(-1)?.docs.length === 0, { timeoutMs: 5_000, message: 'document to leave the result' })
      assert.deepEqual(events.at(-1)!.changes, [{ type: 'removed', id: 't1', doc: null }])
      stop()
    })

    it('Yjs documents: concurrent text edits on two nodes converge, and reopen rebuilds the text', async () => {
      const a = await swarm.add()
      const b = await swarm.add()
      const da = await a.ydoc('pad')
      const db = await b.ydoc('pad')
      da.getText('t').insert(0, 'hello ')
      db.getText('t').insert(0, 'world')
      await connect(a, b)
      await waitFor(() => da.getText('t').toString() === db.getText('t').toString() && da.getText('t').length === 11, { timeoutMs: 10_000, message: 'texts to converge' })
      da.getText('t').insert(da.getText('t').length, '!')
      await waitFor(() => db.getText('t').toString().endsWith('!'), { timeoutMs: 5_000, message: 'live edit to arrive' })
      const text = da.getText('t').toString()
      const a2 = await swarm.reopen(a)
      assert.equal((await a2.ydoc('pad')).getText('t').toString(), text)
    })
  })
}

describe('replication: discovery, restarts, large logs', function () {
  this.timeout(90_000)
  let swarm: TestSwarm
  beforeEach(() => { swarm = new TestSwarm() })
  afterEach(async () => { await swarm.close() })

  it('finds a device it was never told about through the DHT rendezvous', async () => {
    const net = { listen: ['/ip4/127.0.0.1/tcp/0'], dht: true }
    const a = await swarm.add({ network: net })
    const b = await swarm.add({ network: net })
    const c = await swarm.add({ network: net })
    await connect(a, b)
    await connect(b, c)
    assert.equal(a.peers().some(p => p.device === c.deviceId), false)
    // each provides the swarm's rendezvous key; a looks it up and dials c
    await waitFor(async () => {
      await c.network!.rendezvous()
      await a.network!.rendezvous()
      return a.peers().some(p => p.device === c.deviceId && p.verified)
    }, { timeoutMs: 30_000, intervalMs: 500, message: 'a to find c through the DHT' })
  })

  it('reconnects to the devices it knew after a restart, without bootstrap addresses', async () => {
    const a = await swarm.add()
    const b = await swarm.add()
    await connect(a, b)
    await waitFor(() => a.knownDevices().some(d => d.device === b.deviceId && d.addrs.length > 0), { message: 'a to remember b and its addresses' })
    const a2 = await swarm.reopen(a)
    await waitFor(() => a2.peers().some(p => p.device === b.deviceId && p.verified), { timeoutMs: 20_000, message: 'a to reconnect to b by itself' })
    await b.collection('c').put({ _id: 'after-restart' })
    await waitFor(async () => (await a2.collection('c').get('after-restart')) !== null, { message: 'write after restart to arrive' })
  })

  it('a large initial sync reports progress and resumes after an interruption', async () => {
    const a = await swarm.add()
    for (let i = 0; i < 12; i++) await a.collection('big').putMany(Array.from({ length: 100 }, (_, k) => ({ _id: `b${i}-${k}`, body: 'x'.repeat(200) })))
    for (let i = 0; i < 2500; i++) await a.collection('small').put({ _id: `s${i}`, i })
    const b = await swarm.add()
    const progress: Array<{ received: number, total: number, done: boolean }> = []
    b.on('sync:progress', p => progress.push(p))
    // cut the connection once part of the log has arrived
    let cut = false
    b.on('sync:progress', p => {
      if (!cut && p.received >= 1000) {
        cut = true
        void b.network!.hangUp(a.deviceId)
      }
    })
    const total = (await a.status()).entries
    // dial resolves once hello is done; the cut comes later, while the log streams in
    await b.network!.dial(a.network!.multiaddrs()[0]!)
    await waitFor(() => cut, { timeoutMs: 30_000, message: 'sync to make progress before the cut' })
    const partial = (await b.status()).entries
    assert.ok(partial >= 1000 && partial < total, `partial sync kept what was applied (${partial} of ${total})`)
    await connect(a, b)
    await waitForConvergence([a, b], 60_000)
    assert.ok(progress.length >= 2, 'progress events are emitted')
    assert.ok(progress.some(p => p.total >= 2000), 'progress knows the total')
    assert.equal(await b.collection('small').count(), 2500)
    assert.equal(await b.collection('big').count(), 1200)
  })
})

describe('a device whose database is lost', function () {
  this.timeout(90_000)
  let swarm: TestSwarm
  beforeEach(() => { swarm = new TestSwarm() })
  afterEach(async () => { await swarm.close() })

  function wipeDatabase (dir: string, how: 'delete' | 'empty'): void {
    const db = join(dir, 'peakdb.sqlite')
    for (const f of [`${db}-wal`, `${db}-shm`]) rmSync(f, { force: true })
    if (how === 'delete') rmSync(db)
    else writeFileSync(db, '')
  }

  /** Writes on both, loses `lost`'s database, restarts it, and checks it rejoins without a fork. */
  async function loseAndRejoin (a: PeakNode, lost: PeakNode, how: 'delete' | 'empty'): Promise<void> {
    await connect(a, lost)
    await a.collection('notes').put({ _id: 'from-a', by: 'a' })
    await lost.collection('notes').put({ _id: 'old', by: 'lost, before' })
    await waitForConvergence([a, lost])
    const oldId = lost.deviceId
    await lost.close()
    wipeDatabase(lost.dir, how)
    const again = await swarm.reopen(lost)
    assert.notEqual(again.deviceId, oldId, 'it must not write a second history under its old DeviceId')
    const status = await again.status()
    assert.deepEqual(status.retiredDevices?.map(r => [r.device, r.reason]), [[oldId, 'database-lost']], 'status says what happened')
    // it writes at once, and converges with the others, old history included
    await again.collection('notes').put({ _id: 'new', by: 'lost, after' })
    // nobody tells it where the others are: the devices it met are remembered outside the database
    await waitFor(() => again.peers().some(p => p.device === a.deviceId && p.verified), { timeoutMs: 30_000, message: 'the device to find the others by itself' })
    await waitForConvergence([a, again], 60_000)
    for (const n of [a, again]) {
      assert.deepEqual((await n.collection('notes').find({ orderBy: '_id' })).map(d => d._id), ['from-a', 'new', 'old'])
    }
    assert.equal(a.network?.gate.banReason(again.deviceId), undefined, 'the others accept it')
    assert.equal((await a.verify({ rebuild: true })).ok, true)
    assert.equal((await again.verify({ rebuild: true })).ok, true)
    // a later write still reaches the others, and a restart keeps the new DeviceId
    await again.collection('notes').put({ _id: 'later' })
    await waitFor(async () => (await a.collection('notes').get('later')) !== null, { timeoutMs: 30_000, message: 'a later write to reach a' })
    const id = again.deviceId
    const third = await swarm.reopen(again)
    assert.equal(third.deviceId, id)
  }

  it('deleted: it continues under a new DeviceId (certified by the root key) and converges', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const lost = await swarm.add({ deviceName: 'lost' })
    await loseAndRejoin(a, lost, 'delete')
  })

  it('emptied, on a paired device: the new DeviceId is certified by its old one and converges', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const { code } = await a.pairing.invite()
    const lost = await PeakNode.join({ dir: swarm.dirs.make('peakdb-join-'), code, deviceName: 'paired', network: { listen: LOOPBACK, dht: false }, embedder: hashEmbedder() })
    swarm.nodes.push(lost)
    const oldId = lost.deviceId
    await loseAndRejoin(a, lost, 'empty')
    const renewed = swarm.nodes[swarm.nodes.length - 1]!
    assert.equal(a.devices.list().find(d => d.device === renewed.deviceId)?.issuer, oldId)
  })
})

describe('writes racing with failures and with remote updates', function () {
  this.timeout(60_000)
  let swarm: TestSwarm
  beforeEach(() => { swarm = new TestSwarm() })
  afterEach(async () => { await swarm.close() })

  /** Two devices of one swarm, off the network; `b` holds `a`'s log. */
  async function pair (): Promise<{ a: PeakNode, b: PeakNode }> {
    const a = await swarm.add({ deviceName: 'a', network: undefined as never })
    const b = await swarm.add({ deviceName: 'b', network: undefined as never })
    await a.collection('c').put({ _id: 'x', by: 'a' })
    await a.log.flush()
    const sent = asSent(await a.storage.scanEntries(0, 100))
    await b.log.ingest(sent.entries, sent.sigs)
    return { a, b }
  }

  it('a failed commit does not drop the deps the next entry must carry', async () => {
    const { a, b } = await pair()
    const aTip = a.log.heads().find(h => h.author === a.deviceId)!
    const commit = b.storage.commit.bind(b.storage)
    let fail = true
    b.storage.commit = async items => {
      if (fail) { fail = false; throw new Error('injected: disk full') }
      return await commit(items)
    }
    await assert.rejects(b.collection('c').put({ _id: 'y' }), /injected/)
    await b.collection('c').put({ _id: 'y' })
    const rows = await b.storage.scanEntries(0, 100)
    const last = decodeEntry(rows[rows.length - 1]!.bytes)
    assert.equal(last.header.author, b.deviceId)
    assert.deepEqual(last.header.deps.map(d => d.toString()), [aTip.entry], 'the entry lists a\'s head it had not listed before')
  })

  it('a remote Yjs update committed while the document is being loaded reaches the live document', async () => {
    const { a, b } = await pair()
    const from = (await a.storage.entryCount())
    const ya = await a.ydoc('notes')
    ya.getText('t').insert(0, 'remote edit')
    await waitFor(async () => (await a.storage.entryCount()) > from, { message: 'a to record its edit' })
    await a.log.flush()
    const remote = asSent(await a.storage.scanEntries(0, 1000))
    const read = b.storage.yjsUpdates.bind(b.storage)
    b.storage.yjsUpdates = async id => {
      const rows = await read(id)
      // the update lands after the stored updates were read, before the document is live
      await b.log.ingest(remote.entries, remote.sigs)
      return rows
    }
    const yb = await b.ydoc('notes')
    assert.equal(yb.getText('t').toString(), 'remote edit')
  })

  it('two devices setting the profile for the first time keep both their fields', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const b = await swarm.add({ deviceName: 'b' })
    await a.profile.set({ name: 'Ada' })
    await b.profile.set({ preferences: { theme: 'dark' } })
    await connect(a, b)
    await waitForConvergence([a, b])
    for (const n of [a, b]) assert.deepEqual(await n.profile.get(), { name: 'Ada', preferences: { theme: 'dark' } })
  })
})
