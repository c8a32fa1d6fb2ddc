/**
 * The user root: keys derived from the recovery phrase. The root signing key (Ed25519) issues
 * device certificates; the recovery sealing key (X25519) can open every data-key epoch; the
 * SwarmId names the user's swarm and is derived from the root public key.
 */
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { x25519 } from '@noble/curves/ed25519.js'
import { base32 } from 'multiformats/bases/base32'
import { publicKeyOf } from './ed25519.js'
import { recoverySeed, type RecoveryPhrase } from './recovery-phrase.js'
import { InvalidKeyError } from './errors.js'

/** The id of a user's swarm: multibase base32 of a hash of the root public key. */
export type SwarmId = string & { readonly __brand: 'SwarmId' }

/** Keys derived from a recovery phrase. */
export interface UserRoot {
  readonly swarmId: SwarmId
  /** Ed25519 secret key that signs device certificates. */
  readonly rootSecretKey: Uint8Array
  readonly rootPublicKey: Uint8Array
  /** X25519 secret key that every data-key epoch is also sealed to. */
  readonly recoverySecretKey: Uint8Array
  readonly recoveryPublicKey: Uint8Array
}

const SALT = new TextEncoder().encode('peakdb/v1')
const enc = new TextEncoder()

/**
 * Derives the user root keys from a recovery phrase. Deterministic: the same phrase gives the
 * same SwarmId on every machine.
 *
 * @example
 * ```ts
 * const root = deriveUserRoot(parseRecoveryPhrase(words))
 * root.swarmId // 'b…'
 * ```
 */
export function deriveUserRoot (phrase: RecoveryPhrase): UserRoot {
  const seed = recoverySeed(phrase)
  const rootSecretKey = hkdf(sha256, seed, SALT, enc.encode('root-signing-key'), 32)
  const recoverySecretKey = hkdf(sha256, seed, SALT, enc.encode('recovery-sealing-key'), 32)
  seed.fill(0)
  const rootPublicKey = publicKeyOf(rootSecretKey)
  return {
    swarmId: swarmIdFromRootKey(rootPublicKey),
    rootSecretKey,
    rootPublicKey,
    recoverySecretKey,
    recoveryPublicKey: x25519.getPublicKey(recoverySecretKey)
  }
}

/** The SwarmId of a root public key: base32 multibase of the first 20 bytes of a domain-separated SHA-256. */
export function swarmIdFromRootKey (rootPublicKey: Uint8Array): SwarmId {
  if (rootPublicKey.length !== 32) {
    throw new InvalidKeyError(`"rootPublicKey" expected 32 bytes, got ${rootPublicKey.length}`)
  }
  const digest = sha256(new Uint8Array([...enc.encode('peakdb/swarm/v1'), ...rootPublicKey]))
  return base32.encode(digest.subarray(0, 20)) as SwarmId
}
