/**
 * The checkpointer thread of the SQLite provider (started by checkpointer.ts): it copies
 * committed WAL frames into the database file on its own connection, so that the provider's
 * connection, which writes, never stops to do it. It reports each pass in shared memory, which
 * the writer reads without waiting for a message, and with a message for those who wait.
 */
import { parentPort, workerData } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { Slot, type CheckpointerData, type CheckpointReply } from './checkpointer.js'

const port = parentPort
if (port === null) throw new Error('checkpoint-worker.ts runs as a worker thread of the SQLite provider')
const data = workerData as CheckpointerData
const shared = new Int32Array(data.shared)
// a file that cannot be opened ends the thread with its error: the provider then checkpoints itself
const db = new Database(data.path, { fileMustExist: true })
// the same syncs as the writer: a checkpoint syncs the WAL before it copies and the file after
db.pragma(`synchronous = ${data.synchronous}`)
port.on('message', (m: 'pass' | 'close') => {
  if (m === 'close') {
    db.close()
    port.close()
    return
  }
  let reply: CheckpointReply
  try {
    // PASSIVE never waits for readers or the writer: it copies what it can and says how far it got
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number, log: number, checkpointed: number }>
    Atomics.store(shared, Slot.Log, r?.log ?? 0)
    Atomics.store(shared, Slot.Checkpointed, r?.checkpointed ?? 0)
    reply = { done: true }
  } catch (err) {
    reply = { error: (err as Error).message }
  }
  Atomics.add(shared, Slot.Passes, 1)
  port.postMessage(reply)
})
Atomics.store(shared, Slot.Ready, 1)
