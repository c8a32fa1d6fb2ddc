/**
 * storage/: the provider contract, the query language, and the providers (SQLite is the
 * embedded default).
 */
export * from './errors.js'
export * from './provider.js'
export * from './query.js'
export * from './digest.js'
export { SqliteProvider, type SqliteProviderOptions } from './sqlite/sqlite-provider.js'
// server and file providers load their drivers (pg, lmdb) only where they are used: import
// them from storage/postgres/pg-provider.js and storage/file/file-provider.js
export type { PostgresProviderOptions, PostgresPoolOptions, PoolHealth } from './postgres/pg-provider.js'
export { DataRouter, PRIMARY, type EntryOpener, type RoutedStore } from './router.js'
export type { FileProviderOptions } from './file/file-provider.js'
export * from './introspect.js'
export { generateRowTypes, type RowTypesOptions } from './schema-types.js'
