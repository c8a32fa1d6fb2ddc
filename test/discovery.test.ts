import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { deviceIdFromPublicKey, generateSecretKey, publicKeyOf } from '../identity/index.js'
import { Discovery, type Host, type ReplicaBackend } from '../transport/index.js'

const newDeviceId = (): string => deviceIdFromPublicKey(publicKeyOf(generateSecretKey()))

describe('discovery redials', () => {
  /** A host whose dials reach the peer, which hangs up at once (it refuses this device). */
  function refusingHost (peer: string): { host: Host, dials: () => number } {
    let dials = 0
    const host = {
      peerId: peerIdFromString(newDeviceId()),
      dial: async () => { dials++; return { remotePeer: peerIdFromString(peer) } },
      getConnections: () => []
    } as unknown as Host
    return { host, dials: () => dials }
  }

  function backendOf (self: string, revoked: Set<string>): ReplicaBackend {
    return { deviceId: self, swarmId: 's', isRevoked: (d: string) => revoked.has(d), knownPeers: () => [] } as unknown as ReplicaBackend
  }

  it('backs off exponentially from a peer that keeps refusing this device, and redials a verified one at once', async () => {
    const peer = newDeviceId()
    const { host, dials } = refusingHost(peer)
    let now = 0
    const discovery = new Discovery(host, backendOf(newDeviceId(), new Set()), { dht: false }, () => {}, () => now)
    discovery.watch(peer, ['/ip4/127.0.0.1/tcp/4001'])
    // ten minutes of one-second ticks: 2 s, 4 s, 8 s ... up to 5 min between attempts
    for (now = 0; now <= 10 * 60_000; now += 1_000) await discovery.dialDue()
    assert.ok(dials() <= 10, `${dials()} dials in ten minutes`)
    assert.ok(dials() >= 5, `${dials()} dials in ten minutes`)
    // once the peer proves membership, losing it means redialling at once
    discovery.verified(peer)
    const before = dials()
    await discovery.dialDue()
    assert.equal(dials(), before + 1)
  })

  it('dials nothing once this device is revoked, nor a revoked peer', async () => {
    const self = newDeviceId()
    const peer = newDeviceId()
    const other = newDeviceId()
    const revoked = new Set([other])
    const { host, dials } = refusingHost(peer)
    const discovery = new Discovery(host, backendOf(self, revoked), { dht: false }, () => {}, () => 0)
    discovery.watch(other, ['/ip4/127.0.0.1/tcp/4002'])
    await discovery.dialDue()
    assert.equal(dials(), 0, 'a revoked peer is not dialled')
    discovery.watch(peer, ['/ip4/127.0.0.1/tcp/4001'])
    revoked.add(self)
    await discovery.dialDue()
    assert.equal(dials(), 0, 'a revoked device dials nobody')
  })
})
