import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import * as Y from 'yjs'
import {
  cidOf, createEntry, decodeDataPayload, decodeEntry, encodeControlPayload, encodeDataPayload, encodeHeader, frameEntry,
  MAX_ENTRY_BYTES, type EntryHeader
} from '../crdt/index.js'
import { createEpoch, seal } from '../identity/index.js'
import { SqliteProvider } from '../storage/index.js'
import { epochOp, Log } from '../node/log.js'
import { rejectsNamed } from './helpers/errors.js'
import { makeDevice, makeRoot } from './helpers/identity.js'
import { TmpDirs } from './helpers/tmp-dir.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('crdt: entries', () => {
  const root = makeRoot()
  const dev = makeDevice(root)
  const header: EntryHeader = { v: 1, swarm: root.swarmId, author: dev.deviceId, seq: 1, prev: null, deps: [], clock: { ms: 1700000000000, c: 3 }, epoch: 7 }

  it('encodes as DAG-CBOR, is addressed by its CID, and decodes to the same header', () => {
    const e = createEntry(header, () => new Uint8Array([1, 2, 3]), dev.signer)
    assert.equal(hex(e.bytes), hex(dagCbor.encode({ h: dagCbor.decode(encodeHeader(header)), p: new Uint8Array([1, 2, 3]), s: e.sig })))
    const d = decodeEntry(e.bytes, e.cid)
    assert.deepEqual(d.header, header)
    assert.ok(d.cid.equals(cidOf(e.bytes)))
    assert.equal(d.cid.toString().startsWith('bafyrei'), true)
  })

  it('frames entries byte-identically to @ipld/dag-cbor for payloads of every length class', () => {
    const hb = encodeHeader(header)
    for (const n of [0, 23, 24, 255, 256, 65535, 65536, 100000]) {
      const p = randomBytes(n)
      const s = randomBytes(64)
      assert.equal(hex(frameEntry(hb, p, s)), hex(dagCbor.encode({ h: dagCbor.decode(hb), p, s })), `payload ${n}`)
    }
  })

  it('rejects malformed, oversized and mis-addressed bytes with typed errors', async () => {
    const e = createEntry(header, () => new Uint8Array([1]), dev.signer)
    await rejectsNamed(() => decodeEntry(randomBytes(100)), 'MalformedError')
    await rejectsNamed(() => decodeEntry(dagCbor.encode({ h: { v: 2 }, p: new Uint8Array(0), s: new Uint8Array(64) })), 'MalformedError')
    await rejectsNamed(() => decodeEntry(new Uint8Array(MAX_ENTRY_BYTES + 1)), 'TooLargeError')
    const other = createEntry({ ...header, seq: 2, prev: e.cid }, () => new Uint8Array([1]), dev.signer)
    await rejectsNamed(() => decodeEntry(e.bytes, other.cid), 'HashMismatchError')
    await rejectsNamed(() => decodeEntry(createEntry({ ...header, seq: 2 }, () => new Uint8Array(0), dev.signer).bytes), 'MalformedError', 'prev')
  })

  it('payload decoding validates ops and rejects hostile field names', async () => {
    const ok = decodeDataPayload(encodeDataPayload([{ t: 'put', c: 'notes' as never, id: 'x' as never, f: { a: [1, { b: 'c' }] } }]))
    assert.deepEqual(ok, [{ t: 'put', c: 'notes', id: 'x', f: { a: [1, { b: 'c' }] } }])
    const payload = (d: string, y?: unknown): Uint8Array => dagCbor.encode(y === undefined ? { d } : { d, y })
    await rejectsNamed(() => decodeDataPayload(payload('[{"t":"put","c":"bad name!","id":"x","f":{}}]')), 'MalformedError', 'collection')
    await rejectsNamed(() => decodeDataPayload(payload('[{"t":"put","c":"n","id":"x","f":{"__proto__":{"x":1}}}]')), 'MalformedError', '__proto__')
    await rejectsNamed(() => decodeDataPayload(payload('[{"t":"put","c":"n","id":"x","f":{"a":{"__proto__":1}}}]')), 'MalformedError', '__proto__')
    await rejectsNamed(() => decodeDataPayload(payload('[{not json')), 'MalformedError', 'JSON')
    await rejectsNamed(() => decodeDataPayload(payload('{"t":"put"}')), 'MalformedError', 'array')
    await rejectsNamed(() => decodeDataPayload(payload('[{"t":"nuke","c":"n","id":"x"}]')), 'MalformedError', 'unknown op')
    await rejectsNamed(() => decodeDataPayload(payload('[{"t":"del","c":"n","id":""}]')), 'MalformedError', '"id"')
    await rejectsNamed(() => decodeDataPayload(payload('[]')), 'MalformedError', 'no ops')
    await rejectsNamed(() => decodeDataPayload(payload('[]', [{ d: 'doc', u: 5 }])), 'MalformedError', '"u"')
    await rejectsNamed(() => decodeDataPayload(randomBytes(50)), 'MalformedError')
    const ydoc = new Y.Doc()
    ydoc.getText('t').insert(0, 'hello')
    const update = Y.encodeStateAsUpdate(ydoc)
    const yjs = decodeDataPayload(encodeDataPayload([{ t: 'yjs', d: 'doc' as never, u: update }, { t: 'del', c: 'n' as never, id: 'x' as never }]))
    assert.deepEqual(yjs.map(o => o.t), ['del', 'yjs'])
    await rejectsNamed(() => decodeDataPayload(payload('[]', [{ d: 'doc', u: new Uint8Array([1, 2]) }])), 'MalformedError', 'Yjs')
  })
})

