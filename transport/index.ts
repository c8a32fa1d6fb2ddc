/**
 * transport/: the libp2p host, membership gating and PeakDB's wire protocols (hello, sync,
 * gossip, pairing, search, hole punching) with discovery. Imports crdt/ and identity/ only; the node implements
 * {@link ReplicaBackend}.
 */
export * from './backend.js'
export * from './host.js'
export * from './messages.js'
export * from './peer-gate.js'
export * from './hello-protocol.js'
export * from './sync-protocol.js'
export * from './gossip.js'
export * from './discovery.js'
export * from './swarm.js'
export { scopeOf, type AddressScope } from './addresses.js'
export * from './pair-protocol.js'
export * from './search-protocol.js'
export { HolePunchError, PUNCH_PROTOCOL, punchTarget, type PunchOutcome } from './punch-protocol.js'
