/**
 * Safe hand-off: when a device may drop the body of a document it is no longer chosen to hold.
 *
 * Acknowledgements say who holds what, but an acknowledgement read from the log or gossip can be
 * stale: its author may have dropped the body since, relying on acknowledgements of its own that
 * are stale too, and two such devices would each drop what the other was counted for. So a drop
 * is decided on promises, not on acknowledgements:
 *
 * 1. The dropping device marks the body as being dropped: from now on it promises nothing for it.
 *    It does not start while it has a promise of its own outstanding for that body.
 * 2. It asks the devices the plan chooses to keep that body (at least the version it holds) for a
 *    lease of `leaseMs`. A device that holds it and is not dropping it records the promise and
 *    answers yes; while any promise it gave is unexpired, it does not drop that body.
 * 3. With `needed` yes answers, all received before `sentAt + leaseMs - marginMs` on its own
 *    clock, it drops the body; otherwise it keeps it and tries again later. A body written on
 *    this device after the round began voids the round: the promises cover the older version.
 *
 * Why no acknowledged write is lost to a drop: each promise was recorded after the request was
 * sent, so it lasts until after the drop happens (the margin covers clock rate differences), and
 * while it lasts its giver holds the body and cannot drop it. At the moment of any drop, then,
 * `needed` other devices hold the body (or a newer version), so a body held by `needed` devices
 * or more is never brought below `needed` by drops: only by losing disks, which re-placement
 * repairs.
 */

/** A device's answer to "keep this body for me". */
export type KeepAnswer =
  | { readonly ok: true, readonly until: number }
  | { readonly ok: false, readonly reason: 'missing' | 'dropping' }

/** Lease settings. */
export interface LeaseOptions {
  /** How long a promise lasts, ms. */
  readonly leaseMs: number
  /** How long before a lease ends the dropping device stops counting answers, ms. */
  readonly marginMs: number
}

/** The promises one device gave and the drops it has under way. */
export class KeepLedger {
  private readonly promises = new Map<string, number>()
  private readonly dropping = new Set<string>()

  constructor (private readonly options: LeaseOptions) {}

  /**
   * Answers a request to keep `key`: `holds` says whether this device holds the body at the
   * version asked for or newer. A yes is a promise until `now + leaseMs`.
   */
  ask (key: string, holds: boolean, now: number): KeepAnswer {
    if (this.dropping.has(key)) return { ok: false, reason: 'dropping' }
    if (!holds) return { ok: false, reason: 'missing' }
    const until = now + this.options.leaseMs
    this.promises.set(key, Math.max(until, this.promises.get(key) ?? 0))
    return { ok: true, until }
  }

  /** True while a promise this device gave for `key` has not expired. */
  promised (key: string, now: number): boolean {
    const until = this.promises.get(key)
    if (until === undefined) return false
    if (until > now) return true
    this.promises.delete(key)
    return false
  }

  /** Starts dropping `key`: false (and nothing changes) while a promise for it is outstanding. */
  begin (key: string, now: number): boolean {
    if (this.dropping.has(key) || this.promised(key, now)) return false
    this.dropping.add(key)
    return true
  }

  /** True while a drop of `key` is under way. */
  isDropping (key: string): boolean {
    return this.dropping.has(key)
  }

  /**
   * Whether a drop started at `sentAt` may happen now, with `answers` yes answers of distinct
   * other devices received so far: enough of them, and still inside every lease.
   */
  mayDrop (answers: number, needed: number, sentAt: number, now: number): boolean {
    return answers >= needed && now < sentAt + this.options.leaseMs - this.options.marginMs
  }

  /** True when a drop started at `sentAt` can no longer succeed (its leases are running out). */
  expired (sentAt: number, now: number): boolean {
    return now >= sentAt + this.options.leaseMs - this.options.marginMs
  }

  /** Ends a drop of `key` (done or given up). */
  end (key: string): void {
    this.dropping.delete(key)
  }
}
