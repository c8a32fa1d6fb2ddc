/**
 * State digests, the same on every provider: a digest per replicated collection (its documents'
 * merge states in id order), and a node's digest over those, in name order. Two stores that
 * materialised the same entries have equal digests, however their collections are spread over
 * providers.
 */
import { createHash, type Hash } from 'node:crypto'
import { canonicalDocState, docStateFromRow, type DocRow, type JsonObject } from '../crdt/index.js'

/** Hashes rows ordered by collection, then id (code-point order), into one digest per collection. */
export class CollectionDigester {
  private readonly out = new Map<string, string>()
  private current: { name: string, hash: Hash } | undefined

  add (collection: string, id: string, body: string | null, meta: string): void {
    if (this.current?.name !== collection) {
      this.flush()
      this.current = { name: collection, hash: createHash('sha256') }
    }
    const state = docStateFromRow({ body: body === null ? null : JSON.parse(body) as JsonObject, meta: JSON.parse(meta) as DocRow['meta'] })
    this.current.hash.update(`${id}\0${canonicalDocState(state)}\n`)
  }

  private flush (): void {
    if (this.current !== undefined) this.out.set(this.current.name, this.current.hash.digest('hex'))
    this.current = undefined
  }

  /** The digests, by collection. */
  done (): Map<string, string> {
    this.flush()
    return this.out
  }
}

/** A node's state digest from its collections' digests. */
export function combineDigests (collections: ReadonlyMap<string, string>): string {
  const hash = createHash('sha256')
  for (const name of [...collections.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) hash.update(`${name}\0${collections.get(name) as string}\n`)
  return hash.digest('hex')
}
