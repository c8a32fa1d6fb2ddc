/**
 * The daemon's configuration file (`<dir>/config.json`, or `--config <path>`), validated with a
 * zod schema. Command-line flags override it.
 *
 * ```json
 * { "listen": ["/ip4/0.0.0.0/tcp/4011"], "bootstrap": ["/ip4/192.0.2.7/tcp/4011/p2p/12D3KooW..."],
 *   "mdns": true, "dht": true, "apiPort": 5011, "confirmations": 1,
 *   "embedder": { "kind": "ollama", "url": "http://127.0.0.1:11434", "model": "nomic-embed-text" },
 *   "storage": "postgres://peakdb@db.example/peak",
 *   "providers": { "warehouse": { "kind": "postgres", "url": "postgres://peakdb@db.example/peak" }, "scratch": { "kind": "file" } },
 *   "routes": { "events": "warehouse", "tmp.*": "scratch" } }
 * ```
 */
import { existsSync, readFileSync } from 'node:fs'
import { z } from 'zod'
import { join } from 'node:path'
import { InvalidOptionError } from '../errors.js'
import type { PeakNodeOptions } from '../peak-node.js'
import { createHttpEmbedder } from '../embedding/http-embedder.js'
import { providersSchema, routesSchema, storageSchema, type ProviderSpec } from '../storage-binding.js'

const multiaddrText = z.string().min(1).max(1024).refine(s => s.startsWith('/'), 'expected a multiaddr starting with /')

export const configSchema = z.object({
  listen: z.array(multiaddrText).max(32).optional(),
  bootstrap: z.array(multiaddrText).max(256).optional(),
  relays: z.array(multiaddrText).max(16).optional(),
  relay: z.boolean().optional(),
  announce: z.array(multiaddrText).max(16).optional(),
  upnp: z.boolean().optional(),
  mdns: z.boolean().optional(),
  dht: z.boolean().optional(),
  apiPort: z.number().int().min(0).max(65535).optional(),
  confirmations: z.number().int().min(0).max(1000).optional(),
  deviceName: z.string().min(1).max(64).optional(),
  /** Where the log and documents live, read at the first start: "sqlite" (default) or a postgres:// connection string. */
  storage: storageSchema.optional(),
  /** Named providers collections can be routed to: `{ "warehouse": { "kind": "postgres", "url": "postgres://..." } }`. */
  providers: providersSchema.optional(),
  /** Collection names or `prefix*` patterns to provider names: `{ "events": "warehouse", "tmp.*": "scratch" }`. */
  routes: routesSchema.optional(),
  /** The embedder for search by meaning: the built-in offline model, or an endpoint you run. */
  embedder: z.union([
    z.object({ kind: z.literal('default') }).strict(),
    z.object({ kind: z.enum(['openai', 'ollama']), url: z.string().url(), model: z.string().min(1).max(256), apiKey: z.string().max(1024).optional() }).strict()
  ]).optional()
}).strict()

/** Daemon settings from the configuration file. */
export type DaemonConfig = z.infer<typeof configSchema>

/** Reads a configuration file: `{}` when `path` is the default and missing. */
export function readConfig (path: string, explicit: boolean): DaemonConfig {
  if (!existsSync(path)) {
    if (explicit) throw new InvalidOptionError(`config file ${path} does not exist`)
    return {}
  }
  let value: unknown
  try {
    value = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new InvalidOptionError(`config file ${path} is not valid JSON: ${(err as Error).message}`)
  }
  let parsed: ReturnType<typeof configSchema.safeParse>
  try {
    parsed = configSchema.safeParse(value)
  } catch (err) {
    // zod's length checks throw on an object such as {"length": {"toString": 0}}
    throw new InvalidOptionError(`config file ${path} does not validate: ${(err as Error).message}`, { cause: err })
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new InvalidOptionError(`config file ${path}: ${issue === undefined ? 'invalid' : `${issue.path.join('.') || '(root)'}: ${issue.message}`}`)
  }
  return parsed.data
}

/** The node option for the configured embedder (undefined: the built-in offline model). */
export function configuredEmbedder (config: DaemonConfig): PeakNodeOptions['embedder'] {
  const e = config.embedder
  if (e === undefined || e.kind === 'default') return undefined
  return async () => await createHttpEmbedder({ url: e.url, model: e.model, kind: e.kind, ...(e.apiKey !== undefined ? { apiKey: e.apiKey } : {}) })
}

/** The node options for the configured providers and routes. */
export function configuredRouting (config: DaemonConfig): Pick<PeakNodeOptions, 'providers' | 'routes'> {
  return {
    ...(config.providers !== undefined ? { providers: config.providers as Record<string, ProviderSpec> } : {}),
    ...(config.routes !== undefined ? { routes: config.routes } : {})
  }
}

/** The configuration of a data dir (`<dir>/config.json`), or `{}`. */
export function dataDirConfig (dir: string): DaemonConfig {
  return readConfig(join(dir, 'config.json'), false)
}
