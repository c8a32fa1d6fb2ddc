import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ed25519 } from '@noble/curves/ed25519.js'
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  createEpoch, createSigner, deriveUserRoot, deviceIdFromPublicKey, generateRecoveryPhrase, generateSecretKey, issueCertificate,
  Keyring, open, openKeyBox, parseRecoveryPhrase, PayloadSealer, publicKeyFromDeviceId, publicKeyOf, readKeystore, seal,
  sealingPublicKeyOf, sealingSecretKeyOf, sealKeyTo, sealReference, verifyCertificate, verifySignature, writeKeystore, epochContext,
  type DeviceId
} from '../identity/index.js'
import { rejectsNamed } from './helpers/errors.js'
import { TmpDirs } from './helpers/tmp-dir.js'

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))

describe('identity: recovery phrase and user root', () => {
  it('generates 24 valid words and derives the same SwarmId from the same phrase', () => {
    const phrase = generateRecoveryPhrase()
    assert.equal(phrase.split(' ').length, 24)
    const a = deriveUserRoot(phrase)
    const b = deriveUserRoot(parseRecoveryPhrase(`  ${phrase.toUpperCase().replace(/ /g, '   ')}\n`))
    assert.equal(a.swarmId, b.swarmId)
    assert.deepEqual(a.rootPublicKey, b.rootPublicKey)
    assert.deepEqual(a.recoveryPublicKey, b.recoveryPublicKey)
    assert.notEqual(deriveUserRoot(generateRecoveryPhrase()).swarmId, a.swarmId)
  })

  it('rejects wrong word counts, unknown words and bad checksums without echoing the phrase', async () => {
    const phrase = generateRecoveryPhrase()
    const words = phrase.split(' ')
    await rejectsNamed(() => parseRecoveryPhrase(words.slice(0, 23).join(' ')), 'InvalidRecoveryPhraseError', 'expected 24 words, got 23')
    const unknown = [...words.slice(0, 5), 'notaword', ...words.slice(6)].join(' ')
    const e = await rejectsNamed(() => parseRecoveryPhrase(unknown), 'InvalidRecoveryPhraseError', 'word 6')
    assert.ok(!e.message.includes(words.slice(0, 3).join(' ')) && !e.message.includes('notaword'), e.message)
    // swapping two different words keeps every word valid but breaks the checksum: on a fixed
    // phrase (the BIP-39 0x7f vector), since on a random one a swap keeps the 8-bit checksum once in 256
    const reference = 'legal winner thank year wave sausage worth useful '.repeat(3).trim().split(' ').slice(0, 23).concat('title')
    parseRecoveryPhrase(reference.join(' '))
    const swapped = [reference[1], reference[0], ...reference.slice(2)] as string[]
    await rejectsNamed(() => parseRecoveryPhrase(swapped.join(' ')), 'InvalidRecoveryPhraseError', 'checksum')
  })

  it('accepts the BIP-39 reference vectors and rejects their checksum variants (trezor/python-mnemonic vectors.json)', async () => {
    // 32 zero bytes of entropy -> "abandon" x23 + "art"; 32 bytes of 0x7f -> "legal winner thank year wave sausage worth useful" x3 + "title"
    parseRecoveryPhrase(`${'abandon '.repeat(23)}art`)
    parseRecoveryPhrase(`${'legal winner thank year wave sausage worth useful '.repeat(3)}`.trim().split(' ').slice(0, 23).join(' ') + ' title')
    await rejectsNamed(() => parseRecoveryPhrase(`${'abandon '.repeat(23)}abandon`), 'InvalidRecoveryPhraseError', 'checksum')
    await rejectsNamed(() => parseRecoveryPhrase(`${'abandon '.repeat(23)}about`), 'InvalidRecoveryPhraseError', 'checksum')
  })
})

