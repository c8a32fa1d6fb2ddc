/**
 * The local API's methods: one table that both the daemon (over HTTP) and the CLI's direct mode
 * (on an opened node) call, so the CLI behaves the same with or without a running daemon.
 * Parameters are validated with zod schemas before a method runs.
 */
import { resolve } from 'node:path'
import { z } from 'zod'
import type { PeakNode } from '../peak-node.js'
import type { Where } from '../../storage/index.js'
import { COLLECTION_NAME, MAX_DOC_ID, type JsonObject } from '../../crdt/index.js'
import type { SearchMode } from '../search.js'
import { generateRowTypes } from '../../storage/schema-types.js'
import { DocumentNotFoundError, InvalidCollectionNameError, InvalidOptionError } from '../errors.js'

/** A user collection name; a bad one fails as {@link InvalidCollectionNameError}, stating the rule. */
const collection = z.string().regex(COLLECTION_NAME)
const docId = z.string().min(1, { error: `expected a document id of 1 to ${MAX_DOC_ID} characters` }).max(MAX_DOC_ID, { error: `expected a document id of 1 to ${MAX_DOC_ID} characters` })

/** What local and swarm search share (the query itself is checked by the search). */
const searchParams = {
  collection,
  text: z.string().max(10_000),
  k: z.number().int().optional(),
  where: z.record(z.string(), z.unknown()).optional(),
  mode: z.string().optional()
}

/** Which database `schema` and `schemaTypes` describe. */
const schemaParams = {
  provider: z.string().min(1).max(32).optional(),
  schema: z.string().min(1).max(63).optional()
}

/** An agent and session of memory. */
const scopeParams = {
  agent: z.string().min(1).max(128).optional(),
  session: z.string().min(1).max(128).optional()
}
const memoryKind = z.enum(['context', 'knowledge'])
const memoryId = z.string().min(1).max(256)

