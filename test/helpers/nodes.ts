/**
 * Real PeakDB nodes on 127.0.0.1 for tests: temp data dirs, one swarm (one recovery phrase),
 * libp2p listening on loopback. Everything is closed by `close()`.
 */
import assert from 'node:assert/strict'
import { PeakNode, type PeakNodeOptions } from '../../node/index.js'
import type { TestDatabase } from './postgres.js'
import { TmpDirs } from './tmp-dir.js'
import { hashEmbedder } from './embedders.js'
import { waitFor } from './wait-for.js'

export const LOOPBACK = ['/ip4/127.0.0.1/tcp/0']

/** A group of nodes of one swarm and their data dirs. */
export class TestSwarm {
  readonly nodes: PeakNode[] = []
  readonly dirs = new TmpDirs()
  phrase: string | undefined
  private added = 0

  /**
   * `postgres`: every second node the swarm creates (the 2nd, 4th, ...) stores on PostgreSQL,
   * in a schema of its own in that database; the others on SQLite.
   */
  constructor (private readonly options: { postgres?: TestDatabase } = {}) {}

  /** Opens a new node of the swarm (the first creates the identity), on the network. */
  async add (options: Partial<PeakNodeOptions> = {}): Promise<PeakNode> {
    const dir = options.dir ?? this.dirs.make('peakdb-node-')
    const pg = this.options.postgres
    const storage = pg !== undefined && options.dir === undefined && this.added++ % 2 === 1 ? { storage: await pg.url() } : {}
    const node = await PeakNode.open({
      dir,
      ...storage,
      ...(this.phrase !== undefined ? { recoveryPhrase: this.phrase } : {}),
      network: { listen: LOOPBACK, dht: false },
      // a cheap deterministic embedder: these tests are about replication, not the model
      embedder: hashEmbedder(),
      ...options
    })
    this.phrase ??= node.recoveryPhrase
    this.nodes.push(node)
    return node
  }

  /** Reopens a closed node on its data dir. */
  async reopen (node: PeakNode, options: Partial<PeakNodeOptions> = {}): Promise<PeakNode> {
    const i = this.nodes.indexOf(node)
    if (!node.isClosed) await node.close()
    const again = await PeakNode.open({ dir: node.dir, network: { listen: LOOPBACK, dht: false }, embedder: hashEmbedder(), ...options })
    if (i >= 0) this.nodes[i] = again
    else this.nodes.push(again)
    return again
  }

  async close (): Promise<void> {
    for (const n of this.nodes.splice(0)) await n.close().catch(() => {})
    this.dirs.cleanup()
  }
}

/** Connects `b` to `a` and waits until both verified each other. */
export async function connect (a: PeakNode, b: PeakNode): Promise<void> {
  const addr = a.network?.multiaddrs()[0]
  assert.ok(addr !== undefined, 'node a is not on the network')
  await b.network?.dial(addr)
  await waitFor(() => a.peers().some(p => p.device === b.deviceId && p.verified) && b.peers().some(p => p.device === a.deviceId && p.verified), { timeoutMs: 10_000, message: `${b.deviceName} and ${a.deviceName} to verify each other` })
}

/** Cuts every connection between `a` and `b`. */
export async function disconnect (a: PeakNode, b: PeakNode): Promise<void> {
  await a.network?.hangUp(b.deviceId)
  await b.network?.hangUp(a.deviceId)
}

/** Waits until every node holds the same log heads and the same documents. */
export async function waitForConvergence (nodes: readonly PeakNode[], timeoutMs = 20_000): Promise<void> {
  try {
    await converged(nodes, timeoutMs)
  } catch (err) {
    // say where each node stands: a timeout alone does not tell which part is stuck
    const states = await Promise.all(nodes.map(async n => `${n.deviceName} ${n.deviceId.slice(-6)}: vv ${JSON.stringify(Object.fromEntries([...n.log.versionVector()].map(([k, v]) => [k.slice(-6), v])))} pending ${await n.log.pendingCount()} peers ${n.peers().map(p => `${p.device.slice(-6)}${p.verified ? '' : '?'}`).join(',')}`))
    throw new Error(`${(err as Error).message}\n  ${states.join('\n  ')}`, { cause: err })
  }
}

async function converged (nodes: readonly PeakNode[], timeoutMs: number): Promise<void> {
  await waitFor(async () => {
    const v0 = JSON.stringify([...nodes[0]!.log.versionVector()].sort())
    if (!nodes.every(n => JSON.stringify([...n.log.versionVector()].sort()) === v0)) return false
    const digests = await Promise.all(nodes.map(n => n.storage.stateDigest()))
    if (!digests.every(d => d === digests[0])) return false
    const pending = await Promise.all(nodes.map(n => n.log.pendingCount()))
    return pending.every(p => p === 0)
  }, { timeoutMs, message: `${nodes.length} nodes to converge` })
}
