/**
 * Placement on a node: each collection's policy (replicated, the same on every device), each
 * device's metrics (replicated, with an expiry), and the plan every device computes from them.
 *
 * This release decides and reports; it does not move data yet: every device still keeps every
 * body of every replicated collection, so `report()` lists what the plan would fetch and drop.
 */
import { statfsSync } from 'node:fs'
import { isDeviceId } from '../../identity/index.js'
import type { JsonObject } from '../../crdt/index.js'
import type { Collection } from '../collection.js'
import { InvalidOptionError } from '../errors.js'
import { plan, shardOf, SHARDS, type PlacementCollection, type PlacementDevice, type PlacementPolicy } from './plan.js'

/** The replicated system collection of device metrics (one document per DeviceId). */
export const DEVICE_METRICS = '_device_metrics'
/** How long a device's published metrics count (ms). */
export const METRICS_TTL_MS = 24 * 3600_000
/** The most replicas a policy may ask for. */
export const MAX_REPLICAS = 64

/** What placement needs from its node. */
export interface PlacementContext {
  readonly deviceId: string
  /** The folder whose disk holds this device's data. */
  readonly dataDir: string
  /** This device's budget for document bodies, bytes (default: half the free space of its disk). */
  readonly budgetBytes?: number
  readonly policies: Collection
  readonly metrics: Collection
  /** Members that are not revoked, with their names. */
  members (): Array<{ device: string, name: string }>
  /** The user's replicated collections. */
  replicated (): Promise<string[]>
  /**
   * A device's metrics document, and whether every field of it was written by that device itself
   * (the author is part of each field's write stamp): one device cannot speak for another.
   */
  readMetrics (device: string): Promise<{ readonly doc: JsonObject, readonly byItself: boolean } | null>
  /** A user collection; throws InvalidCollectionNameError for a name that is not one. */
  collection (name: string): Collection
  /** True for a device-local collection (no log, nothing to place). */
  isLocal (name: string): boolean
  now? (): number
}

/** A device's metrics as it published them. */
export interface DeviceMetrics {
  readonly budgetBytes: number
  readonly freeBytes: number
  readonly at: string
  readonly expiresAt: string
}

/** One collection in {@link Placement.report}. */
export interface CollectionPlacement {
  readonly name: string
  /** null: every device holds everything (the default). */
  readonly replicas: number | null
  readonly pin: string[]
  /** Devices the plan gives at least one shard of this collection. */
  readonly holders: string[]
  /** Bytes of bodies per device in the plan. */
  readonly bytesByDevice: Record<string, number>
  /** Shard copies still to move to reach the plan: bodies to fetch plus bodies to drop. */
  readonly pending: number
  /** Bytes of the collection's current bodies. */
  readonly bytes: number
  /** Shards with fewer holders than asked for (too few devices or too little room). */
  readonly short: number
}

/** {@link Placement.report}. */
export interface PlacementReport {
  readonly collections: CollectionPlacement[]
  /**
   * Members and their metrics. Only devices with metrics that count (`published`: written by the
   * device itself and not expired) are placed: a device whose metrics expired has been away for
   * half a day or more and the others re-place its share.
   */
  readonly devices: Array<{ device: string, name: string, budgetBytes: number, metrics: 'published' | 'expired' | 'none' | 'forged', placed: boolean }>
  /** False in this release: the plan is computed and reported, bodies are not moved yet. */
  readonly enacted: boolean
}

/** Collection policies, device metrics and the plan. */
export class Placement {
  constructor (private readonly ctx: PlacementContext) {}

