/**
 * What the local API and the web console share on the HTTP side: JSON bodies in and out, and
 * how an error maps to a status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { InvalidOptionError, TooLargeError } from '../errors.js'

/** Largest request body accepted, in bytes. */
export const MAX_API_BODY = 64 * 1024 * 1024

/** HTTP status for an error name: client mistakes are 4xx, the rest 500. */
export function statusOf (err: Error): number {
  if (err.name === 'DocumentNotFoundError') return 404
  if (/^(Invalid|Malformed|TooLarge|DocumentTooLarge|UnknownEpoch|UnknownDevice|NotInitialized)/.test(err.name)) return 400
  return 500
}

/** Answers with a JSON body. */
export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) })
  res.end(text)
}

/** Answers `{ ok: false, error }` for an error, with the status its name calls for. */
export function sendError (res: ServerResponse, err: unknown, headers: Record<string, string> = {}): void {
  const e = err instanceof Error ? err : new Error(String(err))
  const code = (e as { code?: unknown }).code
  sendJson(res, statusOf(e), { ok: false, error: { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) } }, headers)
}

/** Reads a JSON request body of at most {@link MAX_API_BODY} bytes; an empty body is `{}`. */
export async function readJsonBody (req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_API_BODY) throw new TooLargeError(`request body over ${MAX_API_BODY} bytes`)
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new InvalidOptionError('request body is not valid JSON')
  }
}
