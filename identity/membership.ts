/**
 * The membership registry: which devices belong to the swarm. A device is a member once a valid
 * certificate for it is known, issued by the root key or by a device that was a member when the
 * certificate was applied; it stops being one when a revocation for it is applied. Records are
 * applied in log (causal) order, so every node decides the same way.
 */
import { decodeCertificate, verifyCertificate, verifyRevocation, type DeviceCertificate, type DeviceRevocation } from './certificate.js'
import type { DeviceId } from './device-id.js'
import { InvalidCertificateError } from './errors.js'
import type { SwarmId } from './user-root.js'

/** What the registry knows of one device. */
export interface MemberInfo {
  readonly device: DeviceId
  readonly name: string
  readonly certificate: DeviceCertificate
  readonly revocation?: DeviceRevocation
}

/** Membership of one swarm. */
export class Membership {
  private readonly certs = new Map<DeviceId, DeviceCertificate>()
  private readonly revocations = new Map<DeviceId, DeviceRevocation>()

  constructor (readonly swarm: SwarmId, readonly rootPublicKey: Uint8Array) {}

  /** An independent copy, for validating a batch before it is committed. */
  clone (): Membership {
    const m = new Membership(this.swarm, this.rootPublicKey)
    for (const [k, v] of this.certs) m.certs.set(k, v)
    for (const [k, v] of this.revocations) m.revocations.set(k, v)
    return m
  }

  private checkIssuer (issuer: string, kind: string): void {
    if (issuer !== 'root' && !this.isMember(issuer)) {
      throw new InvalidCertificateError(`${kind} issued by ${issuer}, which is not a member`)
    }
  }

  /** Validates and applies a certificate. Returns it, or throws {@link InvalidCertificateError}. */
  addCertificate (value: unknown): DeviceCertificate {
    const cert = verifyCertificate(value, this.swarm, this.rootPublicKey)
    // a certificate applied before changes nothing when it comes again (a device re-recording
    // its chain), even if its issuer or the device was revoked since
    const known = this.certs.get(cert.device)
    if (known !== undefined && sameBytes(known.sig, cert.sig)) return known
    this.checkIssuer(cert.issuer, 'certificate')
    if (this.revocations.has(cert.device)) throw new InvalidCertificateError(`device ${cert.device} was revoked and cannot be certified again`)
    if (!this.certs.has(cert.device)) this.certs.set(cert.device, cert)
    return cert
  }

  /** Validates and applies a revocation. */
  addRevocation (value: unknown): DeviceRevocation {
    const rev = verifyRevocation(value, this.swarm, this.rootPublicKey)
    this.checkIssuer(rev.issuer, 'revocation')
    if (!this.revocations.has(rev.device)) this.revocations.set(rev.device, rev)
    return rev
  }

  /** True when `device` holds a certificate and is not revoked. */
  isMember (device: string): boolean {
    return this.certs.has(device as DeviceId) && !this.revocations.has(device as DeviceId)
  }

  /**
   * How an entry of `device` at `seq` counts: 'member' when the device is certified and not
   * revoked, or the entry is within what its revocation keeps; 'quarantined' when the device was
   * revoked before it (kept in the log so that every log stays causally complete, but it changes
   * nothing); 'unknown' when the device holds no certificate.
   */
  entryStatus (device: string, seq: number): 'member' | 'quarantined' | 'unknown' {
    if (!this.certs.has(device as DeviceId)) return 'unknown'
    const rev = this.revocations.get(device as DeviceId)
    return rev === undefined || seq <= rev.after ? 'member' : 'quarantined'
  }

  /** True when an entry of `device` at `seq` takes effect (see {@link entryStatus}). */
  acceptsEntry (device: string, seq: number): boolean {
    return this.entryStatus(device, seq) === 'member'
  }

  /** The revocation of a device, if any. */
  revocationOf (device: string): DeviceRevocation | undefined {
    return this.revocations.get(device as DeviceId)
  }

  /** The certificate of a device, if any. */
  certificateOf (device: string): DeviceCertificate | undefined {
    return this.certs.get(device as DeviceId)
  }

  /** Every device ever certified, with its revocation if any. */
  devices (): MemberInfo[] {
    return [...this.certs.values()].map(cert => {
      const revocation = this.revocations.get(cert.device)
      return revocation === undefined ? { device: cert.device, name: cert.name, certificate: cert } : { device: cert.device, name: cert.name, certificate: cert, revocation }
    })
  }

  /** DeviceIds of current (unrevoked) members. */
  memberIds (): DeviceId[] {
    return [...this.certs.keys()].filter(d => !this.revocations.has(d))
  }
}

/**
 * Verifies a certificate chain presented by a peer: `chain[0]` certifies `device`, each
 * certificate is issued by the root key or by the device of the next one, the last by the root
 * key, and no device in it is revoked. Returns the device's certificate; throws
 * {@link InvalidCertificateError}.
 */
export function verifyCertificateChain (device: string, chain: readonly Uint8Array[], swarm: SwarmId, rootPublicKey: Uint8Array, isRevoked: (device: string) => boolean): DeviceCertificate {
  if (chain.length === 0 || chain.length > 16) throw new InvalidCertificateError(`certificate chain expected 1..16 certificates, got ${chain.length}`)
  const certs = chain.map(bytes => decodeCertificate(bytes, swarm, rootPublicKey))
  const leaf = certs[0] as DeviceCertificate
  if (leaf.device !== device) throw new InvalidCertificateError(`certificate is for ${leaf.device}, not for ${device}`)
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i] as DeviceCertificate
    if (isRevoked(cert.device)) throw new InvalidCertificateError(`device ${cert.device} is revoked`)
    if (cert.issuer === 'root') return leaf
    const next = certs[i + 1]
    if (next === undefined || next.device !== cert.issuer) throw new InvalidCertificateError(`certificate of ${cert.device} is issued by ${cert.issuer}, whose certificate is not in the chain`)
  }
  throw new InvalidCertificateError('certificate chain does not end at the root key')
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