/** Parameter schemas of every method. */
export const methodParams = {
  status: z.object({}).strict(),
  put: z.object({ collection, doc: z.unknown() }).strict(),
  get: z.object({ collection, id: docId }).strict(),
  find: z.object({ collection, query: z.record(z.string(), z.unknown()).optional() }).strict(),
  count: z.object({ collection, where: z.record(z.string(), z.unknown()).optional() }).strict(),
  delete: z.object({ collection, id: docId }).strict(),
  collections: z.object({}).strict(),
  createIndex: z.object({ collection, field: z.string().min(1).max(512) }).strict(),
  verify: z.object({ rebuild: z.boolean().optional() }).strict(),
  peers: z.object({}).strict(),
  sync: z.object({}).strict(),
  connect: z.object({ addr: z.string().min(1).max(1024) }).strict(),
  invite: z.object({ ttl: z.number().int().min(1000, { error: 'expected milliseconds from 1000 (1s) to 86400000 (24h)' }).max(86_400_000, { error: 'expected milliseconds from 1000 (1s) to 86400000 (24h)' }).optional() }).strict(),
  devices: z.object({}).strict(),
  revoke: z.object({ device: z.string().min(1).max(128) }).strict(),
  profileGet: z.object({}).strict(),
  profileSet: z.object({ fields: z.record(z.string(), z.unknown()) }).strict(),
  setPassphrase: z.object({ passphrase: z.string().min(8).max(1024).nullable() }).strict(),
  search: z.object({ ...searchParams, drain: z.union([z.boolean(), z.number().int().min(0)]).optional() }).strict(),
  swarmSearch: z.object({ ...searchParams, timeout: z.number().int().optional() }).strict(),
  indexFolder: z.object({ path: z.string().min(1).max(4096), collection: collection.optional(), wait: z.boolean().optional() }).strict(),
  folderProgress: z.object({}).strict(),
  watchFolder: z.object({ path: z.string().min(1).max(4096), collection: collection.optional() }).strict(),
  unwatchFolder: z.object({ path: z.string().min(1).max(4096) }).strict(),
  watchedFolders: z.object({}).strict(),
  setEmbed: z.object({ collection, embed: z.union([z.literal('auto'), z.literal(false), z.array(z.string().min(1).max(512)).min(1).max(64)]) }).strict(),
  indexStatus: z.object({ collection: collection.optional() }).strict(),
  indexDrain: z.object({ collection: collection.optional(), budgetMs: z.number().int().min(0).max(3_600_000).optional() }).strict(),
  providers: z.object({}).strict(),
  moveCollection: z.object({ collection, provider: z.string().min(1).max(32) }).strict(),
  moveStatus: z.object({ collection }).strict(),
  setPolicy: z.object({ collection, ttlMs: z.number().int().min(1000).max(31_536_000_000).nullable().optional(), maxBytes: z.number().int().min(1).max(2 ** 50).nullable().optional() }).strict(),
  policy: z.object({ collection }).strict(),
  setPlacement: z.object({ collection, replicas: z.number().int().min(1).max(64).nullable().optional(), pin: z.array(z.string().min(1).max(128)).max(64).optional() }).strict(),
  placement: z.object({}).strict(),
  adopt: z.object({ collection, table: z.string().min(1).max(130), provider: z.string().min(1).max(32).optional() }).strict(),
  schema: z.object({ ...schemaParams }).strict(),
  schemaTypes: z.object({ ...schemaParams, all: z.boolean().optional() }).strict(),
  memoryRemember: z.object({
    content: z.string().min(1).max(16_384),
    kind: memoryKind.optional(),
    ...scopeParams,
    entities: z.array(z.string().min(1).max(128)).max(32).optional(),
    attribute: z.string().min(1).max(128).optional(),
    ttl: z.number().int().min(1).optional(),
    source: z.string().min(1).max(2048).optional(),
    validFrom: z.string().min(1).max(64).optional()
  }).strict(),
  memoryRecall: z.object({
    query: z.string().min(1).max(10_000),
    k: z.number().int().min(1).max(100).optional(),
    kinds: z.array(memoryKind).min(1).max(2).optional(),
    ...scopeParams,
    asOf: z.string().min(1).max(64).optional(),
    where: z.record(z.string(), z.unknown()).optional(),
    swarm: z.boolean().optional(),
    timeout: z.number().int().min(1).max(60_000).optional()
  }).strict(),
  memoryList: z.object({ kind: memoryKind.optional(), ...scopeParams, entity: z.string().min(1).max(128).optional(), all: z.boolean().optional(), limit: z.number().int().min(1).max(10_000).optional() }).strict(),
  memoryGet: z.object({ id: memoryId }).strict(),
  memoryForget: z.object({ id: memoryId }).strict(),
  memoryHistory: z.object({ id: memoryId }).strict(),
  memoryConsolidate: z.object({ ...scopeParams, dryRun: z.boolean().optional(), limit: z.number().int().min(1).max(100_000).optional() }).strict(),
  uiLogin: z.object({}).strict()
} as const

/** Name of a local API method. */
export type MethodName = keyof typeof methodParams

type Params<M extends MethodName> = z.infer<(typeof methodParams)[M]>

/** Parameters of the `watch` stream. */
export const watchParams = z.object({ collection, query: z.record(z.string(), z.unknown()).optional() }).strict()

/** One line of a `watch` stream: the result at first, then each change, as it happens. */
export type WatchLine =
  | { readonly type: 'initial', readonly docs: readonly JsonObject[] }
  | { readonly type: 'added' | 'changed' | 'removed', readonly id: string, readonly doc: JsonObject | null, readonly origin: 'local' | 'remote' }

/**
 * Starts a live query for a `watch` stream: `onLine` gets the current result, then every change
 * to it. Returns the function that stops it. Validates like every other method.
 */
