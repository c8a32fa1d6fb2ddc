/**
 * What a command reads from stdin (`-` in place of an argument).
 */

/**
 * All of stdin as text. Read through the stream, which waits for a slow writer: a synchronous
 * read of fd 0 fails with EAGAIN once anything has made the pipe non-blocking.
 */
export async function readStdin (): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
