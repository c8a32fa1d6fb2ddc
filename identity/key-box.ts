/**
 * Key boxes: a 32-byte key sealed to one recipient's X25519 public key (an anonymous sealed
 * box: ephemeral X25519, HKDF-SHA256, XChaCha20-Poly1305). Device keys are Ed25519; their X25519
 * forms come from the birational map, so a device can be sealed to knowing only its DeviceId.
 *
 * Box form: ephemeral public key (32) || sealed key (24 + 32 + 16).
 */
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { open, seal } from './seal.js'
import { DecryptionError, InvalidKeyError } from './errors.js'

export const KEY_BOX_BYTES = 32 + 24 + 32 + 16
const INFO = new TextEncoder().encode('peakdb/key-box/v1')

/** X25519 public key of a device, from its Ed25519 public key. */
export function sealingPublicKeyOf (ed25519PublicKey: Uint8Array): Uint8Array {
  return ed25519.utils.toMontgomery(ed25519PublicKey)
}

/** X25519 secret key of a device, from its Ed25519 secret key. */
export function sealingSecretKeyOf (ed25519SecretKey: Uint8Array): Uint8Array {
  return ed25519.utils.toMontgomerySecret(ed25519SecretKey)
}

function boxKey (shared: Uint8Array, ephemeralPublic: Uint8Array, recipientPublic: Uint8Array): Uint8Array {
  const salt = new Uint8Array(64)
  salt.set(ephemeralPublic)
  salt.set(recipientPublic, 32)
  return hkdf(sha256, shared, salt, INFO, 32)
}

/**
 * Seals `key` to an X25519 public key. `context` (e.g. swarm and epoch id) is bound as
 * associated data, so a box cannot be replayed under another context.
 */
export function sealKeyTo (recipientPublic: Uint8Array, key: Uint8Array, context: Uint8Array): Uint8Array {
  if (recipientPublic.length !== 32) throw new InvalidKeyError(`"recipientPublic" expected 32 bytes, got ${recipientPublic.length}`)
  const ephemeralSecret = x25519.utils.randomSecretKey()
  const ephemeralPublic = x25519.getPublicKey(ephemeralSecret)
  const shared = x25519.getSharedSecret(ephemeralSecret, recipientPublic)
  const k = boxKey(shared, ephemeralPublic, recipientPublic)
  const sealed = seal(k, key, context)
  k.fill(0)
  shared.fill(0)
  ephemeralSecret.fill(0)
  const box = new Uint8Array(32 + sealed.length)
  box.set(ephemeralPublic)
  box.set(sealed, 32)
  return box
}

/** Opens a key box with the recipient's X25519 secret key. Throws {@link DecryptionError}. */
export function openKeyBox (recipientSecret: Uint8Array, box: Uint8Array, context: Uint8Array): Uint8Array {
  if (box.length !== KEY_BOX_BYTES) throw new DecryptionError(`key box expected ${KEY_BOX_BYTES} bytes, got ${box.length}`)
  const ephemeralPublic = box.subarray(0, 32)
  let shared: Uint8Array
  try {
    shared = x25519.getSharedSecret(recipientSecret, ephemeralPublic)
  } catch {
    throw new DecryptionError('key box has an invalid ephemeral key')
  }
  const k = boxKey(shared, ephemeralPublic, x25519.getPublicKey(recipientSecret))
  try {
    return open(k, box.subarray(32), context)
  } finally {
    k.fill(0)
    shared.fill(0)
  }
}
