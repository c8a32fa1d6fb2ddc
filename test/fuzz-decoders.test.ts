/**
 * Fuzzed decoders: every decoder that takes bytes from outside this device, fed random bytes,
 * mutations of valid encodings (bit flips, truncation, splices, re-framing), hostile values in
 * every field and inputs just over each cap. Each call must return a valid value or throw one of
 * the decoder's typed errors, within a time bound (see test/helpers/fuzz.ts).
 *
 * Decoders covered:
 * - log entries: crdt/entry.ts decodeEntry (split fast path and whole decode), verifyEntrySignature
 *   on what decodes, parseEntryId
 * - payloads: crdt/ops.ts decodeDataPayload (with Yjs updates, crdt/yjs.ts checkYjsUpdate),
 *   decodeControlPayload; control op contents: identity/certificate.ts verifyCertificate,
 *   verifyRevocation, decodeCertificate, identity/membership.ts verifyCertificateChain, epoch
 *   records and key boxes (identity/keyring.ts Keyring.add / deliver, identity/key-box.ts openKeyBox)
 * - wire messages: transport/messages.ts decodeMessage with every schema of transport/messages.ts
 *   and transport/search-protocol.ts (hello, keys, error, sync req/batch/ack/end, gossip,
 *   pair join/challenge/proof/welcome, search request/response) and the unions the protocols read
 * - invite codes: identity/invite-code.ts decodeInvite
 * - keystore files: identity/keystore.ts readKeystore
 * - api.json: node/daemon/api-client.ts readApiInfo (undefined for any unusable file)
 * - config.json: node/cli/config.ts readConfig
 *
 * A failure prints fast-check's seed and path: `PEAKDB_SEED=<seed> PEAKDB_PATH=<path> npx mocha
 * test/fuzz-decoders.test.ts -g '<test title>'` replays it. The counterexamples these properties
 * found are kept as plain examples in test/decoder-counterexamples.test.ts.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import { scrypt } from '@noble/hashes/scrypt.js'
import fc from 'fast-check'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import * as Y from 'yjs'
import { z } from 'zod'
import {
  cidOf, createEntry, createLegacyEntry, decodeControlPayload, decodeDataPayload, decodeEntry, docIdProblem, encodeControlPayload, encodeDataPayload,
  entryIdOf, fieldNameProblem, jsonProblem, MAX_ENTRY_BYTES, MAX_JSON_DEPTH, MAX_OPS_PER_ENTRY, MAX_VECTOR_AUTHORS, MAX_YJS_UPDATE,
  parseEntryId, signChain, verifyEntrySignature, type ControlOp, type DataOp, type Entry, type EntryHeader, type JsonObject
} from '../crdt/index.js'
import {
  createEpoch, createSigner, decodeCertificate, decodeInvite, deviceIdFromPublicKey, encodeCertificate, encodeInvite, epochContext,
  issueCertificate, issueRevocation, Keyring, openKeyBox, publicKeyOf, readKeystore, seal, sealingSecretKeyOf, sealKeyTo,
  sealingPublicKeyOf, verifyCertificate, verifyCertificateChain, verifyRevocation, writeKeystore, type DeviceCertificate, type EpochRecord
} from '../identity/index.js'
import {
  decodeMessage, encodeMessage, errorSchema, gossipSchema, helloSchema, keysSchema, MAX_INLINE_ENTRY, pairChallengeSchema,
  pairJoinSchema, pairProofSchema, pairWelcomeSchema, punchSchema, punchSyncSchema, syncAckSchema, syncBatchSchema, syncEndSchema, syncRequestSchema
} from '../transport/messages.js'
import { searchRequestSchema, searchResponseSchema } from '../transport/search-protocol.js'
import { punchTarget } from '../transport/punch-protocol.js'
import { scopeOf } from '../transport/addresses.js'
import { readApiInfo } from '../node/daemon/api-client.js'
import { configSchema, readConfig } from '../node/cli/config.js'
import {
  concat, decodes, deepCbor, deepJson, editValue, encodeEdited, fuzzParams, hostileCborArb, hostileJsonTextArb, mutatedArb,
  mutateBytes, byteMutationArb, valueEditArb, type ValueEdit
} from './helpers/fuzz.js'
import { makeDevice, makeRoot } from './helpers/identity.js'
import { TmpDirs } from './helpers/tmp-dir.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const utf8 = new TextEncoder()

const root = makeRoot()
const dev = makeDevice(root, 'laptop')
const peer = makeDevice(root, 'phone')

// ---------------------------------------------------------------------------------------------
// log entries

const ENTRY_ERRORS = ['MalformedError', 'TooLargeError'] as const

const headerArb: fc.Arbitrary<EntryHeader> = fc.record({
  seq: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 2 ** 40 })),
  prevSeed: fc.uint8Array({ minLength: 1, maxLength: 4 }),
  deps: fc.array(fc.uint8Array({ minLength: 1, maxLength: 4 }), { maxLength: 3 }),
  ms: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
  c: fc.integer({ min: 0, max: 0xffff }),
  epoch: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 0xffffffff }))
}).map(r => ({
  v: 2 as const,
  swarm: root.swarmId,
  author: dev.deviceId,
  seq: r.seq,
  prev: r.seq === 1 ? null : cidOf(r.prevSeed),
  deps: r.deps.map(d => cidOf(d)),
  clock: { ms: r.ms, c: r.c },
  epoch: r.epoch
}))

// payload lengths of every CBOR length class, plus small random ones
const payloadArb = fc.oneof(
  { arbitrary: fc.uint8Array({ maxLength: 200 }), weight: 4 },
  fc.constantFrom(23, 24, 255, 256, 65535, 65536).map(n => new Uint8Array(n).fill(0x5a))
)

// entries as this release writes them, and version 1 entries (each signed by itself) as earlier ones did
const entryArb: fc.Arbitrary<Entry> = fc.tuple(headerArb, payloadArb, fc.boolean())
  .map(([h, p, legacy]) => legacy ? createLegacyEntry({ ...h, v: 1 }, () => p, dev.signer) : createEntry(h, () => p))

/** A decoded entry is internally consistent: addressed by its bytes, header fields in range. */
function checkEntry (bytes: Uint8Array, e: Entry): void {
  assert.ok(e.cid.equals(cidOf(bytes)))
  const h = e.header
  assert.ok(Number.isSafeInteger(h.seq) && h.seq >= 1)
  assert.equal(h.prev === null, h.seq === 1)
  assert.ok(h.deps.length <= 1024)
  assert.ok(Number.isInteger(h.epoch) && h.epoch >= 0 && h.epoch <= 0xffffffff)
  if (h.v === 1) assert.equal(e.sig?.length, 64)
  else assert.equal(e.sig, undefined)
}

/**
 * Decodes possibly altered entry bytes. When they decode and the author's signature on the
 * original (its own, or the chain signature on its CID) verifies for them, they must be the
 * original bytes: no one but the author can make another valid encoding of an entry (another
 * encoding would be another CID for the same signed content).
 */
