/**
 * A hostile peer for tests: a real libp2p host built from PeakDB's own transport pieces, holding
 * a *valid* member certificate of the victim's swarm (so it passes hello), whose sync and
 * gossip answers are crafted by the test.
 */
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { deriveUserRoot, encodeCertificate, parseRecoveryPhrase } from '../../identity/index.js'
import { createHost, HelloProtocol, PeerGate, SYNC_PROTOCOL, encodeMessage, logTopic, type Host, type ReplicaBackend } from '../../transport/index.js'
import { makeDevice, type TestDevice } from './identity.js'

export interface HostilePeer {
  readonly host: Host
  readonly device: TestDevice
  readonly addr: string
  /** Publishes raw bytes on the swarm's log topic. */
  gossip (bytes: Uint8Array): Promise<void>
  stop (): Promise<void>
}

/**
 * Starts a hostile member of the swarm of `phrase`. `serveSync` answers sync requests (after
 * reading the request frame) however the test likes.
 */
export async function startHostilePeer (phrase: string, serveSync: (stream: Stream, lp: ReturnType<typeof lpStream>) => Promise<void>): Promise<HostilePeer> {
  const root = deriveUserRoot(parseRecoveryPhrase(phrase))
  const device = makeDevice(root, 'mallory')
  const backend: ReplicaBackend = {
    swarmId: root.swarmId,
    deviceId: device.deviceId,
    certificateChain: () => [encodeCertificate(device.certificate)],
    verifyChain: (peer) => ({ device: peer, name: 'victim' }),
    isMember: () => true,
    isRevoked: () => false,
    revocationProof: () => undefined,
    learnRevocation: async () => {},
    versionVector: () => new Map(),
    entriesNotIn: async () => ({ entries: [], sigs: [], next: undefined }),
    ingest: async () => ({ applied: 0, duplicates: 0 }),
    peerVector: () => {},
    rememberPeer: () => {},
    knownPeers: () => [],
    keyBoxesFor: () => [],
    acceptKeyBoxes: async () => {}
  }
  const gate = new PeerGate(() => false)
  const host = await createHost({ deviceSecretKey: device.secretKey, swarmId: root.swarmId, gate, options: { listen: ['/ip4/127.0.0.1/tcp/0'], dht: false } })
  // a peer that passed hello may gossip with it (the victim, in these tests)
  const hello = new HelloProtocol(host, backend, (peer, d) => gate.verify(peer.toString(), d.name), () => {}, () => {})
  await hello.start()
  await host.handle(SYNC_PROTOCOL, async (stream) => {
    const lp = lpStream(stream, { maxDataLength: 1 << 20 })
    try {
      await lp.read({ signal: AbortSignal.timeout(5_000) })
      await serveSync(stream, lp)
    } catch {
      stream.abort(new Error('hostile peer done'))
    }
  })
  const topic = logTopic(root.swarmId)
  host.services.pubsub.subscribe(topic)
  return {
    host,
    device,
    addr: host.getMultiaddrs()[0]?.toString() ?? '',
    gossip: async (bytes) => { await host.services.pubsub.publish(topic, bytes) },
    stop: async () => { await host.stop() }
  }
}

/** A sync batch frame carrying `entries` and the chain signatures `sigs` (index in `entries`). */
export function batchFrame (entries: Uint8Array[], sigs: ReadonlyMap<number, Uint8Array> = new Map()): Uint8Array {
  return encodeMessage({ t: 'batch', entries, sigs: [...sigs], remaining: 0 })
}
