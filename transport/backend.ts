/**
 * What the transport needs from the node: the contract between the wire protocols and the log.
 * The node (composition root) implements it; transport never imports node/ or storage/.
 */

/** A member device proven by its certificate chain. */
export interface VerifiedDevice {
  readonly device: string
  readonly name: string
}

/** The log and identity operations the transport calls. */
export interface ReplicaBackend {
  readonly swarmId: string
  readonly deviceId: string
  /** This device's certificate chain, encoded, own certificate first. */
  certificateChain (): Uint8Array[]
  /** Verifies a peer's certificate chain. Throws when `peer` is not a current member. */
  verifyChain (peer: string, chain: readonly Uint8Array[]): VerifiedDevice
  /** True when `device` holds a certificate in this device's log and is not revoked. */
  isMember (device: string): boolean
  /** True when `device` has been revoked (this device too, once it knows). */
  isRevoked (device: string): boolean
  /**
   * A revoked device's revocation (DAG-CBOR) and the encoded certificate chain of its issuing
   * device (empty when the root key signed it), to show that device why it is refused.
   */
  revocationProof (device: string): { rev: Uint8Array, chain: Uint8Array[] } | undefined
  /**
   * Records a revocation of this device that a refusing peer presented. Throws a typed error
   * (InvalidCertificateError) when it does not verify: then the peer lied.
   */
  learnRevocation (rev: Uint8Array, chain: readonly Uint8Array[]): Promise<void>
  /** author -> highest contiguous seq held here. */
  versionVector (): Map<string, number>
  /**
   * Entries a peer with vector `have` lacks, in causal order, after log position `after`,
   * within the caps (a run under one chain signature is not split), with the chain signatures
   * that cover them (index in `entries`, signature); `next` continues the listing (undefined
   * when done).
   */
  entriesNotIn (have: ReadonlyMap<string, number>, after: number, limits: { maxEntries: number, maxBytes: number }): Promise<{ entries: Uint8Array[], sigs: Array<[number, Uint8Array]>, next: number | undefined }>
  /**
   * Verifies and applies entries with the chain signatures that cover them (index in
   * `entries`, signature), all or nothing. Throws a typed error for invalid input.
   */
  ingest (entries: readonly Uint8Array[], sigs?: ReadonlyArray<readonly [number, Uint8Array]>): Promise<{ applied: number, duplicates: number }>
  /** A peer's version vector became known (sync, gossip heads): used for confirmations. */
  peerVector (device: string, vector: ReadonlyMap<string, number>): void
  /** Remembers a member's addresses and name, to reconnect after a restart. */
  rememberPeer (device: string, name: string, addrs: readonly string[]): void
  /** Previously seen members and their addresses. */
  knownPeers (): Array<{ device: string, addrs: string[] }>
  /** This device's epoch keys sealed to a verified member (handed over during hello). */
  keyBoxesFor (device: string): Array<{ id: number, box: Uint8Array }>
  /** Takes epoch keys a verified member sealed to this device. */
  acceptKeyBoxes (from: string, boxes: ReadonlyArray<{ id: number, box: Uint8Array }>): Promise<void>
}
