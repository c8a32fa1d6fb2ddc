/**
 * A seeded simulation of placement and hand-off: devices join, leave, come back, lose their
 * disks and fill them while documents are written; every device plans from its own (gossiped,
 * often stale) view and drops bodies only through the promise round of
 * `node/placement/handoff.ts`, with messages delayed and lost. It checks, after every tick:
 *
 * - no acknowledged document (one whose current version `replicas` devices held at once) has
 *   fewer than `replicas` holders, except for disks lost since it last had them (and the
 *   simulation never loses a disk while a document is short, so a document is never lost);
 *
 * and once every surviving device is back online and the swarm has settled:
 *
 * - every device computes the same plan; each document is held, at its latest version, by exactly
 *   the devices the plan chose (at least `replicas`) and by no other; no device holds more than
 *   its budget; every device knows every document's latest header.
 *
 *   node dist/bench/placement-sim.js [runs=1000] [steps=300] [firstSeed=1]   # JSON summary
 *
 * Model: time in ticks; a message takes 1–3 ticks and is lost when its receiver is offline;
 * each online device gossips its view (metrics, last seen, headers) with one random online
 * device per tick and fetches at most 4 bodies per tick. Writes to one document are ordered
 * (a device writes only on top of the latest version), standing for the causal order of a
 * document's log entries.
 */
import { fileURLToPath } from 'node:url'
import { KeepLedger } from '../node/placement/handoff.js'
import { plan as makePlan, type Plan, type PlacementCollection, type PlacementDevice } from '../node/placement/plan.js'
import { prng } from '../test/helpers/prng.js'

const MIB = 1_048_576
const LEASE = 10
const MARGIN = 1
const AWAY = 30
const WINDOW = 32
const MAX_DEVICES = 8
const FETCHES_PER_TICK = 4
/** Chance that an online device gossips in a tick: views stay apart for a while. */
const GOSSIP = 0.3
const COLLECTION = 'photos'

/** Options of one run. */
export interface SimOptions {
  readonly seed: number
  /** Ticks with events (then the swarm settles). Default 300. */
  readonly steps?: number
  /** Documents. Default 24. */
  readonly docs?: number
  /** Replicas (n). Default 2. */
  readonly replicas?: number
  /**
   * A deliberately broken hand-off, to show the checks catch it: `trust-plan` drops a body as
   * soon as the plan chooses others; `forget-promises` answers yes without promising anything.
   */
  readonly flaw?: 'trust-plan' | 'forget-promises'
}

/** What one run saw. */
export interface SimResult {
  readonly seed: number
  readonly devices: number
  readonly ticks: number
  readonly settleTicks: number
  readonly events: Record<string, number>
  readonly fetches: number
  readonly drops: number
  readonly dropsGivenUp: number
  readonly bytesMoved: number
  readonly violations: string[]
}

interface Metrics { readonly budget: number, readonly availability: number, readonly version: number }
interface Header { readonly version: number, readonly size: number }
interface Message { readonly at: number, readonly from: string, readonly to: string, readonly kind: 'ask' | 'answer', readonly doc: string, readonly version: number, readonly sentAt: number, readonly ok?: boolean }
interface PendingDrop { readonly version: number, readonly sentAt: number, readonly yes: Set<string> }

class SimDevice {
  online = true
  crashed = false
  readonly history: boolean[] = []
  readonly metrics = new Map<string, Metrics>()
  readonly lastSeen = new Map<string, number>()
  readonly headers = new Map<string, Header>()
  readonly bodies = new Map<string, number>()
  readonly ledger = new KeepLedger({ leaseMs: LEASE, marginMs: MARGIN })
  readonly pending = new Map<string, PendingDrop>()
  viewChanged = true
  private planned: { members: string, plan: Plan } | undefined

  constructor (readonly id: string, public budget: number, now: number) {
    this.metrics.set(id, { budget, availability: 1, version: 1 })
    this.lastSeen.set(id, now)
  }

  publish (availability: number): void {
    const m = this.metrics.get(this.id) as Metrics
    if (m.budget === this.budget && m.availability === availability) return
    this.metrics.set(this.id, { budget: this.budget, availability, version: m.version + 1 })
    this.viewChanged = true
  }

