/**
 * The PostgreSQL schema and its migrations. Every node keeps its tables in a schema of its own
 * (several nodes can share one database). The migration engine (storage/migrate/) runs the
 * migrations, each in its own transaction (PostgreSQL's DDL is transactional), and records them
 * in the schema's `peakdb_schema`; `meta.schema_version` still counts them, for older builds. The tables
 * mirror the SQLite ones (storage/sqlite/schema.ts), with jsonb for querying documents,
 * tsvector for words and pgvector for vectors.
 */
import type { PoolClient } from 'pg'
import { PostgresMigrationDriver } from '../migrate/pg-driver.js'
import { migrateSchema, SCHEMA_TABLE, type SqlMigration } from '../migrate/schema-source.js'

/** PeakDB's PostgreSQL schema, version by version; a release only ever appends to this list. */
export const MIGRATIONS: readonly SqlMigration[] = [
  {
    name: '0001_log_documents_search',
    sql: `
  CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
  );
  CREATE TABLE entries (
    pos     bigint PRIMARY KEY,         -- local apply order; always a causal order
    cid     bytea NOT NULL,
    author  text COLLATE "C" NOT NULL,
    seq     bigint NOT NULL,
    bytes   bytea NOT NULL,
    pending smallint NOT NULL DEFAULT 0, -- 1: payload not opened yet; 2: quarantined
    UNIQUE (author, seq)                -- one entry per author and seq: a fork cannot be stored
  );
  CREATE INDEX entries_cid ON entries USING hash (cid);
  CREATE INDEX entries_pending ON entries (pos) WHERE pending = 1;
  CREATE TABLE heads (
    author text COLLATE "C" PRIMARY KEY,
    seq    bigint NOT NULL,
    cid    bytea NOT NULL
  );
  -- body: the JSON text as written (returned as is); j: its jsonb form, for queries. jsonb
  -- takes neither NUL nor a lone surrogate, which JSON.stringify writes as \\u0000 and \\ud800
  -- escapes (a pair it writes as the character itself): in queries only, they read as U+FFFD
  CREATE FUNCTION peak_jsonb (body text) RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN strpos(body, '\\u') = 0 THEN body::jsonb
      ELSE regexp_replace(body, '\\\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})', '\\\\ufffd', 'g')::jsonb END;
  CREATE TABLE docs (
    rid        bigserial PRIMARY KEY,
    collection text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    body       text,                     -- visible fields as JSON; NULL when deleted
    j          jsonb GENERATED ALWAYS AS (peak_jsonb(body)) STORED,
    meta       text NOT NULL,            -- LWW stamps (crdt/lww.ts DocRow.meta)
    pos        bigint NOT NULL,          -- entries.pos of the latest change
    UNIQUE (collection, id)
  );
  CREATE TABLE control (
    kind  text NOT NULL,
    key   text NOT NULL,
    bytes bytea NOT NULL,
    pos   bigint NOT NULL,
    PRIMARY KEY (kind, key)
  );
  CREATE TABLE indexes (
    collection text COLLATE "C" NOT NULL,
    path       text COLLATE "C" NOT NULL,
    name       text NOT NULL UNIQUE,
    PRIMARY KEY (collection, path)
  );
  CREATE TABLE yjs_updates (
    id   bigserial PRIMARY KEY,
    doc  text NOT NULL,
    pos  bigint NOT NULL,               -- entries.pos that carried it (0 for a compacted state)
    data bytea NOT NULL
  );
  CREATE INDEX yjs_updates_doc ON yjs_updates (doc, id);
  CREATE TABLE collection_settings (
    name     text PRIMARY KEY,
    settings text NOT NULL
  );
  CREATE TABLE index_queue (
    collection text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    ver        bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (collection, id)
  );
  -- words of a document, keyed by docs.rid
  CREATE TABLE fts (
    rid bigint PRIMARY KEY,
    tsv tsvector NOT NULL
  );
  CREATE INDEX fts_tsv ON fts USING gin (tsv);
  CREATE TABLE chunks (
    rid        bigserial PRIMARY KEY,
    collection text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    seq        int NOT NULL,
    embedder   text NOT NULL,
    text       text NOT NULL
  );
  CREATE INDEX chunks_doc ON chunks (collection, id);
  CREATE INDEX chunks_embedder ON chunks (embedder, collection);
  -- one pgvector table per embedder (created on first use), keyed by chunks.rid
  CREATE TABLE vector_tables (
    embedder text PRIMARY KEY,
    name     text NOT NULL UNIQUE,
    dims     int NOT NULL
  );
  `
  },
  // chain signatures (crdt/entry.ts): the author's signature on the last entry of a run, beside
  // the entry it covers
  {
    name: '0002_chain_signatures',
    sql: `
  ALTER TABLE entries ADD COLUMN sig bytea;
  `
  }
]

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length

/**
 * Creates the node's schema if needed and brings it to {@link SCHEMA_VERSION} through the
 * migration engine, on a client that holds the schema's lock. Throws {@link SchemaVersionError}
 * for a schema a newer PeakDB wrote.
 */
export async function migrate (client: PoolClient, schema: string, location: string): Promise<void> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
  const has = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${schema}.meta`])
  let legacy = 0
  if (has.rows[0]?.t != null) {
    const row = await client.query<{ value: string }>(`SELECT value FROM ${schema}.meta WHERE key = 'schema_version'`)
    legacy = Number(row.rows[0]?.value ?? 0)
  }
  await migrateSchema(PostgresMigrationDriver.attach(client, location, SCHEMA_TABLE, schema), MIGRATIONS, legacy)
  if (legacy !== SCHEMA_VERSION) {
    await client.query(`INSERT INTO ${schema}.meta (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [String(SCHEMA_VERSION)])
  }
}