export function startWatch (ctx: MethodContext, params: unknown, onLine: (line: WatchLine) => void): () => void {
  const parsed = watchParams.safeParse(params ?? {})
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    if (issue?.path.length === 1 && issue.path[0] === 'collection') throw InvalidCollectionNameError.of((params as { collection?: unknown }).collection)
    throw new InvalidOptionError(`watch: ${issue === undefined ? 'invalid parameters' : `${issue.path.join('.') || 'params'}: ${issue.message}`}`)
  }
  return ctx.node.collection(parsed.data.collection).watch(parsed.data.query ?? {}, ev => {
    if (ev.origin === 'initial') {
      onLine({ type: 'initial', docs: ev.docs })
      return
    }
    for (const c of ev.changes) onLine({ type: c.type === 'updated' ? 'changed' : c.type, id: c.id, doc: c.doc, origin: ev.origin })
  })
}

/** Extra context for methods run inside a daemon. */
export interface MethodContext {
  readonly node: PeakNode
  /** Daemon facts merged into `status` (API address, pid, uptime). */
  readonly daemon?: () => Record<string, unknown>
  /** A one-time login link to the daemon's web console. */
  readonly loginLink?: () => { url: string, expires: string }
}

const handlers: { [M in MethodName]: (ctx: MethodContext, p: Params<M>) => Promise<unknown> } = {
  status: async ({ node, daemon }) => ({ ...(await node.status()), running: daemon !== undefined, ...(daemon?.() ?? {}) }),
  put: async ({ node }, p) => {
    const c = node.collection(p.collection)
    if (Array.isArray(p.doc)) return await c.putMany(p.doc as object[])
    return await c.put(p.doc as object)
  },
  get: async ({ node }, p) => {
    const doc = await node.collection(p.collection).get(p.id)
    if (doc === null) throw new DocumentNotFoundError(`document ${JSON.stringify(p.id)} not found in collection ${p.collection}`)
    return doc
  },
  find: async ({ node }, p) => await node.collection(p.collection).find(p.query ?? {}),
  count: async ({ node }, p) => await node.collection(p.collection).count(p.where as Where | undefined),
  delete: async ({ node }, p) => await node.collection(p.collection).delete(p.id),
  collections: async ({ node }) => await node.collections(),
  createIndex: async ({ node }, p) => {
    await node.collection(p.collection).createIndex(p.field)
    return { collection: p.collection, field: p.field }
  },
  verify: async ({ node }, p) => await node.verify({ rebuild: p.rebuild ?? false }),
  peers: async ({ node }) => ({ connected: node.peers(), known: node.knownDevices(), online: node.network !== undefined }),
  sync: async ({ node }) => ({ peers: await node.syncNow(), status: await node.status() }),
  connect: async ({ node }, p) => await node.connect(p.addr),
  invite: async ({ node }, p) => await node.pairing.invite(p.ttl !== undefined ? { ttl: p.ttl } : {}),
  devices: async ({ node }) => node.devices.list(),
  revoke: async ({ node }, p) => await node.devices.revoke(p.device),
  profileGet: async ({ node }) => await node.profile.get(),
  profileSet: async ({ node }, p) => {
    await node.profile.set(p.fields as JsonObject)
    return await node.profile.get()
  },
  setPassphrase: async ({ node }, p) => {
    await node.setPassphrase(p.passphrase ?? undefined)
    return { protected: p.passphrase !== null }
  },
  search: async ({ node }, p) => {
    const r = await node.collection(p.collection).search({
      text: p.text,
      ...(p.k !== undefined ? { k: p.k } : {}),
      ...(p.where !== undefined ? { where: p.where as Where } : {}),
      ...(p.mode !== undefined ? { mode: p.mode as SearchMode } : {}),
      ...(p.drain !== undefined ? { drain: p.drain } : {})
    })
    return { hits: [...r], pending: r.pending }
  },
  swarmSearch: async ({ node }, p) => {
    const r = await node.swarm.search({
      collection: p.collection,
      text: p.text,
      ...(p.k !== undefined ? { k: p.k } : {}),
      ...(p.where !== undefined ? { where: p.where as Where } : {}),
      ...(p.mode !== undefined ? { mode: p.mode as SearchMode } : {}),
      ...(p.timeout !== undefined ? { timeout: p.timeout } : {})
    })
    return { ...r, online: node.network !== undefined }
  },
  indexFolder: async ({ node }, p) => await node.files.index(p.path, { ...(p.collection !== undefined ? { collection: p.collection } : {}), ...(p.wait !== undefined ? { waitForIndex: p.wait } : {}) }),
  folderProgress: async ({ node }) => ({ progress: node.files.progress() ?? null }),
  watchFolder: async ({ node, daemon }, p) => {
    if (daemon === undefined) throw new InvalidOptionError('watching a folder needs a running daemon (peakdb start), or `peakdb index <folder> --watch` in the foreground')
    const root = resolve(p.path)
    const list = (await watchedFolders(node)).filter(w => w.root !== root)
    list.push({ root, collection: p.collection ?? 'files' })
    await node.storage.setMeta(WATCHED_META, JSON.stringify(list))
    node.files.unwatch(root)
    const w = node.files.watch(root, p.collection !== undefined ? { collection: p.collection } : {})
    return await w.ready
  },
  unwatchFolder: async ({ node }, p) => {
    const root = resolve(p.path)
    const list = await watchedFolders(node)
    await node.storage.setMeta(WATCHED_META, JSON.stringify(list.filter(w => w.root !== root)))
    node.files.unwatch(root)
    return { root, watched: list.some(w => w.root === root) }
  },
  watchedFolders: async ({ node }) => await watchedFolders(node),
  setEmbed: async ({ node }, p) => {
    const c = node.collection(p.collection)
    const changed = await c.setEmbed(p.embed)
    return { collection: p.collection, embed: p.embed, changed, pending: await c.pendingIndex() }
  },
  indexStatus: async ({ node }, p) => ({
    pending: await node.storage.indexQueueCount(p.collection),
    ...(p.collection !== undefined ? { embed: await node.collection(p.collection).embedSetting() } : {})
  }),
  indexDrain: async ({ node }, p) => ({
    pending: await node.indexer.drain(p.collection, p.budgetMs !== undefined ? { signal: AbortSignal.timeout(p.budgetMs) } : {})
  }),
  providers: async ({ node }) => await node.providers(),
  moveCollection: async ({ node }, p) => {
    let byNode = moves.get(node)
    if (byNode === undefined) moves.set(node, byNode = new Map())
    const running = byNode.get(p.collection)
    if (running !== undefined && !running.finished) throw new InvalidOptionError(`collection ${p.collection} is already moving to ${running.provider}`)
    const state: MoveState = { collection: p.collection, provider: p.provider, done: 0, total: 0, finished: false }
    byNode.set(p.collection, state)
    void node.moveCollection(p.collection, p.provider, { onProgress: (done, total) => { state.done = done; state.total = total } }).then(
      () => { state.finished = true },
      (err: Error) => { state.finished = true; state.error = { name: err.name, message: err.message } })
    return state
  },
  setPolicy: async ({ node }, p) => await node.setCollectionPolicy(p.collection, {
    ...(p.ttlMs !== undefined ? { ttlMs: p.ttlMs } : {}),
    ...(p.maxBytes !== undefined ? { maxBytes: p.maxBytes } : {})
  }),
  policy: async ({ node }, p) => (await node.collectionPolicy(p.collection)) ?? null,
  setPlacement: async ({ node }, p) => await node.placement.setPolicy(p.collection, {
    ...(p.replicas !== undefined ? { replicas: p.replicas } : {}),
    ...(p.pin !== undefined ? { pin: p.pin } : {})
  }),
  placement: async ({ node }) => await node.placement.report(),
  adopt: async ({ node }, p) => {
    await node.adopt(p.collection, p.table, p.provider !== undefined ? { provider: p.provider } : {})
    return { collection: p.collection, table: p.table, provider: p.provider ?? 'primary' }
  },
  schema: async ({ node }, p) => await node.describeSchema(defined(p)),
  schemaTypes: async ({ node }, p) => {
    const { all: includeAll, ...which } = p
    const all = includeAll === true
    const d = await node.describeSchema(defined(which))
    return { source: generateRowTypes(d, { includePeakdb: all }), tables: d.tables.filter(t => all || !t.peakdb).length }
  },
  memoryRemember: async ({ node }, p) => {
    const { content, agent, session, ...rest } = p
    const id = await node.memory.remember(content, { ...defined(rest), ...scopeOf(agent, session) })
    return await node.memory.get(id)
  },
  memoryRecall: async ({ node }, p) => {
    const { query, agent, session, where, ...rest } = p
    return await node.memory.recall(query, { ...defined(rest), ...scopeOf(agent, session), ...(where !== undefined ? { where: where as Where } : {}) })
  },
  memoryList: async ({ node }, p) => {
    const { agent, session, ...rest } = p
    return await node.memory.list({ ...defined(rest), ...scopeOf(agent, session) })
  },
  memoryGet: async ({ node }, p) => {
    const m = await node.memory.get(p.id)
    if (m === null) throw new DocumentNotFoundError(`no memory ${JSON.stringify(p.id)} on this device`)
    return m
  },
  memoryForget: async ({ node }, p) => ({ id: p.id, forgotten: await node.memory.forget(p.id) }),
  memoryHistory: async ({ node }, p) => await node.memory.history(p.id),
  memoryConsolidate: async ({ node }, p) => {
    const { agent, session, ...rest } = p
    return await node.memory.consolidate({ ...defined(rest), ...scopeOf(agent, session) })
  },
  uiLogin: async ({ loginLink }) => {
    if (loginLink === undefined) throw new InvalidOptionError('the web console is served by a running daemon: start one with `peakdb start`')
    return loginLink()
  },
  moveStatus: async ({ node }, p) => {
    const state = moves.get(node)?.get(p.collection)
    if (state === undefined) throw new InvalidOptionError(`collection ${p.collection} is not moving`)
    return state
  }
}

