import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { lpStream } from '@libp2p/utils'
import {
  createSigner, decodeInvite, deriveUserRoot, deviceIdFromPublicKey, encodeCertificate, encodeInvite, encodeRevocation, generateSecretKey, inviteSecret,
  inviteId, issueCertificate, issueRevocation, open as openSealed, parseRecoveryPhrase, publicKeyOf, type DeviceId
} from '../identity/index.js'
import { createHost, encodeMessage, HELLO_PROTOCOL, PeerGate, requestPairing } from '../transport/index.js'
import { decodeEntry } from '../crdt/index.js'
import { PeakNode } from '../node/index.js'
import { rejectsNamed } from './helpers/errors.js'
import { connect, LOOPBACK, TestSwarm, waitForConvergence } from './helpers/nodes.js'
import { waitFor } from './helpers/wait-for.js'
import { asSent } from './helpers/log.js'
import { hashEmbedder } from './helpers/embedders.js'

const NET = { listen: LOOPBACK, dht: false }

describe('pairing, membership and key epochs', function () {
  this.timeout(60_000)
  let swarm: TestSwarm
  beforeEach(() => { swarm = new TestSwarm() })
  afterEach(async () => { await swarm.close() })

  async function joinWith (inviter: PeakNode, name: string): Promise<PeakNode> {
    const { code } = await inviter.pairing.invite()
    const node = await PeakNode.join({ dir: swarm.dirs.make('peakdb-join-'), code, deviceName: name, network: NET, embedder: hashEmbedder() })
    swarm.nodes.push(node)
    return node
  }

  it('pairs three devices with invites (the third invited by the second); data and profile reach all', async () => {
    const a = await swarm.add({ deviceName: 'laptop' })
    await a.collection('notes').put({ _id: 'n1', text: 'before pairing' })
    const b = await joinWith(a, 'desktop')
    assert.equal(b.swarmId, a.swarmId)
    assert.equal(b.holdsRootKey, false, 'a paired device does not get the root key')
    assert.deepEqual(await b.collection('notes').get('n1'), { _id: 'n1', text: 'before pairing' }, 'join returns with the data')
    const c = await joinWith(b, 'phone')
    const certs = new Map(a.devices.list().map(d => [d.name, d.issuer]))
    await waitFor(() => a.devices.list().length === 3, { message: 'a to learn about the phone' })
    assert.equal(new Map(a.devices.list().map(d => [d.name, d.issuer])).get('desktop'), 'root')
    assert.equal(new Map(a.devices.list().map(d => [d.name, d.issuer])).get('phone'), b.deviceId, 'certified by the desktop (a chain to the root)')
    void certs
    await c.collection('notes').put({ _id: 'n2', text: 'from the phone' })
    await b.collection('notes').put({ _id: 'n3', text: 'from the desktop' })
    await a.profile.set({ name: 'Ada', preferences: { theme: 'dark' } })
    await connect(a, c)
    await waitForConvergence([a, b, c])
    for (const n of [a, b, c]) {
      assert.equal(await n.collection('notes').count(), 3)
      assert.deepEqual(await n.profile.get(), { name: 'Ada', preferences: { theme: 'dark' } })
    }
    await c.profile.set({ preferences: { theme: 'light' } })
    await waitFor(async () => (await a.profile.get()).preferences !== undefined && JSON.stringify((await a.profile.get()).preferences) === '{"theme":"light"}', { message: 'profile change to reach a' })
    assert.equal((await a.profile.get()).name, 'Ada')
  })

  it('rejects expired, reused, wrong-secret and tampered invites with typed errors, and the joiner learns nothing', async () => {
    const a = await swarm.add()
    await a.collection('secret').put({ text: 'for members only' })
    const dir = (): string => swarm.dirs.make('peakdb-join-')
    // an invite whose expiry has passed (made so, rather than waited for)
    const fresh = decodeInvite((await a.pairing.invite({ ttl: 1000 })).code)
    const expired = encodeInvite({ ...fresh, expires: Math.floor(Date.now() / 1000) - 1 })
    const d1 = dir()
    await rejectsNamed(() => PeakNode.join({ dir: d1, code: expired, network: NET }), 'InviteExpiredError')
    assert.equal(existsSync(join(d1, 'keystore.json')), false)

    const { code } = await a.pairing.invite()
    const b = await PeakNode.join({ dir: dir(), code, network: NET, embedder: hashEmbedder() })
    swarm.nodes.push(b)
    const d2 = dir()
    await rejectsNamed(() => PeakNode.join({ dir: d2, code, network: NET }), 'InviteUsedError')

    // same inviter and addresses, another secret: the inviter knows no such invite
    const real = decodeInvite((await a.pairing.invite()).code)
    const forged = encodeInvite({ inviterKey: real.inviterKey, addrs: real.addrs, secret: inviteSecret(), expires: real.expires })
    const d3 = dir()
    await rejectsNamed(() => PeakNode.join({ dir: d3, code: forged, network: NET }), 'InviteRejectedError')

    const good = (await a.pairing.invite()).code
    const i = 20
    const tampered = good.slice(0, i) + (good[i] === 'a' ? 'b' : 'a') + good.slice(i + 1)
    const d4 = dir()
    await rejectsNamed(() => PeakNode.join({ dir: d4, code: tampered, network: NET }), 'InvalidInviteError', 'check digit')
    await rejectsNamed(() => PeakNode.join({ dir: d4, code: good.slice(0, -5), network: NET }), 'InvalidInviteError')

    for (const d of [d1, d2, d3, d4]) {
      assert.deepEqual(readdirSync(d), [], `a failed join leaves nothing in ${d} (no keys, no data)`)
    }
    assert.equal(a.devices.list().length, 2, 'only the legitimate device was certified')
  })

  it('a join into a data dir that cannot hold a device fails before the inviter is contacted; the invite still works', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const { code } = await a.pairing.invite()
    const file = join(swarm.dirs.make('peakdb-join-'), 'a-file')
    writeFileSync(file, 'not a data dir')
    await rejectsNamed(() => PeakNode.join({ dir: file, code, network: NET }), 'DataDirError', 'not a directory')
    await rejectsNamed(() => PeakNode.join({ dir: join(file, 'below'), code, network: NET }), 'DataDirError', 'not a directory')
    assert.equal(readFileSync(file, 'utf8'), 'not a data dir')
    const fresh = swarm.dirs.make('peakdb-join-')
    await rejectsNamed(() => PeakNode.join({ dir: fresh, code, passphrase: 'short', network: NET }), 'InvalidOptionError', 'passphrase')
    const missing = join(swarm.dirs.make('peakdb-join-'), 'new', 'dir')
    await rejectsNamed(() => PeakNode.join({ dir: missing, code, passphrase: 'short', network: NET }), 'InvalidOptionError')
    assert.deepEqual(readdirSync(fresh), [])
    assert.equal(existsSync(missing), false)
    assert.deepEqual(a.devices.list().map(d => d.name), ['a'], 'nobody was certified')

    const b = await PeakNode.join({ dir: fresh, code, deviceName: 'b', network: NET, embedder: hashEmbedder() })
    swarm.nodes.push(b)
    assert.deepEqual(a.devices.list().map(d => d.name).sort(), ['a', 'b'])
  })

  it('a join whose keystore cannot be written after the welcome leaves no certified device, and the invite works again', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const { code } = await a.pairing.invite()
    const id = inviteId(decodeInvite(code).secret)
    const dir = swarm.dirs.make('peakdb-join-')
    // the keystore is written through a temp file named after the pid: a directory in its way
    // makes that write fail after every local check passed and the inviter welcomed the device
    const blocker = join(dir, `keystore.json.tmp-${process.pid}`)
    mkdirSync(blocker)
    await rejectsNamed(() => PeakNode.join({ dir, code, deviceName: 'ghost', network: NET }), 'DataDirError', 'keystore')
    await waitFor(() => typeof a.pairing.findInvite(id) === 'object', { message: 'the inviter to release the invite' })
    assert.deepEqual(a.devices.list().map(d => d.name), ['a'], 'no ghost device')
    assert.deepEqual(readdirSync(dir), [`keystore.json.tmp-${process.pid}`], 'no keystore left behind')

    const b = await PeakNode.join({ dir: swarm.dirs.make('peakdb-join-'), code, deviceName: 'b', network: NET, embedder: hashEmbedder() })
    swarm.nodes.push(b)
    assert.deepEqual(a.devices.list().map(d => d.name).sort(), ['a', 'b'])
    await rejectsNamed(() => PeakNode.join({ dir: swarm.dirs.make('peakdb-join-'), code, network: NET }), 'InviteUsedError')
  })

  it('a joiner that disappears after the welcome is never recorded by the inviter', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const { code } = await a.pairing.invite()
    const invite = decodeInvite(code)
    const key = generateSecretKey()
    const host = await createHost({ deviceSecretKey: key, swarmId: 'pairing', gate: new PeerGate(() => false), options: { listen: LOOPBACK, dht: false } })
    try {
      const session = await requestPairing(host, invite, 'ghost')
      assert.equal(a.pairing.findInvite(inviteId(invite.secret)), 'held', 'held for the joiner while it stores its identity')
      session.abort(new Error('crashed'))
    } finally {
      await host.stop()
    }
    await waitFor(() => typeof a.pairing.findInvite(inviteId(invite.secret)) === 'object', { message: 'the inviter to release the invite' })
    const ghost = deviceIdFromPublicKey(publicKeyOf(key))
    assert.equal(a.log.membership.certificateOf(ghost), undefined, 'no certificate recorded for it')
    assert.deepEqual(a.devices.list().map(d => d.name), ['a'])
  })

  it('the invite check digit catches every single-character error', () => {
    const code = encodeInvite({ inviterKey: new Uint8Array(32).fill(7), addrs: [new Uint8Array([4, 127, 0, 0, 1, 6, 0x9c, 0x40])], secret: inviteSecret(), expires: 2_000_000_000 })
    const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
    let caught = 0
    let tried = 0
    for (let i = 5; i < code.length; i++) {
      for (const c of ['a', 'q', '7']) {
        if (code[i] === c) continue
        tried++
        try {
          decodeInvite(code.slice(0, i) + c + code.slice(i + 1))
        } catch (err) {
          if ((err as Error).name === 'InvalidInviteError') caught++
        }
      }
    }
    assert.equal(caught, tried)
    void alphabet
  })

  it('revocation: the revoked device is refused, its later writes change nothing, and it cannot open what is written afterwards', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const b = await joinWith(a, 'b')
    const lost = await joinWith(a, 'lost')
    await lost.collection('notes').put({ _id: 'old', text: 'written before revocation' })
    await waitForConvergence([a, b, lost])
    const oldEpochs = lost.log.keyring.allRecords().map(r => r.id)

    const r = await a.devices.revoke(lost.deviceId)
    assert.equal(r.device, lost.deviceId)
    await waitFor(() => b.devices.list().find(d => d.device === lost.deviceId)?.revoked === true, { message: 'b to learn of the revocation' })
    await waitFor(() => !a.peers().some(p => p.device === lost.deviceId) && !b.peers().some(p => p.device === lost.deviceId), { message: 'the revoked device to be disconnected' })

    // it learns of it (by sync, or from the refusing peer when it redials) and writes nothing more
    await waitFor(async () => (await lost.status()).revoked !== undefined, { message: 'the revoked device to know it' })
    await rejectsNamed(() => lost.collection('notes').put({ _id: 'late', text: 'written after revocation' }), 'DeviceRevokedError')
    await rejectsNamed(() => lost.connect(a.network!.multiaddrs()[0]!), 'DeviceRevokedError')
    assert.equal(await a.collection('notes').get('late'), null)
    assert.equal(await b.collection('notes').get('late'), null)

    // data written now is sealed under a new epoch the revoked device cannot open
    await a.collection('notes').put({ _id: 'new', text: 'after revocation' })
    await a.log.flush()
    const rows = await a.storage.scanEntries(0, 10_000)
    const last = decodeEntry(rows[rows.length - 1]!.bytes)
    assert.ok(!oldEpochs.includes(last.header.epoch), 'a new epoch is in use')
    assert.equal(lost.log.keyring.canOpen(last.header.epoch), false)
    for (const id of oldEpochs) {
      if (!lost.log.keyring.canOpen(id)) continue
      assert.throws(() => openSealed(lost.log.keyring.key(id), last.payload, last.headerBytes), /failed authentication/)
    }
    // even handed the ciphertext directly, it holds it at most as an entry it cannot open
    // (the slice may start past what it holds: then it refuses the batch for the gap)
    const slice = asSent(rows.slice(-3))
    await lost.log.ingest(slice.entries, slice.sigs).catch((err: Error) => assert.match(err.name, /SeqGapError|MissingDependencyError|UnknownEpochError/))
    assert.equal(await lost.collection('notes').get('new'), null)
    // what it had stays readable on it
    assert.deepEqual(await lost.collection('notes').get('old'), { _id: 'old', text: 'written before revocation' })
    await waitForConvergence([a, b])
    assert.deepEqual(await b.collection('notes').get('new'), { _id: 'new', text: 'after revocation' })
  })

  it('a device revoked while online knows it: status, typed errors on writes and invites, and it stops dialling', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const lost = await joinWith(a, 'lost')
    await lost.collection('notes').put({ _id: 'old', text: 'written before revocation' })
    const told = new Promise<{ by: string }>(resolve => lost.once('revoked', resolve))
    const r = await a.devices.revoke(lost.deviceId)

    const revoked = await waitFor(async () => (await lost.status()).revoked, { message: 'the revoked device to know it was revoked' })
    assert.equal(revoked.by, 'root')
    assert.equal(revoked.after, r.keptUpTo)
    assert.equal((await told).by, 'root')
    assert.equal(lost.devices.list().find(d => d.self)?.revoked, true)

    const notes = lost.collection('notes')
    await rejectsNamed(() => notes.put({ text: 'late' }), 'DeviceRevokedError')
    await rejectsNamed(() => notes.putMany([{ text: 'late 1' }, { text: 'late 2' }]), 'DeviceRevokedError')
    await rejectsNamed(() => notes.patch('old', { text: 'changed' }), 'DeviceRevokedError')
    await rejectsNamed(() => notes.delete('old'), 'DeviceRevokedError')
    await rejectsNamed(() => lost.profile.set({ name: 'Mallory' }), 'DeviceRevokedError')
    await rejectsNamed(() => lost.pairing.invite(), 'DeviceRevokedError')
    await rejectsNamed(() => lost.devices.revoke(a.deviceId), 'DeviceRevokedError')
    await rejectsNamed(() => lost.connect(a.network!.multiaddrs()[0]!), 'DeviceRevokedError')
    // what it had stays readable
    assert.deepEqual(await notes.get('old'), { _id: 'old', text: 'written before revocation' })

    // it left the swarm: no discovery, no connections, nothing scheduled to redial
    await waitFor(() => lost.network!.dialling === false && lost.peers().length === 0, { message: 'the revoked device to stop dialling' })
    assert.equal(lost.network!.dialling, false)
  })

  it('a device revoked while offline is told so (a verifiable revocation) when it dials back, and remembers it', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const lost = await joinWith(a, 'lost')
    await waitFor(() => lost.knownDevices().some(d => d.device === a.deviceId), { message: 'lost to remember a' })
    await lost.close()
    const rejected: string[] = []
    a.network!.on('peer:rejected', ev => rejected.push(ev.reason))
    await a.devices.revoke(lost.deviceId)

    // back on the network, it dials a from its peer list; a answers hello with the revocation
    const back = await swarm.reopen(lost)
    const revoked = await waitFor(async () => (await back.status()).revoked, { message: 'the revoked device to learn it from a' })
    assert.equal(revoked.by, 'root')
    assert.equal(back.log.membership.revocationOf(back.deviceId), undefined, 'learned from the refusing peer, not from a sync')
    await rejectsNamed(() => back.collection('notes').put({ text: 'late' }), 'DeviceRevokedError')
    await waitFor(() => back.network!.dialling === false, { message: 'the revoked device to stop dialling' })
    assert.ok(rejected.some(reason => reason.includes('revoked')), `a told it: ${rejected.join('; ')}`)

    // kept across restarts: a revoked device that restarts does not dial at all
    const again = await swarm.reopen(back)
    assert.deepEqual((await again.status()).revoked, revoked)
    assert.equal(again.network!.dialling, false)
    await rejectsNamed(() => again.collection('notes').put({ text: 'late' }), 'DeviceRevokedError')
  })

  it('a forged revocation is not believed: only the root key or a member can revoke a device', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const b = await joinWith(a, 'b')
    const swarmId = a.swarmId
    const forgeries: Array<[string, Uint8Array, Uint8Array[]]> = []
    // claims the root key, signed by another key
    forgeries.push(['root forged', encodeRevocation(issueRevocation({ swarm: swarmId, device: b.deviceId, after: 0 }, createSigner(generateSecretKey()), true)), []])
    // signed by a device whose certificate chain ends at a forged root
    const fakeKey = generateSecretKey()
    const fakeDevice = deviceIdFromPublicKey(publicKeyOf(fakeKey))
    const fakeCert = issueCertificate({ swarm: swarmId, device: fakeDevice, name: 'fake' }, createSigner(generateSecretKey()), true)
    forgeries.push(['unknown issuer', encodeRevocation(issueRevocation({ swarm: swarmId, device: b.deviceId, after: 0 }, createSigner(fakeKey), false)), [encodeCertificate(fakeCert)]])
    // a genuine revocation, but of another device
    const root = deriveUserRoot(parseRecoveryPhrase(swarm.phrase!))
    forgeries.push(['another device', encodeRevocation(issueRevocation({ swarm: swarmId, device: a.deviceId as DeviceId, after: 0 }, createSigner(root.rootSecretKey), true)), []])
    for (const [what, rev, chain] of forgeries) {
      await rejectsNamed(() => b.log.learnRevocation(rev, chain), 'InvalidCertificateError')
      assert.equal((await b.status()).revoked, undefined, what)
    }

    // over the wire: a peer that answers hello with a forged revocation is rejected, not believed
    const liar = await createHost({ deviceSecretKey: generateSecretKey(), swarmId, gate: new PeerGate(() => false), options: { listen: LOOPBACK, dht: false } })
    try {
      await liar.handle(HELLO_PROTOCOL, async stream => {
        const lp = lpStream(stream)
        await lp.read()
        await lp.write(encodeMessage({ t: 'revoked', rev: forgeries[0]![1], chain: [] }))
        await stream.close()
      })
      const rejected: string[] = []
      b.network!.on('peer:rejected', ev => rejected.push(ev.reason))
      await assert.rejects(b.connect(liar.getMultiaddrs()[0]!.toString()))
      await waitFor(() => rejected.some(reason => reason.includes('bad signature')), { message: 'b to reject the liar' })
    } finally {
      await liar.stop()
    }
    assert.equal((await b.status()).revoked, undefined)
    assert.equal(b.network!.dialling, true)
    await b.collection('notes').put({ text: 'still a member' })
  })

  it('a revoked device\'s late writes that reached some devices first are undone everywhere', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const b = await joinWith(a, 'b')
    const c = await joinWith(a, 'c')
    await connect(b, c)
    await waitForConvergence([a, b, c])
    // cut a off from c, so that only b sees c's next write
    a.network!.gate.ban(c.deviceId, 'test', 3_600_000)
    c.network!.gate.ban(a.deviceId, 'test', 3_600_000)
    await a.network!.hangUp(c.deviceId)
    a.network!.gate.ban(b.deviceId, 'test', 3_600_000)
    b.network!.gate.ban(a.deviceId, 'test', 3_600_000)
    await a.network!.hangUp(b.deviceId)
    await c.collection('notes').put({ _id: 'late', text: 'c, concurrently with its revocation' })
    await waitFor(async () => (await b.collection('notes').get('late')) !== null, { message: 'b to apply c\'s write' })
    await a.devices.revoke(c.deviceId)
    // heal a <-> b: b learns the revocation and undoes c's late write
    a.network!.gate.unban(b.deviceId)
    b.network!.gate.unban(a.deviceId)
    await connect(a, b)
    await waitFor(async () => (await b.collection('notes').get('late')) === null, { message: 'b to undo the revoked device\'s late write' })
    await waitForConvergence([a, b])
    assert.equal((await b.verify({ rebuild: true })).ok, true)
    assert.equal((await a.verify({ rebuild: true })).ok, true)
  })

  it('recovery: a wiped device restored from the phrase resyncs to the identical state', async () => {
    const a = await swarm.add({ deviceName: 'a' })
    const b = await joinWith(a, 'b')
    await b.collection('notes').putMany(Array.from({ length: 50 }, (_, i) => ({ _id: `n${i}`, i })))
    await b.profile.set({ name: 'Ada' })
    const doc = await b.ydoc('pad')
    doc.getText('t').insert(0, 'shared text')
    await waitForConvergence([a, b])
    const phrase = swarm.phrase!
    await b.close()
    // b is gone; a new machine restores from the phrase
    const restored = await PeakNode.open({ dir: swarm.dirs.make('peakdb-restore-'), recoveryPhrase: phrase, deviceName: 'restored', network: NET, embedder: hashEmbedder() })
    swarm.nodes.push(restored)
    assert.equal(restored.swarmId, a.swarmId)
    await connect(a, restored)
    await waitForConvergence([a, restored])
    assert.equal(await restored.collection('notes').count(), 50)
    assert.deepEqual(await restored.profile.get(), { name: 'Ada' })
    assert.equal((await restored.ydoc('pad')).getText('t').toString(), 'shared text')
    // every epoch is now in its own log too: it reads everything after a restart without the phrase
    await waitFor(async () => (await restored.status()).pendingEntries === 0 && restored.log.keyring.allRecords().every(r => r.boxes.has(restored.deviceId)), { message: 'epochs shared to the restored device' })
    const again = await swarm.reopen(restored)
    assert.equal(await again.collection('notes').count(), 50)
    assert.equal((await again.verify({ rebuild: true })).ok, true)
  })

  it('a passphrase protects the keystore at rest', async () => {
    const dir = swarm.dirs.make()
    const a = await PeakNode.open({ dir, passphrase: 'correct horse battery' })
    const device = a.deviceId
    await a.collection('c').put({ v: 1 })
    await a.close()
    const text = readFileSync(join(dir, 'keystore.json'), 'utf8')
    assert.match(text, /"kdf": "scrypt"/)
    assert.doesNotMatch(text, /deviceSecretKey|rootSecretKey/)
    await rejectsNamed(() => PeakNode.open({ dir }), 'PassphraseRequiredError')
    await rejectsNamed(() => PeakNode.open({ dir, passphrase: 'wrong horse' }), 'WrongPassphraseError')
    const b = await PeakNode.open({ dir, passphrase: 'correct horse battery' })
    assert.equal(b.deviceId, device)
    await b.setPassphrase(undefined)
    await b.close()
    const c = await PeakNode.open({ dir })
    assert.equal(c.deviceId, device)
    await c.close()
    assert.ok(existsSync(join(dir, 'keystore.json')))
  })
})