describe('identity: Ed25519 and device ids', () => {
  it('signs like the reference (RFC 8032 §7.1 test 1) and verifies', () => {
    const secret = hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')
    const signer = createSigner(secret)
    assert.equal(Buffer.from(signer.publicKey).toString('hex'), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
    const sig = signer.sign(new Uint8Array(0))
    assert.equal(Buffer.from(sig).toString('hex'), 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b')
    assert.equal(verifySignature(signer.publicKey, new Uint8Array(0), sig), true)
    assert.equal(verifySignature(signer.publicKey, new Uint8Array([1]), sig), false)
  })

  it('native signatures are byte-identical to @noble/curves for random keys and messages', () => {
    for (let i = 0; i < 20; i++) {
      const secret = generateSecretKey()
      const msg = randomBytes(i * 37)
      const sig = createSigner(secret).sign(msg)
      assert.deepEqual(sig, ed25519.sign(msg, secret))
      assert.equal(ed25519.verify(sig, msg, publicKeyOf(secret)), true)
      const bad = Uint8Array.from(sig)
      bad[i % 64] = (bad[i % 64] as number) ^ 1
      assert.equal(verifySignature(publicKeyOf(secret), msg, bad), false)
    }
  })

  it('DeviceId equals the libp2p PeerId of the same Ed25519 key, and round-trips', async () => {
    const seed = generateSecretKey()
    const peerId = peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', seed))
    const id = deviceIdFromPublicKey(publicKeyOf(seed))
    assert.equal(id, peerId.toString())
    assert.deepEqual(publicKeyFromDeviceId(id), publicKeyOf(seed))
    await rejectsNamed(() => publicKeyFromDeviceId('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'), 'InvalidKeyError')
    await rejectsNamed(() => publicKeyFromDeviceId('not-base58!'), 'InvalidKeyError')
  })
})

describe('identity: sealing', () => {
  const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f')
  const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657')
  const aad = hex('50515253c0c1c2c3c4c5c6c7')
  const plaintext = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
  // draft-irtf-cfrg-xchacha-03, appendix A.3.1 (ciphertext || tag)
  const expected = 'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52ec0875924c1c7987947deafd8780acf49'

  it('matches the XChaCha20-Poly1305 test vector of draft-irtf-cfrg-xchacha-03 A.3.1', () => {
    const sealed = seal(key, plaintext, aad, nonce)
    assert.equal(Buffer.from(sealed.subarray(24)).toString('hex'), expected)
    assert.deepEqual(sealed.subarray(0, 24), nonce)
    assert.deepEqual(open(key, sealed, aad), plaintext)
    assert.equal(Buffer.from(sealReference(key, plaintext, aad, nonce).subarray(24)).toString('hex'), expected)
  })

  it('the native fast path is byte-identical to @noble/ciphers for many sizes, and opens noble output', () => {
    for (const size of [0, 1, 15, 16, 63, 64, 65, 1000, 1024, 4096, 65537, 1 << 20]) {
      const k = randomBytes(32)
      const n = randomBytes(24)
      const a = randomBytes(size % 50)
      const p = randomBytes(size)
      const fast = seal(k, p, a, n)
      const ref = xchacha20poly1305(k, n, a).encrypt(p)
      assert.deepEqual(fast.subarray(24), ref, `size ${size}`)
      assert.deepEqual(open(k, fast, a), new Uint8Array(p))
    }
  })

  it('PayloadSealer output is plain XChaCha20-Poly1305 with distinct nonces', () => {
    const k = randomBytes(32)
    const sealer = new PayloadSealer(k)
    const nonces = new Set<string>()
    for (let i = 0; i < 100; i++) {
      const p = randomBytes(i * 10)
      const s = sealer.seal(p, aad)
      nonces.add(Buffer.from(s.subarray(0, 24)).toString('hex'))
      assert.deepEqual(xchacha20poly1305(k, s.subarray(0, 24), aad).decrypt(s.subarray(24)), new Uint8Array(p))
    }
    assert.equal(nonces.size, 100)
  })

  it('rejects tampering, a wrong key and wrong associated data', async () => {
    const k = randomBytes(32)
    const s = seal(k, plaintext, aad)
    const flipped = Uint8Array.from(s)
    flipped[30] = (flipped[30] as number) ^ 0x80
    await rejectsNamed(() => open(k, flipped, aad), 'DecryptionError')
    await rejectsNamed(() => open(randomBytes(32), s, aad), 'DecryptionError')
    await rejectsNamed(() => open(k, s, new Uint8Array([1])), 'DecryptionError')
    await rejectsNamed(() => open(k, s.subarray(0, 10), aad), 'DecryptionError')
    await rejectsNamed(() => seal(randomBytes(31), plaintext, aad), 'InvalidKeyError', 'expected 32 bytes, got 31')
  })

  it('key boxes open only for their recipient and context', async () => {
    const device = generateSecretKey()
    const other = generateSecretKey()
    const k = randomBytes(32)
    const ctx = new TextEncoder().encode('ctx')
    const box = sealKeyTo(sealingPublicKeyOf(publicKeyOf(device)), k, ctx)
    assert.deepEqual(openKeyBox(sealingSecretKeyOf(device), box, ctx), new Uint8Array(k))
    await rejectsNamed(() => openKeyBox(sealingSecretKeyOf(other), box, ctx), 'DecryptionError')
    await rejectsNamed(() => openKeyBox(sealingSecretKeyOf(device), box, new Uint8Array([9])), 'DecryptionError')
  })
})

describe('identity: epochs, certificates, keystore', () => {
  const dirs = new TmpDirs()
  afterEach(() => dirs.cleanup())

  it('a keyring opens epochs sealed to its device or its recovery key, and reports unknown ones', async () => {
    const root = deriveUserRoot(generateRecoveryPhrase())
    const a = generateSecretKey()
    const b = generateSecretKey()
    const idA = deviceIdFromPublicKey(publicKeyOf(a))
    const idB = deviceIdFromPublicKey(publicKeyOf(b))
    const { record, key } = createEpoch({ swarm: root.swarmId, gen: 1, devices: [idA], recoveryPublicKey: root.recoveryPublicKey })
    const ringA = new Keyring(root.swarmId, { deviceId: idA, deviceSealingSecret: sealingSecretKeyOf(a) })
    assert.equal(ringA.add(record), true)
    assert.deepEqual(ringA.key(record.id), key)
    assert.equal(ringA.current().id, record.id)
    const ringB = new Keyring(root.swarmId, { deviceId: idB, deviceSealingSecret: sealingSecretKeyOf(b) })
    assert.equal(ringB.add(record), false)
    await rejectsNamed(() => ringB.key(record.id), 'UnknownEpochError', 'not sealed to this device')
    await rejectsNamed(() => ringB.key(12345), 'UnknownEpochError', 'unknown data-key epoch 12345')
    const ringR = new Keyring(root.swarmId, { deviceId: idB, deviceSealingSecret: sealingSecretKeyOf(b), recoverySealingSecret: root.recoverySecretKey })
    assert.equal(ringR.add(record), true)
    // a box bound to another swarm's context does not open
    const foreign = sealKeyTo(sealingPublicKeyOf(publicKeyOf(b)), key, epochContext('bother' as never, record.id))
    assert.equal(ringB.add({ id: record.id, gen: 1, kc: record.kc, boxes: new Map([[idB, foreign]]) }), false)
    // a box that holds another key than the record commits to is ignored
    const wrongKey = sealKeyTo(sealingPublicKeyOf(publicKeyOf(b)), randomBytes(32), epochContext(root.swarmId, record.id))
    assert.equal(ringB.add({ id: record.id, gen: 1, kc: record.kc, boxes: new Map([[idB, wrongKey]]) }), false)
    assert.equal(ringB.deliver(record.id, wrongKey), false)
    // a box delivered directly by a peer opens once the record is known
    const ringD = new Keyring(root.swarmId, { deviceId: idB, deviceSealingSecret: sealingSecretKeyOf(b) })
    const good = sealKeyTo(sealingPublicKeyOf(publicKeyOf(b)), key, epochContext(root.swarmId, record.id))
    assert.equal(ringD.deliver(record.id, good), false, 'record not known yet')
    assert.equal(ringD.add(record), true)
    assert.deepEqual(ringD.key(record.id), key)
  })

  it('certificates verify, and tampered or foreign ones are rejected', async () => {
    const root = deriveUserRoot(generateRecoveryPhrase())
    const device = deviceIdFromPublicKey(publicKeyOf(generateSecretKey()))
    const cert = issueCertificate({ swarm: root.swarmId, device, name: 'laptop' }, createSigner(root.rootSecretKey), true)
    assert.equal(verifyCertificate(cert, root.swarmId, root.rootPublicKey).device, device)
    await rejectsNamed(() => verifyCertificate({ ...cert, name: 'evil' }, root.swarmId, root.rootPublicKey), 'InvalidCertificateError', 'bad signature')
    const other = deriveUserRoot(generateRecoveryPhrase())
    await rejectsNamed(() => verifyCertificate(cert, other.swarmId, other.rootPublicKey), 'InvalidCertificateError', 'for swarm')
    const forged = issueCertificate({ swarm: root.swarmId, device, name: 'x' }, createSigner(other.rootSecretKey), true)
    await rejectsNamed(() => verifyCertificate(forged, root.swarmId, root.rootPublicKey), 'InvalidCertificateError', 'bad signature')
  })

  it('keystore files are written 0600, read back, and corrupt ones are reported by path', async () => {
    const dir = dirs.make()
    const path = join(dir, 'keystore.json')
    const root = deriveUserRoot(generateRecoveryPhrase())
    const secret = generateSecretKey()
    const device = deviceIdFromPublicKey(publicKeyOf(secret)) as DeviceId
    const certificate = issueCertificate({ swarm: root.swarmId, device, name: 'd' }, createSigner(root.rootSecretKey), true)
    writeKeystore(path, { swarmId: root.swarmId, rootPublicKey: root.rootPublicKey, recoveryPublicKey: root.recoveryPublicKey, deviceSecretKey: secret, certificate, chain: [], createdAt: 'now' })
    assert.equal(statSync(path).mode & 0o777, 0o600)
    const ks = readKeystore(path)
    assert.equal(ks.swarmId, root.swarmId)
    assert.deepEqual(ks.deviceSecretKey, secret)
    const text = readFileSync(path, 'utf8')
    writeFileSync(path, text.slice(0, text.length / 2))
    await rejectsNamed(() => readKeystore(path), 'KeystoreCorruptError', path)
    writeFileSync(path, text.replace(root.swarmId, 'bxxxxxxxxxxxxxxxxxxxx'))
    await rejectsNamed(() => readKeystore(path), 'KeystoreCorruptError', 'does not match')
    await rejectsNamed(() => readKeystore(join(dir, 'missing.json')), 'KeystoreNotFoundError')
  })
})
