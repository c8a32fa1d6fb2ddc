/**
 * identity/: the user's recovery phrase and root keys, device keys and certificates, data-key
 * epochs, and sealing/opening of payloads. Depends on crypto and format libraries only.
 */
export * from './errors.js'
export * from './recovery-phrase.js'
export * from './user-root.js'
export * from './ed25519.js'
export * from './device-id.js'
export * from './certificate.js'
export * from './seal.js'
export * from './key-box.js'
export * from './keyring.js'
export * from './keystore.js'
export * from './succession.js'
export * from './membership.js'
export * from './invite-code.js'
