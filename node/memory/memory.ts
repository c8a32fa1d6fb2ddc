/**
 * Memory for agents: short-term context (scoped to an agent and a session, expiring, within a
 * size budget, kept on this device) and long-term knowledge (replicated to every device through
 * the signed, encrypted log, embedded for search, with provenance and a validity interval).
 * Consolidation promotes context worth keeping, merges duplicates and retires facts that newer
 * ones contradict, never deleting one and never touching facts about other entities.
 *
 * Storage: knowledge in the system collection `_memory`, its history in `_memory_history`
 * (both replicated), context in the device-local `_memory_context`.
 */
import { createHash } from 'node:crypto'
import type { JsonObject } from '../../crdt/index.js'
import type { Where } from '../../storage/index.js'
import type { Collection, Doc } from '../collection.js'
import { newDocId } from '../doc-id.js'
import { HYBRID_TEXT_WEIGHT } from '../search.js'
import type { Embedder } from '../embedding/embedder.js'
import { DocumentNotFoundError, InvalidOptionError } from '../errors.js'
import { createLogger } from '../logger.js'
import type { SwarmSearchQuery, SwarmSearchResult } from '../swarm-search.js'
import { relationKey, RuleDecider, type Decision, type FactPair, type FactView, type MemoryDecider } from './decider.js'

const logger = createLogger('memory')

export type MemoryKind = 'context' | 'knowledge'

/** Whose context: an agent and one of its sessions (both `default` when not given). */
export interface MemoryScope {
  readonly agent?: string
  readonly session?: string
}

/** Options of {@link Memory.remember}. */
export interface RememberOptions {
  /** `context` (default): short-term, this device only. `knowledge`: long-term, every device. */
  readonly kind?: MemoryKind
  /** Context only: the agent and session it belongs to. Knowledge may name its agent too. */
  readonly scope?: MemoryScope
  /**
   * What it is about (people, places, projects); compared without case. Default: the
   * capitalised names in the text. Consolidation only ever relates memories sharing one.
   */
  readonly entities?: readonly string[]
  /**
   * Knowledge: which property of its entities it states (`city`, `employer`). Two facts about
   * the same entity and attribute replace each other; without it the decider reads the words.
   */
  readonly attribute?: string
  /** Context: time to live in ms (default the memory's `contextTtlMs`, 24 h). */
  readonly ttl?: number
  /** Where it came from (a URL, a file, a conversation id): kept as provenance. */
  readonly source?: string
  /** Knowledge: when it became true (default now). */
  readonly validFrom?: string | Date
}

/** A memory as stored, without the storage's own fields. */
export interface MemoryRecord {
  readonly id: string
  readonly kind: MemoryKind
  readonly content: string
  readonly entities: readonly string[]
  readonly attribute?: string
  readonly agent?: string
  readonly session?: string
  readonly source?: string
  /** Knowledge: the context items, sources and merged facts it came from. */
  readonly provenance: readonly string[]
  /** When this device (or the writing one) recorded it, ISO 8601. */
  readonly recordedAt: string
  /** Knowledge: valid from this time on. */
  readonly validFrom?: string
  /** Knowledge: no longer valid from this time on (a newer fact contradicted it). */
  readonly invalidFrom?: string
  readonly invalidatedBy?: string
  /** Knowledge: merged into this fact as a duplicate (it is no longer recalled). */
  readonly mergedInto?: string
  /** Context: when it expires. */
  readonly expiresAt?: string
  /** Context: how often recall returned it, and how often it was remembered again. */
  readonly recalls?: number
  readonly repeats?: number
  /** Context: the fact it was promoted to. */
  readonly promotedTo?: string
}

/** Options of {@link Memory.recall}. */
export interface RecallOptions {
  /** Results, 1..100 (default 10). */
  readonly k?: number
  /** Default both kinds; knowledge only with `asOf`. */
  readonly kinds?: readonly MemoryKind[]
  /** Context of this agent and/or session only. */
  readonly scope?: MemoryScope
  /** The facts valid at this time instead of the current ones. */
  readonly asOf?: string | Date
  /** An exact filter on memory fields, as in `find` (`{ entities: 'ada' }`). */
  readonly where?: Where
  /** Also the context of the user's other online devices. */
  readonly swarm?: boolean
  /** Deadline for other devices, ms (default 2000). */
  readonly timeout?: number
  readonly signal?: AbortSignal
}

/** One recalled memory. */
export interface RecallHit {
  readonly memory: MemoryRecord
  /** Higher is better: the hybrid search score, plus 2 for a memory about an entity the query names. */
  readonly score: number
  /** The device that holds it, for context of another device. */
  readonly device?: string
}

/** Why a version of a memory was made. */
export type MemoryChange = 'created' | 'repeated' | 'promoted' | 'merged' | 'absorbed' | 'invalidated' | 'forgotten' | 'recalled'

/** One version of a memory. */
export interface MemoryVersion {
  readonly at: string
  readonly change: MemoryChange
  readonly reason: string
  /** The memory's content at that version (gone once forgotten). */
  readonly content?: string
  readonly device?: string
  /** The other memory involved (merged into, invalidated by, promoted to). */
  readonly other?: string
}

/** Options of {@link Memory.list}. */
export interface ListOptions {
  readonly kind?: MemoryKind
  readonly scope?: MemoryScope
  readonly entity?: string
  /** Also facts merged away or no longer valid (default false). */
  readonly all?: boolean
  /** At most (default 100, at most 10000). */
  readonly limit?: number
}

/** Options of {@link Memory.consolidate}. */
export interface ConsolidateOptions {
  /** Only the context of this agent/session is promoted (knowledge is always consolidated). */
  readonly scope?: MemoryScope
  /** Plan only: returns what it would do and changes nothing. */
  readonly dryRun?: boolean
  /** At most this many new facts are examined (default 5000): bounded work. */
  readonly limit?: number
  readonly signal?: AbortSignal
  readonly onProgress?: (done: number, total: number) => void
}

