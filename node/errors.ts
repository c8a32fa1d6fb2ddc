/**
 * Typed errors of the node API: each is a failure the caller can act on, with a stable `name`
 * and `code`. Errors of the lower layers (identity, crdt, storage) pass through unchanged.
 */

/** A collection name is not valid. */
export class InvalidCollectionNameError extends Error {
  static readonly code = 'ERR_INVALID_COLLECTION_NAME'
  /** What a collection name may be, as every message about one states it. */
  static readonly rule = 'expected a letter, then up to 63 letters, digits, "_", "-" or "."'
  override readonly name = 'InvalidCollectionNameError'
  readonly code = InvalidCollectionNameError.code

  /** The error for `name`, quoting it (shortened) and stating the rule. */
  static of (name: unknown): InvalidCollectionNameError {
    const quoted = typeof name === 'string' ? JSON.stringify(name.length > 80 ? `${name.slice(0, 77)}...` : name) + (name.length > 64 ? ` (${name.length} characters)` : '') : name === undefined ? 'missing' : `of type ${name === null ? 'null' : typeof name}`
    return new InvalidCollectionNameError(`collection name ${quoted} is invalid: ${InvalidCollectionNameError.rule}`)
  }
}

/** A document is not a JSON object of valid fields, or its `_id` is invalid. */
export class InvalidDocumentError extends Error {
  static readonly code = 'ERR_INVALID_DOCUMENT'
  override readonly name = 'InvalidDocumentError'
  readonly code = InvalidDocumentError.code
}

/** A document (or a batch) is over the documented size cap. */
export class DocumentTooLargeError extends Error {
  static readonly code = 'ERR_DOCUMENT_TOO_LARGE'
  override readonly name = 'DocumentTooLargeError'
  readonly code = DocumentTooLargeError.code
}

/** The document does not exist (for operations that need it to). */
export class DocumentNotFoundError extends Error {
  static readonly code = 'ERR_DOCUMENT_NOT_FOUND'
  override readonly name = 'DocumentNotFoundError'
  readonly code = DocumentNotFoundError.code
}

/** An option or argument is invalid. */
export class InvalidOptionError extends Error {
  static readonly code = 'ERR_INVALID_OPTION'
  override readonly name = 'InvalidOptionError'
  readonly code = InvalidOptionError.code
}

/** A request to the daemon's local API or console is over its size cap. */
export class TooLargeError extends Error {
  static readonly code = 'ERR_TOO_LARGE'
  override readonly name = 'TooLargeError'
  readonly code = TooLargeError.code
}

/** The node was used after close(). */
export class NodeClosedError extends Error {
  static readonly code = 'ERR_NODE_CLOSED'
  override readonly name = 'NodeClosedError'
  readonly code = NodeClosedError.code
}

/** Another process holds the data dir. */
export class DataDirLockedError extends Error {
  static readonly code = 'ERR_DATA_DIR_LOCKED'
  override readonly name = 'DataDirLockedError'
  readonly code = DataDirLockedError.code
  /**
   * @param holder - what holds it: a long-running owner (`peakdb start`, an application) or a
   * short-lived CLI command
   * @param message - replaces the default message
   */
  constructor (readonly dir: string, readonly pid: number, readonly holder: 'daemon' | 'command' = 'daemon', message?: string) {
    super(message ?? (holder === 'daemon'
      ? `data dir ${dir} is in use: a daemon (pid ${pid}) already runs on this dir (\`peakdb start\` or an application); stop it or talk to it through the CLI`
      : `data dir ${dir} is in use by a short-lived command (pid ${pid}); try again when it ends`))
  }
}

/**
 * A daemon is starting on the data dir: a short-lived command steps aside and uses the daemon's
 * local API once it is up.
 */
export class DaemonStartingError extends Error {
  static readonly code = 'ERR_DAEMON_STARTING'
  override readonly name = 'DaemonStartingError'
  readonly code = DaemonStartingError.code
  constructor (readonly dir: string, readonly pid: number, message?: string) {
    super(message ?? `a daemon (pid ${pid}) is starting on ${dir} and has not opened its local API yet`)
  }
}

/** The data dir is in a state the node will not guess about (e.g. a database without a keystore). */
export class DataDirError extends Error {
  static readonly code = 'ERR_DATA_DIR'
  override readonly name = 'DataDirError'
  readonly code = DataDirError.code
}

/** The data dir holds no identity and the caller asked not to create one. */
export class NotInitializedError extends Error {
  static readonly code = 'ERR_NOT_INITIALIZED'
  override readonly name = 'NotInitializedError'
  readonly code = NotInitializedError.code
}

/** The operation needs the network, and the node is not on it. */
export class NotOnNetworkError extends Error {
  static readonly code = 'ERR_NOT_ON_NETWORK'
  override readonly name = 'NotOnNetworkError'
  readonly code = NotOnNetworkError.code
}

/** No device with this id is a member of the swarm. */
export class UnknownDeviceError extends Error {
  static readonly code = 'ERR_UNKNOWN_DEVICE'
  override readonly name = 'UnknownDeviceError'
  readonly code = UnknownDeviceError.code
}

/**
 * A CLI command ended before it finished: what it waited for went away without an answer, so
 * whether it took effect is unknown.
 */
export class CommandUnfinishedError extends Error {
  static readonly code = 'ERR_COMMAND_UNFINISHED'
  override readonly name = 'CommandUnfinishedError'
  readonly code = CommandUnfinishedError.code
}

/** The operation was aborted through its signal. */
export class AbortError extends Error {
  static readonly code = 'ABORT_ERR'
  override readonly name = 'AbortError'
  readonly code = AbortError.code
  constructor (message = 'the operation was aborted') {
    super(message)
  }
}

/**
 * This device was revoked: the other devices ignore what it writes and refuse to talk to it, so
 * writes and invites are refused here too. It keeps what it had (reads still work).
 */
export class DeviceRevokedError extends Error {
  static readonly code = 'ERR_DEVICE_REVOKED'
  override readonly name = 'DeviceRevokedError'
  readonly code = DeviceRevokedError.code
  /** When the revocation was issued (ISO time). */
  readonly revokedAt: string
  /** Who signed it: 'root' or the DeviceId of the revoking device. */
  readonly by: string
  constructor (revocation: { issued: number, issuer: string }, options?: { cause?: unknown }) {
    const at = new Date(revocation.issued).toISOString()
    super(`this device was revoked (by ${revocation.issuer === 'root' ? 'the root key' : `device ${revocation.issuer}`} at ${at}): the other devices ignore its writes; pair this machine again with a fresh data dir`, options)
    this.revokedAt = at
    this.by = revocation.issuer
  }
}
