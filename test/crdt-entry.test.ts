import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import * as Y from 'yjs'
import {
  cidOf, coveredPrefix, createEntry, createLegacyEntry, decodeDataPayload, decodeEntry, encodeControlPayload, encodeDataPayload, encodeHeader,
  frameEntry, MAX_ENTRY_BYTES, MAX_UNSIGNED_RUN, signChain, verifyEntrySignature, type Entry, type EntryHeader
} from '../crdt/index.js'
import { createEpoch, seal, type Signer } from '../identity/index.js'
import { SqliteProvider } from '../storage/index.js'
import { epochOp, Log } from '../node/log.js'
import { rejectsNamed } from './helpers/errors.js'
import { makeDevice, makeRoot } from './helpers/identity.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { asSent } from './helpers/log.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('crdt: entries', () => {
  const root = makeRoot()
  const dev = makeDevice(root)
  const header: EntryHeader = { v: 2, swarm: root.swarmId, author: dev.deviceId, seq: 1, prev: null, deps: [], clock: { ms: 1700000000000, c: 3 }, epoch: 7 }

  it('encodes as DAG-CBOR, is addressed by its CID, and decodes to the same header', () => {
    const e = createEntry(header, () => new Uint8Array([1, 2, 3]))
    assert.equal(hex(e.bytes), hex(dagCbor.encode({ h: dagCbor.decode(encodeHeader(header)), p: new Uint8Array([1, 2, 3]) })))
    const d = decodeEntry(e.bytes, e.cid)
    assert.deepEqual(d.header, header)
    assert.equal(d.sig, undefined)
    assert.ok(d.cid.equals(cidOf(e.bytes)))
    assert.equal(d.cid.toString().startsWith('bafyrei'), true)
  })

  it('reads version 1 entries, which carry their own signature', async () => {
    const v1 = createLegacyEntry({ ...header, v: 1 }, () => new Uint8Array([1, 2, 3]), dev.signer)
    assert.equal(hex(v1.bytes), hex(dagCbor.encode({ h: dagCbor.decode(encodeHeader({ ...header, v: 1 })), p: new Uint8Array([1, 2, 3]), s: v1.sig })))
    const d = decodeEntry(v1.bytes, v1.cid)
    assert.equal(d.header.v, 1)
    verifyEntrySignature(d)
    const byAnother = createLegacyEntry({ ...header, v: 1 }, () => new Uint8Array([1, 2, 3]), makeDevice(root).signer)
    await rejectsNamed(() => verifyEntrySignature(decodeEntry(frameEntry(v1.headerBytes, v1.payload, byAnother.sig))), 'InvalidSignatureError')
    // each version has its own layout
    await rejectsNamed(() => decodeEntry(frameEntry(encodeHeader(header), new Uint8Array(1), new Uint8Array(64))), 'MalformedError', 'no "s"')
    await rejectsNamed(() => decodeEntry(frameEntry(encodeHeader({ ...header, v: 1 }), new Uint8Array(1))), 'MalformedError', '"s"')
  })

  it('a chain signature covers its entry and, through the CID links, every earlier one of the author', async () => {
    const e1 = createEntry(header, () => new Uint8Array([1]))
    const e2 = createEntry({ ...header, seq: 2, prev: e1.cid }, () => new Uint8Array([2]))
    const sig = signChain(e2.cid, dev.signer)
    verifyEntrySignature(e2, sig)
    await rejectsNamed(() => verifyEntrySignature(e1, sig), 'InvalidSignatureError', 'bad chain signature')
    await rejectsNamed(() => verifyEntrySignature(e2), 'InvalidSignatureError', 'not covered')
    await rejectsNamed(() => verifyEntrySignature(e2, signChain(e2.cid, makeDevice(root).signer)), 'InvalidSignatureError')
  })

  it('coveredPrefix ends a page where every author\'s part carries a signature', () => {
    const row = (author: string, sig = false): { author: string, bytes: Uint8Array, sig: Uint8Array | null } => ({ author, bytes: Uint8Array.of(0xa2), sig: sig ? new Uint8Array(64) : null })
    const v1 = { author: 'c', bytes: Uint8Array.of(0xa3) }
    assert.equal(coveredPrefix([]), 0)
    assert.equal(coveredPrefix([row('a'), row('a')]), 0)
    assert.equal(coveredPrefix([row('a'), row('a', true), row('a')]), 2)
    assert.equal(coveredPrefix([row('a'), row('b', true), row('a', true), row('b')]), 3)
    assert.equal(coveredPrefix([row('a'), row('b'), row('a', true), v1, row('b', true)]), 5)
    assert.equal(coveredPrefix([v1, row('a'), v1]), 1)
  })

  it('frames entries byte-identically to @ipld/dag-cbor for payloads of every length class', () => {
    const hb = encodeHeader(header)
    for (const n of [0, 23, 24, 255, 256, 65535, 65536, 100000]) {
      const p = randomBytes(n)
      const s = randomBytes(64)
      assert.equal(hex(frameEntry(hb, p)), hex(dagCbor.encode({ h: dagCbor.decode(hb), p })), `payload ${n}`)
      assert.equal(hex(frameEntry(hb, p, s)), hex(dagCbor.encode({ h: dagCbor.decode(hb), p, s })), `payload ${n} (version 1)`)
    }
  })

  it('rejects malformed, oversized and mis-addressed bytes with typed errors', async () => {
    const e = createEntry(header, () => new Uint8Array([1]))
    await rejectsNamed(() => decodeEntry(randomBytes(100)), 'MalformedError')
    await rejectsNamed(() => decodeEntry(dagCbor.encode({ h: { v: 2 }, p: new Uint8Array(0) })), 'MalformedError')
    await rejectsNamed(() => decodeEntry(dagCbor.encode({ h: { v: 3 }, p: new Uint8Array(0) })), 'MalformedError')
    await rejectsNamed(() => decodeEntry(new Uint8Array(MAX_ENTRY_BYTES + 1)), 'TooLargeError')
    const other = createEntry({ ...header, seq: 2, prev: e.cid }, () => new Uint8Array([1]))
    await rejectsNamed(() => decodeEntry(e.bytes, other.cid), 'HashMismatchError')
    await rejectsNamed(() => decodeEntry(createEntry({ ...header, seq: 2 }, () => new Uint8Array(0)).bytes), 'MalformedError', 'prev')
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

  /**
   * A writer device with its first control entry (certificate + epoch) and `n` data entries;
   * `sigs` are the chain signatures stored with them (index in `entries`), as sync sends them.
   */
  async function writer (n: number): Promise<{ log: Log, storage: SqliteProvider, root: ReturnType<typeof makeRoot>, dev: ReturnType<typeof makeDevice>, entries: Uint8Array[], sigs: Map<number, Uint8Array> }> {
    const root = makeRoot()
    const dev = makeDevice(root)
    const { log, storage } = await makeLog(dev)
    const epoch = createEpoch({ swarm: root.swarmId, gen: 1, devices: [dev.deviceId], recoveryPublicKey: root.recoveryPublicKey })
    await log.appendControl([{ t: 'cert', cert: dev.certificate }, epochOp(epoch.record)])
    for (let i = 0; i < n; i++) await log.append([[{ t: 'put', c: 'notes' as never, id: `d${i}` as never, f: { i } }]])
    await log.flush()
    return { log, storage, root, dev, ...asSent(await storage.scanEntries(0, 10_000)) }
  }

  /** The chain signature of `signer` on the last of `entries`, as a sigs map. */
  const coverLast = (entries: ReadonlyArray<Entry | Uint8Array>, signer: Signer): Map<number, Uint8Array> => {
    const last = entries[entries.length - 1] as Entry | Uint8Array
    return new Map([[entries.length - 1, signChain('cid' in last ? last.cid : decodeEntry(last).cid, signer)]])
  }

  /** A second device of the same swarm that can open the writer's epoch (recovery key). */
  async function reader (w: Awaited<ReturnType<typeof writer>>): Promise<{ log: Log, storage: SqliteProvider }> {
    const dev = makeDevice(w.root)
    return await makeLog({ ...dev, identity: { ...dev.identity, recoverySealingSecret: w.root.recoverySecretKey } })
  }

  it('applies a valid chain exactly once and converges to the same documents', async () => {
    const w = await writer(5)
    const r = await reader(w)
    assert.deepEqual([...w.sigs.keys()], [0, 5], 'the control entry is signed at once, the five puts by one signature')
    const first = await r.log.ingest(w.entries, w.sigs)
    assert.equal(first.applied, 6)
    const again = await r.log.ingest(w.entries, w.sigs)
    assert.equal(again.applied, 0)
    assert.equal(again.duplicates, 6)
    assert.equal(await r.storage.stateDigest(), await w.storage.stateDigest())
    assert.deepEqual([...r.log.versionVector()], [...w.log.versionVector()])
  })

  it('rejects a bad signature, a seq gap, a fork, an unknown epoch and another swarm, applying nothing', async () => {
    const w = await writer(3)
    const r = await reader(w)
    const [control, e1, e2, e3] = w.entries as [Uint8Array, Uint8Array, Uint8Array, Uint8Array]

    const sig = w.sigs.get(3) as Uint8Array
    // bad signature: flip a bit of the chain signature
    const forged = Uint8Array.from(sig)
    forged[0] = (forged[0] as number) ^ 1
    await rejectsNamed(() => r.log.ingest([control, e1, e2, e3], new Map([[3, forged]])), 'InvalidSignatureError')
    assert.equal(await r.storage.entryCount(), 0, 'nothing of a rejected batch is applied')
    // no signature, or one that covers an earlier entry only
    await rejectsNamed(() => r.log.ingest([control, e1, e2, e3]), 'InvalidSignatureError', 'not covered')
    await rejectsNamed(() => r.log.ingest([control, e1, e2, e3], new Map([[2, sig]])), 'InvalidSignatureError', 'not covered')
    await rejectsNamed(() => r.log.ingest([control, e1, e2, e3], coverLast([control, e1, e2], w.dev.signer)), 'InvalidSignatureError', 'not covered')
    assert.equal(await r.storage.entryCount(), 0)

    await rejectsNamed(() => r.log.ingest([control, e2], coverLast([control, e2], w.dev.signer)), 'SeqGapError')
    assert.equal(await r.storage.entryCount(), 0)

    await r.log.ingest([control, e1, e2, e3], w.sigs)
    // fork: a different entry at an existing seq, signed by the right key
    const d1 = decodeEntry(e1)
    const fork = createEntry({ ...d1.header, clock: { ms: d1.header.clock.ms + 1, c: 0 } }, aad => seal(randomBytes(32), new Uint8Array([1]), aad))
    await rejectsNamed(() => r.log.ingest([fork.bytes], coverLast([fork], w.dev.signer)), 'ForkError')

    // unknown epoch: the next entry of the chain, sealed under an epoch nobody announced
    const tip = decodeEntry(e3)
    const unknownEpoch = createEntry({ ...tip.header, seq: tip.header.seq + 1, prev: tip.cid, epoch: 999 }, aad => seal(randomBytes(32), encodeDataPayload([]), aad))
    await rejectsNamed(() => r.log.ingest([unknownEpoch.bytes], coverLast([unknownEpoch], w.dev.signer)), 'UnknownEpochError')

    // another swarm: a valid entry of a different user
    const other = await writer(0)
    await rejectsNamed(() => r.log.ingest([other.entries[0] as Uint8Array], other.sigs), 'WrongSwarmError')
    assert.equal(await r.storage.entryCount(), 4)
  })

  it('an entry already held covers nothing: a forged next entry before it is rejected (also the same batch sent again)', async () => {
    const w = await writer(2)
    const r = await reader(w)
    await r.log.ingest(w.entries, w.sigs)
    const tip = decodeEntry(w.entries[w.entries.length - 1]!)
    const tipSig = w.sigs.get(w.entries.length - 1) as Uint8Array
    // seq N+1 of the writer, linking its real tip, signed by someone else
    const forger = makeDevice(w.root)
    const forged = createEntry({ ...tip.header, seq: tip.header.seq + 1, prev: tip.cid, clock: { ms: tip.header.clock.ms + 1, c: 0 } },
      aad => seal(r.log.keyring.key(tip.header.epoch), encodeDataPayload([{ t: 'del', c: 'notes' as never, id: 'd0' as never }]), aad))
    const before = await r.storage.stateDigest()
    await rejectsNamed(() => r.log.ingest([forged.bytes], coverLast([forged], forger.signer)), 'InvalidSignatureError')
    await rejectsNamed(() => r.log.ingest([forged.bytes, tip.bytes], new Map([[1, tipSig]])), 'InvalidSignatureError', 'not covered')
    await rejectsNamed(() => r.log.ingest([forged.bytes, tip.bytes, tip.bytes], new Map([[1, tipSig], [2, tipSig]])), 'InvalidSignatureError')
    assert.equal(await r.storage.entryCount(), w.entries.length, 'the forged entry is not in the log')
    assert.equal(await r.storage.stateDigest(), before, 'no document changed')
    assert.equal(r.log.versionVector().get(w.dev.deviceId), tip.header.seq)
  })

  it('rejects entries from a device without a certificate, and control entries with forged certificates', async () => {
    const w = await writer(0)
    const r = await reader(w)
    await r.log.ingest(w.entries, w.sigs)
    const intruder = makeDevice(makeRoot())
    const forgedCert = { ...intruder.certificate, swarm: w.root.swarmId }
    const header: EntryHeader = { v: 2, swarm: w.root.swarmId, author: intruder.deviceId, seq: 1, prev: null, deps: [], clock: { ms: Date.now(), c: 0 }, epoch: 0 }
    const e = createEntry(header, () => encodeControlPayload([{ t: 'cert', cert: forgedCert }]))
    await rejectsNamed(() => r.log.ingest([e.bytes], coverLast([e], intruder.signer)), 'InvalidCertificateError')
    const noCert = createEntry(header, () => encodeControlPayload([{ t: 'epoch', id: 5, gen: 9, kc: new Uint8Array(16), boxes: { x: new Uint8Array(5) } }]))
    await rejectsNamed(() => r.log.ingest([noCert.bytes], coverLast([noCert], intruder.signer)), 'NotAMemberError')
    assert.equal(await r.storage.entryCount(), 1)
  })

  it('rejects an entry whose deps are missing', async () => {
    const w = await writer(1)
    const r = await reader(w)
    const control = decodeEntry(w.entries[0] as Uint8Array)
    const e1 = decodeEntry(w.entries[1] as Uint8Array)
    const withDep = createEntry({ ...e1.header, deps: [cidOf(randomBytes(10))] }, aad => seal(randomBytes(32), new Uint8Array(1), aad))
    await rejectsNamed(() => r.log.ingest([control.bytes, withDep.bytes], new Map([[0, w.sigs.get(0) as Uint8Array], ...coverLast([control, withDep], w.dev.signer)])), 'MissingDependencyError')
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

  it('verify() reports entries no signature covers, and a chain signature that does not verify', async () => {
    const w = await writer(3)
    const db = (w.storage as unknown as { db: { prepare: (s: string) => { run: (...a: unknown[]) => unknown } } }).db
    db.prepare('UPDATE entries SET sig = NULL WHERE pos = 4').run()
    const report = await w.log.verify()
    assert.equal(report.ok, false)
    assert.ok(report.problems.some(p => p.error === 'InvalidSignatureError' && /entries 2\.\.4 of .* not covered/.test(p.message)), JSON.stringify(report.problems))
    db.prepare('UPDATE entries SET sig = ? WHERE pos = 4').run(new Uint8Array(64))
    const bad = await w.log.verify()
    assert.ok(bad.problems.some(p => p.error === 'InvalidSignatureError' && p.pos === 4), JSON.stringify(bad.problems))
  })

  it('verify() checks the log as it stood when called: entries that arrive while it reads are left to the next one', async () => {
    const w = await writer(600)
    const r = await reader(w)
    // the first part ends on a signed entry, as a sync batch does
    const n = Math.max(...[...w.sigs.keys()].filter(i => i < 500)) + 1
    const first = await r.log.ingest(w.entries.slice(0, n), new Map([...w.sigs].filter(([i]) => i < n)))
    assert.equal(first.applied, n)
    const rest = { entries: w.entries.slice(n), sigs: new Map([...w.sigs].filter(([i]) => i >= n).map(([i, sig]) => [i - n, sig])) }
    // the rest lands while verify reads its first page
    const scan = r.storage.scanEntries.bind(r.storage)
    let landed: Promise<unknown> | undefined
    r.storage.scanEntries = async (after, limit, options) => {
      const page = await scan(after, limit, options)
      landed ??= r.log.ingest(rest.entries, rest.sigs)
      await landed
      return page
    }
    const report = await r.log.verify()
    assert.equal(report.ok, true, JSON.stringify(report.problems.slice(0, 3)))
    assert.equal(report.entries, n, 'the entries of the moment it was called')
    assert.equal(await r.storage.entryCount(), w.entries.length)
    r.storage.scanEntries = scan
    const again = await r.log.verify()
    assert.equal(again.ok, true)
    assert.equal(again.entries, w.entries.length)
  })

  it('signs a run at least every MAX_UNSIGNED_RUN entries, and what a crash left unsigned when it opens again', async () => {
    const root = makeRoot()
    const dev = makeDevice(root)
    const path = join(dirs.make(), 'db.sqlite')
    const storage = await SqliteProvider.open({ path })
    const log = await Log.open(storage, dev.identity)
    const epoch = createEpoch({ swarm: root.swarmId, gen: 1, devices: [dev.deviceId], recoveryPublicKey: root.recoveryPublicKey })
    await log.appendControl([{ t: 'cert', cert: dev.certificate }, epochOp(epoch.record)])
    const n = MAX_UNSIGNED_RUN + 10
    // no turn of the event loop in between: the run is cut by its bound, not by the loop
    for (let i = 0; i < n; i++) await log.append([[{ t: 'put', c: 'notes' as never, id: `d${i}` as never, f: { i } }]])
    const rows = await storage.scanEntries(0, 10_000)
    assert.deepEqual(rows.filter(r => r.sig != null).map(r => r.seq), [1, 1 + MAX_UNSIGNED_RUN], 'the control entry and the first full run are signed')
    // stop without flushing, as a crash would
    await storage.close()
    const again = await SqliteProvider.open({ path })
    open.push(again)
    await Log.open(again, dev.identity)
    const head = (await again.scanEntries(0, 10_000)).at(-1)!
    assert.equal(head.seq, n + 1)
    assert.ok(head.sig != null, 'the head is signed when the log opens')
    verifyEntrySignature(decodeEntry(head.bytes), head.sig ?? undefined)
  })

  it('takes a log of version 1 entries, each signed by itself, and writes version 2 after them', async () => {
    const root = makeRoot()
    const dev = makeDevice(root)
    const epoch = createEpoch({ swarm: root.swarmId, gen: 1, devices: [dev.deviceId], recoveryPublicKey: root.recoveryPublicKey })
    const clock = { ms: Date.now(), c: 0 }
    const e1 = createLegacyEntry({ v: 1, swarm: root.swarmId, author: dev.deviceId, seq: 1, prev: null, deps: [], clock, epoch: 0 },
      () => encodeControlPayload([{ t: 'cert', cert: dev.certificate }, epochOp(epoch.record)]), dev.signer)
    const e2 = createLegacyEntry({ v: 1, swarm: root.swarmId, author: dev.deviceId, seq: 2, prev: e1.cid, deps: [], clock: { ...clock, c: 1 }, epoch: epoch.record.id },
      aad => seal(epoch.key, encodeDataPayload([{ t: 'put', c: 'notes' as never, id: 'old' as never, f: { v: 1 } }]), aad), dev.signer)
    // the device itself, upgraded: its old entries, then new ones
    const { log, storage } = await makeLog(dev)
    assert.equal((await log.ingest([e1.bytes, e2.bytes])).applied, 2, 'no detached signature needed')
    await log.append([[{ t: 'put', c: 'notes' as never, id: 'new' as never, f: { v: 2 } }]])
    await log.flush()
    const rows = await storage.scanEntries(0, 100)
    assert.deepEqual(rows.map(r => decodeEntry(r.bytes).header.v), [1, 1, 2])
    assert.equal(coveredPrefix(rows), 3)
    const report = await log.verify({ rebuild: true })
    assert.equal(report.ok, true, JSON.stringify(report.problems))
    // another device takes both kinds
    const r = await makeLog({ ...makeDevice(root), identity: { ...makeDevice(root).identity, recoverySealingSecret: root.recoverySecretKey } })
    assert.equal((await r.log.ingest(rows.map(x => x.bytes), new Map([[2, rows[2]!.sig!]]))).applied, 3)
    assert.equal(await r.storage.stateDigest(), await storage.stateDigest())
  })
})