/** What a consolidation did (or, with `dryRun`, would do). */
export interface ConsolidationResult {
  readonly dryRun: boolean
  readonly decider: string
  /** Context items past their expiry, removed. */
  readonly expired: readonly string[]
  /** New facts made from context (`fact` is `new:<n>` in a dry run). */
  readonly promotions: ReadonlyArray<{ readonly fact: string, readonly content: string, readonly from: readonly string[] }>
  /** Duplicates merged: `from` is retired into `into`, which keeps both provenances. */
  readonly merges: ReadonlyArray<{ readonly into: string, readonly from: string, readonly content: string }>
  /** Facts a newer one contradicts: valid until `at`, still found with `asOf`. */
  readonly invalidations: ReadonlyArray<{ readonly id: string, readonly by: string, readonly at: string, readonly content: string }>
  /** New facts examined. */
  readonly examined: number
  readonly ms: number
}

/** Options of {@link Memory.startBackground}. */
export interface BackgroundOptions {
  /** How often to look for work, ms (default 60000). */
  readonly intervalMs?: number
  /** Quiet time since the last remember or recall before it runs, ms (default 30000). */
  readonly idleMs?: number
  /** New facts examined per run (default 500): bounded work; the rest waits for the next run. */
  readonly limit?: number
  readonly onProgress?: (done: number, total: number) => void
  readonly onDone?: (result: ConsolidationResult) => void
  /** A check that did not run: the memory was in use, or there was nothing to do. */
  readonly onSkip?: (reason: 'busy' | 'no-work') => void
  readonly onError?: (err: Error) => void
}

/** What memory needs from its node. */
export interface MemoryContext {
  readonly knowledge: Collection
  readonly context: Collection
  readonly history: Collection
  readonly deviceId: string
  readonly embedder: () => Promise<Embedder>
  readonly swarmSearch: (q: SwarmSearchQuery) => Promise<SwarmSearchResult>
}

/** Options of a node's memory. */
export interface MemoryOptions {
  /** Default time to live of context, ms (default 24 h). */
  readonly contextTtlMs?: number
  /** Context items kept per agent and session; the least used and oldest go first (default 1000). */
  readonly contextBudget?: number
  /** Decides duplicates and contradictions (default {@link RuleDecider}). */
  readonly decider?: MemoryDecider
  /** The clock, ms since the epoch (tests). */
  readonly now?: () => number
}

/** The system collection of context (device-local); swarm recall asks other devices for it. */
export const CONTEXT_COLLECTION = '_memory_context'
const MAX_CONTENT = 16_384
const MAX_ENTITIES = 32
const MAX_NAME = 128
const DEFAULT_SCOPE = 'default'
/**
 * Added to the score of a memory about an entity the query names ("Where does Ada live?"): the
 * most a hybrid score reaches (cosine and keyword relevance, each at most 1), so a fact about
 * Ada comes before one about Bob that shares more words with the question, however small the
 * store (in a store mostly about Ada, her name weighs nothing in BM25). 0.25 on the labeled
 * memory set gave the same accuracy (bench/RESULTS.md) but let "Bob lives in Lisbon" win.
 */
const ENTITY_BOOST = 1 + HYBRID_TEXT_WEIGHT
/** Added to the score of a fact of the one-valued relation a question asks about ("What is Ada's phone number?"). */
const RELATION_BOOST = 0.15
/** A recalled context item counts as used when its score is at least this share of the best hit's. */
const USED_SHARE = 0.5
/** Cosine from which two context items count as the same thing said again. */
const REPEAT_SIMILARITY = 0.9

/** Storage fields of a memory document, without `_id`. */
type MemoryDoc = Omit<MemoryRecord, 'id'> & { hash: string, settled?: boolean, lastUsedAt?: string }

export class Memory {
  private readonly decider: MemoryDecider
  private readonly now: () => number
  private readonly ttl: number
  private readonly budget: number
  /** Context items per scope, counted once then kept (budget checks without a count per write). */
  private readonly scopeCounts = new Map<string, number>()
  private consolidating: Promise<unknown> | undefined
  /** The time part of the last history version id this process made. */
  private lastVersion = 0
  /** When remember or recall last ran (ms, this memory's clock): background work waits for quiet. */
  private lastActivity = 0

  constructor (private readonly ctx: MemoryContext, options: MemoryOptions = {}) {
    this.decider = options.decider ?? new RuleDecider()
    this.now = options.now ?? Date.now
    this.ttl = positive(options.contextTtlMs ?? 86_400_000, 'contextTtlMs')
    this.budget = positive(options.contextBudget ?? 1000, 'contextBudget')
  }

