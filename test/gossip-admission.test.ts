import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createHost, PeerGate, type Host } from '../transport/index.js'
import { LOOPBACK } from './helpers/nodes.js'
import { waitFor } from './helpers/wait-for.js'

describe('gossip admission (two bare hosts)', function () {
  this.timeout(30_000)
  const topic = '/peakdb/test/log/2'
  let hosts: Host[] = []
  afterEach(async () => {
    await Promise.all(hosts.map(async h => { await h.stop() }))
    hosts = []
  })

  const knows = (h: Host, other: Host): boolean => h.services.pubsub.getPeers().some(p => p.equals(other.peerId))
  const subscribed = (h: Host, other: Host): boolean => h.services.pubsub.getSubscribers(topic).some(p => p.equals(other.peerId))

  it('a peer verified after its gossip stream arrived gets what it waited for and gossips at once; a ban lets go of it', async () => {
    const gates = [new PeerGate(() => false), new PeerGate(() => false)] as const
    hosts = await Promise.all(gates.map(async gate => await createHost({ deviceSecretKey: randomBytes(32), swarmId: 'test', gate, options: { listen: LOOPBACK, dht: false } })))
    const [x, y] = hosts as [Host, Host]
    for (const h of hosts) h.services.pubsub.subscribe(topic)
    const heardByY: string[] = []
    y.services.pubsub.addEventListener('gossipsub:message', evt => { heardByY.push(new TextDecoder().decode(evt.detail.msg.data)) })
    await y.dial(x.getMultiaddrs()[0]!)

    // x verifies y first (as a hello responder does): x's gossipsub opens its stream to y, which y holds
    gates[0].verify(y.peerId.toString(), 'y')
    await waitFor(() => y.getConnections(x.peerId).some(c => c.streams.some(s => s.protocol.startsWith('/meshsub/'))), { message: 'x\'s gossip stream to reach y' })
    assert.equal(knows(y, x), false, 'y\'s gossipsub does not meet x before y verified it')
    assert.equal(subscribed(x, y), false, 'x does not learn y\'s subscription before y verified x')

    // y verifies x: the held stream and the connection notice are handed over
    gates[1].verify(x.peerId.toString(), 'x')
    await waitFor(() => subscribed(x, y) && subscribed(y, x), { message: 'x and y to see each other on the topic' })
    await x.services.pubsub.publish(topic, new TextEncoder().encode('hello y'))
    await waitFor(() => heardByY.includes('hello y'), { message: 'x\'s message to reach y' })

    // a ban withdraws verification while still connected: x's gossipsub lets go of y
    gates[0].ban(y.peerId.toString(), 'test')
    await waitFor(() => !knows(x, y) && !subscribed(x, y), { message: 'x to drop y from gossip' })
    assert.ok(y.getConnections(x.peerId).length > 0, 'the connection itself is the gater\'s business, not gossip\'s')
  })
})
