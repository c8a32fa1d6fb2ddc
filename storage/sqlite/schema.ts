/**
 * The SQLite schema and its migrations, run by the migration engine (storage/migrate/) and
 * recorded in `peakdb_schema`, each in its own transaction; `PRAGMA user_version` still counts
 * them, for older builds and for recognising a PeakDB file. The log (`entries`) is append-only; a snapshot can
 * later replace a prefix of it because documents are materialised separately (`docs`).
 */
import type { Database } from 'better-sqlite3'
import { SqliteMigrationDriver } from '../migrate/sqlite-driver.js'
import { migrateSchema, SCHEMA_TABLE, type SqlMigration } from '../migrate/schema-source.js'

/** The tokenizer of the full-text table (query words are stemmed with the same one: rare-words.ts). */
export const FTS_TOKENIZE = 'porter unicode61 remove_diacritics 2'

/** PeakDB's SQLite schema, version by version; a release only ever appends to this list. */
export const MIGRATIONS: readonly SqlMigration[] = [
  // log, heads, materialised documents, membership/key records, settings
  {
    name: '0001_log',
    sql: `
  CREATE TABLE entries (
    pos    INTEGER PRIMARY KEY,       -- local apply order; always a causal order
    cidh   INTEGER NOT NULL,          -- first 8 bytes of the CID's digest, for lookups
    cid    BLOB NOT NULL,
    author TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    bytes  BLOB NOT NULL,
    UNIQUE (author, seq)              -- one entry per author and seq: a fork cannot be stored
  );
  -- an 8-byte integer key keeps this random-order index small: measured 5-8 us faster per
  -- commit than a UNIQUE index on the 36-byte CID
  CREATE INDEX entries_cidh ON entries (cidh);
  CREATE TABLE heads (
    author TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL,
    cid    BLOB NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE docs (
    rid        INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT,                  -- visible fields as JSON; NULL when deleted
    meta       TEXT NOT NULL,         -- LWW stamps (crdt/lww.ts DocRow.meta)
    pos        INTEGER NOT NULL,      -- entries.pos of the latest change
    UNIQUE (collection, id)
  );
  CREATE TABLE control (
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    bytes BLOB NOT NULL,
    pos   INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
  ) WITHOUT ROWID;
  CREATE TABLE indexes (
    collection TEXT NOT NULL,
    path       TEXT NOT NULL,
    name       TEXT NOT NULL UNIQUE,
    PRIMARY KEY (collection, path)
  ) WITHOUT ROWID;
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;
  `
  },
  // entries whose payload cannot be opened yet (their epoch key has not been shared with
  // this device) are kept and materialised later; Yjs document updates
  {
    name: '0002_pending_entries_and_yjs',
    sql: `
  ALTER TABLE entries ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX entries_pending ON entries (pos) WHERE pending = 1;
  CREATE TABLE yjs_updates (
    id     INTEGER PRIMARY KEY,
    doc    TEXT NOT NULL,
    pos    INTEGER NOT NULL,          -- entries.pos that carried it (0 for a compacted state)
    data   BLOB NOT NULL
  );
  CREATE INDEX yjs_updates_doc ON yjs_updates (doc, id);
  `
  },
  // search indexes. Documents to (re)index wait in index_queue (filled in the commit that
  // changed them, so the queue survives any crash); full-text rows are keyed by docs.rid;
  // vectors live in one sqlite-vec table per embedder (created on first use), keyed by chunks.rid
  {
    name: '0003_search',
    sql: `
  CREATE TABLE collection_settings (
    name     TEXT PRIMARY KEY,
    settings TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE index_queue (
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    ver        INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (collection, id)
  ) WITHOUT ROWID;
  CREATE TABLE chunks (
    rid        INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    embedder   TEXT NOT NULL,
    text       TEXT NOT NULL
  );
  CREATE INDEX chunks_doc ON chunks (collection, id);
  CREATE INDEX chunks_embedder ON chunks (embedder, collection);
  CREATE VIRTUAL TABLE fts USING fts5(text, tokenize = '${FTS_TOKENIZE}');
  CREATE TABLE vector_tables (
    embedder TEXT PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    dims     INTEGER NOT NULL
  ) WITHOUT ROWID;
  `
  },
  // chain signatures (crdt/entry.ts): the author's signature on the last entry of a run, beside
  // the entry it covers
  {
    name: '0004_chain_signatures',
    sql: `
  ALTER TABLE entries ADD COLUMN sig BLOB;
  `
  },
  // each author's head is read from the (author, seq) index instead of a table every commit
  // rewrote: one B-tree page less per commit (~15-30 us of a single put)
  {
    name: '0005_heads_from_entries',
    sql: `
  DROP TABLE heads;
  `
  }
]

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length

/**
 * Brings the schema to {@link SCHEMA_VERSION} through the migration engine. Throws
 * {@link SchemaVersionError} for a database a newer PeakDB wrote. Nothing else may use `db` meanwhile.
 */
export async function migrate (db: Database, location: string): Promise<void> {
  const legacy = db.pragma('user_version', { simple: true }) as number
  await migrateSchema(SqliteMigrationDriver.attach(db, location, SCHEMA_TABLE), MIGRATIONS, legacy)
  if (legacy !== SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`)
}