  /**
   * Remembers `content` and returns its id. Remembering the same text again in the same place
   * (the same scope for context, a current fact for knowledge) returns the id it has, counts
   * the repeat and adds the new source to its provenance: never a second copy.
   *
   * @example
   * ```ts
   * await node.memory.remember('Ada moved to Lisbon', { kind: 'knowledge', entities: ['Ada'], attribute: 'city' })
   * await node.memory.remember('user prefers short answers', { scope: { agent: 'writer', session: 's1' } })
   * ```
   */
  async remember (content: string, options: RememberOptions = {}): Promise<string> {
    const text = checkContent(content)
    this.lastActivity = this.now()
    const kind = options.kind ?? 'context'
    if (kind !== 'context' && kind !== 'knowledge') throw new InvalidOptionError(`"kind" expected "context" or "knowledge", got ${JSON.stringify(kind)}`)
    const entities = options.entities !== undefined ? normaliseEntities(options.entities) : namesIn(text)
    const attribute = options.attribute !== undefined ? checkName(options.attribute, 'attribute').toLowerCase() : undefined
    const source = options.source !== undefined ? checkName(options.source, 'source', 2048) : undefined
    const now = this.now()
    const at = new Date(now).toISOString()
    if (kind === 'context') {
      if (options.validFrom !== undefined || attribute !== undefined) throw new InvalidOptionError('"validFrom" and "attribute" are for knowledge')
      const agent = checkName(options.scope?.agent ?? DEFAULT_SCOPE, 'scope.agent')
      const session = checkName(options.scope?.session ?? DEFAULT_SCOPE, 'scope.session')
      const ttl = options.ttl !== undefined ? positive(options.ttl, 'ttl') : this.ttl
      const hash = hashOf(['context', agent, session, normaliseText(text)])
      const expiresAt = new Date(now + ttl).toISOString()
      const [same] = await this.ctx.context.find({ where: { ...byHash(hash), expiresAt: { gt: at } }, limit: 1 })
      if (same !== undefined) {
        const doc = same as unknown as MemoryDoc
        await this.ctx.context.patch(same._id, { repeats: (doc.repeats ?? 0) + 1, lastUsedAt: at, expiresAt, ...(source !== undefined ? { provenance: union(doc.provenance, [source]) } : {}) })
        return same._id
      }
      const id = newDocId(now)
      const doc: MemoryDoc = { kind, content: text, entities, agent, session, ...(source !== undefined ? { source } : {}), provenance: source !== undefined ? [source] : [], recordedAt: at, expiresAt, recalls: 0, repeats: 0, lastUsedAt: at, hash }
      await this.ctx.context.put({ _id: id, ...doc })
      await this.keepBudget(agent, session)
      return id
    }
    if (options.ttl !== undefined) throw new InvalidOptionError('"ttl" is for context; knowledge is kept until it is forgotten')
    const validFrom = options.validFrom !== undefined ? isoTime(options.validFrom, 'validFrom') : at
    const hash = hashOf(['knowledge', normaliseText(text), ...entities, attribute ?? ''])
    const [same] = await this.ctx.knowledge.find({ where: { ...byHash(hash), mergedInto: { exists: false }, invalidFrom: { exists: false } }, limit: 1 })
    // said again after something newer about the same entities ("lives in Porto", "in Lisbon",
    // "in Porto" again) is a new fact, not a repeat of the first
    const superseded = same !== undefined && entities.length > 0 && (await this.ctx.knowledge.find({ where: { entities: { in: entities }, recordedAt: { gt: (same as unknown as MemoryDoc).recordedAt }, mergedInto: { exists: false } }, limit: 1 })).length > 0
    if (same !== undefined && !superseded) {
      const doc = same as unknown as MemoryDoc
      if (source !== undefined && !doc.provenance.includes(source)) await this.ctx.knowledge.patch(same._id, { provenance: union(doc.provenance, [source]) })
      await this.record(same._id, at, 'repeated', source !== undefined ? `remembered again, from ${source}` : 'remembered again', text)
      return same._id
    }
    const id = newDocId(now)
    const agent = options.scope?.agent
    const doc: MemoryDoc = {
      kind,
      content: text,
      entities,
      ...(attribute !== undefined ? { attribute } : {}),
      ...(agent !== undefined ? { agent: checkName(agent, 'scope.agent') } : {}),
      ...(source !== undefined ? { source } : {}),
      provenance: source !== undefined ? [source] : [],
      recordedAt: at,
      validFrom,
      hash
    }
    // one write, like a put: the first version of the history is read from the fact itself
    await this.ctx.knowledge.put({ _id: id, ...doc })
    return id
  }

  /**
   * The memories that best match `query`, best first: current facts (or those valid at
   * `asOf`) and live context, ranked by hybrid search as collections are; when the query names
   * entities (capitalised names), memories about them come first. A context item recalled
   * (scoring at least half the best hit) counts as used: it is kept longer under the budget and
   * promoted at consolidation.
   */
  async recall (query: string, options: RecallOptions = {}): Promise<RecallHit[]> {
    if (typeof query !== 'string' || query.trim().length === 0 || query.length > 10_000) throw new InvalidOptionError('"query" expected a text of 1 to 10000 characters')
    const k = options.k ?? 10
    if (!Number.isInteger(k) || k < 1 || k > 100) throw new InvalidOptionError(`"k" expected a whole number from 1 to 100, got ${String(k)}`)
    const asOf = options.asOf !== undefined ? isoTime(options.asOf, 'asOf') : undefined
    this.lastActivity = this.now()
    const kinds = new Set(options.kinds ?? (asOf !== undefined ? ['knowledge'] : ['knowledge', 'context']))
    for (const kind of kinds) if (kind !== 'knowledge' && kind !== 'context') throw new InvalidOptionError(`"kinds" expected "context" and/or "knowledge", got ${JSON.stringify(kind)}`)
    const nowIso = new Date(this.now()).toISOString()
    // memories about the entities a query names come first: more candidates, then a boost
    const named = namesIn(query)
    const asked = relationKey(query)
    const pool = named.length > 0 || asked !== undefined ? Math.min(100, k * 4) : k
    // the query is embedded once, for both stores
    const embedder = await this.ctx.embedder()
    const [vector] = kinds.size > 1 ? await embedder.embed([query], options.signal !== undefined ? { signal: options.signal } : {}) : []
    // twice the pool from each list ranks as well as five times on the labeled set, in half the time at 100,000
    const search = { text: query, k: pool, candidates: Math.max(50, pool * 2), ...(vector !== undefined ? { vector, embedder: embedder.id } : {}), ...(options.signal !== undefined ? { signal: options.signal } : {}) }
    const runs: Array<Promise<RecallHit[]>> = []
    if (kinds.has('knowledge')) {
      const where = and(validAt(asOf), options.where)
      runs.push(this.ctx.knowledge.search({ ...search, where }).then(r => r.map(h => ({ memory: toRecord(h.doc), score: h.score }))))
    }
    if (kinds.has('context')) {
      const where = and(and({ expiresAt: { gt: nowIso } }, scopeWhere(options.scope)), options.where)
      // an empty context is not searched: its keyword search would rank the knowledge's matches
      // of the shared full-text table for nothing (counting a small collection is cheap)
      if (await this.ctx.context.count() > 0) runs.push(this.ctx.context.search({ ...search, where }).then(r => r.map(h => ({ memory: toRecord(h.doc), score: h.score }))))
      if (options.swarm === true) {
        runs.push(this.ctx.swarmSearch({ collection: CONTEXT_COLLECTION, text: query, k, where, ...(options.timeout !== undefined ? { timeout: options.timeout } : {}) })
          .then(r => r.hits.filter(h => h.device !== this.ctx.deviceId).map(h => ({ memory: toRecord(h.doc), score: h.score, device: h.device }))))
      }
    }
    const seen = new Set<string>()
    const hits = (await Promise.all(runs)).flat()
      .map(h => ({ ...h, score: h.score + (named.length > 0 && h.memory.entities.some(e => named.includes(e)) ? ENTITY_BOOST : 0) + (asked !== undefined && (relationKey(h.memory.content) === asked || h.memory.attribute === asked) ? RELATION_BOOST : 0) }))
      .sort((a, b) => b.score - a.score)
      .filter(h => {
        const key = `${h.device ?? ''}/${h.memory.id}`
        if (seen.has(key)) return false
        seen.add(key)
        return true
      })
      .slice(0, k)
    // only what the caller gets counts as used, and only what ranks near the best (not what fills k)
    const best = hits[0]?.score ?? 0
    await this.used(hits.filter(h => h.device === undefined && h.memory.kind === 'context' && h.score >= best * USED_SHARE).map(h => h.memory), nowIso)
    return hits
  }

