/**
 * crdt/: hybrid logical clock, per-field LWW documents, operations and their codec, signed
 * Merkle-DAG log entries and version vectors. Pure functions; no I/O.
 */
export * from './errors.js'
export * from './hlc.js'
export * from './json-value.js'
export * from './lww.js'
export * from './ops.js'
export * from './entry.js'
export * from './version-vector.js'
export * from './yjs.js'
export * from './capped-dag-cbor.js'
