/**
 * Deterministic placement: which devices hold the bodies of which part of a collection.
 *
 * Every device computes the plan from the same inputs (the members, their shared metrics, the
 * collections' policies and the bytes of each part) and gets the same answer, so no device
 * coordinates the others. Each part (a key: in the node, one of {@link SHARDS} shards of a
 * collection's document ids) ranks the devices by weighted rendezvous hashing (highest random
 * weight, Schindelhauer and Schomaker's logarithmic form): score = weight / -ln(u), u a hash of
 * (key, device) in (0, 1). A device of twice the weight is first for twice the keys, and a device
 * joining or leaving only moves the keys it wins or held (about 1/N of them), not a reshuffle.
 *
 * Weights are quantised on purpose (room in powers of two, availability in quarters) so that the
 * metrics' day-to-day jitter moves no data; only a doubling of room or a real change of habit
 * does.
 */
import { sha256 } from '@noble/hashes/sha2.js'

/** How many shards a collection's document ids are spread over. */
export const SHARDS = 256

/** A collection's placement policy. Without `replicas`, every device holds everything (the default). */
export interface PlacementPolicy {
  /** How many devices hold the full documents (1 or more). */
  readonly replicas?: number
  /** Devices that always hold the whole collection (they count toward `replicas`). */
  readonly pin?: readonly string[]
}

/** What the plan knows of one device. */
export interface PlacementDevice {
  readonly device: string
  /** Bytes this device may use for document bodies (its disk budget). */
  readonly budgetBytes: number
  /** Share of time online over the metrics' window, 0–1 (unknown: 1). */
  readonly availability?: number
}

/** One part of a collection to place, with the bytes of its current bodies. */
export interface PlacementKey {
  readonly key: string
  readonly bytes: number
}

/** A collection's keys and its policy. */
export interface PlacementCollection {
  readonly name: string
  readonly policy: PlacementPolicy
  readonly keys: readonly PlacementKey[]
}

/** A key that has fewer holders than its policy asks for, and why. */
export interface ShortKey {
  readonly collection: string
  readonly key: string
  readonly holders: number
  readonly wanted: number
  readonly reason: 'devices' | 'room'
}

/** The plan: holders per key, bytes per device. */
export interface Plan {
  /** collection → key → holders (device ids, pinned first, then by rank). */
  readonly holders: ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>
  /** device → bytes of bodies the plan gives it. */
  readonly bytes: ReadonlyMap<string, number>
  /** Keys with fewer holders than wanted. */
  readonly short: readonly ShortKey[]
  /** Devices over their budget (only through collections every device holds). */
  readonly overBudget: readonly string[]
}

const TWO_POW_52 = 2 ** 52
const encoder = new TextEncoder()

const hashes = new Map<string, number>()
const HASHES_KEPT = 65_536

/** A uniform number in (0, 1) from `key` and `device`: the same on every machine. */
export function unitHash (key: string, device: string): number {
  const input = `${key}\u0000${device}`
  const known = hashes.get(input)
  if (known !== undefined) return known
  // plans are made again and again from the same keys and devices: keep the last ones
  if (hashes.size >= HASHES_KEPT) hashes.clear()
  const u = hashToUnit(sha256(encoder.encode(input)))
  hashes.set(input, u)
  return u
}

function hashToUnit (h: Uint8Array): number {
  // 52 bits: exact in a double
  let x = 0
  for (let i = 0; i < 6; i++) x = x * 256 + (h[i] as number)
  x = x * 16 + ((h[6] as number) >>> 4)
  return (x + 0.5) / TWO_POW_52
}

/**
 * A device's weight: its room rounded down to a power of two (in MiB, at least 1), times its
 * availability rounded to a quarter (at least a quarter).
 */
export function weightOf (d: PlacementDevice): number {
  const mib = Math.max(1, d.budgetBytes / 1_048_576)
  const room = 2 ** Math.floor(Math.log2(mib))
  const availability = Math.max(0.25, Math.round((d.availability ?? 1) * 4) / 4)
  return room * availability
}

/** The devices in the order `key` prefers them (highest weighted rendezvous score first). */
export function rank (key: string, devices: readonly PlacementDevice[]): string[] {
  return devices
    .map(d => ({ device: d.device, score: weightOf(d) / -Math.log(unitHash(key, d.device)) }))
    .sort((a, b) => b.score - a.score || (a.device < b.device ? -1 : a.device > b.device ? 1 : 0))
    .map(s => s.device)
}

/** The shard of a document id within its collection. */
export function shardOf (id: string): number {
  const h = sha256(encoder.encode(id))
  return ((h[0] as number) << 8 | (h[1] as number)) % SHARDS
}

/**
 * The plan for `devices` (the members that may hold data) and `collections`. Collections
 * without `replicas` go to every device first; then keys of placed collections, in name and key
 * order, go to their pinned devices and then to the best-ranked devices with room left, until
 * `replicas` hold them. The same inputs in any order give the same plan.
 */
export function plan (devices: readonly PlacementDevice[], collections: readonly PlacementCollection[]): Plan {
  const members = [...devices].sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0))
  const budget = new Map(members.map(d => [d.device, d.budgetBytes]))
  const used = new Map(members.map(d => [d.device, 0]))
  const holders = new Map<string, Map<string, string[]>>()
  const short: ShortKey[] = []
  const sorted = [...collections].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const fits = (device: string, bytes: number): boolean => (used.get(device) ?? 0) + bytes <= (budget.get(device) ?? 0)
  const take = (device: string, bytes: number): void => { used.set(device, (used.get(device) ?? 0) + bytes) }

  for (const c of sorted) {
    if (c.policy.replicas !== undefined) continue
    const all = members.map(d => d.device)
    const byKey = new Map<string, string[]>()
    for (const k of c.keys) {
      byKey.set(k.key, all)
      for (const d of all) take(d, k.bytes)
    }
    holders.set(c.name, byKey)
  }
  const overBudget = members.filter(d => (used.get(d.device) ?? 0) > d.budgetBytes).map(d => d.device)

  for (const c of sorted) {
    const replicas = c.policy.replicas
    if (replicas === undefined) continue
    const pins = [...new Set(c.policy.pin ?? [])].filter(p => budget.has(p)).sort()
    const wanted = Math.max(replicas, pins.length)
    const byKey = new Map<string, string[]>()
    const keys = [...c.keys].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    for (const k of keys) {
      const chosen: string[] = []
      for (const d of [...pins, ...rank(`${c.name}/${k.key}`, members)]) {
        if (chosen.length >= wanted) break
        if (chosen.includes(d) || !fits(d, k.bytes)) continue
        chosen.push(d)
        take(d, k.bytes)
      }
      byKey.set(k.key, chosen)
      if (chosen.length < wanted) {
        short.push({ collection: c.name, key: k.key, holders: chosen.length, wanted, reason: members.length < wanted ? 'devices' : 'room' })
      }
    }
    holders.set(c.name, byKey)
  }
  return { holders, bytes: used, short, overBudget }
}