function decodeAltered (bytes: Uint8Array, original: Entry): void {
  const r = decodes('decodeEntry', ENTRY_ERRORS, () => decodeEntry(bytes))
  if (!r.ok) return
  checkEntry(bytes, r.value)
  const chainSig = original.sig === undefined ? signChain(original.cid, dev.signer) : undefined
  const signed = decodes('verifyEntrySignature', ['InvalidSignatureError'], () => verifyEntrySignature(r.value, r.value.sig === undefined ? chainSig : undefined))
  if (signed.ok) assert.equal(hex(bytes), hex(original.bytes), 'an altered entry kept a valid signature under another CID')
}

/** CBOR head of major type `major` with argument `n`, written with `width` argument bytes (0: inline). */
function cborHead (major: number, n: number, width: 0 | 1 | 2 | 4 | 8): Uint8Array {
  const m = major << 5
  if (width === 0) return Uint8Array.of(m | n)
  const out = new Uint8Array(1 + width)
  out[0] = m | (width === 1 ? 24 : width === 2 ? 25 : width === 4 ? 26 : 27)
  let v = BigInt(n)
  for (let i = width; i >= 1; i--) { out[i] = Number(v & 0xffn); v >>= 8n }
  return out
}

function minimalWidth (n: number): 0 | 1 | 2 | 4 | 8 {
  return n < 24 ? 0 : n < 0x100 ? 1 : n < 0x10000 ? 2 : n < 2 ** 32 ? 4 : 8
}

/** One alternative framing of an entry's parts: key order, length widths, extra keys, header key order. */
interface Reframe { order: number, pWidth: number, sWidth: number, extra: boolean, headerOrder: number }

const reframeArb: fc.Arbitrary<Reframe> = fc.record({
  order: fc.nat({ max: 5 }), pWidth: fc.nat({ max: 4 }), sWidth: fc.nat({ max: 4 }), extra: fc.boolean(), headerOrder: fc.nat()
})

const ORDERS = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] as const
const WIDTHS = [0, 1, 2, 4, 8] as const

function bytesItem (b: Uint8Array, widthPick: number): Uint8Array {
  const widths = WIDTHS.filter(w => w >= minimalWidth(b.length) || (w === 0 && b.length < 24))
  const w = widths[widthPick % widths.length] ?? minimalWidth(b.length)
  return concat(cborHead(2, b.length, w), b)
}

function reframe (e: Entry, r: Reframe): Uint8Array {
  // the header map with its keys in another order (canonical order is one of the choices)
  const header = dagCbor.decode(e.headerBytes) as Record<string, unknown>
  const keys = Object.keys(header)
  const rot = r.headerOrder % keys.length
  const hKeys = [...keys.slice(rot), ...keys.slice(0, rot)]
  const headerBytes = rot === 0 ? e.headerBytes : concat(cborHead(5, hKeys.length, 0), ...hKeys.map(k => concat(dagCbor.encode(k), dagCbor.encode(header[k]))))
  const items = [
    concat(dagCbor.encode('h'), headerBytes),
    concat(dagCbor.encode('p'), bytesItem(e.payload, r.pWidth)),
    ...(e.sig === undefined ? [] : [concat(dagCbor.encode('s'), bytesItem(e.sig, r.sWidth))])
  ]
  const ordered = (ORDERS[r.order] ?? ORDERS[0]).filter(i => i < items.length).map(i => items[i] as Uint8Array)
  if (r.extra) ordered.push(concat(dagCbor.encode('z'), dagCbor.encode(0)))
  return concat(cborHead(5, ordered.length, 0), ...ordered)
}

describe('fuzz: log entries', () => {
  it('random bytes, and random bytes behind the fast path\'s prefix, end in a typed error', () => {
    const bytesArb = fc.oneof(fc.uint8Array({ maxLength: 400 }), fc.tuple(fc.constantFrom(0xa2, 0xa3), fc.uint8Array({ minLength: 13, maxLength: 400 })).map(([m, b]) => concat(Uint8Array.of(m, 0x61, 0x68), b)))
    fc.assert(fc.property(bytesArb, bytes => {
      const r = decodes('decodeEntry', ENTRY_ERRORS, () => decodeEntry(bytes))
      if (r.ok) checkEntry(bytes, r.value)
    }), fuzzParams(1000))
  })

  it('mutated entries fail, or fail their signature, or are the original', () => {
    fc.assert(fc.property(entryArb, fc.array(byteMutationArb, { minLength: 1, maxLength: 4 }), (e, ms) => {
      decodeAltered(ms.reduce(mutateBytes, e.bytes), e)
    }), fuzzParams(500))
  })

  it('re-framed entries (key order, length widths, extra keys, header key order) are rejected unless canonical', () => {
    fc.assert(fc.property(entryArb, reframeArb, (e, r) => decodeAltered(reframe(e, r), e)), fuzzParams(300))
  })

  it('hostile values in any field of the entry or its header end in a typed error, on both decode paths', () => {
    const editsArb = fc.array(valueEditArb(hostileCborArb), { minLength: 1, maxLength: 3 })
    fc.assert(fc.property(entryArb, editsArb, fc.boolean(), (e, edits, whole) => {
      const value = e.sig === undefined ? { h: dagCbor.decode(e.headerBytes), p: e.payload } : { h: dagCbor.decode(e.headerBytes), p: e.payload, s: e.sig }
      // a fourth key moves the bytes off the fast path
      const bytes = encodeEdited(value, whole ? [...edits, { k: 'add', pick: 0, key: 'z', with: 0 }] : edits)
      if (bytes !== undefined) decodeAltered(bytes, e)
    }), fuzzParams(500))
  })

  it('checks the expected CID first, and the size cap before any parsing', () => {
    const e = createEntry({ v: 2, swarm: root.swarmId, author: dev.deviceId, seq: 1, prev: null, deps: [], clock: { ms: 1, c: 0 }, epoch: 0 }, () => new Uint8Array(8))
    fc.assert(fc.property(mutatedArb(fc.constant(e.bytes)), bytes => {
      const r = decodes('decodeEntry', ['HashMismatchError', ...ENTRY_ERRORS], () => decodeEntry(bytes, e.cid))
      if (r.ok) assert.equal(hex(bytes), hex(e.bytes))
    }), fuzzParams(300))
    const over = new Uint8Array(MAX_ENTRY_BYTES + 1).fill(0xa0)
    const r = decodes('decodeEntry (over the cap)', ['TooLargeError'], () => decodeEntry(over), 100)
    assert.equal(r.ok, false)
  })

  it('nesting too deep for the stack, and long runs of tiny items up to the cap, end in a typed error quickly', () => {
    for (const bytes of [deepCbor(200_000), concat(Uint8Array.of(0xa3, 0x61, 0x68), deepCbor(200_000))]) {
      assert.equal(decodes('decodeEntry (deep)', ENTRY_ERRORS, () => decodeEntry(bytes)).ok, false)
    }
    const M = MAX_ENTRY_BYTES - 16
    // a header whose deps are millions of empty maps, on the fast and the whole path
    const maps = concat(Uint8Array.of(0xa3, 0x61, 0x68, 0xa1, 0x64), utf8.encode('deps'), cborHead(4, M, 4), new Uint8Array(M).fill(0xa0))
    assert.equal(decodes('decodeEntry (empty maps, fast path)', ['TooLargeError'], () => decodeEntry(maps)).ok, false)
    maps[0] = 0xa1 // a one-key map: the whole-decode path
    assert.equal(decodes('decodeEntry (empty maps, whole)', ['TooLargeError'], () => decodeEntry(maps)).ok, false)
  })

  it('entry ids: random, altered and foreign CID strings are MalformedError or an entry CID', () => {
    const e = createEntry({ v: 2, swarm: root.swarmId, author: dev.deviceId, seq: 1, prev: null, deps: [], clock: { ms: 1, c: 0 }, epoch: 0 }, () => new Uint8Array(1))
    const id = entryIdOf(e.cid)
    const foreign = [
      CID.createV0(e.cid.multihash as never).toString(), CID.createV1(0x55, e.cid.multihash).toString(),
      CID.createV1(dagCbor.code, Digest.create(0x12, e.cid.multihash.digest.subarray(0, 20))).toString(),
      e.cid.toString().toUpperCase(), 'bafy', 'z', '', 'b'
    ]
    const textArb = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.constantFrom(...foreign),
      fc.tuple(fc.nat(), fc.string({ minLength: 1, maxLength: 3 }), fc.constantFrom('insert', 'replace', 'truncate', 'case')).map(([at, s, k]) => {
        const i = at % id.length
        return k === 'insert' ? id.slice(0, i) + s + id.slice(i) : k === 'replace' ? id.slice(0, i) + s + id.slice(i + s.length) : k === 'truncate' ? id.slice(0, i) : id.slice(0, i) + id.slice(i).toUpperCase()
      })
    )
    fc.assert(fc.property(textArb, text => {
      const r = decodes('parseEntryId', ['MalformedError'], () => parseEntryId(text))
      if (r.ok) {
        assert.equal(r.value.version, 1)
        assert.equal(r.value.code, dagCbor.code)
        assert.equal(r.value.multihash.code, 0x12)
        assert.equal(r.value.multihash.digest.length, 32)
      }
    }), fuzzParams(1000))
    decodes('parseEntryId (1 MiB)', ['MalformedError'], () => parseEntryId('b' + 'a'.repeat(1 << 20)))
  })
})

