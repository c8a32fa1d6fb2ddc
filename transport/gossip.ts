/**
 * Log gossip on the swarm's topic: new entries travel inline (small ones, for one-hop latency),
 * and version vectors ("heads") announce what a device holds, which doubles as the
 * acknowledgement that confirms writes. Messages are signed by their publisher (StrictSign);
 * only members' messages are accepted, and only verified devices take part at all (the host
 * admits a peer to gossipsub once it completed hello: gossip-admission.ts).
 */
import { TopicValidatorResult, type GossipsubMessage, type Message, type SubscriptionChangeData } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { vectorToWire } from '../crdt/index.js'
import type { ReplicaBackend } from './backend.js'
import type { Host } from './host.js'
import type { PeerGate } from './peer-gate.js'
import { decodeMessage, encodeMessage, gossipSchema, MAX_GOSSIP_MESSAGE, MAX_INLINE_ENTRY, type GossipMessage } from './messages.js'

/** Most entries one gossip message carries. */
const MAX_INLINE_RUN = 1024

/** What gossip reports to its owner. */
export interface GossipHandlers {
  /** Entries arrived inline from `origin` (relayed by `via`), `sig` the chain signature on the last. */
  onEntries (entries: Uint8Array[], sig: Uint8Array, origin: string, via: PeerId): void
  /** A device announced its version vector. */
  onHeads (vector: Map<string, number>, origin: string, via: PeerId): void
  /** A peer subscribed to the topic: from now on it hears what this device publishes. */
  onSubscribed (peer: PeerId): void
}

/** The swarm's log topic. */
export function logTopic (swarmId: string): string {
  return `/peakdb/${swarmId}/log/2`
}

/** Publishes and receives log gossip. */
export class LogGossip {
  readonly topic: string
  private readonly decoded = new WeakMap<Message, GossipMessage>()
  private readonly onMessage = (evt: CustomEvent<GossipsubMessage>): void => this.receive(evt.detail)
  private readonly onSubscriptionChange = (evt: CustomEvent<SubscriptionChangeData>): void => {
    if (evt.detail.subscriptions.some(s => s.subscribe && s.topic === this.topic)) this.handlers.onSubscribed(evt.detail.peerId)
  }

  constructor (private readonly host: Host, private readonly backend: ReplicaBackend, private readonly gate: PeerGate, private readonly handlers: GossipHandlers) {
    this.topic = logTopic(backend.swarmId)
  }

  start (): void {
    const pubsub = this.host.services.pubsub
    pubsub.topicValidators.set(this.topic, (_from, msg) => this.validate(msg))
    pubsub.addEventListener('gossipsub:message', this.onMessage)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    pubsub.subscribe(this.topic)
  }

  stop (): void {
    const pubsub = this.host.services.pubsub
    pubsub.removeEventListener('gossipsub:message', this.onMessage)
    pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
    pubsub.topicValidators.delete(this.topic)
    try { pubsub.unsubscribe(this.topic) } catch { /* stopping */ }
  }

  private validate (msg: Message): TopicValidatorResult {
    if (msg.type !== 'signed') return TopicValidatorResult.Reject
    const origin = msg.from.toString()
    if (!this.gate.isVerified(origin) && !this.backend.isMember(origin)) return TopicValidatorResult.Reject
    if (msg.data.length > MAX_GOSSIP_MESSAGE) return TopicValidatorResult.Reject
    try {
      this.decoded.set(msg, decodeMessage(msg.data, gossipSchema, 'gossip'))
      return TopicValidatorResult.Accept
    } catch {
      return TopicValidatorResult.Reject
    }
  }

  private receive (detail: GossipsubMessage): void {
    const { msg, propagationSource } = detail
    if (msg.type !== 'signed' || msg.topic !== this.topic) return
    const message = this.decoded.get(msg) ?? decodeMessage(msg.data, gossipSchema, 'gossip')
    const origin = msg.from.toString()
    if (message.t === 'entries') this.handlers.onEntries(message.e, message.s, origin, propagationSource)
    else this.handlers.onHeads(new Map(message.h), origin, propagationSource)
  }

  /**
   * Announces a run of new local entries with the chain signature on its last: inline when the
   * run fits one message (it is verified as a whole), else the heads announcement tells peers
   * to pull.
   */
  async publishEntries (entries: readonly Uint8Array[], sig: Uint8Array): Promise<void> {
    let size = 0
    for (const e of entries) size += e.length
    const inline = entries.length > 0 && entries.length <= MAX_INLINE_RUN && size <= MAX_GOSSIP_MESSAGE - 1024 && entries.every(e => e.length <= MAX_INLINE_ENTRY)
    if (inline) await this.publish({ t: 'entries', e: entries, s: sig })
    else await this.publishHeads(this.backend.versionVector())
  }

  /** Announces this device's version vector. */
  async publishHeads (vector: ReadonlyMap<string, number>): Promise<void> {
    await this.publish({ t: 'heads', h: vectorToWire(vector) })
  }

  private async publish (message: object): Promise<void> {
    // alone on the topic: nobody to tell (signing a message costs more than the write itself)
    if (this.host.services.pubsub.getSubscribers(this.topic).length === 0) return
    try {
      await this.host.services.pubsub.publish(this.topic, encodeMessage(message))
    } catch {
      // no subscribed peers or stopping: sync catches up later
    }
  }
}
