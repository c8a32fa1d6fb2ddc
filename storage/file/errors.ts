/**
 * Typed errors of the file provider. Each class has a stable `name` and `code`; nothing is
 * written when one is thrown.
 */
import { StorageCorruptError } from '../errors.js'

/** A write or policy names a collection that is not device-local (its name lacks `~`). */
export class NotDeviceLocalError extends Error {
  static readonly code = 'ERR_NOT_DEVICE_LOCAL'
  override readonly name = 'NotDeviceLocalError'
  readonly code = NotDeviceLocalError.code
}

/** A document id or body that cannot be stored: not a string id, or a body that is not plain JSON. */
export class InvalidBodyError extends Error {
  static readonly code = 'ERR_INVALID_BODY'
  override readonly name = 'InvalidBodyError'
  readonly code = InvalidBodyError.code
}

/** An open option or a collection policy with a value out of range. */
export class InvalidOptionError extends Error {
  static readonly code = 'ERR_INVALID_OPTION'
  override readonly name = 'InvalidOptionError'
  readonly code = InvalidOptionError.code
}

/** A single document is larger than its collection's whole byte budget. */
export class OverBudgetError extends Error {
  static readonly code = 'ERR_OVER_BUDGET'
  override readonly name = 'OverBudgetError'
  readonly code = OverBudgetError.code
}

/**
 * The store's files are not a readable file store. A {@link StorageCorruptError} (same name and
 * code) whose message gives the file store's way out.
 */
export class FileStoreCorruptError extends StorageCorruptError {
  constructor (path: string, reason: string, options?: { cause?: unknown }) {
    super(path, reason)
    this.message = `file store ${path} is corrupt or not a PeakDB file store: ${reason}. It was left untouched. It holds device-local collections only: move the directory away to start with an empty store, or restore a backup`
    if (options?.cause !== undefined) this.cause = options.cause
  }
}