// ---------------------------------------------------------------------------------------------
// payloads

const PAYLOAD_ERRORS = ['MalformedError', 'TooLargeError'] as const

const collectionArb = fc.constantFrom('notes', 'a.b-c_1', '_profile', 'X')
const docIdArb = fc.string({ minLength: 1, maxLength: 24 }).filter(s => docIdProblem(s) === undefined)
const fieldsArb = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).filter(k => fieldNameProblem(k) === undefined), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4, noNullPrototype: true })
  .filter(f => jsonProblem(f) === undefined) as fc.Arbitrary<JsonObject>

function yjsUpdate (texts: readonly string[]): Uint8Array {
  const doc = new Y.Doc()
  const text = doc.getText('t')
  for (const s of texts) text.insert(0, s)
  doc.getMap('m').set('n', texts.length)
  return Y.encodeStateAsUpdate(doc)
}
const yjsUpdateArb = fc.array(fc.string({ maxLength: 8 }), { minLength: 1, maxLength: 4 }).map(yjsUpdate)

const dataOpArb: fc.Arbitrary<DataOp> = fc.oneof(
  fc.record({ t: fc.constantFrom('put' as const, 'patch' as const), c: collectionArb, id: docIdArb, f: fieldsArb }),
  fc.record({ t: fc.constant('del' as const), c: collectionArb, id: docIdArb }),
  fc.record({ t: fc.constant('yjs' as const), d: docIdArb, u: yjsUpdateArb })
) as fc.Arbitrary<DataOp>
const dataOpsArb = fc.array(dataOpArb, { minLength: 1, maxLength: 5 })

/** Plain form of ops for comparison (JSON numbers: -0 and 0 are the same value). */
const plainOps = (ops: readonly DataOp[]): string => JSON.stringify(ops.map(o => o.t === 'yjs' ? { ...o, u: hex(o.u) } : o))

/** What decodes must re-encode to the same ops. */
function checkDataOps (ops: DataOp[]): void {
  assert.ok(ops.length >= 1 && ops.length <= MAX_OPS_PER_ENTRY)
  assert.equal(plainOps(decodeDataPayload(encodeDataPayload(ops))), plainOps(ops))
}

// raw JSON text planted where a placeholder string was
const RAW = '\u0001raw'
function withRawJson (value: unknown, edits: readonly ValueEdit[], raws: readonly string[]): string {
  let text = JSON.stringify(edits.reduce(editValue, value))
  raws.forEach((raw, i) => { text = text.split(JSON.stringify(`${RAW}${i}`)).join(raw) })
  return text
}

function docsPayload (d: string, y?: unknown): Uint8Array {
  return dagCbor.encode(y === undefined ? { d } : { d, y })
}

const rootSigner = createSigner(root.rootSecretKey)
const certs = [
  issueCertificate({ swarm: root.swarmId, device: dev.deviceId, name: 'laptop', issued: 1 }, rootSigner, true),
  issueCertificate({ swarm: root.swarmId, device: peer.deviceId, name: 'phone', issued: 2 }, dev.signer, false)
]
const revocation = issueRevocation({ swarm: root.swarmId, device: peer.deviceId, after: 3, issued: 4 }, rootSigner, true)
const epoch = createEpoch({ swarm: root.swarmId, gen: 1, devices: [dev.deviceId, peer.deviceId], recoveryPublicKey: root.recoveryPublicKey })
const epochOp: ControlOp = { t: 'epoch', id: epoch.record.id, gen: epoch.record.gen, kc: epoch.record.kc, boxes: Object.fromEntries(epoch.record.boxes) }
const controlOpsArb = fc.array(fc.constantFrom<ControlOp>({ t: 'cert', cert: certs[0] }, { t: 'cert', cert: certs[1] }, { t: 'revoke', rev: revocation }, epochOp), { minLength: 1, maxLength: 3 })
const certHex = new Set(certs.map(c => hex(encodeCertificate(c))))

function keyringOf (device: typeof dev): Keyring {
  return new Keyring(root.swarmId, { deviceId: device.deviceId, deviceSealingSecret: sealingSecretKeyOf(device.secretKey) })
}

/** Applies decoded control ops the way the log does; nothing forged may pass. */
function checkControlOps (ops: ControlOp[]): void {
  for (const op of ops) {
    if (op.t === 'cert') {
      const r = decodes('verifyCertificate', ['InvalidCertificateError'], () => verifyCertificate(op.cert, root.swarmId, root.rootPublicKey))
      if (r.ok) assert.ok(certHex.has(hex(encodeCertificate(r.value))), 'an altered certificate verified')
    } else if (op.t === 'revoke') {
      const r = decodes('verifyRevocation', ['InvalidCertificateError'], () => verifyRevocation(op.rev, root.swarmId, root.rootPublicKey))
      if (r.ok) assert.equal(hex(dagCbor.encode(r.value)), hex(dagCbor.encode(revocation)), 'an altered revocation verified')
    } else {
      const record: EpochRecord = { id: op.id, gen: op.gen, kc: op.kc, boxes: new Map(Object.entries(op.boxes)) as EpochRecord['boxes'] }
      const keyring = keyringOf(dev)
      const opened = decodes('Keyring.add', [], () => keyring.add(record))
      if (opened.ok && opened.value) {
        assert.equal(op.id, epoch.record.id)
        assert.equal(hex(keyring.key(op.id)), hex(epoch.key), 'an altered epoch record opened to another key')
      }
    }
  }
}