  /**
   * Sets a collection's policy, for every device: `replicas` devices hold its full documents
   * (null: every device, the default), `pin` devices always hold it (DeviceIds of members).
   * Throws {@link InvalidOptionError} for a count out of range or a pin that is not a member.
   */
  async setPolicy (collection: string, policy: { replicas?: number | null, pin?: string[] }): Promise<PlacementPolicy> {
    const { replicas, pin } = policy
    this.ctx.collection(collection)
    if (this.ctx.isLocal(collection)) throw new InvalidOptionError(`collection ${collection} is device-local: it lives on this device only, there is nothing to place`)
    if (replicas !== undefined && replicas !== null && (!Number.isInteger(replicas) || replicas < 1 || replicas > MAX_REPLICAS)) {
      throw new InvalidOptionError(`replicas must be a whole number from 1 to ${MAX_REPLICAS} (or "all"), not ${JSON.stringify(replicas)}`)
    }
    const members = new Set(this.ctx.members().map(m => m.device))
    for (const p of pin ?? []) {
      if (!isDeviceId(p)) throw new InvalidOptionError(`pin: ${JSON.stringify(String(p).slice(0, 80))} is not a DeviceId (see \`peakdb devices\`)`)
      if (!members.has(p)) throw new InvalidOptionError(`pin: ${p} is not a member of this swarm (see \`peakdb devices\`)`)
    }
    const current = await this.policy(collection)
    const next: PlacementPolicy = {
      ...(replicas === undefined ? (current.replicas !== undefined ? { replicas: current.replicas } : {}) : replicas === null ? {} : { replicas }),
      ...(pin === undefined ? (current.pin !== undefined ? { pin: current.pin } : {}) : pin.length > 0 ? { pin: [...new Set(pin)].sort() } : {})
    }
    await this.ctx.policies.put({ _id: collection, replicas: next.replicas ?? null, pin: [...(next.pin ?? [])] })
    await this.refresh()
    return next
  }

  /** A collection's policy ({} when every device holds everything). */
  async policy (collection: string): Promise<PlacementPolicy> {
    const doc = await this.ctx.policies.get(collection)
    if (doc === null) return {}
    const replicas = typeof doc.replicas === 'number' && Number.isInteger(doc.replicas) && doc.replicas >= 1 ? doc.replicas : undefined
    const pin = Array.isArray(doc.pin) ? doc.pin.filter((p): p is string => typeof p === 'string' && isDeviceId(p)) : []
    return { ...(replicas !== undefined ? { replicas } : {}), ...(pin.length > 0 ? { pin } : {}) }
  }

  /** This device's metrics now: its budget and the free space of its data folder's disk. */
  measure (): { budgetBytes: number, freeBytes: number } {
    let free = 0
    try {
      const s = statfsSync(this.ctx.dataDir)
      free = s.bavail * s.bsize
    } catch {
      // an unreadable disk: no room offered
    }
    return { budgetBytes: this.ctx.budgetBytes ?? Math.floor(free / 2), freeBytes: free }
  }

  /** Publishes this device's metrics (replicated, valid for {@link METRICS_TTL_MS}). */
  async publish (): Promise<DeviceMetrics> {
    const now = this.now()
    const m: DeviceMetrics = { ...this.measure(), at: new Date(now).toISOString(), expiresAt: new Date(now + METRICS_TTL_MS).toISOString() }
    await this.ctx.metrics.put({ _id: this.ctx.deviceId, ...m })
    return m
  }

  /**
   * Publishes this device's metrics when it has none that count, they expire within half their
   * lifetime, its budget moved to another power of two (what the plan's weights see), or
   * another device wrote over them.
   */
  async refresh (): Promise<void> {
    const mine = await this.ctx.readMetrics(this.ctx.deviceId)
    const doc = mine?.doc
    const expires = typeof doc?.expiresAt === 'string' ? Date.parse(doc.expiresAt) : NaN
    const bucket = (b: number): number => Math.floor(Math.log2(Math.max(1, b / 1_048_576)))
    const stale = doc === undefined || mine?.byItself !== true || !Number.isFinite(expires) || expires - this.now() < METRICS_TTL_MS / 2 ||
      typeof doc.budgetBytes !== 'number' || bucket(doc.budgetBytes) !== bucket(this.measure().budgetBytes)
    if (stale) await this.publish()
  }

