/**
 * What kind of place a multiaddr points at, from its text: the relay of a circuit address, and
 * whether its IP is this machine's, a private network's or public. One classification for
 * reachability, invites and the dials that follow from them.
 */
import { isPrivateIp } from '@libp2p/utils'

/** Where an address leads: `loopback` (this machine), `private` (a LAN, behind a NAT) or `public`. */
export type AddressScope = 'loopback' | 'private' | 'public'

/** The relay a circuit multiaddr goes through (the /p2p/ before /p2p-circuit), if it is one. */
export function relayOf (addr: string): string | undefined {
  const at = addr.indexOf('/p2p-circuit')
  if (at < 0) return undefined
  return /\/p2p\/([^/]+)$/.exec(addr.slice(0, at))?.[1]
}

/**
 * The scope of an address's first IP (for a circuit address, the relay's), or undefined for an
 * address without one (a DNS name, a bare /p2p-circuit).
 */
export function scopeOf (addr: string): AddressScope | undefined {
  const ip = /^\/ip[46]\/([^/]+)/.exec(addr)?.[1]
  if (ip === undefined) return undefined
  if (ip.startsWith('127.') || ip === '::1') return 'loopback'
  return isPrivateIp(ip) === true ? 'private' : 'public'
}