describe('fuzz: payloads', () => {
  it('data payloads: random and mutated bytes end in a typed error or ops that re-encode', () => {
    const bytesArb = fc.oneof(fc.uint8Array({ maxLength: 300 }), mutatedArb(dataOpsArb.map(encodeDataPayload)))
    fc.assert(fc.property(bytesArb, bytes => {
      const r = decodes('decodeDataPayload', PAYLOAD_ERRORS, () => decodeDataPayload(bytes))
      if (r.ok) checkDataOps(r.value)
    }), fuzzParams(1000))
  })

  it('data payloads: hostile JSON in any op field, and mangled JSON text, end in a typed error', () => {
    const rawsArb = fc.array(fc.oneof(hostileJsonTextArb, fc.integer({ min: MAX_JSON_DEPTH - 2, max: 2000 }).map(n => deepJson(n, n % 2 === 0 ? 'array' : 'object'))), { minLength: 1, maxLength: 3 })
    const caseArb = fc.tuple(dataOpsArb, rawsArb).chain(([ops, raws]) => fc.tuple(
      fc.constant(ops), fc.constant(raws),
      fc.array(fc.oneof(valueEditArb(fc.constantFrom(...raws.map((_, i) => `${RAW}${i}`))), valueEditArb(fc.jsonValue({ maxDepth: 1 }))), { minLength: 1, maxLength: 3 }),
      fc.array(fc.tuple(fc.nat(), fc.constantFrom('', '[', ']', '{', '}', '"', ',', ':', '\\', '\\u', 'null', '1e999', '\u0000')), { maxLength: 3 })
    ))
    fc.assert(fc.property(caseArb, ([ops, raws, edits, cuts]) => {
      const docOps = ops.filter(o => o.t !== 'yjs')
      const plain = encodeDataPayload(docOps.length > 0 ? docOps : [{ t: 'del', c: 'n' as never, id: 'x' as never }])
      const docs = JSON.parse((dagCbor.decode(plain) as { d: string }).d) as unknown
      let text = withRawJson(docs, edits, raws)
      for (const [at, s] of cuts) {
        const i = at % (text.length + 1)
        text = text.slice(0, i) + s + text.slice(i + (at % 3))
      }
      const r = decodes('decodeDataPayload', PAYLOAD_ERRORS, () => decodeDataPayload(docsPayload(text)))
      if (r.ok) checkDataOps(r.value)
    }), fuzzParams(500))
  })

  it('data payloads: mutated Yjs updates and hostile "y" values end in a typed error', () => {
    const caseArb = fc.tuple(yjsUpdateArb, fc.array(byteMutationArb, { minLength: 1, maxLength: 4 }), fc.array(valueEditArb(hostileCborArb), { maxLength: 2 }))
    fc.assert(fc.property(caseArb, ([update, ms, edits]) => {
      const y = edits.reduce(editValue, [{ d: 'doc', u: ms.reduce(mutateBytes, update) }])
      let bytes: Uint8Array
      try { bytes = docsPayload('[]', y) } catch { return }
      const r = decodes('decodeDataPayload', PAYLOAD_ERRORS, () => decodeDataPayload(bytes))
      if (r.ok) checkDataOps(r.value)
    }), fuzzParams(500))
  })

  it('data payloads: caps on op count, Yjs update size and field depth hold, before the expensive work', () => {
    const tooMany = docsPayload(`[${'0,'.repeat(MAX_OPS_PER_ENTRY)}0]`)
    assert.equal(decodes('decodeDataPayload (ops)', ['TooLargeError'], () => decodeDataPayload(tooMany)).ok, false)
    const bigUpdate = docsPayload('[]', [{ d: 'doc', u: new Uint8Array(MAX_YJS_UPDATE + 1) }])
    assert.equal(decodes('decodeDataPayload (Yjs)', ['TooLargeError'], () => decodeDataPayload(bigUpdate)).ok, false)
    // f is at depth 0, so its values may nest MAX_JSON_DEPTH levels deep and no deeper
    const nested = (depth: number): Uint8Array => docsPayload(`[{"t":"put","c":"n","id":"x","f":{"a":${deepJson(depth, 'array')}}}]`)
    assert.equal(decodes('decodeDataPayload (depth at the cap)', [], () => decodeDataPayload(nested(MAX_JSON_DEPTH))).ok, true)
    assert.equal(decodes('decodeDataPayload (depth over the cap)', ['MalformedError'], () => decodeDataPayload(nested(MAX_JSON_DEPTH + 1))).ok, false)
  })

  it('payloads of the most expensive DAG-CBOR shapes that fit in an entry end in a typed error quickly', () => {
    const n = MAX_ENTRY_BYTES - 64
    const emptyMaps = concat(cborHead(4, n, 4), new Uint8Array(n).fill(0xa0))
    const data = concat(Uint8Array.of(0xa2, 0x61, 0x64, 0x62), utf8.encode('[]'), Uint8Array.of(0x61, 0x79), emptyMaps)
    assert.equal(decodes('decodeDataPayload (empty maps)', ['TooLargeError'], () => decodeDataPayload(data)).ok, false)
    const control = concat(Uint8Array.of(0xa1, 0x63), utf8.encode('ops'), emptyMaps)
    assert.equal(decodes('decodeControlPayload (empty maps)', ['TooLargeError'], () => decodeControlPayload(control)).ok, false)
    assert.equal(decodes('decodeDataPayload (deep)', ['MalformedError'], () => decodeDataPayload(deepCbor(n))).ok, false)
  })

  it('control payloads: random, mutated and hostile ops end in a typed error; verification accepts nothing altered', () => {
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      mutatedArb(controlOpsArb.map(encodeControlPayload)),
      fc.tuple(controlOpsArb, fc.array(valueEditArb(hostileCborArb), { minLength: 1, maxLength: 3 }))
        .map(([ops, edits]) => encodeEdited({ ops }, edits) ?? new Uint8Array(0))
    )
    fc.assert(fc.property(bytesArb, bytes => {
      const r = decodes('decodeControlPayload', PAYLOAD_ERRORS, () => decodeControlPayload(bytes))
      if (r.ok) checkControlOps(r.value)
    }), fuzzParams(500))
    const boxes = Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`d${i}`, new Uint8Array(1)]))
    const tooMany = encodeControlPayload([{ ...epochOp, boxes } as ControlOp])
    assert.equal(decodes('decodeControlPayload (boxes)', PAYLOAD_ERRORS, () => decodeControlPayload(tooMany)).ok, false)
  })
})

// ---------------------------------------------------------------------------------------------
// certificates, chains, key boxes