  /** One memory by id (knowledge or context), or null. */
  async get (id: string): Promise<MemoryRecord | null> {
    const doc = await this.ctx.knowledge.get(id) ?? await this.ctx.context.get(id)
    return doc === null ? null : toRecord(doc)
  }

  /**
   * Forgets a memory: its document goes (on every device, for knowledge) and the content of its
   * history with it; the history keeps that it was forgotten. Returns false when there was none.
   */
  async forget (id: string): Promise<boolean> {
    checkName(id, 'id', 256)
    if (await this.ctx.context.get(id) !== null) {
      await this.ctx.context.delete(id)
      this.scopeCounts.clear()
      return true
    }
    const doc = await this.ctx.knowledge.get(id)
    if (doc === null) return false
    const fact = toRecord(doc)
    const stored = await this.ctx.history.find({ where: { memory: id }, limit: 100_000 })
    for (const v of stored) if (typeof v.content === 'string') await this.ctx.history.patch(v._id, { content: null })
    await this.ctx.knowledge.delete(id)
    // the history outlives the fact: keep when it was made, without its text
    if (!stored.some(v => v.change === 'promoted')) await this.record(id, fact.recordedAt, 'created', createdReason(fact))
    await this.record(id, new Date(this.now()).toISOString(), 'forgotten', 'forgotten on request')
    return true
  }

  /**
   * Every version of a memory, oldest first, with why it changed. Knowledge keeps its history on
   * every device; a context item's is read from the item. Unknown ids: {@link DocumentNotFoundError}.
   */
  async history (id: string): Promise<MemoryVersion[]> {
    checkName(id, 'id', 256)
    const versions = await this.ctx.history.find({ where: { memory: id }, orderBy: ['at', '_id'], limit: 100_000 })
    const fact = await this.ctx.knowledge.get(id)
    if (fact !== null || versions.length > 0) {
      const m = fact !== null ? toRecord(fact) : undefined
      const made = versions.some(v => v.change === 'created' || v.change === 'promoted')
      const first: MemoryVersion[] = m !== undefined && !made ? [{ at: m.recordedAt, change: 'created', reason: createdReason(m), content: m.content }] : []
      return [...first, ...versions.map(v => ({
        at: v.at as string,
        change: v.change as MemoryChange,
        reason: v.reason as string,
        ...(typeof v.content === 'string' ? { content: v.content } : {}),
        ...(typeof v.device === 'string' ? { device: v.device } : {}),
        ...(typeof v.other === 'string' ? { other: v.other } : {})
      }))]
    }
    const doc = await this.ctx.context.get(id)
    if (doc === null) throw new DocumentNotFoundError(`no memory ${JSON.stringify(id)} on this device`)
    const m = toRecord(doc)
    const out: MemoryVersion[] = [{ at: m.recordedAt, change: 'created', reason: 'remembered as context', content: m.content, device: this.ctx.deviceId }]
    if ((m.repeats ?? 0) > 0) out.push({ at: (doc.lastUsedAt as string | undefined) ?? m.recordedAt, change: 'repeated', reason: `remembered again ${m.repeats ?? 0} time(s)`, content: m.content })
    if ((m.recalls ?? 0) > 0) out.push({ at: (doc.lastUsedAt as string | undefined) ?? m.recordedAt, change: 'recalled', reason: `recalled ${m.recalls ?? 0} time(s)`, content: m.content })
    if (m.promotedTo !== undefined) out.push({ at: (doc.promotedAt as string | undefined) ?? m.recordedAt, change: 'promoted', reason: 'promoted to knowledge', other: m.promotedTo })
    return out.sort((a, b) => a.at < b.at ? -1 : a.at > b.at ? 1 : 0)
  }