  /** Takes what `other` knows that this device does not; returns the body bytes it took. */
  merge (other: SimDevice): number {
    let synced = 0
    for (const [d, m] of other.metrics) {
      const mine = this.metrics.get(d)
      if (mine === undefined || mine.version < m.version) { this.metrics.set(d, m); this.viewChanged = true }
    }
    for (const [d, t] of other.lastSeen) if ((this.lastSeen.get(d) ?? -1) < t) this.lastSeen.set(d, t)
    for (const [doc, h] of other.headers) {
      const mine = this.headers.get(doc)
      if (mine === undefined || mine.version < h.version) {
        if (mine === undefined || mine.size !== h.size) this.viewChanged = true
        this.headers.set(doc, h)
        // log sync carries an entry's payload when the sender still has it
        if (other.bodies.get(doc) === h.version && (this.bodies.get(doc) ?? -1) < h.version) { this.bodies.set(doc, h.version); synced += h.size }
      }
    }
    return synced
  }

  /** The plan from this device's view: members not away, their metrics, the documents' sizes. */
  plan (now: number, policy: PlacementCollection['policy'], cache: Map<string, Plan>): Plan {
    const members = [...this.metrics.keys()].filter(d => now - (this.lastSeen.get(d) ?? -Infinity) <= AWAY).sort()
    const memberKey = members.join(',')
    if (!this.viewChanged && this.planned?.members === memberKey) return this.planned.plan
    const devices: PlacementDevice[] = members.map(d => {
      const m = this.metrics.get(d) as Metrics
      return { device: d, budgetBytes: m.budget, availability: m.availability }
    })
    const keys = [...this.headers].map(([key, h]) => ({ key, bytes: h.size }))
    const sig = `${devices.map(d => `${d.device}:${d.budgetBytes}:${d.availability ?? 1}`).join(',')}|${keys.map(k => `${k.key}:${k.bytes}`).join(',')}`
    let p = cache.get(sig)
    if (p === undefined) {
      p = makePlan(devices, [{ name: COLLECTION, policy, keys }])
      cache.set(sig, p)
    }
    this.planned = { members: memberKey, plan: p }
    this.viewChanged = false
    return p
  }

  held (docs: Map<string, Header>): number {
    let bytes = 0
    for (const doc of this.bodies.keys()) bytes += docs.get(doc)?.size ?? 0
    return bytes
  }
}

