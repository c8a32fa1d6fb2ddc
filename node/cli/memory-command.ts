/**
 * `peakdb memory …`: agent memory from the command line (add, recall, list, forget, history,
 * consolidate), through the daemon when one runs, else on the data dir directly. `peakdb mcp`
 * serves the same to agents over the Model Context Protocol.
 */
import { InvalidArgumentError, type Command } from 'commander'
import type { ConsolidationResult, MemoryRecord, MemoryVersion, RecallHit } from '../memory/memory.js'
import { emit } from './output.js'

/** What the memory commands need from the program. */
export interface MemoryCommandDeps {
  readonly globals: (cmd: Command) => { dir: string, json: boolean, passphraseFile?: string }
  readonly call: (g: { dir: string, json: boolean, passphraseFile?: string }, method: string, params: unknown) => Promise<unknown>
  readonly duration: (name: string, min: number, max: number) => (value: string) => number
}

function positiveInt (name: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} expects a whole number >= 1`)
    return n
  }
}

function isoOption (name: string) {
  return (value: string): string => {
    const t = Date.parse(value)
    if (!Number.isFinite(t)) throw new InvalidArgumentError(`${name} expects an ISO 8601 time, e.g. 2025-03-01 or 2025-03-01T12:00:00Z`)
    return new Date(t).toISOString()
  }
}

function collect (value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** One memory as a line: id, kind, validity, content. */
function memoryLine (m: MemoryRecord): string {
  const when = m.kind === 'knowledge'
    ? `valid ${m.validFrom ?? m.recordedAt}${m.invalidFrom !== undefined ? ` until ${m.invalidFrom}` : ''}${m.mergedInto !== undefined ? `, merged into ${m.mergedInto}` : ''}`
    : `${m.agent ?? 'default'}/${m.session ?? 'default'}, expires ${m.expiresAt ?? '?'}`
  return `${m.id}  ${m.kind.padEnd(9)}  ${m.content}  (${when})`
}

function scope (opts: { agent?: string, session?: string }): Record<string, string> {
  return { ...(opts.agent !== undefined ? { agent: opts.agent } : {}), ...(opts.session !== undefined ? { session: opts.session } : {}) }
}

export function addMemoryCommand (program: Command, deps: MemoryCommandDeps): void {
  const { globals, call } = deps
  const memory = program.command('memory')
    .description('agent memory: short-term context (this device) and long-term knowledge (every device)')

  memory.command('add')
    .description('remember a text: context by default (scoped, expiring, this device), --knowledge for a long-term fact')
    .argument('<text>', 'what to remember')
    .option('--knowledge', 'a long-term fact, replicated to every device and kept until forgotten')
    .option('--agent <name>', 'the agent it belongs to (default "default")')
    .option('--session <name>', 'context: the session it belongs to (default "default")')
    .option('--entity <name>', 'what it is about (repeat for several; default: the capitalised names in the text)', collect)
    .option('--attribute <name>', 'knowledge: which property of the entity it states (city, employer); a newer fact with the same one replaces it')
    .option('--source <text>', 'where it came from (kept as provenance)')
    .option('--valid-from <time>', 'knowledge: when it became true (ISO 8601; default now)', isoOption('--valid-from'))
    .option('--ttl <duration>', 'context: how long to keep it, e.g. 30m, 2h, 7d (default 24h)', deps.duration('--ttl', 1000, 31_536_000_000))
    .action(async (text: string, opts: { knowledge?: boolean, agent?: string, session?: string, entity?: string[], attribute?: string, source?: string, validFrom?: string, ttl?: number }, cmd: Command) => {
      const g = globals(cmd)
      const m = await call(g, 'memoryRemember', {
        content: text,
        kind: opts.knowledge === true ? 'knowledge' : 'context',
        ...scope(opts),
        ...(opts.entity !== undefined ? { entities: opts.entity } : {}),
        ...(opts.attribute !== undefined ? { attribute: opts.attribute } : {}),
        ...(opts.source !== undefined ? { source: opts.source } : {}),
        ...(opts.validFrom !== undefined ? { validFrom: opts.validFrom } : {}),
        ...(opts.ttl !== undefined ? { ttl: opts.ttl } : {})
      }) as MemoryRecord
      emit(g.json, m, () => `remembered ${m.id} (${m.kind}${m.entities.length > 0 ? `, about ${m.entities.join(', ')}` : ''})`)
    })

  memory.command('recall')
    .description('the memories that best match a query: current facts and live context, best first')
    .argument('<query>', 'what to recall')
    .option('--k <n>', 'number of results (default 10, at most 100)', positiveInt('--k'))
    .option('--as-of <time>', 'the facts valid at this time (ISO 8601) instead of the current ones', isoOption('--as-of'))
    .option('--kind <kind>', 'only context or only knowledge')
    .option('--agent <name>', 'context of this agent only')
    .option('--session <name>', 'context of this session only')
    .option('--swarm', 'also the context of the other online devices (through the running daemon)')
    .action(async (query: string, opts: { k?: number, asOf?: string, kind?: string, agent?: string, session?: string, swarm?: boolean }, cmd: Command) => {
      const g = globals(cmd)
      const hits = await call(g, 'memoryRecall', {
        query,
        ...(opts.k !== undefined ? { k: opts.k } : {}),
        ...(opts.asOf !== undefined ? { asOf: opts.asOf } : {}),
        ...(opts.kind !== undefined ? { kinds: [opts.kind] } : {}),
        ...scope(opts),
        ...(opts.swarm === true ? { swarm: true } : {})
      }) as RecallHit[]
      emit(g.json, hits, () => hits.length === 0
        ? '(nothing recalled)'
        : hits.map((h, i) => `${String(i + 1).padStart(2)}. ${h.score.toFixed(3)}  ${memoryLine(h.memory)}${h.device !== undefined ? `  [device ${h.device}]` : ''}`).join('\n'))
    })

  memory.command('list')
    .description('memories, newest first (current facts and live context unless --all)')
    .option('--kind <kind>', 'context or knowledge')
    .option('--agent <name>', 'context of this agent')
    .option('--session <name>', 'context of this session')
    .option('--entity <name>', 'about this entity')
    .option('--all', 'also facts merged away or no longer valid, and expired context')
    .option('--limit <n>', 'at most (default 100)', positiveInt('--limit'))
    .action(async (opts: { kind?: string, agent?: string, session?: string, entity?: string, all?: boolean, limit?: number }, cmd: Command) => {
      const g = globals(cmd)
      const list = await call(g, 'memoryList', {
        ...(opts.kind !== undefined ? { kind: opts.kind } : {}),
        ...scope(opts),
        ...(opts.entity !== undefined ? { entity: opts.entity } : {}),
        ...(opts.all === true ? { all: true } : {}),
        ...(opts.limit !== undefined ? { limit: opts.limit } : {})
      }) as MemoryRecord[]
      emit(g.json, list, () => list.length === 0 ? '(no memories)' : list.map(memoryLine).join('\n'))
    })

  memory.command('forget')
    .description('forget a memory: gone from every device (knowledge) with the content of its history')
    .argument('<id>', 'the memory id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'memoryForget', { id }) as { id: string, forgotten: boolean }
      emit(g.json, r, () => r.forgotten ? `forgot ${id}` : `no memory ${id} (nothing to forget)`)
    })

  memory.command('history')
    .description('every version of a memory and why it changed')
    .argument('<id>', 'the memory id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const g = globals(cmd)
      const versions = await call(g, 'memoryHistory', { id }) as MemoryVersion[]
      emit(g.json, versions, () => versions.map(v => `${v.at}  ${v.change.padEnd(11)}  ${v.reason}${v.content !== undefined ? `: ${v.content}` : ''}`).join('\n'))
    })

  memory.command('consolidate')
    .description('promote recalled or repeated context to knowledge, merge duplicate facts, retire contradicted ones (never deleting)')
    .option('--dry-run', 'show the planned promotions, merges and invalidations; change nothing')
    .option('--agent <name>', 'promote only this agent\'s context')
    .option('--session <name>', 'promote only this session\'s context')
    .action(async (opts: { dryRun?: boolean, agent?: string, session?: string }, cmd: Command) => {
      const g = globals(cmd)
      const r = await call(g, 'memoryConsolidate', { ...scope(opts), ...(opts.dryRun === true ? { dryRun: true } : {}) }) as ConsolidationResult
      emit(g.json, r, () => [
        `${r.dryRun ? 'would consolidate' : 'consolidated'} ${r.examined} new fact(s) with the ${r.decider} decider in ${Math.round(r.ms)} ms`,
        ...r.promotions.map(p => `  promote  ${p.fact} <- ${p.from.join(', ')}: ${p.content}`),
        ...r.merges.map(m => `  merge    ${m.from} into ${m.into}: ${m.content}`),
        ...r.invalidations.map(i => `  retire   ${i.id} (valid until ${i.at}, contradicted by ${i.by}): ${i.content}`),
        ...(r.expired.length > 0 ? [`  expired  ${r.expired.length} context item(s)${r.dryRun ? ' would be' : ''} removed`] : []),
        ...(r.promotions.length + r.merges.length + r.invalidations.length === 0 ? ['  (nothing to change)'] : [])
      ].join('\n'))
    })
}