  /** Memories, newest first: by kind, scope or entity; current facts only unless `all`. */
  async list (options: ListOptions = {}): Promise<MemoryRecord[]> {
    const limit = options.limit ?? 100
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new InvalidOptionError(`"limit" expected a whole number from 1 to 10000, got ${String(limit)}`)
    const entity = options.entity !== undefined ? checkName(options.entity, 'entity').toLowerCase() : undefined
    const byEntity: Where | undefined = entity !== undefined ? { entities: entity } : undefined
    const out: MemoryRecord[] = []
    if (options.kind !== 'context' && options.scope === undefined) {
      const where = options.all === true ? byEntity : and(validAt(undefined), byEntity)
      out.push(...(await this.ctx.knowledge.find({ ...(where !== undefined ? { where } : {}), orderBy: '-recordedAt', limit })).map(toRecord))
    }
    if (options.kind !== 'knowledge') {
      const live = options.all === true ? undefined : { expiresAt: { gt: new Date(this.now()).toISOString() } }
      const where = and(and(live, scopeWhere(options.scope)), byEntity)
      out.push(...(await this.ctx.context.find({ ...(where !== undefined ? { where } : {}), orderBy: '-recordedAt', limit })).map(toRecord))
    }
    return out.sort((a, b) => a.recordedAt < b.recordedAt ? 1 : a.recordedAt > b.recordedAt ? -1 : 0).slice(0, limit)
  }

  /**
   * Consolidates: removes expired context; promotes context that was recalled or repeated to
   * knowledge; for each fact not consolidated yet, asks the decider about the current facts that
   * share an entity with it: a duplicate is merged into the older fact (which keeps both
   * provenances and the earlier validity), a contradiction ends the older fact's validity where
   * the newer begins. Nothing is deleted, and facts about other entities are never compared.
   * One consolidation runs at a time on a node.
   */
  async consolidate (options: ConsolidateOptions = {}): Promise<ConsolidationResult> {
    // queued behind the one running, if any
    const run = (this.consolidating ?? Promise.resolve()).catch(() => {}).then(async () => await this.consolidateNow(options))
    this.consolidating = run
    try {
      return await run
    } finally {
      if (this.consolidating === run) this.consolidating = undefined
    }
  }