describe('fuzz: certificates and keys', () => {
  it('stored certificates: mutated and hostile bytes are InvalidCertificateError or the original', () => {
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      mutatedArb(fc.constantFrom(...certs.map(encodeCertificate))),
      fc.tuple(fc.constantFrom(...certs), fc.array(valueEditArb(hostileCborArb), { minLength: 1, maxLength: 3 })).map(([c, edits]) => encodeEdited(c, edits) ?? new Uint8Array(0))
    )
    fc.assert(fc.property(bytesArb, bytes => {
      const r = decodes('decodeCertificate', ['InvalidCertificateError'], () => decodeCertificate(bytes, root.swarmId, root.rootPublicKey))
      if (r.ok) assert.ok(certHex.has(hex(encodeCertificate(r.value))))
    }), fuzzParams(500))
  })

  it('certificate chains: altered chains are InvalidCertificateError or name the right device', () => {
    const chain = certs.map(encodeCertificate).reverse() // leaf (phone, issued by laptop), then laptop (root-issued)
    const chainArb = fc.oneof(
      fc.tuple(fc.nat(), fc.array(byteMutationArb, { minLength: 1, maxLength: 3 })).map(([i, ms]) => chain.map((c, j) => j === i % chain.length ? ms.reduce(mutateBytes, c) : c)),
      fc.array(fc.oneof(fc.constantFrom(...chain), fc.uint8Array({ maxLength: 100 })), { maxLength: 18 })
    )
    fc.assert(fc.property(chainArb, chain => {
      const r = decodes('verifyCertificateChain', ['InvalidCertificateError'], () => verifyCertificateChain(peer.deviceId, chain, root.swarmId, root.rootPublicKey, () => false))
      if (r.ok) assert.equal(r.value.device, peer.deviceId)
    }), fuzzParams(300))
  })

  it('key boxes and epoch records: altered boxes are DecryptionError or open to the original key', () => {
    const context = epochContext(root.swarmId, epoch.record.id)
    const box = epoch.record.boxes.get(dev.deviceId) as Uint8Array
    const secret = sealingSecretKeyOf(dev.secretKey)
    fc.assert(fc.property(fc.oneof(mutatedArb(fc.constant(box)), fc.uint8Array({ minLength: 104, maxLength: 104 })), altered => {
      const r = decodes('openKeyBox', ['DecryptionError'], () => openKeyBox(secret, altered, context))
      if (r.ok) assert.equal(hex(r.value), hex(epoch.key))
      const keyring = keyringOf(dev)
      decodes('Keyring.add', [], () => keyring.add({ ...epoch.record, boxes: new Map([[dev.deviceId, altered]]) }))
      decodes('Keyring.deliver', [], () => keyringOf(dev).deliver(epoch.record.id, altered))
    }), fuzzParams(150))
    // a box to a low-order point: the shared secret is all zeros
    const lowOrder = concat(new Uint8Array(32), sealKeyTo(sealingPublicKeyOf(publicKeyOf(peer.secretKey)), epoch.key, context).subarray(32))
    assert.equal(decodes('openKeyBox (low order)', ['DecryptionError'], () => openKeyBox(secret, lowOrder, context)).ok, false)
  })
})

// ---------------------------------------------------------------------------------------------
// wire messages

const deviceIdArb = fc.constantFrom(dev.deviceId, peer.deviceId)
const vectorArb = fc.uniqueArray(fc.tuple(deviceIdArb, fc.nat()), { selector: p => p[0], maxLength: 2 })
const keyBoxesArb = fc.array(fc.record({ id: fc.integer({ min: 1, max: 0xffffffff }), box: fc.uint8Array({ maxLength: 104 }) }), { maxLength: 3 })
const certChainArb = fc.array(fc.constantFrom(...certs.map(encodeCertificate)), { minLength: 1, maxLength: 3 })
const smallBytesArb = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n })
const entryBytesArb = fc.array(fc.uint8Array({ minLength: 1, maxLength: 120 }), { minLength: 1, maxLength: 3 })

const wireArbs = {
  hello: fc.record({ t: fc.constant('hello'), v: fc.constant(1), swarm: fc.constant(root.swarmId), chain: certChainArb, keys: keyBoxesArb }, { requiredKeys: ['t', 'v', 'swarm', 'chain'] }),
  keys: fc.record({ t: fc.constant('keys'), keys: keyBoxesArb }),
  error: fc.record({ t: fc.constant('error'), code: fc.string({ maxLength: 64 }), message: fc.string({ maxLength: 100 }) }),
  req: fc.record({ t: fc.constant('req'), have: vectorArb }),
  batch: fc.record({ t: fc.constant('batch'), entries: entryBytesArb, sigs: fc.array(fc.tuple(fc.nat({ max: 9_999 }), smallBytesArb(64)), { maxLength: 3 }), remaining: fc.nat() }),
  ack: fc.record({ t: fc.constant('ack'), applied: fc.nat() }),
  punch: fc.record({ t: fc.constant('punch'), ip: fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 64 })), port: fc.integer({ min: 1024, max: 65535 }) }),
  punchSync: fc.record({ t: fc.constant('sync') }),
  end: fc.record({ t: fc.constant('end'), have: vectorArb }),
  gossip: fc.oneof(fc.record({ t: fc.constant('entries'), e: entryBytesArb, s: smallBytesArb(64) }), fc.record({ t: fc.constant('heads'), h: vectorArb })),
  join: fc.record({ t: fc.constant('join'), invite: smallBytesArb(8), name: fc.string({ minLength: 1, maxLength: 64 }), nonce: smallBytesArb(16) }),
  challenge: fc.record({ t: fc.constant('challenge'), nonce: smallBytesArb(16) }),
  proof: fc.record({ t: fc.constant('proof'), mac: smallBytesArb(32) }),
  welcome: fc.record({
    t: fc.constant('welcome'), mac: smallBytesArb(32), swarm: fc.constant(root.swarmId), rootPublicKey: fc.constant(root.rootPublicKey),
    recoveryPublicKey: fc.constant(root.recoveryPublicKey), certificate: fc.constant(encodeCertificate(certs[1] as DeviceCertificate)),
    chain: certChainArb, keys: keyBoxesArb, addrs: fc.array(fc.constantFrom('/ip4/127.0.0.1/tcp/4011', '/ip6/::1/tcp/1'), { maxLength: 2 }), name: fc.string({ maxLength: 64 })
  }),
  search: fc.record({
    t: fc.constant('search'), v: fc.constant(1), swarm: fc.constant(root.swarmId), collection: collectionArb, mode: fc.constantFrom('vector', 'text', 'hybrid'),
    k: fc.integer({ min: 1, max: 100 }), text: fc.string({ minLength: 1, maxLength: 40 }), vector: fc.integer({ min: 1, max: 8 }).map(n => new Uint8Array(4 * n)),
    embedder: fc.constant('default'), where: fc.constant('{"a":1}'), budget: fc.integer({ min: 0, max: 60_000 })
  }, { requiredKeys: ['t', 'v', 'swarm', 'collection', 'mode', 'k', 'budget'] }),
  results: fc.record({
    t: fc.constant('results'), local: fc.boolean(), pending: fc.nat(),
    hits: fc.array(fc.record({ id: docIdArb, score: fc.double({ noNaN: true, noDefaultInfinity: true }), doc: fc.constant('{"a":1}') }), { maxLength: 3 })
  })
} satisfies Record<string, fc.Arbitrary<Record<string, unknown>>>

