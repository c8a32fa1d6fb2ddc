/**
 * The user's profile and preferences: one replicated, encrypted document (system collection
 * `_profile`), the same on every device.
 */
import type { JsonObject } from '../crdt/index.js'
import type { Collection, WriteResult } from './collection.js'

const PROFILE_ID = 'me'

/** The user's profile. */
export class Profile {
  constructor (private readonly collection: Collection) {}

  /** The profile's fields (empty when never set). */
  async get (): Promise<JsonObject> {
    const doc = await this.collection.get(PROFILE_ID)
    if (doc === null) return {}
    const { _id: _ignored, ...fields } = doc
    return fields
  }

  /**
   * Sets some fields and keeps the others (`{ name: 'Ada', preferences: { theme: 'dark' } }`).
   *
   * @example
   * ```ts
   * await node.profile.set({ name: 'Ada' })
   * ```
   */
  async set (fields: JsonObject): Promise<WriteResult> {
    // always a patch, even the first time: two devices setting the profile for the first time
    // concurrently keep both their fields
    return await this.collection.patch(PROFILE_ID, fields, { upsert: true })
  }

  /** Replaces the whole profile. */
  async replace (fields: JsonObject): Promise<WriteResult> {
    return await this.collection.put({ ...fields, _id: PROFILE_ID })
  }
}