  /**
   * Consolidates in the background (the daemon does): every `intervalMs`, when nothing was
   * remembered or recalled for `idleMs` and there is work (facts not consolidated yet, context
   * recalled, repeated or expired), at most `limit` facts at a time. Returns the function that
   * stops it, waiting for a run in progress to abort.
   */
  startBackground (options: BackgroundOptions = {}): () => Promise<void> {
    const interval = positive(options.intervalMs ?? 60_000, 'intervalMs')
    const idle = options.idleMs ?? 30_000
    const stop = new AbortController()
    let running: Promise<void> | undefined
    const tick = (): void => {
      if (running !== undefined || stop.signal.aborted) return
      if (this.now() - this.lastActivity < idle) {
        options.onSkip?.('busy')
        return
      }
      running = (async () => {
        if (!await this.hasWork()) {
          options.onSkip?.('no-work')
          return
        }
        const result = await this.consolidate({ limit: options.limit ?? 500, signal: stop.signal, ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}) })
        options.onDone?.(result)
      })().catch(err => {
        if (!stop.signal.aborted) options.onError?.(err as Error)
      }).finally(() => { running = undefined })
    }
    const timer = setInterval(tick, interval)
    timer.unref()
    return async () => {
      clearInterval(timer)
      stop.abort()
      await running
    }
  }

  /** True when a consolidation would change something. */
  private async hasWork (): Promise<boolean> {
    const at = new Date(this.now()).toISOString()
    if (await this.ctx.knowledge.count({ settled: { exists: false }, mergedInto: { exists: false } }) > 0) return true
    if (await this.ctx.context.count({ expiresAt: { lte: at } }) > 0) return true
    return await this.ctx.context.count({ promotedTo: { exists: false }, $or: [{ recalls: { gt: 0 } }, { repeats: { gt: 0 } }] }) > 0
  }

  private async consolidateNow (options: ConsolidateOptions): Promise<ConsolidationResult> {
    const started = performance.now()
    const dry = options.dryRun === true
    const limit = options.limit ?? 5000
    if (!Number.isInteger(limit) || limit < 1) throw new InvalidOptionError(`"limit" expected a whole number >= 1, got ${String(limit)}`)
    const now = this.now()
    const at = new Date(now).toISOString()
    const signal = options.signal
    const embedder = await this.ctx.embedder()

    // 1. expired context
    const expiredDocs = await this.ctx.context.find({ where: and({ expiresAt: { lte: at } }, scopeWhere(options.scope)), limit: 100_000 })
    const expired = expiredDocs.map(d => d._id)

    // 2. context worth keeping: recalled, or said twice (the same text, or the same meaning)
    const live = (await this.ctx.context.find({ where: and({ expiresAt: { gt: at }, promotedTo: { exists: false } }, scopeWhere(options.scope)), orderBy: 'recordedAt', limit: 100_000 })).map(toRecord)
    const liveVectors = await embed(embedder, live.map(m => m.content), signal)
    const groups = groupRepeats(live, liveVectors)
    const newFacts: Array<MemoryRecord & { vector?: Float32Array }> = []
    const promotions: Array<{ fact: string, content: string, from: string[] }> = []
    for (const group of groups) {
      const worth = group.length > 1 || group.some(i => (live[i]?.recalls ?? 0) > 0 || (live[i]?.repeats ?? 0) > 0)
      if (!worth) continue
      const members = group.map(i => live[i] as MemoryRecord)
      const latest = members[members.length - 1] as MemoryRecord
      const id = dry ? `new:${promotions.length + 1}` : newDocId(now)
      const fact: MemoryRecord & { vector?: Float32Array } = {
        id,
        kind: 'knowledge',
        content: latest.content,
        entities: union(...members.map(m => m.entities)),
        ...(latest.agent !== undefined ? { agent: latest.agent } : {}),
        provenance: union(members.map(m => m.id), ...members.map(m => m.provenance)),
        recordedAt: at,
        validFrom: (members[0] as MemoryRecord).recordedAt,
        vector: liveVectors[group[group.length - 1] as number] as Float32Array
      }
      promotions.push({ fact: id, content: fact.content, from: members.map(m => m.id) })
      newFacts.push(fact)
    }

    // 3. facts not consolidated yet, oldest validity first
    const unsettled = (await this.ctx.knowledge.find({ where: { settled: { exists: false }, mergedInto: { exists: false } }, orderBy: ['validFrom', 'recordedAt'], limit })).map(toRecord)
    const pending = [...unsettled, ...newFacts].sort((a, b) => compareValidity(a, b))
    const byEntity = await this.factsByEntity(pending)
    /** Facts changed by this run, by id: what later decisions must see. */
    const changed = new Map<string, MemoryRecord>()
    const current = (m: MemoryRecord): MemoryRecord => changed.get(m.id) ?? m
    const merges: Array<{ into: string, from: string, content: string }> = []
    const invalidations: Array<{ id: string, by: string, at: string, content: string }> = []
    const vectors = new Map<string, Float32Array>()
    for (const f of newFacts) if (f.vector !== undefined) vectors.set(f.id, f.vector)
    const settledNow = new Set<string>()
    let done = 0
    for (const fact of pending) {
      signal?.throwIfAborted()
      const n = current(fact)
      if (n.mergedInto !== undefined) continue
      const candidates = (await this.candidates(n, pending, changed, byEntity)).filter(c => c.id !== n.id && c.mergedInto === undefined && c.invalidFrom === undefined)
      if (candidates.length > 0) {
        const missing = [n, ...candidates].filter(m => !vectors.has(m.id))
        const vs = await embed(embedder, missing.map(m => m.content), signal)
        missing.forEach((m, i) => vectors.set(m.id, vs[i] as Float32Array))
        const pairs: FactPair[] = candidates.map(c => {
          const newer = compareValidity(c, n) <= 0 ? n : c
          const older = newer === n ? c : n
          return { newer: view(newer), older: view(older), similarity: cosine(vectors.get(n.id) as Float32Array, vectors.get(c.id) as Float32Array) }
        })
        const decisions = await this.decider.decide(pairs, signal !== undefined ? { signal } : {})
        const dup = pickDuplicate(pairs, decisions)
        if (dup !== undefined) {
          // the fact that was there first stays, and takes the other's provenance and validity
          const keep = current(candidates[dup] as MemoryRecord)
          const into: MemoryRecord = {
            ...keep,
            entities: union(keep.entities, n.entities),
            provenance: union(keep.provenance, [n.id], n.provenance),
            validFrom: minIso(keep.validFrom ?? keep.recordedAt, n.validFrom ?? n.recordedAt)
          }
          changed.set(keep.id, into)
          changed.set(n.id, { ...n, mergedInto: keep.id })
          merges.push({ into: keep.id, from: n.id, content: n.content })
        } else {
          decisions.forEach((d, i) => {
            if (d !== 'contradiction') return
            const pair = pairs[i] as FactPair
            const older = current(pair.older.id === n.id ? n : candidates[i] as MemoryRecord)
            if (older.invalidFrom !== undefined) return
            const until = (pair.newer.id === n.id ? n : current(candidates[i] as MemoryRecord)).validFrom ?? at
            changed.set(older.id, { ...older, invalidFrom: until, invalidatedBy: pair.newer.id })
            invalidations.push({ id: older.id, by: pair.newer.id, at: until, content: older.content })
          })
        }
      }
      settledNow.add(n.id)
      options.onProgress?.(++done, pending.length)
    }
    const result: ConsolidationResult = { dryRun: dry, decider: this.decider.name, expired, promotions, merges, invalidations, examined: pending.length, ms: 0 }
    if (!dry) await this.apply(result, newFacts, changed, settledNow, at)
    return { ...result, ms: performance.now() - started }
  }

  /**
   * The current facts about the entities of `facts`, by entity: one query for a whole
   * consolidation (an array-membership filter reads every fact, so once rather than per fact).
   */
  private async factsByEntity (facts: readonly MemoryRecord[]): Promise<Map<string, MemoryRecord[]>> {
    const entities = [...new Set(facts.flatMap(f => f.entities))]
    const out = new Map<string, MemoryRecord[]>()
    for (let i = 0; i < entities.length; i += 500) {
      const slice = entities.slice(i, i + 500)
      for (const doc of await this.ctx.knowledge.find({ where: { entities: { in: slice }, mergedInto: { exists: false }, invalidFrom: { exists: false } }, limit: 100_000 })) {
        const m = toRecord(doc)
        for (const e of m.entities) {
          if (!slice.includes(e)) continue
          const list = out.get(e)
          if (list === undefined) out.set(e, [m])
          else list.push(m)
        }
      }
    }
    return out
  }

  /** Current facts that share an entity with `n` (or, without entities, that search finds like it). */
  private async candidates (n: MemoryRecord, pending: readonly MemoryRecord[], changed: ReadonlyMap<string, MemoryRecord>, byEntity: ReadonlyMap<string, readonly MemoryRecord[]>): Promise<MemoryRecord[]> {
    const stored = n.entities.length > 0
      ? [...new Map(n.entities.flatMap(e => byEntity.get(e) ?? []).map(m => [m.id, m])).values()]
      : (await this.ctx.knowledge.search({ text: n.content, k: 10, where: { mergedInto: { exists: false }, invalidFrom: { exists: false } } })).map(h => toRecord(h.doc))
    // facts of this run not stored yet (promotions), and what this run already changed
    const sharing = (m: MemoryRecord): boolean => n.entities.length === 0 ? m.entities.length === 0 : m.entities.some(e => n.entities.includes(e))
    const extra = pending.filter(m => !stored.some(s => s.id === m.id) && sharing(m) && compareValidity(m, n) < 0)
    return [...stored, ...extra].map(m => changed.get(m.id) ?? m).filter(m => pending.every(p => p.id !== m.id) || compareValidity(m, n) < 0)
  }

  /** Writes a consolidation: promoted facts, merges, invalidations, each with its history. */
  private async apply (result: ConsolidationResult, newFacts: ReadonlyArray<MemoryRecord & { vector?: Float32Array }>, changed: ReadonlyMap<string, MemoryRecord>, settled: ReadonlySet<string>, at: string): Promise<void> {
    for (const id of result.expired) await this.ctx.context.delete(id)
    if (result.expired.length > 0) this.scopeCounts.clear()
    for (const f of newFacts) {
      const { vector: _v, id, ...rest } = f
      const fact = changed.get(id) ?? { id, ...rest }
      await this.ctx.knowledge.put({ _id: id, ...docOf(fact), hash: hashOf(['knowledge', normaliseText(fact.content), ...fact.entities, fact.attribute ?? '']), settled: true })
      const p = result.promotions.find(x => x.fact === id)
      await this.record(id, at, 'promoted', `promoted from ${p?.from.length ?? 0} context item(s)`, fact.content, p?.from[0])
      for (const c of p?.from ?? []) await this.ctx.context.patch(c, { promotedTo: id, promotedAt: at })
    }
    const fresh = new Set(newFacts.map(f => f.id))
    for (const [id, m] of changed) {
      if (fresh.has(id)) continue
      await this.ctx.knowledge.patch(id, { ...docOf(m), settled: true })
    }
    for (const id of settled) if (!fresh.has(id) && !changed.has(id)) await this.ctx.knowledge.patch(id, { settled: true })
    for (const m of result.merges) {
      await this.record(m.from, at, 'merged', `a duplicate of ${m.into}, merged into it`, m.content, m.into)
      await this.record(m.into, at, 'absorbed', `took in the duplicate ${m.from} and its provenance`, (changed.get(m.into) ?? { content: undefined }).content, m.from)
    }
    for (const inv of result.invalidations) await this.record(inv.id, at, 'invalidated', `contradicted by ${inv.by}: valid until ${inv.at}`, inv.content, inv.by)
  }

  /** Counts a recall of context items: they are kept longer and promoted. */
  private async used (items: readonly MemoryRecord[], at: string): Promise<void> {
    for (const m of items) await this.ctx.context.patch(m.id, { recalls: (m.recalls ?? 0) + 1, lastUsedAt: at }).catch(err => logger.debug('memory: could not count a recall', { id: m.id, error: (err as Error).message }))
  }

  /** Drops context items of a scope beyond the budget: expired ones, then the least used and oldest. */
  private async keepBudget (agent: string, session: string): Promise<void> {
    const key = `${agent}\u0000${session}`
    let n = this.scopeCounts.get(key)
    n = n === undefined ? await this.ctx.context.count({ agent, session }) : n + 1
    if (n > this.budget) {
      // expired items first, then the least recalled, least repeated, least recently used
      const at = new Date(this.now()).toISOString()
      const expired = await this.ctx.context.find({ where: { agent, session, expiresAt: { lte: at } }, limit: n - this.budget })
      const rest = n - this.budget - expired.length
      const unused = rest > 0 ? await this.ctx.context.find({ where: { agent, session, expiresAt: { gt: at } }, orderBy: ['recalls', 'repeats', 'lastUsedAt'], limit: rest }) : []
      for (const d of [...expired, ...unused]) await this.ctx.context.delete(d._id)
      n -= expired.length + unused.length
    }
    this.scopeCounts.set(key, n)
  }

  /** Adds a version to a fact's history (replicated with it). */
  private async record (memory: string, at: string, change: MemoryChange, reason: string, content?: string, other?: string): Promise<void> {
    const doc: JsonObject = { memory, at, change, reason, device: this.ctx.deviceId, ...(content !== undefined ? { content } : {}), ...(other !== undefined ? { other } : {}) }
    // ids that grow within this process: versions made in the same millisecond keep their order
    this.lastVersion = Math.max(Date.parse(at), this.lastVersion + 1)
    await this.ctx.history.put({ _id: `${memory}.${newDocId(this.lastVersion)}`, ...doc })
  }
}