/** Each schema (and each union a protocol reads) with valid messages and ones just over a cap. */
const wireCases: Array<{ name: string, schema: z.ZodType<unknown>, valid: fc.Arbitrary<Record<string, unknown>>, over: Array<Record<string, unknown>> }> = [
  { name: 'hello', schema: helloSchema, valid: wireArbs.hello, over: [{ chain: [new Uint8Array(4097)] }, { chain: Array(17).fill(new Uint8Array(1)) }, { swarm: 'b'.repeat(129) }, { keys: Array(1025).fill({ id: 1, box: new Uint8Array(1) }) }, { keys: [{ id: 1, box: new Uint8Array(257) }] }] },
  { name: 'hello reply', schema: z.union([helloSchema, errorSchema]), valid: fc.oneof(wireArbs.hello, wireArbs.error), over: [{ t: 'error', code: 'c'.repeat(65), message: '' }] },
  { name: 'keys', schema: keysSchema, valid: wireArbs.keys, over: [{ keys: [{ id: 2 ** 32, box: new Uint8Array(1) }] }] },
  { name: 'error', schema: errorSchema, valid: wireArbs.error, over: [{ code: 'c'.repeat(65) }, { message: 'm'.repeat(1025) }] },
  { name: 'sync request', schema: syncRequestSchema, valid: wireArbs.req, over: [{ have: Array.from({ length: MAX_VECTOR_AUTHORS + 1 }, () => [dev.deviceId, 1]) }] },
  { name: 'sync message', schema: z.union([syncBatchSchema, syncEndSchema, errorSchema]), valid: fc.oneof(wireArbs.batch, wireArbs.end, wireArbs.error), over: [{ t: 'batch', entries: Array(10_001).fill(new Uint8Array(1)), sigs: [], remaining: 0 }, { t: 'batch', entries: [new Uint8Array(1)], sigs: [[0, new Uint8Array(65)]], remaining: 0 }] },
  { name: 'sync batch', schema: syncBatchSchema, valid: wireArbs.batch, over: [{ entries: Array(10_001).fill(new Uint8Array(1)) }, { remaining: -1 }] },
  { name: 'sync ack', schema: syncAckSchema, valid: wireArbs.ack, over: [{ applied: 2 ** 53 }] },
  { name: 'sync end', schema: syncEndSchema, valid: wireArbs.end, over: [{ have: [[dev.deviceId, 2 ** 53]] }] },
  { name: 'gossip', schema: gossipSchema, valid: wireArbs.gossip, over: [{ t: 'entries', e: [new Uint8Array(MAX_INLINE_ENTRY + 1)], s: new Uint8Array(64) }, { t: 'entries', e: Array(1025).fill(new Uint8Array(1)), s: new Uint8Array(64) }, { t: 'entries', e: [new Uint8Array(1)], s: new Uint8Array(63) }] },
  { name: 'pair join', schema: pairJoinSchema, valid: wireArbs.join, over: [{ name: 'n'.repeat(65) }, { invite: new Uint8Array(9) }] },
  { name: 'pair reply', schema: z.union([pairChallengeSchema, errorSchema]), valid: fc.oneof(wireArbs.challenge, wireArbs.error), over: [{ t: 'challenge', nonce: new Uint8Array(17) }] },
  { name: 'pair proof', schema: pairProofSchema, valid: wireArbs.proof, over: [{ mac: new Uint8Array(33) }] },
  { name: 'pair welcome', schema: z.union([pairWelcomeSchema, errorSchema]), valid: fc.oneof(wireArbs.welcome, wireArbs.error), over: [{ t: 'welcome', certificate: new Uint8Array(4097) }, { t: 'welcome', addrs: Array(17).fill('/') }, { t: 'welcome', chain: Array(17).fill(new Uint8Array(1)) }] },
  { name: 'punch', schema: punchSchema, valid: wireArbs.punch, over: [{ ip: 'i'.repeat(65) }, { port: 65536 }, { port: 1023 }] },
  { name: 'punch reply', schema: z.union([punchSchema, errorSchema]), valid: fc.oneof(wireArbs.punch, wireArbs.error), over: [{ t: 'punch', ip: '1.2.3.4', port: 0.5 }] },
  { name: 'punch sync', schema: punchSyncSchema, valid: wireArbs.punchSync, over: [{ t: 'sync', extra: 1 }] },
  { name: 'search request', schema: searchRequestSchema, valid: wireArbs.search, over: [{ text: 't'.repeat(8193) }, { vector: new Uint8Array(4 * 4097) }, { where: 'w'.repeat(64 * 1024 + 1) }, { k: 101 }, { budget: 60_001 }] },
  { name: 'search response', schema: z.union([searchResponseSchema, errorSchema]), valid: fc.oneof(wireArbs.results, wireArbs.error), over: [{ t: 'results', hits: Array(101).fill({ id: 'x', score: 1, doc: '{}' }) }, { t: 'results', hits: [{ id: 'x', score: 1, doc: ' '.repeat(2 * 1024 * 1024 + 1) }] }] }
]

describe('fuzz: wire messages', () => {
  for (const c of wireCases) {
    it(`${c.name}: random, mutated and hostile messages are ProtocolError or valid; caps hold`, () => {
      const bytesArb = fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        mutatedArb(c.valid.map(encodeMessage)),
        fc.tuple(c.valid, fc.array(valueEditArb(hostileCborArb), { minLength: 1, maxLength: 3 })).map(([m, edits]) => encodeEdited(m, edits) ?? new Uint8Array(0))
      )
      fc.assert(fc.property(bytesArb, bytes => {
        const r = decodes(`decodeMessage(${c.name})`, ['ProtocolError'], () => decodeMessage(bytes, c.schema, c.name))
        if (r.ok) assert.ok(c.schema.safeParse(dagCbor.decode(encodeMessage(r.value as object))).success)
      }), fuzzParams(300))
      const base = fc.sample(c.valid, { numRuns: 1, seed: 1 })[0] as Record<string, unknown>
      for (const over of c.over) {
        const r = decodes(`decodeMessage(${c.name}, over a cap)`, ['ProtocolError'], () => decodeMessage(encodeMessage({ ...base, ...over }), c.schema, c.name))
        assert.equal(r.ok, false, `${c.name} accepted ${Object.keys(over).join(', ')} over its cap`)
      }
    })
  }

  it('a punch names a public address to dial or is a ProtocolError', () => {
    fc.assert(fc.property(wireArbs.punch, msg => {
      const r = decodes('punchTarget', ['ProtocolError'], () => punchTarget(msg))
      if (r.ok) {
        assert.equal(r.value, `/ip${msg.ip.includes(':') ? 6 : 4}/${msg.ip}/tcp/${msg.port}`)
        assert.equal(scopeOf(r.value as string), 'public')
      }
    }), fuzzParams(300))
    for (const ip of ['127.0.0.1', '192.168.1.2', '10.0.0.1', '::1', 'fe80::1', 'example.com', '1.2.3.4/tcp/1']) assert.equal(decodes('punchTarget', ['ProtocolError'], () => punchTarget({ t: 'punch', ip, port: 4001 })).ok, false, ip)
  })

  it('frames of the most expensive shapes up to the sync frame cap end in a ProtocolError quickly', () => {
    const n = MAX_ENTRY_BYTES
    const frames = [
      concat(cborHead(4, n, 4), new Uint8Array(n).fill(0xa0)),
      concat(Uint8Array.of(0xa2, 0x61, 0x74, 0x63), utf8.encode('req'), Uint8Array.of(0x64), utf8.encode('have'), cborHead(4, n, 4), new Uint8Array(n).fill(0x80)),
      deepCbor(n)
    ]
    for (const bytes of frames) assert.equal(decodes('decodeMessage (expensive)', ['ProtocolError'], () => decodeMessage(bytes, syncRequestSchema, 'sync request')).ok, false)
  })
})

