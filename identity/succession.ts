/**
 * Device succession: a device whose history is lost (its database deleted or emptied) must never
 * write a second history under its DeviceId, since every other device would reject it as a fork.
 * It continues under a fresh device key instead, certified by the user root key when it holds
 * it, else by its previous key (a certificate chain back to the root); the previous DeviceId is
 * retired and never written under again.
 */
import { issueCertificate } from './certificate.js'
import { deviceIdFromPublicKey } from './device-id.js'
import { createSigner, generateSecretKey, publicKeyOf } from './ed25519.js'
import type { KeystoreData } from './keystore.js'

/** Why a DeviceId was retired. */
export type RetireReason = 'database-lost'

/** A DeviceId this device used before, and will not write under again. */
export interface RetiredDevice {
  readonly device: string
  /** When it was retired (ISO 8601). */
  readonly at: string
  readonly reason: RetireReason
}

/**
 * The keystore of the same device under a new key: a new device secret key and certificate (same
 * name), the chain that proves it, and the previous DeviceId added to `retired`. The previous
 * secret key is dropped. Pure: the caller writes the result.
 */
export function successorKeystore (keystore: KeystoreData, reason: RetireReason, now = new Date()): KeystoreData {
  const deviceSecretKey = generateSecretKey()
  const device = deviceIdFromPublicKey(publicKeyOf(deviceSecretKey))
  const asRoot = keystore.rootSecretKey !== undefined
  const signer = createSigner(keystore.rootSecretKey ?? keystore.deviceSecretKey)
  const certificate = issueCertificate({ swarm: keystore.swarmId, device, name: keystore.certificate.name, issued: now.getTime() }, signer, asRoot)
  const retired: RetiredDevice[] = [...(keystore.retired ?? []), { device: keystore.certificate.device, at: now.toISOString(), reason }]
  return {
    ...keystore,
    deviceSecretKey,
    certificate,
    chain: asRoot ? [] : [keystore.certificate, ...keystore.chain],
    retired
  }
}