/** Why a fact's first version was made. */
function createdReason (m: MemoryRecord): string {
  return m.source !== undefined ? `remembered, from ${m.source}` : 'remembered'
}

function positive (n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1) throw new InvalidOptionError(`"${what}" expected a whole number >= 1, got ${String(n)}`)
  return n
}

function checkContent (content: unknown): string {
  if (typeof content !== 'string') throw new InvalidOptionError('"content" expected a text')
  const text = content.trim()
  if (text.length === 0 || text.length > MAX_CONTENT) throw new InvalidOptionError(`"content" expected 1 to ${MAX_CONTENT} characters, got ${text.length}`)
  return text
}

function checkName (value: unknown, what: string, max = MAX_NAME): string {
  if (typeof value !== 'string' || value.trim().length === 0 || value.length > max) throw new InvalidOptionError(`"${what}" expected a text of 1 to ${max} characters`)
  return value.trim()
}

function normaliseEntities (list: readonly string[]): string[] {
  if (!Array.isArray(list) || list.length > MAX_ENTITIES) throw new InvalidOptionError(`"entities" expected a list of at most ${MAX_ENTITIES} names`)
  return [...new Set(list.map(e => checkName(e, 'entities[]').toLowerCase()))]
}

/** Words that start sentences or stand for the user, not names. */
const NOT_NAMES = new Set(('i the a an my our your we he she they it its this that these those there here on in at of for to from with by and or but if so ' +
  'when where what who whom whose which why how is are was were do does did can could should would will please ' +
  'remind remember note call buy ask tell send check find meet book add keep make get let also then now ' +
  'yesterday today tonight tomorrow monday tuesday wednesday thursday friday saturday sunday').split(' '))