// ---------------------------------------------------------------------------------------------
// invite codes

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'

/** Luhn mod 32 check character (the invite format's, written out again as a test vector). */
function luhn32 (body: string): string {
  let factor = 2
  let sum = 0
  for (let i = body.length - 1; i >= 0; i--) {
    let addend = factor * ALPHABET.indexOf(body[i] as string)
    factor = factor === 2 ? 1 : 2
    addend = Math.floor(addend / 32) + (addend % 32)
    sum += addend
  }
  return ALPHABET[(32 - (sum % 32)) % 32] as string
}

function base32 (bytes: Uint8Array): string {
  let out = ''
  let bits = 0
  let value = 0
  for (const b of bytes) {
    value = (value << 8) | b
    bits += 8
    while (bits >= 5) { out += ALPHABET[(value >>> (bits - 5)) & 31]; bits -= 5 }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31]
  return out
}

/** An invite code around any DAG-CBOR value, with a correct check character. */
const inviteAround = (value: unknown): string => {
  const body = base32(dagCbor.encode(value))
  return 'peak1' + body + luhn32(body)
}

const inviteArb = fc.record({
  inviterKey: fc.constant(publicKeyOf(dev.secretKey)),
  addrs: fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 4 }),
  secret: smallBytesArb(16),
  expires: fc.integer({ min: 1, max: 2 ** 40 })
})

describe('fuzz: invite codes', () => {
  it('case, spaces and dashes do not change an invite; every other edit is InvalidInviteError or a valid invite', () => {
    const editArb = fc.array(fc.tuple(fc.constantFrom('upper', 'space', 'replace', 'insert', 'delete', 'swap', 'truncate'), fc.nat(), fc.constantFrom(...ALPHABET, '0', '1', '8', 'é', 'İ', '\u0000', ' ')), { minLength: 1, maxLength: 3 })
    fc.assert(fc.property(inviteArb, editArb, (invite, edits) => {
      const code = encodeInvite(invite)
      let text = code
      let cosmetic = true
      for (const [k, at, ch] of edits) {
        const i = at % (text.length + 1)
        if (k === 'upper') text = text.slice(0, i) + text.slice(i).toUpperCase()
        else if (k === 'space') text = text.slice(0, i) + (at % 2 === 0 ? ' ' : '-') + text.slice(i)
        else {
          cosmetic = false
          if (k === 'replace') text = text.slice(0, i) + ch + text.slice(i + 1)
          else if (k === 'insert') text = text.slice(0, i) + ch + text.slice(i)
          else if (k === 'delete') text = text.slice(0, i) + text.slice(i + 1)
          else if (k === 'swap') text = text.slice(0, i) + text.slice(i + 1, i + 2) + text.slice(i, i + 1) + text.slice(i + 2)
          else text = text.slice(0, i)
        }
      }
      const r = decodes('decodeInvite', ['InvalidInviteError'], () => decodeInvite(text))
      if (cosmetic) {
        assert.ok(r.ok, `a cosmetic edit broke the invite: ${text}`)
        assert.equal(encodeInvite(r.value), code)
      } else if (r.ok) {
        assert.equal(r.value.inviter, deviceIdFromPublicKey(r.value.inviterKey))
        assert.equal(decodeInvite(encodeInvite(r.value)).inviter, r.value.inviter)
      }
    }), fuzzParams(1000))
  })

  it('random text, and hostile contents behind a correct check character, are InvalidInviteError or a valid invite', () => {
    const textArb = fc.oneof(
      fc.string({ maxLength: 100 }),
      fc.string({ unit: 'binary', maxLength: 100 }),
      fc.array(fc.constantFrom(...ALPHABET), { minLength: 15, maxLength: 200 }).map(cs => { const b = cs.join(''); return 'peak1' + b + luhn32(b) }),
      fc.tuple(inviteArb, fc.array(valueEditArb(hostileCborArb), { minLength: 1, maxLength: 3 }))
        .map(([i, edits]) => edits.reduce(editValue, [1, i.inviterKey, i.addrs, i.secret, i.expires]))
        .map(v => { try { return inviteAround(v) } catch { return 'peak1' } })
    )
    fc.assert(fc.property(textArb, text => {
      const r = decodes('decodeInvite', ['InvalidInviteError'], () => decodeInvite(text))
      if (r.ok) assert.equal(r.value.inviter, deviceIdFromPublicKey(r.value.inviterKey))
    }), fuzzParams(500))
  })

  it('codes over the length cap fail before decoding', () => {
    const body = 'a'.repeat(2000)
    for (const text of ['peak1' + body + luhn32(body), 'peak1' + 'a'.repeat(4 << 20)]) {
      assert.equal(decodes('decodeInvite (long)', ['InvalidInviteError'], () => decodeInvite(text), 300).ok, false)
    }
  })
})

// ---------------------------------------------------------------------------------------------
// files: keystore, api.json, config.json

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

/** JSON leaves for files; numbers stay where key derivation is cheap or clearly out of range. */
const fileLeafArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, '', 'scrypt', 'AAAA', 'peakdb-keystore', 2, 1, 0, -1, 0.5, 3, 16, 17, 32, 33, 64, 65535, 65536, 2 ** 20 + 1, 2 ** 21, 2 ** 32, 2 ** 53, 1e300, -1e300),
  fc.string({ maxLength: 12 }),
  fc.integer({ min: -8, max: 64 }),
  fc.uint8Array({ maxLength: 40 }).map(b64),
  hostileJsonTextArb.map(t => JSON.parse(t) as unknown)
)

