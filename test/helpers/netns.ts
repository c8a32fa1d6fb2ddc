/**
 * Networks for tests, built from Linux network namespaces (needs root, `ip` and `nft`): a "wan"
 * bridge with a public relay host, and homes, each a private network behind its own NAT host
 * (nftables masquerade; its firewall drops what nobody inside asked for, as home routers do).
 * Nothing is routed between homes or out of the test's namespaces; the homes reach each other
 * only through NAT and the relay, or through a hole punched in both NATs.
 *
 *   relay 11.99.0.1 ── wan bridge ── nat<i> 11.99.0.(10+i) ── home<i> 192.168.(50+i).2
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * The wan's addresses: a public range (not a private or documentation one, which address checks
 * treat as private), safe here because the namespaces route nowhere outside the test.
 */
export const WAN_PREFIX = '11.99.0'
export const RELAY_IP = `${WAN_PREFIX}.1`

/**
 * How a home's NAT maps ports: `masquerade` keeps the source port when it can (endpoint-
 * independent mapping, what most home routers do); `random` picks a new random port for every
 * connection (what defeats hole punching); `upnp` is `masquerade` with a UPnP IGD (miniupnpd)
 * that forwards the ports devices ask for.
 */
export type NatKind = 'masquerade' | 'random' | 'upnp'

/** One home: a private network behind a NAT. */
export interface Home {
  /** Namespace of the home's device. */
  readonly ns: string
  /** Namespace of its NAT. */
  readonly natNs: string
  /** The device's private address. */
  readonly ip: string
  /** The NAT's public address. */
  readonly publicIp: string
}

/** A built topology; `destroy()` removes every namespace (and with them every link). */
export interface Topology {
  readonly relayNs: string
  readonly homes: readonly Home[]
  destroy (): void
}

