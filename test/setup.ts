// Mocha setup: runtime polyfills libp2p needs on Node 20, loaded before any test module.
import '../node/polyfills.js'
process.env.PEAKDB_LOG ??= 'warn'
