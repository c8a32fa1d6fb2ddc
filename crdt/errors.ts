/**
 * Typed errors of the CRDT layer: malformed input and log-verification failures. Each class has
 * a stable `name` and `code`.
 */

/** Bytes that do not decode to a well-formed value of the expected shape (entry, op, payload). */
export class MalformedError extends Error {
  static readonly code = 'ERR_MALFORMED'
  override readonly name = 'MalformedError'
  readonly code = MalformedError.code
}

/** A value is over a documented size or count cap. */
export class TooLargeError extends Error {
  static readonly code = 'ERR_TOO_LARGE'
  override readonly name = 'TooLargeError'
  readonly code = TooLargeError.code
}

/** An entry's signature does not verify against its author's key. */
export class InvalidSignatureError extends Error {
  static readonly code = 'ERR_INVALID_SIGNATURE'
  override readonly name = 'InvalidSignatureError'
  readonly code = InvalidSignatureError.code
}

/** An entry's bytes do not hash to the content address it was requested or stored under. */
export class HashMismatchError extends Error {
  static readonly code = 'ERR_HASH_MISMATCH'
  override readonly name = 'HashMismatchError'
  readonly code = HashMismatchError.code
}

/** An entry's seq is beyond its author's next expected seq: earlier entries are missing. */
export class SeqGapError extends Error {
  static readonly code = 'ERR_SEQ_GAP'
  override readonly name = 'SeqGapError'
  readonly code = SeqGapError.code
  constructor (readonly author: string, readonly expected: number, readonly got: number) {
    super(`entry of ${author} has seq ${got}, expected ${expected}: earlier entries are missing`)
  }
}

/** Two different entries claim the same author and seq, or an entry's prev is not its author's previous entry. */
export class ForkError extends Error {
  static readonly code = 'ERR_FORK'
  override readonly name = 'ForkError'
  readonly code = ForkError.code
}

/** An entry depends on entries this log does not hold yet. */
export class MissingDependencyError extends Error {
  static readonly code = 'ERR_MISSING_DEPENDENCY'
  override readonly name = 'MissingDependencyError'
  readonly code = MissingDependencyError.code
}

/** An entry belongs to another swarm. */
export class WrongSwarmError extends Error {
  static readonly code = 'ERR_WRONG_SWARM'
  override readonly name = 'WrongSwarmError'
  readonly code = WrongSwarmError.code
}

/** An entry's author holds no valid (unrevoked) certificate of this swarm. */
export class NotAMemberError extends Error {
  static readonly code = 'ERR_NOT_A_MEMBER'
  override readonly name = 'NotAMemberError'
  readonly code = NotAMemberError.code
}

/** An entry's clock is implausibly far ahead of this device's wall clock. */
export class ClockDriftError extends Error {
  static readonly code = 'ERR_CLOCK_DRIFT'
  override readonly name = 'ClockDriftError'
  readonly code = ClockDriftError.code
}
