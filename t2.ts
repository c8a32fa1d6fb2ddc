import './node/polyfills.ts'
import { PeakNode } from './node/index.ts'
import { rmSync } from 'node:fs'
rmSync('/tmp/t2', { recursive: true, force: true })
const a = await PeakNode.open({ dir: '/tmp/t2/a', network: { listen: ['/ip4/127.0.0.1/tcp/0'] } })
console.log('a addrs', a.network!.multiaddrs())
await a.collection('notes').put({ _id: 'x', from: 'a' })
const b = await PeakNode.open({ dir: '/tmp/t2/b', recoveryPhrase: a.recoveryPhrase, network: { listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: a.network!.multiaddrs() } })
await b.collection('notes').put({ _id: 'y', from: 'b' })
const w = await a.collection('notes').put({ _id: 'z', from: 'a' })
const t0 = Date.now()
while (Date.now() - t0 < 5000) {
  const bx = await b.collection('notes').get('z'); const ay = await a.collection('notes').get('y')
  if (bx && ay) break
  await new Promise(r => setTimeout(r, 50))
}
console.log('after', Date.now() - t0, 'ms')
console.log('b has z', await b.collection('notes').get('z'), 'a has y', await a.collection('notes').get('y'))
console.log('status a', w.status, (await a.status()).versionVector, (await b.status()).versionVector)
await w.confirmed
console.log('confirmed', w.status)
console.log('digest eq', await a.storage.stateDigest() === await b.storage.stateDigest())
console.log(a.peers(), (await b.status()).pendingEntries)
await a.close(); await b.close()
console.log('closed')
