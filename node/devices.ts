/**
 * The user's devices: who is a member, who is online, and revocation. Revoking a device
 * records a signed revocation (its entries up to what this device holds of it stay valid) and
 * starts a new data-key epoch sealed to the remaining devices and the recovery key only, in one
 * control entry; the revoked device keeps what it had and can read nothing written afterwards.
 */
import {
  createEpoch, createSigner, isDeviceId, issueRevocation, type DeviceId, type KeystoreData
} from '../identity/index.js'
import type { Log } from './log.js'
import { epochOp } from './log.js'
import { InvalidOptionError, UnknownDeviceError } from './errors.js'

/** One device of the swarm, as this device knows it. */
export interface DeviceInfo {
  readonly device: string
  readonly name: string
  /** True for the device this node runs on. */
  readonly self: boolean
  /** 'root' or the DeviceId that certified it. */
  readonly issuer: string
  readonly certified: string
  readonly revoked: boolean
  readonly revokedAt?: string
  /** Connected and verified right now. */
  readonly online: boolean
  /** When it was last connected (ISO time), if ever. */
  readonly lastSeen?: string
}

/** What the device list needs from its node. */
export interface DevicesContext {
  readonly log: Log
  readonly keystore: KeystoreData
  /** Verified peers connected now. */
  online (): Set<string>
  /** Last time each device was connected. */
  lastSeen (): Map<string, number>
  /** Disconnects a device. */
  hangUp (device: string): Promise<void>
}

/** The swarm's devices. */
export class Devices {
  constructor (private readonly ctx: DevicesContext) {}

  /** Every device ever certified, with its state. */
  list (): DeviceInfo[] {
    const online = this.ctx.online()
    const seen = this.ctx.lastSeen()
    return this.ctx.log.membership.devices().map(d => {
      const self = d.device === this.ctx.log.deviceId
      const last = seen.get(d.device)
      // this device may know of its revocation before (or without) its log holding it
      if (self && d.revocation === undefined && this.ctx.log.revocation !== undefined) d = { ...d, revocation: this.ctx.log.revocation }
      return {
        device: d.device,
        name: d.name,
        self,
        issuer: d.certificate.issuer,
        certified: new Date(d.certificate.issued).toISOString(),
        revoked: d.revocation !== undefined,
        ...(d.revocation !== undefined ? { revokedAt: new Date(d.revocation.issued).toISOString() } : {}),
        online: self || online.has(d.device),
        ...(self ? { lastSeen: new Date().toISOString() } : last !== undefined ? { lastSeen: new Date(last).toISOString() } : {})
      }
    }).sort((a, b) => (a.self ? -1 : b.self ? 1 : a.name.localeCompare(b.name)))
  }

  /**
   * Removes a device from the swarm: it is disconnected and refused, entries it writes from
   * now on change nothing anywhere, and data written from now on is sealed under a new epoch it
   * cannot open. Throws {@link UnknownDeviceError} for a device that is not a member.
   */
  async revoke (device: string): Promise<{ device: string, epoch: number, keptUpTo: number }> {
    if (!isDeviceId(device)) throw new InvalidOptionError(`"device" is not a DeviceId: ${JSON.stringify(String(device).slice(0, 64))}`)
    const log = this.ctx.log
    if (device === log.deviceId) throw new InvalidOptionError('a device cannot revoke itself: revoke it from another device')
    if (log.membership.certificateOf(device) === undefined) throw new UnknownDeviceError(`device ${device} is not a member of this swarm`)
    const ks = this.ctx.keystore
    const existing = log.membership.revocationOf(device)
    if (existing !== undefined) return { device, epoch: log.keyring.current().id, keptUpTo: existing.after }
    const after = log.versionVector().get(device as DeviceId) ?? 0
    const asRoot = ks.rootSecretKey !== undefined
    const rev = issueRevocation({ swarm: ks.swarmId, device: device as DeviceId, after }, createSigner(asRoot ? ks.rootSecretKey as Uint8Array : ks.deviceSecretKey), asRoot)
    const remaining = log.membership.memberIds().filter(d => d !== device)
    const epoch = createEpoch({ swarm: ks.swarmId, gen: log.keyring.highestGeneration() + 1, devices: remaining, recoveryPublicKey: ks.recoveryPublicKey })
    await log.appendControl([{ t: 'revoke', rev }, epochOp(epoch.record)])
    await this.ctx.hangUp(device).catch(() => {})
    return { device, epoch: epoch.record.id, keptUpTo: after }
  }
}
