/**
 * Test identities: a user root (swarm) and devices certified by it, without a data dir.
 */
import {
  createSigner, deriveUserRoot, deviceIdFromPublicKey, generateRecoveryPhrase, generateSecretKey, issueCertificate, publicKeyOf,
  sealingSecretKeyOf, type DeviceCertificate, type DeviceId, type Signer, type UserRoot
} from '../../identity/index.js'
import type { LogIdentity } from '../../node/log.js'

export interface TestDevice {
  readonly deviceId: DeviceId
  readonly secretKey: Uint8Array
  readonly signer: Signer
  readonly certificate: DeviceCertificate
  readonly identity: LogIdentity
}

/** A fresh user root. */
export function makeRoot (): UserRoot {
  return deriveUserRoot(generateRecoveryPhrase())
}

/** A device of `root`'s swarm with a root-issued certificate. */
export function makeDevice (root: UserRoot, name = 'test'): TestDevice {
  const secretKey = generateSecretKey()
  const signer = createSigner(secretKey)
  const deviceId = deviceIdFromPublicKey(publicKeyOf(secretKey))
  const certificate = issueCertificate({ swarm: root.swarmId, device: deviceId, name }, createSigner(root.rootSecretKey), true)
  return {
    deviceId,
    secretKey,
    signer,
    certificate,
    identity: { swarmId: root.swarmId, rootPublicKey: root.rootPublicKey, deviceId, signer, sealingSecret: sealingSecretKeyOf(secretKey) }
  }
}
