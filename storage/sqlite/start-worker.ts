/**
 * Starts one of the SQLite provider's worker threads (reader, checkpointer). From the built
 * JavaScript the script is `<name>.js` beside this file. From the TypeScript sources (tests and
 * scripts under tsx), a worker does not inherit the loader hooks of the thread that starts it,
 * so the thread registers tsx before importing the script.
 */
import { Worker } from 'node:worker_threads'

export function startWorker (name: string, workerData: unknown): Worker {
  const here = import.meta.url
  if (!here.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, here), { workerData })
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'))
  const script = JSON.stringify(new URL(`./${name}.ts`, here).href)
  // the parent's `--import tsx` would load tsx a second time (about 60 ms more per thread)
  return new Worker(`import(${tsx}).then(m => { m.register(); return import(${script}) })`, { eval: true, workerData, execArgv: [] })
}
