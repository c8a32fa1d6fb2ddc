/**
 * `peakdb init`: create this device's identity (or restore it from a recovery phrase) and show
 * the recovery phrase once.
 */
import { existsSync } from 'node:fs'
import { PeakNode } from '../peak-node.js'
import { dataDirPaths } from '../data-dir.js'
import { DataDirError } from '../errors.js'
import { emit, table } from './output.js'
import { passphrase } from './target.js'
import { readStdin } from './input.js'
import { dataDirConfig } from './config.js'
import type { StorageSpec } from '../storage-binding.js'

/** The recovery-phrase banner shown once when an identity is created. */
export function phraseBanner (phrase: string): string {
  const words = phrase.split(' ')
  const rows: string[] = []
  for (let i = 0; i < words.length; i += 6) {
    rows.push('  ' + words.slice(i, i + 6).map((w, j) => `${String(i + j + 1).padStart(2)}. ${w.padEnd(9)}`).join(' '))
  }
  return [
    '',
    'Recovery phrase: write these 24 words down and keep them safe. They are shown only once,',
    'they are the only way to recover your data, and anyone who has them can read it.',
    '',
    ...rows,
    ''
  ].join('\n')
}

/** Runs `peakdb init`. */
export async function runInit (o: { dir: string, json: boolean, recover?: string, name?: string, passphraseFile?: string, storage?: string }): Promise<void> {
  const paths = dataDirPaths(o.dir)
  if (existsSync(paths.keystore)) {
    throw new DataDirError(`${paths.dir} already has an identity (${paths.keystore}); use another --dir to create a new one`)
  }
  const recover = o.recover === '-' ? await readStdin() : o.recover
  const pass = passphrase(o.passphraseFile)
  const storage = (o.storage ?? dataDirConfig(o.dir).storage) as StorageSpec | undefined
  const node = await PeakNode.open({
    dir: o.dir,
    lock: { kind: 'command' },
    ...(pass !== undefined ? { passphrase: pass } : {}),
    ...(recover !== undefined ? { recoveryPhrase: recover } : {}),
    ...(o.name !== undefined ? { deviceName: o.name } : {}),
    ...(storage !== undefined ? { storage } : {})
  })
  try {
    const out = { deviceId: node.deviceId, swarmId: node.swarmId, deviceName: node.deviceName, dir: node.dir, storage: node.storageInfo, recovered: recover !== undefined, ...(node.recoveryPhrase !== undefined ? { recoveryPhrase: node.recoveryPhrase } : {}) }
    emit(o.json, out, () => [
      `${recover !== undefined ? 'Restored' : 'Created'} a PeakDB identity in ${node.dir}`,
      table([['DeviceId', node.deviceId], ['SwarmId', node.swarmId], ['Device name', node.deviceName], ['Storage', `${node.storageInfo.kind} ${node.storageInfo.location}`]]),
      node.recoveryPhrase !== undefined ? phraseBanner(node.recoveryPhrase) : ''
    ].join('\n'))
  } finally {
    await node.close()
  }
}
