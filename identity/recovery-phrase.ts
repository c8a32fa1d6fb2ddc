/**
 * The user's master secret: a 24-word BIP-39 recovery phrase (256 bits of entropy), and the
 * 64-byte seed derived from it. Everything else the user owns is derived from or sealed to it.
 */
import { generateMnemonic, mnemonicToSeedSync, validateMnemonic } from '@scure/bip39'
import { wordlist } from '@scure/bip39/wordlists/english.js'
import { InvalidRecoveryPhraseError } from './errors.js'

/** A validated, normalised 24-word recovery phrase. */
export type RecoveryPhrase = string & { readonly __brand: 'RecoveryPhrase' }

/** Number of words in a PeakDB recovery phrase. */
export const RECOVERY_PHRASE_WORDS = 24

/**
 * Generates a fresh 24-word recovery phrase from the system CSPRNG.
 *
 * @example
 * ```ts
 * const phrase = generateRecoveryPhrase() // 'abandon … art' (24 words)
 * ```
 */
export function generateRecoveryPhrase (): RecoveryPhrase {
  return generateMnemonic(wordlist, 256) as RecoveryPhrase
}

/**
 * Normalises (case, whitespace) and validates a recovery phrase typed by a user.
 * The error message never repeats the phrase.
 */
export function parseRecoveryPhrase (text: string): RecoveryPhrase {
  if (typeof text !== 'string') {
    throw new InvalidRecoveryPhraseError('"recoveryPhrase" expected a string of 24 words')
  }
  const words = text.normalize('NFKD').trim().toLowerCase().split(/\s+/).filter(w => w.length > 0)
  if (words.length !== RECOVERY_PHRASE_WORDS) {
    throw new InvalidRecoveryPhraseError(`"recoveryPhrase" expected ${RECOVERY_PHRASE_WORDS} words, got ${words.length}`)
  }
  const unknown = words.findIndex(w => !wordlist.includes(w))
  if (unknown >= 0) {
    throw new InvalidRecoveryPhraseError(`"recoveryPhrase" word ${unknown + 1} is not in the BIP-39 English word list`)
  }
  const phrase = words.join(' ')
  if (!validateMnemonic(phrase, wordlist)) {
    throw new InvalidRecoveryPhraseError('"recoveryPhrase" checksum does not match: a word is wrong or out of order')
  }
  return phrase as RecoveryPhrase
}

/** The 64-byte BIP-39 seed of a phrase (PBKDF2-HMAC-SHA512, 2048 rounds, empty passphrase). */
export function recoverySeed (phrase: RecoveryPhrase): Uint8Array {
  return mnemonicToSeedSync(phrase, '')
}
