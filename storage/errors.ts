/**
 * Typed errors of the storage layer. Each class has a stable `name` and `code`.
 */

/** The database file is not a database, is truncated, or fails an integrity check. */
export class StorageCorruptError extends Error {
  static readonly code = 'ERR_STORAGE_CORRUPT'
  override readonly name = 'StorageCorruptError'
  readonly code = StorageCorruptError.code
  constructor (readonly path: string, reason: string) {
    super(`database ${path} is corrupt or not a PeakDB database: ${reason}. It was left untouched. To recover, move it away (with its -wal and -shm files) and start again: this device then continues under a new DeviceId and resyncs from your other devices; or restore a backup`)
  }
}

/** The database was written by a newer PeakDB (its schema version is unknown here). */
export class SchemaVersionError extends Error {
  static readonly code = 'ERR_SCHEMA_VERSION'
  override readonly name = 'SchemaVersionError'
  readonly code = SchemaVersionError.code
}

/** A query is malformed: unknown operator, bad field path, wrong value type. */
export class InvalidQueryError extends Error {
  static readonly code = 'ERR_INVALID_QUERY'
  override readonly name = 'InvalidQueryError'
  readonly code = InvalidQueryError.code
}

/** The provider was used after close(). */
export class StorageClosedError extends Error {
  static readonly code = 'ERR_STORAGE_CLOSED'
  override readonly name = 'StorageClosedError'
  readonly code = StorageClosedError.code
}

/** A storage server cannot be reached, or refuses this node (credentials, missing extension). */
export class StorageUnavailableError extends Error {
  static readonly code = 'ERR_STORAGE_UNAVAILABLE'
  override readonly name = 'StorageUnavailableError'
  readonly code = StorageUnavailableError.code
}

/** Another process holds the store (its schema lock on a shared server). */
export class StorageBusyError extends Error {
  static readonly code = 'ERR_STORAGE_BUSY'
  override readonly name = 'StorageBusyError'
  readonly code = StorageBusyError.code
}

/** A query would need two providers at once (its collections live in different databases). */
export class CrossProviderError extends Error {
  static readonly code = 'ERR_CROSS_PROVIDER'
  override readonly name = 'CrossProviderError'
  readonly code = CrossProviderError.code
}

/** A provider is unknown, or cannot do what was asked (search on a documents-only provider). */
export class ProviderCapabilityError extends Error {
  static readonly code = 'ERR_PROVIDER_CAPABILITY'
  override readonly name = 'ProviderCapabilityError'
  readonly code = ProviderCapabilityError.code
}

/** A value does not fit a column of an adopted table (or the table cannot be adopted): names the column and the type. */
export class ColumnTypeError extends Error {
  static readonly code = 'ERR_COLUMN_TYPE'
  override readonly name = 'ColumnTypeError'
  readonly code = ColumnTypeError.code
}
