/**
 * Types storage shares with the CRDT layer, re-exported so providers import them from one place.
 */
export type { DataOp, JsonObject, JsonValue, Stamp, DocState } from '../crdt/index.js'
/** A DeviceId as stored (its text form). */
export type DeviceIdLike = string
