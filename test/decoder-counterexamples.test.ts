/**
 * Inputs the decoder fuzzing (test/fuzz-decoders.test.ts) found to crash, hang or be accepted
 * wrongly, kept as plain examples once fixed.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import { scrypt } from '@noble/hashes/scrypt.js'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { createLegacyEntry, decodeControlPayload, decodeDataPayload, decodeEntry, MAX_ENTRY_BYTES, parseEntryId } from '../crdt/index.js'
import { createSigner, decodeCertificate, issueCertificate, readKeystore, seal, verifyCertificate, writeKeystore } from '../identity/index.js'
import { decodeMessage, encodeMessage, syncRequestSchema } from '../transport/messages.js'
import { searchRequestSchema } from '../transport/search-protocol.js'
import { readConfig } from '../node/cli/config.js'
import { rejectsNamed } from './helpers/errors.js'
import { makeDevice, makeRoot } from './helpers/identity.js'
import { TmpDirs } from './helpers/tmp-dir.js'

const utf8 = new TextEncoder()
const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts))
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

describe('decoders: counterexamples found by fuzzing', () => {
  const dirs = new TmpDirs()
  after(() => dirs.cleanup())
  const root = makeRoot()
  const dev = makeDevice(root)
  const cert = issueCertificate({ swarm: root.swarmId, device: dev.deviceId, name: 'laptop', issued: 1 }, createSigner(root.rootSecretKey), true)
  const entry = createLegacyEntry({ v: 1, swarm: root.swarmId, author: dev.deviceId, seq: 1, prev: null, deps: [], clock: { ms: 1, c: 0 }, epoch: 0 }, () => Uint8Array.of(1, 2, 3), dev.signer)
  const header = dagCbor.decode(entry.headerBytes) as Record<string, unknown>
  const kv = (key: string, value: Uint8Array): Uint8Array => concat(dagCbor.encode(key), value)

  it('an entry encoded any other way does not decode (its signature would verify under another CID)', async () => {
    const h = kv('h', entry.headerBytes)
    const p = kv('p', dagCbor.encode(entry.payload))
    const s = kv('s', dagCbor.encode(entry.sig))
    assert.ok(decodeEntry(concat(Uint8Array.of(0xa3), h, p, s)).cid.equals(entry.cid))
    // an extra key; the keys in another order; the payload length in two bytes instead of none
    await rejectsNamed(() => decodeEntry(concat(Uint8Array.of(0xa4), h, p, s, kv('z', dagCbor.encode(0)))), 'MalformedError', 'canonical')
    await rejectsNamed(() => decodeEntry(concat(Uint8Array.of(0xa3), p, h, s)), 'MalformedError', 'canonical')
    await rejectsNamed(() => decodeEntry(concat(Uint8Array.of(0xa3), h, kv('p', Uint8Array.of(0x59, 0, 3, 1, 2, 3)), s)), 'MalformedError')
  })

  it('a sha2-256 CID with a digest of another length is no entry id or link', async () => {
    const short = CID.createV1(dagCbor.code, Digest.create(0x12, entry.cid.multihash.digest.subarray(0, 20)))
    await rejectsNamed(() => parseEntryId(short.toString()), 'MalformedError', 'entry id')
    await rejectsNamed(() => decodeEntry(dagCbor.encode({ h: { ...header, deps: [short] }, p: entry.payload, s: entry.sig })), 'MalformedError', 'deps[0]')
  })

  it('a map where a decoder expects a number or string is a typed error, not a TypeError from String()', async () => {
    // String() throws on {toString: 0}: its toString is not callable, and valueOf returns the object
    const hostile = { toString: 0 }
    await rejectsNamed(() => decodeEntry(dagCbor.encode({ h: { ...header, v: hostile }, p: entry.payload, s: entry.sig })), 'MalformedError', 'version')
    await rejectsNamed(() => decodeDataPayload(dagCbor.encode({ d: '[{"t":{"toString":0}}]' })), 'MalformedError', 'op type')
    // { v: [{ toString: '' }] }
    await rejectsNamed(() => decodeCertificate(Uint8Array.from([0xa1, 0x61, 0x76, 0x81, 0xa1, 0x68, ...utf8.encode('toString'), 0x60]), root.swarmId, root.rootPublicKey), 'InvalidCertificateError', 'version')
    await rejectsNamed(() => verifyCertificate({ ...cert, swarm: hostile }, root.swarmId, root.rootPublicKey), 'InvalidCertificateError', 'swarm')
    const path = join(dirs.make(), 'keystore.json')
    writeFileSync(path, JSON.stringify({ format: 'peakdb-keystore', version: { toString: 1 } }))
    await rejectsNamed(() => readKeystore(path), 'KeystoreCorruptError', 'version')
  })

  it('millions of empty maps within the byte caps stop at the item cap', async () => {
    // a 16 MiB array of empty maps took 15-20 s and gigabytes to decode on a busy machine
    const n = MAX_ENTRY_BYTES - 64
    const emptyMaps = concat(Uint8Array.of(0x9a, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff), new Uint8Array(n).fill(0xa0))
    await rejectsNamed(() => decodeEntry(concat(Uint8Array.of(0xa3, 0x61, 0x68, 0xa1, 0x64), utf8.encode('deps'), emptyMaps)), 'TooLargeError')
    await rejectsNamed(() => decodeDataPayload(concat(Uint8Array.of(0xa2, 0x61, 0x64, 0x60, 0x61, 0x79), emptyMaps)), 'TooLargeError')
    await rejectsNamed(() => decodeControlPayload(concat(Uint8Array.of(0xa1, 0x63), utf8.encode('ops'), emptyMaps)), 'TooLargeError')
    await rejectsNamed(() => decodeMessage(emptyMaps, syncRequestSchema, 'sync request'), 'ProtocolError', 'items')
  })

  it('keystore scrypt parameters scrypt rejects or that cost too much, and sealed secrets that are not an object', async () => {
    const path = join(dirs.make(), 'keystore.json')
    writeKeystore(path, { swarmId: root.swarmId, rootPublicKey: root.rootPublicKey, recoveryPublicKey: root.recoveryPublicKey, deviceSecretKey: dev.secretKey, certificate: dev.certificate, chain: [], createdAt: 'now' })
    const doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
    const salt = randomBytes(16)
    const aad = utf8.encode(`peakdb/keystore/v2\0${root.swarmId}`)
    const sealedWith = (plaintext: string): string => b64(seal(scrypt('pw', salt, { N: 2, r: 1, p: 1, dkLen: 32 }), utf8.encode(plaintext), aad))
    const write = (secrets: Record<string, unknown>): void => {
      writeFileSync(path, JSON.stringify({ ...doc, secrets: { kdf: 'scrypt', N: 2, r: 1, p: 1, salt: b64(salt), sealed: sealedWith(JSON.stringify(doc.secrets)), ...secrets } }))
    }
    write({})
    assert.equal(readKeystore(path, { passphrase: 'pw' }).swarmId, root.swarmId)
    // N not a power of 2 made scrypt throw a plain Error; the others were accepted and cost seconds to minutes
    for (const params of [{ N: 3 }, { N: 2 ** 20, r: 32 }, { N: 2 ** 20, r: 1, p: 16 }, { N: 2, p: 2 ** 20 }]) {
      write(params)
      await rejectsNamed(() => readKeystore(path, { passphrase: 'pw' }), 'KeystoreCorruptError', 'scrypt')
    }
    write({ sealed: sealedWith('null') })
    await rejectsNamed(() => readKeystore(path, { passphrase: 'pw' }), 'KeystoreCorruptError', 'not an object')
  })

  it('a map with a "length" where zod expects a string or array is a typed error, not a TypeError from zod', async () => {
    const request = { t: 'search', v: 1, swarm: { length: { toString: '' } }, collection: 'notes', mode: 'text', k: 1, budget: 0 }
    await rejectsNamed(() => decodeMessage(encodeMessage(request), searchRequestSchema, 'search request'), 'ProtocolError')
    const path = join(dirs.make(), 'config.json')
    writeFileSync(path, '{"listen":{"length":{"toString":""}}}')
    await rejectsNamed(() => readConfig(path, true), 'InvalidOptionError')
  })
})