/** One seeded run. */
export function simulate (options: SimOptions): SimResult {
  const rand = prng(options.seed)
  const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1))
  const pick = <T>(xs: readonly T[]): T | undefined => xs.length === 0 ? undefined : xs[Math.floor(rand() * xs.length)]
  const steps = options.steps ?? 300
  const replicas = options.replicas ?? 2
  const docCount = options.docs ?? 24
  const violations: string[] = []
  const events: Record<string, number> = {}
  const count = (e: string): void => { events[e] = (events[e] ?? 0) + 1 }
  const planCache = new Map<string, Plan>()

  // the truth: each document's latest header
  const docs = new Map<string, Header>()
  for (let i = 0; i < docCount; i++) docs.set(`d${String(i).padStart(3, '0')}`, { version: 0, size: int(1, 8) * MIB })
  const total = (): number => [...docs.values()].reduce((s, h) => s + h.size, 0)

  const devices: SimDevice[] = []
  let now = 0
  let nextId = 0
  const newDevice = (budget: number): SimDevice => {
    const d = new SimDevice(`dev${String(nextId++).padStart(2, '0')}`, budget, now)
    devices.push(d)
    return d
  }
  const initial = int(Math.max(3, replicas), 6)
  const fair = (replicas * total()) / initial
  for (let i = 0; i < initial; i++) newDevice(Math.round(fair * (1.2 + rand() * 1.8)))
  const pinned = rand() < 0.3 ? (devices[0] as SimDevice).id : undefined
  const policy = { replicas, ...(pinned !== undefined ? { pin: [pinned] } : {}) }
  // the policy is set on a collection every device holds (today's default)
  for (const d of devices) for (const [doc, h] of docs) { d.headers.set(doc, h); d.bodies.set(doc, h.version) }

  const live = (): SimDevice[] => devices.filter(d => !d.crashed)
  const online = (): SimDevice[] => devices.filter(d => d.online)
  // room enough that a plan can always give every document its replicas: no device counts for more
  // than one copy of everything, and there is slack for the greedy order
  const roomy = (ds: SimDevice[], bytes = total()): boolean => ds.length > replicas &&
    ds.reduce((s, d) => s + Math.min(d.budget, bytes), 0) >= 2 * replicas * bytes &&
    ds.filter(d => d.budget >= 16 * MIB).length > replicas

  // safety bookkeeping: the version each document is acknowledged at, and disks lost since
  const acked = new Map<string, number>()
  const lost = new Map<string, number>()
  const holdersOf = (doc: string, version: number): number => live().filter(d => (d.bodies.get(doc) ?? -1) >= version).length
  let unrecovered = false
  let lastCrash = -Infinity

  const messages: Message[] = []
  const send = (m: Omit<Message, 'at'>): void => { messages.push({ ...m, at: now + int(1, 3) }) }
  let fetches = 0
  let drops = 0
  let dropsGivenUp = 0
  let bytesMoved = 0

  const event = (): void => {
    const r = rand()
    const on = online()
    if (r < 0.5) {
      // a write: on top of the latest version, by a device that knows it
      const doc = pick([...docs.keys()]) as string
      const writer = pick(on.filter(d => d.headers.get(doc)?.version === docs.get(doc)?.version))
      if (writer === undefined) return
      const old = docs.get(doc) as Header
      let size = Math.min(8, Math.max(1, old.size / MIB + int(-2, 2))) * MIB
      if (!roomy(live(), total() - old.size + size)) size = old.size
      const h = { version: old.version + 1, size }
      docs.set(doc, h)
      writer.headers.set(doc, h)
      writer.bodies.set(doc, h.version)
      if (size !== old.size) writer.viewChanged = true
      count('write')
    } else if (r < 0.62) {
      const d = pick(on)
      if (d === undefined || on.length <= 1) return
      d.online = false
      count('leave')
    } else if (r < 0.76) {
      const d = pick(devices.filter(x => !x.online && !x.crashed))
      if (d === undefined) return
      d.online = true
      count('return')
    } else if (r < 0.82) {
      if (devices.length >= MAX_DEVICES) return
      const from = pick(on)
      const d = newDevice(Math.round((replicas * total() / Math.max(1, live().length)) * (0.8 + rand() * 1.6)))
      // pairing gives the new device the log: headers and metrics, no bodies
      if (from !== undefined) d.merge(from)
      count('join')
    } else if (r < 0.88) {
      // a disk is lost for good, only while every acknowledged document has all its holders
      if (unrecovered) return
      const d = pick(live())
      if (d === undefined) return
      const rest = live().filter(x => x !== d)
      if (!roomy(rest)) return
      for (const [doc, v] of acked) if (holdersOf(doc, v) < replicas) return
      for (const [doc, v] of acked) if ((d.bodies.get(doc) ?? -1) >= v) lost.set(doc, (lost.get(doc) ?? 0) + 1)
      d.crashed = true
      lastCrash = now
      d.online = false
      d.bodies.clear()
      d.pending.clear()
      // a write no surviving device has heard of is gone with the disk (it was never acknowledged)
      for (const [doc, h] of docs) {
        const known = live().map(x => x.headers.get(doc)).filter((x): x is Header => x !== undefined)
        const latest = known.reduce<Header | undefined>((a, b) => a === undefined || b.version > a.version ? b : a, undefined)
        if (latest !== undefined && latest.version < h.version) docs.set(doc, latest)
      }
      unrecovered = true
      count('crash')
    } else if (r < 0.95) {
      // a disk fills up: the device's budget shrinks
      const d = pick(live())
      if (d === undefined) return
      const before = d.budget
      d.budget = Math.round(d.budget * 0.6)
      if (!roomy(live())) { d.budget = before; return }
      count('fill')
    } else {
      const d = pick(live())
      if (d === undefined) return
      d.budget = Math.round(d.budget * 1.5)
      count('grow')
    }
  }

  const deliver = (): void => {
    for (let i = 0; i < messages.length;) {
      const m = messages[i] as Message
      if (m.at > now) { i++; continue }
      messages.splice(i, 1)
      const to = devices.find(d => d.id === m.to)
      if (to === undefined || !to.online) continue
      if (m.kind === 'ask') {
        const holds = (to.bodies.get(m.doc) ?? -1) >= m.version
        const answer = options.flaw === 'forget-promises' ? { ok: holds && !to.ledger.isDropping(m.doc) } : to.ledger.ask(m.doc, holds, now)
        send({ from: to.id, to: m.from, kind: 'answer', doc: m.doc, version: m.version, sentAt: m.sentAt, ok: answer.ok })
      } else {
        const p = to.pending.get(m.doc)
        if (p !== undefined && p.sentAt === m.sentAt && m.ok === true) p.yes.add(m.from)
      }
    }
  }

  const act = (d: SimDevice): void => {
    const p = d.plan(now, policy, planCache)
    const holders = p.holders.get(COLLECTION) ?? new Map<string, readonly string[]>()
    let fetched = 0
    for (const [doc, header] of d.headers) {
      const chosen = holders.get(doc) ?? []
      const mine = d.bodies.get(doc)
      if (chosen.includes(d.id)) {
        const drop = d.pending.get(doc)
        if (drop !== undefined) { d.pending.delete(doc); d.ledger.end(doc) }
        if ((mine ?? -1) < header.version && fetched < FETCHES_PER_TICK) {
          const source = online().find(x => x !== d && (x.bodies.get(doc) ?? -1) >= header.version)
          if (source !== undefined) {
            const version = source.bodies.get(doc) as number
            d.bodies.set(doc, version)
            const theirs = source.headers.get(doc)
            if (theirs !== undefined && theirs.version > header.version) { d.headers.set(doc, theirs); if (theirs.size !== header.size) d.viewChanged = true }
            fetched++
            fetches++
            bytesMoved += header.size
          }
        }
        continue
      }
      if (mine === undefined) continue
      const drop = d.pending.get(doc)
      if (drop !== undefined) {
        if (drop.version !== mine) {
          // written here since the round began: the promises cover an older version
          d.pending.delete(doc)
          d.ledger.end(doc)
          dropsGivenUp++
        } else if (d.ledger.mayDrop(drop.yes.size, replicas, drop.sentAt, now)) {
          d.bodies.delete(doc)
          d.pending.delete(doc)
          d.ledger.end(doc)
          drops++
        } else if (d.ledger.expired(drop.sentAt, now)) {
          d.pending.delete(doc)
          d.ledger.end(doc)
          dropsGivenUp++
        }
        continue
      }
      const others = chosen.filter(x => x !== d.id)
      if (others.length < replicas) continue
      if (options.flaw === 'trust-plan') { d.bodies.delete(doc); drops++; continue }
      if (!d.ledger.begin(doc, now)) continue
      d.pending.set(doc, { version: mine, sentAt: now, yes: new Set() })
      for (const to of others) send({ from: d.id, to, kind: 'ask', doc, version: mine, sentAt: now })
    }
  }

  const tick = (withEvents: boolean): void => {
    now++
    if (withEvents && rand() < 0.35) event()
    for (const d of devices) {
      if (d.crashed) continue
      d.history.push(d.online)
      if (d.history.length > WINDOW) d.history.shift()
      if (d.online) {
        d.lastSeen.set(d.id, now)
        if (now % 8 === 0) d.publish(Math.round((d.history.filter(Boolean).length / d.history.length) * 4) / 4)
        else if ((d.metrics.get(d.id) as Metrics).budget !== d.budget) d.publish((d.metrics.get(d.id) as Metrics).availability)
      }
    }
    const on = online()
    for (const d of on) {
      const peer = rand() < GOSSIP ? pick(on.filter(x => x !== d)) : undefined
      if (peer !== undefined) bytesMoved += d.merge(peer) + peer.merge(d)
    }
    deliver()
    for (const d of on) act(d)
    check()
  }

  const check = (): void => {
    for (const [doc, h] of docs) {
      if (holdersOf(doc, h.version) >= replicas) acked.set(doc, h.version)
      const v = acked.get(doc)
      if (v === undefined) continue
      const have = holdersOf(doc, v)
      if (have >= replicas) {
        // a drop may still count a promise the lost disk gave, until every such lease is over
        if (now > lastCrash + LEASE) lost.delete(doc)
        continue
      }
      if (have < replicas - (lost.get(doc) ?? 0) && violations.length < 10) {
        violations.push(`tick ${now}: ${doc} (acknowledged at version ${v}) has ${have} holder(s), fewer than ${replicas} and not through a lost disk`)
      }
    }
    if (unrecovered && now > lastCrash + LEASE && [...acked].every(([doc, v]) => holdersOf(doc, v) >= replicas)) unrecovered = false
  }

  for (let i = 0; i < steps; i++) tick(true)

  // settle: every surviving device back online, no more events
  for (const d of live()) d.online = true
  const settleStart = now
  /** Why the swarm has not settled yet ('' once it has). */
  const unsettled = (): string => {
    const on = online()
    const plans = on.map(d => d.plan(now, policy, planCache))
    const first = plans[0]
    if (first === undefined) return 'no device online'
    if (plans.some(p => p !== first)) return 'devices plan differently'
    const busy = on.find(d => d.pending.size > 0)
    if (busy !== undefined) return `${busy.id} is dropping ${[...busy.pending.keys()].join(', ')}`
    if (messages.length > 0) return 'messages in flight'
    const holders = first.holders.get(COLLECTION)
    for (const [doc, h] of docs) {
      const chosen = holders?.get(doc) ?? []
      for (const d of on) {
        if (d.headers.get(doc)?.version !== h.version) return `${d.id} lacks the header of ${doc}`
        const has = d.bodies.get(doc)
        if (chosen.includes(d.id) ? has !== h.version : has !== undefined) return `${d.id} ${has === undefined ? 'lacks' : 'holds'} ${doc} at ${has ?? '-'} (latest ${h.version}, holders ${chosen.join(' ')})`
      }
    }
    return ''
  }
  let why = 'not checked'
  for (let i = 0; i < 600 && (why = unsettled()) !== ''; i++) tick(false)
  if (why !== '') {
    violations.push(`did not settle within 600 ticks after ${settleStart}: ${why}`)
  } else {
    const p = (online()[0] as SimDevice).plan(now, policy, planCache)
    if (p.short.length > 0) violations.push(`settled with ${p.short.length} document(s) short of replicas: ${JSON.stringify(p.short.slice(0, 3))}`)
    for (const d of online()) {
      if (d.held(docs) > d.budget) violations.push(`${d.id} holds ${d.held(docs)} bytes, over its budget of ${d.budget}`)
    }
    if (pinned !== undefined && !devices.find(d => d.id === pinned)?.crashed) {
      const pin = devices.find(d => d.id === pinned) as SimDevice
      const missing = [...docs.keys()].filter(doc => !pin.bodies.has(doc))
      // a pinned device holds what fits its budget
      if (missing.length > 0 && pin.held(docs) + Math.min(...missing.map(m => (docs.get(m) as Header).size)) <= pin.budget) {
        violations.push(`pinned ${pinned} lacks ${missing.length} document(s) it has room for`)
      }
    }
  }
  return { seed: options.seed, devices: devices.length, ticks: now, settleTicks: now - settleStart, events, fetches, drops, dropsGivenUp, bytesMoved, violations }
}

/** Many runs: the seeds that failed and totals. */
export function simulateMany (runs: number, steps: number, firstSeed = 1): { runs: number, failed: Array<{ seed: number, violations: string[] }>, totals: Record<string, number>, ms: number } {
  const started = performance.now()
  const failed: Array<{ seed: number, violations: string[] }> = []
  const totals: Record<string, number> = { ticks: 0, settleTicks: 0, fetches: 0, drops: 0, dropsGivenUp: 0, bytesMoved: 0 }
  for (let seed = firstSeed; seed < firstSeed + runs; seed++) {
    const r = simulate({ seed, steps })
    if (r.violations.length > 0) failed.push({ seed, violations: r.violations })
    for (const k of ['ticks', 'settleTicks', 'fetches', 'drops', 'dropsGivenUp', 'bytesMoved'] as const) totals[k] = (totals[k] ?? 0) + r[k]
    for (const [e, n] of Object.entries(r.events)) totals[e] = (totals[e] ?? 0) + n
  }
  return { runs, failed, totals, ms: Math.round(performance.now() - started) }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [runs = '1000', steps = '300', first = '1'] = process.argv.slice(2)
  console.log(JSON.stringify(simulateMany(Number(runs), Number(steps), Number(first))))
}