describe('fuzz: files', () => {
  const dirs = new TmpDirs()
  let dir: string
  let n = 0
  const fresh = (name: string): string => join(dir, `${n++}-${name}`)
  before(() => { dir = dirs.make('peakdb-fuzz-') })
  after(() => dirs.cleanup())

  /** A keystore document; `passphrase` seals its secrets with scrypt N=2 (cheap, and in range). */
  function keystoreDoc (passphrase?: string): Record<string, unknown> {
    const path = fresh('keystore.json')
    writeKeystore(path, { swarmId: root.swarmId, rootPublicKey: root.rootPublicKey, recoveryPublicKey: root.recoveryPublicKey, deviceSecretKey: dev.secretKey, certificate: certs[0] as DeviceCertificate, chain: [], createdAt: 'now' })
    const doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
    if (passphrase === undefined) return doc
    const salt = randomBytes(16)
    const key = scrypt(passphrase.normalize('NFKC'), salt, { N: 2, r: 1, p: 1, dkLen: 32 })
    const sealed = seal(key, utf8.encode(JSON.stringify(doc.secrets)), utf8.encode(`peakdb/keystore/v2\0${root.swarmId}`))
    return { ...doc, secrets: { kdf: 'scrypt', N: 2, r: 1, p: 1, salt: b64(salt), sealed: b64(sealed) } }
  }

  const KEYSTORE_ERRORS = ['KeystoreCorruptError', 'PassphraseRequiredError', 'WrongPassphraseError']

  function readFuzzedKeystore (content: Uint8Array | string, passphrase: string | undefined): void {
    const path = fresh('keystore.json')
    writeFileSync(path, content)
    const r = decodes('readKeystore', KEYSTORE_ERRORS, () => readKeystore(path, passphrase === undefined ? {} : { passphrase }))
    if (r.ok) {
      assert.equal(r.value.swarmId, root.swarmId)
      assert.equal(deviceIdFromPublicKey(publicKeyOf(r.value.deviceSecretKey)), r.value.certificate.device)
    }
  }

  it('keystore: mutated and hostile files are typed errors or a consistent keystore', () => {
    const docs = [keystoreDoc(), keystoreDoc('pw')]
    const passArb = fc.constantFrom(undefined, 'pw', 'wrong')
    const contentArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      mutatedArb(fc.constantFrom(...docs).map(d => utf8.encode(JSON.stringify(d, null, 2)))),
      fc.tuple(fc.constantFrom(...docs), fc.array(valueEditArb(fileLeafArb), { minLength: 1, maxLength: 3 })).map(([d, edits]) => JSON.stringify(edits.reduce(editValue, d)))
    )
    fc.assert(fc.property(contentArb, passArb, readFuzzedKeystore), fuzzParams(300))
  })

  it('keystore: scrypt parameters out of range, or sealed secrets that are not an object, are KeystoreCorruptError', () => {
    const protectedDoc = keystoreDoc('pw')
    const secrets = protectedDoc.secrets as Record<string, unknown>
    for (const params of [{ N: 3 }, { N: 0 }, { N: 2 ** 20, r: 32 }, { N: 2 ** 20, r: 1, p: 16 }, { N: 2 ** 21 }, { r: 0 }, { r: 33 }, { p: 17 }, { p: 2 ** 20 }, { N: 2 ** 17, r: 8, p: 5 }, { N: '2' }]) {
      const path = fresh('keystore.json')
      writeFileSync(path, JSON.stringify({ ...protectedDoc, secrets: { ...secrets, ...params } }))
      const r = decodes(`readKeystore (${JSON.stringify(params)})`, ['KeystoreCorruptError'], () => readKeystore(path, { passphrase: 'pw' }), 300)
      assert.equal(r.ok, false)
    }
    for (const plaintext of ['null', '[]', '"x"', '1']) {
      const salt = randomBytes(16)
      const key = scrypt('pw', salt, { N: 2, r: 1, p: 1, dkLen: 32 })
      const sealed = seal(key, utf8.encode(plaintext), utf8.encode(`peakdb/keystore/v2\0${root.swarmId}`))
      const path = fresh('keystore.json')
      writeFileSync(path, JSON.stringify({ ...protectedDoc, secrets: { ...secrets, salt: b64(salt), sealed: b64(sealed) } }))
      assert.equal(decodes(`readKeystore (sealed ${plaintext})`, ['KeystoreCorruptError'], () => readKeystore(path, { passphrase: 'pw' })).ok, false)
    }
  })

  it('api.json: any file content gives a live daemon\'s info or undefined, never an exception', () => {
    const info = { url: 'http://127.0.0.1:5011', token: 'a'.repeat(43), pid: process.pid, deviceId: dev.deviceId }
    const contentArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      mutatedArb(fc.constant(utf8.encode(JSON.stringify(info)))),
      fc.array(valueEditArb(fc.oneof(fileLeafArb, fc.constantFrom(process.pid, 1, 0, -1, 2 ** 31))), { minLength: 1, maxLength: 3 }).map(edits => JSON.stringify(edits.reduce(editValue, info)))
    )
    fc.assert(fc.property(contentArb, content => {
      const path = fresh('api.json')
      writeFileSync(path, content)
      const r = decodes('readApiInfo', [], () => readApiInfo(path))
      if (r.ok && r.value !== undefined) {
        assert.equal(typeof r.value.url, 'string')
        assert.equal(typeof r.value.token, 'string')
        assert.ok(Number.isInteger(r.value.pid) && r.value.pid > 0)
      }
    }), fuzzParams(500))
    const big = fresh('api.json')
    writeFileSync(big, JSON.stringify({ ...info, pad: 'x'.repeat(8 << 20) }))
    decodes('readApiInfo (8 MiB)', [], () => readApiInfo(big))
    const sub = fresh('api.json')
    mkdirSync(sub)
    assert.deepEqual(decodes('readApiInfo (a directory)', [], () => readApiInfo(sub)), { ok: true, value: undefined })
    assert.deepEqual(decodes('readApiInfo (missing)', [], () => readApiInfo(fresh('none.json'))), { ok: true, value: undefined })
  })

  it('config.json: any file content is InvalidOptionError or a valid configuration; caps hold', () => {
    const configArb = fc.record({
      listen: fc.array(fc.constantFrom('/ip4/0.0.0.0/tcp/4011', '/ip6/::/tcp/0'), { maxLength: 3 }),
      bootstrap: fc.array(fc.constant(`/ip4/192.0.2.7/tcp/4011/p2p/${dev.deviceId}`), { maxLength: 2 }),
      mdns: fc.boolean(), dht: fc.boolean(), apiPort: fc.integer({ min: 0, max: 65535 }), confirmations: fc.integer({ min: 0, max: 1000 }),
      deviceName: fc.string({ minLength: 1, maxLength: 64 }),
      embedder: fc.oneof(fc.constant({ kind: 'default' }), fc.record({ kind: fc.constantFrom('openai', 'ollama'), url: fc.constant('http://127.0.0.1:11434'), model: fc.constant('m'), apiKey: fc.constant('k') }, { requiredKeys: ['kind', 'url', 'model'] }))
    }, { requiredKeys: [] })
    const contentArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      mutatedArb(configArb.map(c => utf8.encode(JSON.stringify(c)))),
      fc.tuple(configArb, fc.array(valueEditArb(fileLeafArb), { minLength: 1, maxLength: 3 })).map(([c, edits]) => JSON.stringify(edits.reduce(editValue, c)))
    )
    fc.assert(fc.property(contentArb, fc.boolean(), (content, explicit) => {
      const path = fresh('config.json')
      writeFileSync(path, content)
      const r = decodes('readConfig', ['InvalidOptionError'], () => readConfig(path, explicit))
      if (r.ok) assert.ok(configSchema.safeParse(r.value).success)
    }), fuzzParams(500))
    const overs: Array<Record<string, unknown>> = [
      { listen: Array(33).fill('/ip4/0.0.0.0/tcp/1') }, { bootstrap: Array(257).fill('/ip4/0.0.0.0/tcp/1') }, { listen: ['/' + 'a'.repeat(1024)] },
      { apiPort: 65536 }, { confirmations: 1001 }, { deviceName: 'n'.repeat(65) },
      { embedder: { kind: 'ollama', url: 'http://h', model: 'm'.repeat(257) } }, { embedder: { kind: 'openai', url: 'http://h', model: 'm', apiKey: 'k'.repeat(1025) } }
    ]
    for (const over of overs) {
      const path = fresh('config.json')
      writeFileSync(path, JSON.stringify(over))
      assert.equal(decodes(`readConfig (${Object.keys(over).join()})`, ['InvalidOptionError'], () => readConfig(path, true)).ok, false)
    }
    const big = fresh('config.json')
    writeFileSync(big, JSON.stringify({ deviceName: 'x'.repeat(8 << 20) }))
    assert.equal(decodes('readConfig (8 MiB)', ['InvalidOptionError'], () => readConfig(big, true)).ok, false)
  })
})
