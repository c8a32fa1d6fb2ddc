/**
 * Assertions on typed errors: the tests match errors by their stable `name`.
 */
import assert from 'node:assert/strict'

/** Asserts that `fn` throws (or rejects with) an error named `name`; returns the error. */
export async function rejectsNamed (fn: () => unknown, name: string, messageIncludes?: string): Promise<Error> {
  let caught: unknown
  try {
    await fn()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof Error, `expected ${name} to be thrown, but nothing was thrown`)
  assert.equal(caught.name, name, `expected ${name}, got ${caught.name}: ${caught.message}`)
  if (messageIncludes !== undefined) assert.ok(caught.message.includes(messageIncludes), `expected message to include ${JSON.stringify(messageIncludes)}: ${caught.message}`)
  return caught
}
