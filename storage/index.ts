/**
 * storage/: the provider contract, the query language, and the providers (SQLite is the
 * embedded default).
 */
export * from './errors.js'
export * from './provider.js'
export * from './query.js'
export * from './digest.js'
export { SqliteProvider, type SqliteProviderOptions } from './sqlite/sqlite-provider.js'
export { PostgresProvider, POOL_DEFAULTS, type PostgresProviderOptions, type PostgresPoolOptions, type PoolHealth } from './postgres/pg-provider.js'
export { DataRouter, PRIMARY, type EntryOpener, type RoutedStore } from './router.js'
export * from './file/file-provider.js'