/** zod leaves absent options undefined; the node's options are absent instead: drops the undefined ones. */
function defined<T extends Record<string, unknown>> (o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> }
}

/** A memory scope from optional agent and session, or nothing. */
function scopeOf (agent: string | undefined, session: string | undefined): { scope?: { agent?: string, session?: string } } {
  const scope = defined({ agent, session })
  return Object.keys(scope).length > 0 ? { scope } : {}
}

/** A collection moving to another provider in the daemon (moveCollection, moveStatus). */
interface MoveState {
  readonly collection: string
  readonly provider: string
  done: number
  total: number
  finished: boolean
  error?: { name: string, message: string }
}

const moves = new WeakMap<PeakNode, Map<string, MoveState>>()

/** Storage meta key of the folders the daemon watches (JSON array of { root, collection }). */
export const WATCHED_META = 'watched-folders'

/** The folders the daemon keeps indexed. */
export async function watchedFolders (node: PeakNode): Promise<Array<{ root: string, collection: string }>> {
  try {
    return JSON.parse(await node.storage.getMeta(WATCHED_META) ?? '[]') as Array<{ root: string, collection: string }>
  } catch {
    return []
  }
}

/** True when `name` is a method of the local API. */
export function isMethod (name: string): name is MethodName {
  return Object.prototype.hasOwnProperty.call(methodParams, name)
}

/** Validates parameters and runs a method. Throws {@link InvalidOptionError} for bad parameters. */
export async function callMethod (ctx: MethodContext, name: string, params: unknown): Promise<unknown> {
  if (!isMethod(name)) throw new InvalidOptionError(`unknown method ${JSON.stringify(name.slice(0, 64))}`)
  const parsed = methodParams[name].safeParse(params ?? {})
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    // the same error, stating the same rule, as the node gives for a bad name
    if (issue?.path.length === 1 && issue.path[0] === 'collection') throw InvalidCollectionNameError.of((params as { collection?: unknown }).collection)
    throw new InvalidOptionError(`${name}: ${issue === undefined ? 'invalid parameters' : `${issue.path.join('.') || 'params'}: ${issue.message}`}`)
  }
  const handler = handlers[name] as (ctx: MethodContext, p: unknown) => Promise<unknown>
  return await handler(ctx, parsed.data)
}
