/**
 * Document ids generated when a document has no `_id`: 26 characters of Crockford base32, a
 * 48-bit millisecond timestamp then 80 random bits (the ULID layout), so ids sort by creation
 * time and never collide in practice.
 */
import { randomFillSync } from 'node:crypto'

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'
const random = new Uint8Array(10)

/** A new time-ordered document id. */
export function newDocId (now = Date.now()): string {
  let time = ''
  let t = now
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time
    t = Math.floor(t / 32)
  }
  randomFillSync(random)
  let bits = 0
  let value = 0
  let rand = ''
  for (const byte of random) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      bits -= 5
      rand += ALPHABET[(value >>> bits) & 31]
    }
    value &= (1 << bits) - 1
  }
  return time + rand
}