/** Capitalised names in a text ("Ada Lovelace", "Lisbon"), lower-cased: the default entities. */
export function namesIn (text: string): string[] {
  const out = new Set<string>()
  for (const m of text.matchAll(/\b[A-Z][\p{L}0-9]*(?:[ -][A-Z][\p{L}0-9]*)*/gu)) {
    const name = m[0].toLowerCase()
    if (!NOT_NAMES.has(name) && name.length > 1) out.add(name)
    if (out.size >= MAX_ENTITIES) break
  }
  return [...out]
}

/**
 * Equality on `hash` written as a range: an equality filter may match array members, which keeps
 * SQLite from its expression index; a range on a string field uses it.
 */
function byHash (hash: string): Where {
  return { hash: { gte: hash, lte: hash } }
}

function normaliseText (text: string): string {
  return text.toLowerCase().replace(/\s+/g, ' ').replace(/[.!?\s]+$/, '').trim()
}

function hashOf (parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 32)
}

function isoTime (value: string | Date, what: string): string {
  const t = value instanceof Date ? value.getTime() : Date.parse(value)
  if (!Number.isFinite(t)) throw new InvalidOptionError(`"${what}" expected an ISO 8601 time (2025-03-01T12:00:00Z), got ${JSON.stringify(String(value))}`)
  return new Date(t).toISOString()
}

function union (...lists: ReadonlyArray<readonly string[] | undefined>): string[] {
  return [...new Set(lists.flatMap(l => l ?? []))]
}

function minIso (a: string, b: string): string {
  return a < b ? a : b
}

/** Valid at `asOf` (or now: no end of validity), and not merged into another fact. */
function validAt (asOf: string | undefined): Where {
  if (asOf === undefined) return { invalidFrom: { exists: false }, mergedInto: { exists: false } }
  return { validFrom: { lte: asOf }, mergedInto: { exists: false }, $or: [{ invalidFrom: { exists: false } }, { invalidFrom: { gt: asOf } }] }
}

function scopeWhere (scope: MemoryScope | undefined): Where | undefined {
  if (scope === undefined) return undefined
  const w: Record<string, string> = {}
  if (scope.agent !== undefined) w.agent = checkName(scope.agent, 'scope.agent')
  if (scope.session !== undefined) w.session = checkName(scope.session, 'scope.session')
  return Object.keys(w).length > 0 ? w : undefined
}

function and (a: Where, b: Where | undefined): Where
function and (a: Where | undefined, b: Where | undefined): Where | undefined
function and (a: Where | undefined, b: Where | undefined): Where | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return { $and: [a, b] }
}

function compareValidity (a: MemoryRecord, b: MemoryRecord): number {
  const x = a.validFrom ?? a.recordedAt
  const y = b.validFrom ?? b.recordedAt
  if (x !== y) return x < y ? -1 : 1
  return a.recordedAt < b.recordedAt ? -1 : a.recordedAt > b.recordedAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

function view (m: MemoryRecord): FactView {
  return { id: m.id, content: m.content, entities: m.entities, ...(m.attribute !== undefined ? { attribute: m.attribute } : {}) }
}

/** The duplicate with the highest similarity, if any. */
function pickDuplicate (pairs: readonly FactPair[], decisions: readonly Decision[]): number | undefined {
  let best: number | undefined
  decisions.forEach((d, i) => {
    if (d === 'duplicate' && (best === undefined || (pairs[i] as FactPair).similarity > (pairs[best] as FactPair).similarity)) best = i
  })
  return best
}

async function embed (embedder: Embedder, texts: readonly string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
  const out: Float32Array[] = []
  for (let i = 0; i < texts.length; i += 64) {
    signal?.throwIfAborted()
    out.push(...await embedder.embed(texts.slice(i, i + 64), signal !== undefined ? { signal } : {}))
  }
  return out
}

function cosine (a: Float32Array, b: Float32Array): number {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number
    const y = b[i] as number
    dot += x * y
    na += x * x
    nb += y * y
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb)
}

/**
 * Groups context items said again: the same entities (or none) and a similar meaning. Greedy,
 * in time order: each item joins the first group whose first item it resembles.
 */
function groupRepeats (items: readonly MemoryRecord[], vectors: readonly Float32Array[]): number[][] {
  const groups: number[][] = []
  items.forEach((m, i) => {
    const g = groups.find(g => {
      const first = items[g[0] as number] as MemoryRecord
      const sameAbout = first.entities.length === 0 ? m.entities.length === 0 : first.entities.some(e => m.entities.includes(e))
      return sameAbout && first.agent === m.agent && cosine(vectors[g[0] as number] as Float32Array, vectors[i] as Float32Array) >= REPEAT_SIMILARITY
    })
    if (g !== undefined) g.push(i)
    else groups.push([i])
  })
  return groups
}

/** The record of a stored document. */
function toRecord (doc: Doc | (JsonObject & { _id: string })): MemoryRecord {
  const d = doc as unknown as MemoryDoc & { _id: string }
  const r: Record<string, unknown> = { id: d._id, kind: d.kind, content: d.content, entities: d.entities ?? [], provenance: d.provenance ?? [], recordedAt: d.recordedAt }
  for (const f of ['attribute', 'agent', 'session', 'source', 'validFrom', 'invalidFrom', 'invalidatedBy', 'mergedInto', 'expiresAt', 'recalls', 'repeats', 'promotedTo'] as const) {
    if (d[f] !== undefined && d[f] !== null) r[f] = d[f]
  }
  return r as unknown as MemoryRecord
}

/** The stored fields of a record (without id). */
function docOf (m: MemoryRecord & { vector?: Float32Array }): JsonObject {
  const { id: _id, vector: _vector, ...rest } = m
  return JSON.parse(JSON.stringify(rest)) as JsonObject
}
