/**
 * DAG-CBOR decoding of untrusted bytes with a cap on the number of items. A byte cap alone does
 * not bound the work: an empty map is one byte on the wire but an object, a hash-table probe and
 * about a hundred bytes of heap once decoded, so 16 MiB of them took seconds and gigabytes.
 * Decoding stops with {@link TooLargeError} at the first item over the cap.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { decode, decodeFirst, Tokenizer, type DecodeOptions } from 'cborg'
import { TooLargeError } from './errors.js'

// DAG-CBOR's options over the cborg default they leave unset, as cborg merges them for its own tokenizer
const OPTIONS: DecodeOptions = { allowUndefined: true, ...dagCbor.decodeOptions }

/** Counts items (every map, array, key, string, number, tag…) as cborg reads them. */
class CappedTokenizer extends Tokenizer {
  private left: number

  constructor (data: Uint8Array, private readonly maxItems: number) {
    super(data, OPTIONS)
    this.left = maxItems
  }

  override next (): ReturnType<Tokenizer['next']> {
    if (--this.left < 0) throw new TooLargeError(`DAG-CBOR value has more than ${this.maxItems} items`)
    return super.next()
  }
}

function plain (bytes: Uint8Array): Uint8Array {
  // cborg reads a plain Uint8Array (a Buffer's slice would share memory differently)
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * `dagCbor.decode` with at most `maxItems` items. Throws {@link TooLargeError} past the cap, and
 * cborg's errors (plain `Error`s) for malformed bytes: callers wrap those into their own type.
 */
export function decodeDagCbor (bytes: Uint8Array, maxItems: number): unknown {
  const data = plain(bytes)
  return decode(data, { ...OPTIONS, tokenizer: new CappedTokenizer(data, maxItems) })
}

/** Like {@link decodeDagCbor} for the first value of `bytes`; also returns the bytes after it. */
export function decodeFirstDagCbor (bytes: Uint8Array, maxItems: number): [unknown, Uint8Array] {
  const data = plain(bytes)
  return decodeFirst(data, { ...OPTIONS, tokenizer: new CappedTokenizer(data, maxItems) })
}
