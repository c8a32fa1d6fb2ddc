/**
 * Optimistic writes: a local write resolves at once; it is *confirmed* when at least
 * `required` other devices have acknowledged holding it. Devices acknowledge by announcing their
 * version vectors (gossip heads, sync), so a device that holds seq n of this device holds every
 * earlier one too: per device, one number is enough.
 */

/** The confirmation state of one write. */
export interface Confirmation {
  /** 'pending' until enough devices hold the entry, then 'confirmed'. */
  readonly status: 'pending' | 'confirmed'
  /** Resolves when the entry is confirmed; never rejects. */
  readonly confirmed: Promise<void>
}

interface Waiter { readonly seq: number, resolve: () => void }

/** Tracks acknowledgements of this device's entries. */
export class Confirmations {
  private readonly held = new Map<string, number>()
  private waiting: Waiter[] = []
  private upTo = 0

  constructor (readonly required: number) {}

  /** The highest seq of this device held by at least `required` other devices. */
  confirmedSeq (): number {
    return this.upTo
  }

  /**
   * Tracks a write at `seq`. Nothing is held for a write unless its `confirmed` promise is asked
   * for, so an offline device writing for weeks keeps no per-write state.
   */
  track (seq: number): Confirmation {
    let promise: Promise<void> | undefined
    const status = (): 'pending' | 'confirmed' => (this.required <= 0 || seq <= this.upTo ? 'confirmed' : 'pending')
    const confirmed = (): Promise<void> => (promise ??= this.waitFor(seq))
    return Object.defineProperties({} as Confirmation, {
      status: { get: status, enumerable: true },
      confirmed: { get: confirmed, enumerable: true }
    })
  }

  private waitFor (seq: number): Promise<void> {
    if (this.required <= 0 || seq <= this.upTo) return Promise.resolve()
    return new Promise<void>(resolve => { this.waiting.push({ seq, resolve }) })
  }

  /** Device `device` holds this device's entries up to `seq`. */
  observe (device: string, seq: number): void {
    if (seq <= (this.held.get(device) ?? 0)) return
    this.held.set(device, seq)
    const sorted = [...this.held.values()].sort((a, b) => b - a)
    const upTo = sorted[this.required - 1] ?? 0
    if (upTo <= this.upTo) return
    this.upTo = upTo
    const still: Waiter[] = []
    for (const w of this.waiting) {
      if (w.seq <= upTo) w.resolve()
      else still.push(w)
    }
    this.waiting = still
  }
}
