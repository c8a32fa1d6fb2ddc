/**
 * DeviceId: a device's identity string, equal to the libp2p PeerId of its Ed25519 key
 * ("12D3KooW…"): base58btc of the identity multihash of the protobuf-encoded public key.
 * Because the public key is inside the id, an entry's author field is enough to verify it.
 */
import { base58btc } from 'multiformats/bases/base58'
import { InvalidKeyError } from './errors.js'
import { ED25519_KEY_BYTES } from './ed25519.js'

/** A device's id: the libp2p PeerId string of its Ed25519 public key. */
export type DeviceId = string & { readonly __brand: 'DeviceId' }

// identity multihash (0x00, length 36) of protobuf PublicKey { Type: Ed25519 (1), Data: 32 bytes }
const PREFIX = Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])

/** The DeviceId (PeerId string) of an Ed25519 public key. */
export function deviceIdFromPublicKey (publicKey: Uint8Array): DeviceId {
  if (publicKey.length !== ED25519_KEY_BYTES) {
    throw new InvalidKeyError(`"publicKey" expected ${ED25519_KEY_BYTES} bytes, got ${publicKey.length}`)
  }
  const bytes = new Uint8Array(PREFIX.length + ED25519_KEY_BYTES)
  bytes.set(PREFIX)
  bytes.set(publicKey, PREFIX.length)
  return base58btc.baseEncode(bytes) as DeviceId
}

const decodedCache = new Map<string, Uint8Array>()

/**
 * The Ed25519 public key inside a DeviceId. Throws {@link InvalidKeyError} when the string is not
 * the PeerId of an Ed25519 key.
 */
export function publicKeyFromDeviceId (id: string): Uint8Array {
  const cached = decodedCache.get(id)
  if (cached !== undefined) return cached
  let bytes: Uint8Array
  try {
    bytes = base58btc.baseDecode(id)
  } catch {
    throw new InvalidKeyError(`"deviceId" is not base58btc: ${JSON.stringify(id.slice(0, 64))}`)
  }
  if (bytes.length !== PREFIX.length + ED25519_KEY_BYTES || !PREFIX.every((b, i) => bytes[i] === b)) {
    throw new InvalidKeyError(`"deviceId" is not the id of an Ed25519 key: ${JSON.stringify(id.slice(0, 64))}`)
  }
  const key = bytes.slice(PREFIX.length)
  if (decodedCache.size > 4096) decodedCache.clear()
  decodedCache.set(id, key)
  return key
}

/** True when `id` is a well-formed DeviceId. */
export function isDeviceId (id: unknown): id is DeviceId {
  if (typeof id !== 'string' || id.length < 40 || id.length > 60) return false
  try {
    publicKeyFromDeviceId(id)
    return true
  } catch {
    return false
  }
}
