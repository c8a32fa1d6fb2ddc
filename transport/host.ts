/**
 * The libp2p host of a node: TCP, Noise, Yamux, identify, ping, a private kad-dht, gossipsub
 * (admitting verified members only) and (optionally) mDNS, with the device key as PeerId and the
 * membership gate. Beyond one network: a device given `relays` keeps a reservation on them
 * (circuit relay v2) and asks its router to forward its port (UPnP), so that members elsewhere
 * dial it directly; a node started with `relay` serves reservations to the swarm's verified
 * members only.
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, identifyPush, type Identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { mdns } from '@libp2p/mdns'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { isLoopback } from '@libp2p/utils'
import { circuitRelayServer, circuitRelayTransport, type CircuitRelayService } from '@libp2p/circuit-relay-v2'
import { uPnPNAT } from '@libp2p/upnp-nat'
import type { Connection, DialTransportOptions, MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { admitVerifiedPeers } from './gossip-admission.js'
import { MAX_GOSSIP_MESSAGE } from './messages.js'
import type { PeerGate } from './peer-gate.js'

/** libp2p services of a PeakDB host (`relay` only on a relay node). */
export type HostServices = { identify: Identify, ping: Ping, dht: KadDHT, pubsub: GossipSub, relay?: CircuitRelayService, portDialer: PortDialer }

/** Options of a dial from a chosen local port. */
export interface PortDialOptions {
  readonly signal: AbortSignal
  /** The local TCP port to dial from. */
  readonly localPort: number
  /** False: upgrade as the accepting side (Noise responder, yamux server) although this side dialled. */
  readonly initiator: boolean
}

/**
 * Dials through the TCP transport directly, from a chosen local port: libp2p's dial queue keeps
 * only its own options (and joins a dial already under way to the same peer), so a hole punch's
 * simultaneous open goes around it. The side that is not the initiator upgrades the socket as
 * an inbound connection (as if its listener had accepted it: Noise responder, yamux server),
 * which the upgrader's own `initiator: false` does not do for the muxer. The connection is
 * gated and tracked as any other.
 */
export interface PortDialer {
  dial (addr: Multiaddr, options: PortDialOptions): Promise<Connection>
}

interface PortDialerComponents {
  upgrader: Upgrader
  connectionManager: { getConnections (): Connection[] }
  transportManager: { dialTransportForMultiaddr (addr: Multiaddr): Transport | undefined }
}

function portDialer (): (components: PortDialerComponents) => PortDialer {
  return (components) => {
    const upgrader = components.upgrader
    // the accepting side: the socket it dialled is upgraded as one its listener accepted
    const accepting = new Proxy(upgrader, {
      get: (target, prop, receiver) => prop !== 'upgradeOutbound'
        ? Reflect.get(target, prop, receiver)
        : async (maConn: MultiaddrConnection, options: { signal: AbortSignal }): Promise<Connection> => {
          (maConn as { direction: 'inbound' | 'outbound' }).direction = 'inbound'
          await target.upgradeInbound(maConn, options)
          // an inbound upgrade hands its connection to the connection manager only
          const connection = components.connectionManager.getConnections().findLast(c => c.remoteAddr.equals(maConn.remoteAddr) && c.status === 'open')
          if (connection === undefined) throw new Error('the punched connection closed during its upgrade')
          return connection
        }
    })
    return {
      dial: async (addr, options) => {
        const transport = components.transportManager.dialTransportForMultiaddr(addr)
        if (transport === undefined) throw new Error(`no transport dials ${addr.toString()}`)
        const dialOptions: DialTransportOptions & PortDialOptions = { ...options, upgrader: options.initiator ? upgrader : accepting }
        return await transport.dial(addr, dialOptions)
      }
    }
  }
}

/** A PeakDB libp2p host. */
export type Host = Libp2p<HostServices>