  /** The plan for every replicated collection with a policy (and the defaults), as this device sees it. */
  async report (): Promise<PlacementReport> {
    await this.refresh()
    const now = this.now()
    const members = this.ctx.members()
    const devices: PlacementDevice[] = []
    const listed: PlacementReport['devices'] = []
    for (const m of members) {
      const record = await this.ctx.readMetrics(m.device)
      const doc = record?.doc
      const expires = typeof doc?.expiresAt === 'string' ? Date.parse(doc.expiresAt) : NaN
      const budget = typeof doc?.budgetBytes === 'number' && Number.isFinite(doc.budgetBytes) && doc.budgetBytes >= 0 ? doc.budgetBytes : 0
      const state = record === null
        ? 'none'
        : !record.byItself
            ? 'forged'
            : !Number.isFinite(expires) || expires <= now ? 'expired' : 'published'
      if (state === 'published') devices.push({ device: m.device, budgetBytes: budget })
      listed.push({ device: m.device, name: m.name, budgetBytes: budget, metrics: state, placed: state === 'published' })
    }
    const placedCount = devices.length
    const names = await this.ctx.replicated()
    const inputs: Array<PlacementCollection & { bytes: number }> = []
    for (const name of names) {
      const shards = await this.shardBytes(this.ctx.collection(name))
      const policy = await this.policy(name)
      inputs.push({ name, policy, keys: shards.map((bytes, i) => ({ key: String(i), bytes })), bytes: shards.reduce((a, b) => a + b, 0) })
    }
    const p = plan(devices, inputs)
    const collections = inputs.map(c => {
      const byKey = p.holders.get(c.name) ?? new Map<string, readonly string[]>()
      const bytesByDevice: Record<string, number> = {}
      const holders = new Set<string>()
      let pending = 0
      for (const k of c.keys) {
        const hs = byKey.get(k.key) ?? []
        if (k.bytes === 0) continue
        for (const h of hs) { holders.add(h); bytesByDevice[h] = (bytesByDevice[h] ?? 0) + k.bytes }
        // today every member holds every shard: the others would drop theirs
        pending += placedCount - hs.length
      }
      return {
        name: c.name,
        replicas: c.policy.replicas ?? null,
        pin: [...(c.policy.pin ?? [])],
        holders: [...holders].sort(),
        bytesByDevice,
        pending,
        bytes: c.bytes,
        short: p.short.filter(s => s.collection === c.name && (c.keys[Number(s.key)]?.bytes ?? 0) > 0).length
      }
    })
    return { collections, devices: listed, enacted: false }
  }

  /**
   * Keeps this device's metrics current: checks now and every `intervalMs` (default an hour),
   * publishing only when {@link refresh} finds them stale. Returns the function that stops it.
   */
  startRefresh (options: { intervalMs?: number, onError?: (err: Error) => void } = {}): () => Promise<void> {
    let running: Promise<void> | undefined
    const tick = (): void => {
      if (running !== undefined) return
      running = this.refresh().catch(err => options.onError?.(err as Error)).finally(() => { running = undefined })
    }
    tick()
    const timer = setInterval(tick, options.intervalMs ?? 3600_000)
    timer.unref()
    return async () => {
      clearInterval(timer)
      await running
    }
  }

  /** Bytes of a collection's bodies per shard (JSON text of each document). */
  private async shardBytes (c: Collection): Promise<number[]> {
    const shards = new Array<number>(SHARDS).fill(0)
    const page = 5000
    for (let offset = 0; ; offset += page) {
      const docs = await c.find({ orderBy: '_id', limit: page, offset })
      for (const d of docs) {
        const s = shardOf(String(d._id))
        shards[s] = (shards[s] ?? 0) + Buffer.byteLength(JSON.stringify(d))
      }
      if (docs.length < page) break
    }
    return shards
  }

  private now (): number {
    return this.ctx.now?.() ?? Date.now()
  }
}
