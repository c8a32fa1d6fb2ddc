/**
 * How the file provider stores one document: an 8-byte header (the time of its last write, ms,
 * little-endian double) followed by the body's JSON text in UTF-8. The body stays text so that
 * an unchanged write is detected by comparing text, as the SQLite provider does.
 */

/** Bytes before the JSON text. */
export const DOC_HEADER_BYTES = 8

/** A stored document, decoded. */
export interface DocRecord {
  /** Time of the last write (ms since the epoch, by the provider's clock). */
  readonly writtenAt: number
  readonly json: string
  /** What the document weighs against its collection's byte budget. */
  readonly size: number
}

/** The record of a body's JSON text; its write time is set with {@link stampDoc}. */
export function encodeDoc (json: string): Buffer {
  const bytes = Buffer.byteLength(json)
  const buf = Buffer.allocUnsafe(DOC_HEADER_BYTES + bytes)
  buf.write(json, DOC_HEADER_BYTES, bytes, 'utf8')
  return buf
}

/** Sets the write time of an encoded record. */
export function stampDoc (buf: Buffer, writtenAt: number): Buffer {
  buf.writeDoubleLE(writtenAt, 0)
  return buf
}

/** A document's weight against its collection's budget: the UTF-8 bytes of its JSON and its id. */
export function docSize (id: string, recordBytes: number): number {
  return recordBytes - DOC_HEADER_BYTES + Buffer.byteLength(id)
}

/** Decodes a stored record (of document `id`). */
export function decodeDoc (id: string, buf: Uint8Array): DocRecord {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.length)
  return { writtenAt: b.readDoubleLE(0), json: b.toString('utf8', DOC_HEADER_BYTES), size: docSize(id, b.length) }
}