function run (args: string[], input?: string): void {
  try {
    execFileSync(args[0] as string, args.slice(1), { input, stdio: ['pipe', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as { stderr?: Buffer, message: string }
    throw new Error(`${args.join(' ')} failed: ${e.stderr?.toString().trim() ?? e.message} (network namespace tests need root, iproute2 and nftables: npm test's set-up installs nftables)`)
  }
}

const inNs = (ns: string, ...args: string[]): void => run(['ip', 'netns', 'exec', ns, ...args])

/** Builds the wan with a relay host, and one home per entry of `nats`. `tag` keeps names unique. */
export function buildTopology (tag: string, nats: readonly NatKind[]): Topology {
  const p = `pdb${tag}`
  const wan = `${p}w`
  const relayNs = `${p}r`
  const made: string[] = []
  const daemons: ChildProcess[] = []
  const scratch = mkdtempSync(join(tmpdir(), 'peakdb-netns-'))
  const addNs = (ns: string): void => {
    run(['ip', 'netns', 'add', ns])
    made.push(ns)
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up')
  }
  const destroy = (): void => {
    for (const d of daemons.splice(0)) d.kill('SIGKILL')
    rmSync(scratch, { recursive: true, force: true })
    for (const ns of made.splice(0).reverse()) {
      try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch { /* already gone */ }
    }
  }
  try {
    addNs(wan)
    inNs(wan, 'ip', 'link', 'add', 'br0', 'type', 'bridge')
    inNs(wan, 'ip', 'link', 'set', 'br0', 'up')
    /** A link from `ns` (as `ifname`, with `addr`) to the wan bridge. */
    const toWan = (ns: string, ifname: string, addr: string, wanSide: string): void => {
      run(['ip', 'link', 'add', ifname, 'netns', ns, 'type', 'veth', 'peer', 'name', wanSide, 'netns', wan])
      inNs(wan, 'ip', 'link', 'set', wanSide, 'master', 'br0')
      inNs(wan, 'ip', 'link', 'set', wanSide, 'up')
      inNs(ns, 'ip', 'addr', 'add', `${addr}/24`, 'dev', ifname)
      inNs(ns, 'ip', 'link', 'set', ifname, 'up')
    }
    addNs(relayNs)
    toWan(relayNs, 'wan0', RELAY_IP, 'relay0')
    const homes = nats.map((kind, i) => {
      const natNs = `${p}n${i}`
      const ns = `${p}h${i}`
      const publicIp = `${WAN_PREFIX}.${10 + i}`
      const lan = `192.168.${50 + i}`
      addNs(natNs)
      addNs(ns)
      toWan(natNs, 'wan0', publicIp, `nat${i}`)
      run(['ip', 'link', 'add', 'lan0', 'netns', natNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
      inNs(natNs, 'ip', 'addr', 'add', `${lan}.1/24`, 'dev', 'lan0')
      inNs(natNs, 'ip', 'link', 'set', 'lan0', 'up')
      inNs(ns, 'ip', 'addr', 'add', `${lan}.2/24`, 'dev', 'eth0')
      inNs(ns, 'ip', 'link', 'set', 'eth0', 'up')
      inNs(ns, 'ip', 'route', 'add', 'default', 'via', `${lan}.1`)
      inNs(natNs, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
      const masquerade = kind === 'random' ? 'masquerade random,fully-random' : 'masquerade'
      run(['ip', 'netns', 'exec', natNs, 'nft', '-f', '-'], `table ip nat {\n chain post {\n  type nat hook postrouting priority srcnat;\n  oifname "wan0" ${masquerade}\n }\n}\n`)
      // like a home router's firewall: what nobody inside asked for is dropped, not answered
      run(['ip', 'netns', 'exec', natNs, 'nft', '-f', '-'], 'table inet firewall {\n chain input {\n  type filter hook input priority filter;\n  iifname "wan0" ct state new drop\n }\n}\n')
      if (kind === 'upnp') daemons.push(startMiniupnpd(natNs, lan, join(scratch, natNs)))
      return { ns, natNs, ip: `${lan}.2`, publicIp }
    })
    return { relayNs, homes, destroy }
  } catch (err) {
    destroy()
    throw err
  }
}

/**
 * Runs miniupnpd (the nftables build) on a NAT host: UPnP IGD and NAT-PMP on its LAN side,
 * forwarding to the LAN's devices the ports they ask for. Its chains are made here, in a table
 * of its own, since the package's set-up script is not usable as shipped.
 */
function startMiniupnpd (natNs: string, lan: string, dir: string): ChildProcess {
  run(['ip', 'netns', 'exec', natNs, 'nft', '-f', '-'], [
    'table inet miniupnpd {',
    ' chain forward { type filter hook forward priority 0; policy accept; jump forwardupnp; }',
    ' chain forwardupnp { }',
    ' chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }',
    ' chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }',
    ' chain prerouting_miniupnpd { }',
    ' chain postrouting_miniupnpd { }',
    '}', ''
  ].join('\n'))
  mkdirSync(dir, { recursive: true })
  const conf = join(dir, 'miniupnpd.conf')
  writeFileSync(conf, [
    'ext_ifname=wan0', 'listening_ip=lan0', 'enable_natpmp=yes', 'enable_upnp=yes', 'secure_mode=yes',
    'system_uptime=yes', 'uuid=3d3cec3a-8cf0-11e0-98ee-001a6b1a0a11', `lease_file=${join(dir, 'leases')}`,
    'upnp_table_name=miniupnpd', 'upnp_nat_table_name=miniupnpd', 'upnp_forward_chain=forwardupnp',
    'upnp_nat_chain=prerouting_miniupnpd', 'upnp_nat_postrouting_chain=postrouting_miniupnpd',
    `allow 1024-65535 ${lan}.0/24 1024-65535`, 'deny 0-65535 0.0.0.0/0 0-65535', ''
  ].join('\n'))
  // -d: in the foreground, so that killing this process ends it
  return spawn('ip', ['netns', 'exec', natNs, 'miniupnpd', '-d', '-f', conf, '-P', join(dir, 'pid')], { stdio: 'ignore' })
}