describe('log verification (ingest)', () => {
  const dirs = new TmpDirs()
  const open: Array<{ close: () => Promise<void> }> = []
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close()
    dirs.cleanup()
  })

  async function makeLog (dev = makeDevice(makeRoot())): Promise<{ log: Log, storage: SqliteProvider }> {
    const storage = await SqliteProvider.open({ path: join(dirs.make(), 'db.sqlite') })
    open.push(storage)
    return { log: await Log.open(storage, dev.identity), storage }
  }

  /** A writer device with its first control entry (certificate + epoch) and `n` data entries. */
  async function writer (n: number): Promise<{ log: Log, storage: SqliteProvider, root: ReturnType<typeof makeRoot>, dev: ReturnType<typeof makeDevice>, entries: Uint8Array[] }> {
    const root = makeRoot()
    const dev = makeDevice(root)
    const { log, storage } = await makeLog(dev)
    const epoch = createEpoch({ swarm: root.swarmId, gen: 1, devices: [dev.deviceId], recoveryPublicKey: root.recoveryPublicKey })
    await log.appendControl([{ t: 'cert', cert: dev.certificate }, epochOp(epoch.record)])
    for (let i = 0; i < n; i++) await log.append([[{ t: 'put', c: 'notes' as never, id: `d${i}` as never, f: { i } }]])
    const rows = await storage.scanEntries(0, 1000)
    return { log, storage, root, dev, entries: rows.map(r => r.bytes) }
  }

  /** A second device of the same swarm that can open the writer's epoch (recovery key). */
  async function reader (w: Awaited<ReturnType<typeof writer>>): Promise<{ log: Log, storage: SqliteProvider }> {
    const dev = makeDevice(w.root)
    return await makeLog({ ...dev, identity: { ...dev.identity, recoverySealingSecret: w.root.recoverySecretKey } })
  }

  it('applies a valid chain exactly once and converges to the same documents', async () => {
    const w = await writer(5)
    const r = await reader(w)
    const first = await r.log.ingest(w.entries)
    assert.equal(first.applied, 6)
    const again = await r.log.ingest(w.entries)
    assert.equal(again.applied, 0)
    assert.equal(again.duplicates, 6)
    assert.equal(await r.storage.stateDigest(), await w.storage.stateDigest())
    assert.deepEqual([...r.log.versionVector()], [...w.log.versionVector()])
  })

  it('rejects a bad signature, a seq gap, a fork, an unknown epoch and another swarm, applying nothing', async () => {
    const w = await writer(3)
    const r = await reader(w)
    const [control, e1, e2, e3] = w.entries as [Uint8Array, Uint8Array, Uint8Array, Uint8Array]

    // bad signature: flip a bit of the signature (the last bytes of the entry)
    const forged = Uint8Array.from(e1)
    forged[forged.length - 1] = (forged[forged.length - 1] as number) ^ 1
    await rejectsNamed(() => r.log.ingest([control, forged]), 'InvalidSignatureError')
    assert.equal(await r.storage.entryCount(), 0, 'nothing of a rejected batch is applied')

    await rejectsNamed(() => r.log.ingest([control, e2]), 'SeqGapError')
    assert.equal(await r.storage.entryCount(), 0)

    await r.log.ingest([control, e1, e2, e3])
    // fork: a different entry at an existing seq, signed by the right key
    const d1 = decodeEntry(e1)
    const fork = createEntry({ ...d1.header, clock: { ms: d1.header.clock.ms + 1, c: 0 } }, aad => seal(randomBytes(32), new Uint8Array([1]), aad), w.dev.signer)
    await rejectsNamed(() => r.log.ingest([fork.bytes]), 'ForkError')

    // unknown epoch: the next entry of the chain, sealed under an epoch nobody announced
    const tip = decodeEntry(e3)
    const unknownEpoch = createEntry({ ...tip.header, seq: tip.header.seq + 1, prev: tip.cid, epoch: 999 }, aad => seal(randomBytes(32), encodeDataPayload([]), aad), w.dev.signer)
    await rejectsNamed(() => r.log.ingest([unknownEpoch.bytes]), 'UnknownEpochError')

    // another swarm: a valid entry of a different user
    const other = await writer(0)
    await rejectsNamed(() => r.log.ingest([other.entries[0] as Uint8Array]), 'WrongSwarmError')
    assert.equal(await r.storage.entryCount(), 4)
  })

  it('an entry already held covers nothing: a forged next entry before it is rejected (also the same batch sent again)', async () => {
    const w = await writer(2)
    const r = await reader(w)
    await r.log.ingest(w.entries)
    const tip = decodeEntry(w.entries[w.entries.length - 1]!)
    // seq N+1 of the writer, linking its real tip, signed by someone else
    const forger = makeDevice(w.root)
    const forged = createEntry({ ...tip.header, seq: tip.header.seq + 1, prev: tip.cid, clock: { ms: tip.header.clock.ms + 1, c: 0 } },
      aad => seal(r.log.keyring.key(tip.header.epoch), encodeDataPayload([{ t: 'del', c: 'notes' as never, id: 'd0' as never }]), aad), forger.signer)
    const before = await r.storage.stateDigest()
    await rejectsNamed(() => r.log.ingest([forged.bytes, tip.bytes]), 'InvalidSignatureError')
    await rejectsNamed(() => r.log.ingest([forged.bytes, tip.bytes, tip.bytes]), 'InvalidSignatureError')
    assert.equal(await r.storage.entryCount(), w.entries.length, 'the forged entry is not in the log')
    assert.equal(await r.storage.stateDigest(), before, 'no document changed')
    assert.equal(r.log.versionVector().get(w.dev.deviceId), tip.header.seq)
  })

  it('rejects entries from a device without a certificate, and control entries with forged certificates', async () => {
    const w = await writer(0)
    const r = await reader(w)
    await r.log.ingest(w.entries)
    const intruder = makeDevice(makeRoot())
    const forgedCert = { ...intruder.certificate, swarm: w.root.swarmId }
    const header: EntryHeader = { v: 1, swarm: w.root.swarmId, author: intruder.deviceId, seq: 1, prev: null, deps: [], clock: { ms: Date.now(), c: 0 }, epoch: 0 }
    const e = createEntry(header, () => encodeControlPayload([{ t: 'cert', cert: forgedCert }]), intruder.signer)
    await rejectsNamed(() => r.log.ingest([e.bytes]), 'InvalidCertificateError')
    const noCert = createEntry(header, () => encodeControlPayload([{ t: 'epoch', id: 5, gen: 9, kc: new Uint8Array(16), boxes: { x: new Uint8Array(5) } }]), intruder.signer)
    await rejectsNamed(() => r.log.ingest([noCert.bytes]), 'NotAMemberError')
    assert.equal(await r.storage.entryCount(), 1)
  })

  it('rejects an entry whose deps are missing', async () => {
    const w = await writer(1)
    const r = await reader(w)
    const control = decodeEntry(w.entries[0] as Uint8Array)
    const e1 = decodeEntry(w.entries[1] as Uint8Array)
    const withDep = createEntry({ ...e1.header, deps: [cidOf(randomBytes(10))] }, aad => seal(randomBytes(32), new Uint8Array(1), aad), w.dev.signer)
    await rejectsNamed(() => r.log.ingest([control.bytes, withDep.bytes]), 'MissingDependencyError')
  })

  it('verify() re-checks the whole log and reports a tampered entry', async () => {
    const w = await writer(3)
    const ok = await w.log.verify({ rebuild: true })
    assert.equal(ok.ok, true)
    assert.equal(ok.stateMatches, true)
    assert.equal(ok.entries, 4)
    // tamper with a stored entry behind the log's back
    const db = (w.storage as unknown as { db: { prepare: (s: string) => { run: (...a: unknown[]) => unknown } } }).db
    const row = (await w.storage.scanEntries(2, 1))[0]!
    const bad = Uint8Array.from(row.bytes)
    bad[bad.length - 70] = (bad[bad.length - 70] as number) ^ 1
    db.prepare('UPDATE entries SET bytes = ? WHERE pos = ?').run(bad, row.pos)
    const report = await w.log.verify()
    assert.equal(report.ok, false)
    assert.ok(report.problems.some(p => p.error === 'HashMismatchError'), JSON.stringify(report.problems))
  })
})
