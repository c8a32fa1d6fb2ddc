/**
 * Typed errors of the identity layer. Each class has a stable `name` and `code` that callers
 * and tests can match on. Messages never contain secret material.
 */

/** The recovery phrase is not 24 valid BIP-39 English words with a correct checksum. */
export class InvalidRecoveryPhraseError extends Error {
  static readonly code = 'ERR_INVALID_RECOVERY_PHRASE'
  override readonly name = 'InvalidRecoveryPhraseError'
  readonly code = InvalidRecoveryPhraseError.code
}

/** A key, signature or other byte string has the wrong length or form. */
export class InvalidKeyError extends Error {
  static readonly code = 'ERR_INVALID_KEY'
  override readonly name = 'InvalidKeyError'
  readonly code = InvalidKeyError.code
}

/** A ciphertext failed authentication: wrong key, wrong associated data, or tampering. */
export class DecryptionError extends Error {
  static readonly code = 'ERR_DECRYPTION_FAILED'
  override readonly name = 'DecryptionError'
  readonly code = DecryptionError.code
}

/** A device certificate is malformed, for another swarm, or not signed by an accepted issuer. */
export class InvalidCertificateError extends Error {
  static readonly code = 'ERR_INVALID_CERTIFICATE'
  override readonly name = 'InvalidCertificateError'
  readonly code = InvalidCertificateError.code
}

/** No data-key epoch with this id is known to this device (or it was not sealed to it). */
export class UnknownEpochError extends Error {
  static readonly code = 'ERR_UNKNOWN_EPOCH'
  override readonly name = 'UnknownEpochError'
  readonly code = UnknownEpochError.code
  constructor (readonly epoch: number, message = `unknown data-key epoch ${epoch}`) {
    super(message)
  }
}

/** The keystore file is missing where one is required. */
export class KeystoreNotFoundError extends Error {
  static readonly code = 'ERR_KEYSTORE_NOT_FOUND'
  override readonly name = 'KeystoreNotFoundError'
  readonly code = KeystoreNotFoundError.code
  constructor (readonly path: string, message = `keystore not found: ${path}`) {
    super(message)
  }
}

/** The keystore file exists but cannot be read as a PeakDB keystore (truncated, edited, wrong format). */
export class KeystoreCorruptError extends Error {
  static readonly code = 'ERR_KEYSTORE_CORRUPT'
  override readonly name = 'KeystoreCorruptError'
  readonly code = KeystoreCorruptError.code
  constructor (readonly path: string, reason: string) {
    super(`keystore ${path} is corrupt or unreadable: ${reason}; it was left untouched (restore it from a backup or re-create the device with \`peakdb init --recover\` in a new data dir)`)
  }
}

/** The keystore is protected by a passphrase and none was given. */
export class PassphraseRequiredError extends Error {
  static readonly code = 'ERR_PASSPHRASE_REQUIRED'
  override readonly name = 'PassphraseRequiredError'
  readonly code = PassphraseRequiredError.code
}

/** The passphrase does not open the keystore. */
export class WrongPassphraseError extends Error {
  static readonly code = 'ERR_WRONG_PASSPHRASE'
  override readonly name = 'WrongPassphraseError'
  readonly code = WrongPassphraseError.code
}

/** An invite code is malformed, fails its check digit, or was tampered with. */
export class InvalidInviteError extends Error {
  static readonly code = 'ERR_INVALID_INVITE'
  override readonly name = 'InvalidInviteError'
  readonly code = InvalidInviteError.code
}

/** The invite has expired. */
export class InviteExpiredError extends Error {
  static readonly code = 'ERR_INVITE_EXPIRED'
  override readonly name = 'InviteExpiredError'
  readonly code = InviteExpiredError.code
}

/** The invite was already used (invites are single-use). */
export class InviteUsedError extends Error {
  static readonly code = 'ERR_INVITE_USED'
  override readonly name = 'InviteUsedError'
  readonly code = InviteUsedError.code
}

/** The inviter did not accept the proof of the invite's secret (wrong or unknown invite). */
export class InviteRejectedError extends Error {
  static readonly code = 'ERR_INVITE_REJECTED'
  override readonly name = 'InviteRejectedError'
  readonly code = InviteRejectedError.code
}