/** Network options of a node. */
export interface NetworkOptions {
  /** Listen multiaddrs (default `/ip4/127.0.0.1/tcp/0`: loopback, any port). */
  readonly listen?: readonly string[]
  /** Multiaddrs (with /p2p/<id>) of devices to connect to at start. */
  readonly bootstrap?: readonly string[]
  /** Discover devices on the LAN with mDNS (default false). */
  readonly mdns?: boolean
  /** Use the kad-dht rendezvous to find devices beyond direct connections (default true). */
  readonly dht?: boolean
  /** How long an inbound peer has to prove membership before it is dropped (default 10 s). */
  readonly helloTimeoutMs?: number
  /**
   * Relays (multiaddrs with /p2p/<id> of the swarm's relay nodes) to keep a reservation on, so
   * devices on other networks reach this one through them (default none).
   */
  readonly relays?: readonly string[]
  /** Serve as a relay for the swarm's verified members (default false). */
  readonly relay?: boolean
  /**
   * Addresses other devices can dial this one at, announced beside the listen addresses: a
   * public address is not announced until something confirms it, so a relay node on a public
   * IP names it here (e.g. `/ip4/203.0.113.7/tcp/4011`).
   */
  readonly announce?: readonly string[]
  /**
   * Ask the router (UPnP IGD) to forward this device's listening port, so devices elsewhere
   * dial it directly (default: on when `relays` are given, that is for a device that means to
   * be reached from other networks).
   */
  readonly upnp?: boolean
}

/** Reservations a relay node holds at most (one per device behind a NAT). */
const MAX_RELAY_RESERVATIONS = 256
/** How long a relay waits for a device asking for a reservation to prove membership, in ms. */
const RESERVATION_VERIFY_MS = 5_000

export const DEFAULT_LISTEN = ['/ip4/127.0.0.1/tcp/0']

/**
 * Creates (and starts) the libp2p host of a device. `gate` refuses banned and revoked peers at
 * the connection, and keeps gossip from every peer it has not verified.
 */
export async function createHost (init: { deviceSecretKey: Uint8Array, swarmId: string, gate: PeerGate, options: NetworkOptions }): Promise<Host> {
  const privateKey = await generateKeyPairFromSeed('Ed25519', init.deviceSecretKey)
  const listen = [...(init.options.listen ?? DEFAULT_LISTEN)]
  const loopbackOnly = listen.every(a => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/'))
  const announce = init.options.announce ?? []
  const relays = init.options.relays ?? []
  // reservations on relays are made once the relay proved membership (see SwarmTransport)
  const upnp = init.options.upnp ?? relays.length > 0
  return await createLibp2p({
    privateKey,
    addresses: {
      listen,
      ...(announce.length > 0 ? { appendAnnounce: [...announce] } : {}),
      // a node listening on loopback only must not announce anything else
      ...(loopbackOnly && relays.length === 0 && announce.length === 0 ? { announceFilter: (addrs) => addrs.filter(ma => isLoopback(ma)) } : {})
    },
    transports: [tcp(), circuitRelayTransport({ reservationCompletionTimeout: 10_000 })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: init.gate.connectionGater({ reservationVerifyMs: RESERVATION_VERIFY_MS }),
    // a relay node keeps a connection to every device with a reservation, and room for others
    connectionManager: { maxConnections: init.options.relay === true ? 4 * MAX_RELAY_RESERVATIONS : 256 },
    peerDiscovery: init.options.mdns === true ? [mdns({ serviceTag: `peakdb-${init.swarmId.slice(0, 16)}.local`, interval: 10_000 })] : [],
    services: {
      identify: identify(),
      ping: ping(),
      portDialer: portDialer(),
      // the DHT, like gossip, meets verified members only: a stranger gets no routing table
      dht: admitVerifiedPeers(kadDHT({
        protocol: '/peakdb/kad/1.0.0',
        clientMode: false,
        peerInfoMapper: passthroughMapper,
        allowQueryWithZeroPeers: true
      }), init.gate),
      pubsub: admitVerifiedPeers(gossipsub({
        emitSelf: false,
        allowPublishToZeroTopicPeers: true,
        fallbackToFloodsub: false,
        maxInboundDataLength: MAX_GOSSIP_MESSAGE + 64 * 1024
      }), init.gate),
      // No AutoNAT: its dial-back reuses the connection it was asked over and then closes it,
      // which cut every reservation (reachability is read from this device's own addresses).
      // No DCUtR: over TCP without port reuse it has nothing to punch with, and it would tell
      // any peer on a relayed connection this device's addresses.
      // A port the router forwards is an address devices elsewhere dial directly; peers hear of
      // addresses that appear later through identify push
      ...(upnp ? { upnp: uPnPNAT({ autoConfirmAddress: true }) } : {}),
      ...(upnp || relays.length > 0 || init.options.relay === true ? { identifyPush: identifyPush() } : {}),
      // the swarm's own relay: members only (the gate), and no data or time cap on their
      // circuits, so a long sync is never cut off halfway
      ...(init.options.relay === true ? { relay: circuitRelayServer({ reservations: { maxReservations: MAX_RELAY_RESERVATIONS, applyDefaultLimit: false } }) } : {})
    }
  }) as Host
}
