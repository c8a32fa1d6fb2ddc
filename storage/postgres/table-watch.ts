/**
 * Changes to tables made by any client (another process, psql), delivered to this process:
 * statement-level triggers record the changed keys in `peakdb_watch.changes` and NOTIFY with
 * the table, the last change number and, when they fit in a notification (at most 8,000
 * bytes), the keys. One listening connection per database reads the change table from the last
 * number it saw, so bursts coalesce into one read, and after the connection drops (notifications
 * sent meanwhile are lost) it reconnects and reads what it missed from the table.
 */
import pg from 'pg'

const CHANNEL = 'peakdb_watch'
/** Change rows kept for a listener that was away, at least. */
const KEEP = '1 hour'
/** A change number skipped by a listener may belong to a transaction still open: looked for again this long. */
const GAP_MS = 30_000
const PAGE = 20_000

const SETUP = `
CREATE SCHEMA IF NOT EXISTS peakdb_watch;
CREATE TABLE IF NOT EXISTS peakdb_watch.changes (
  seq bigserial PRIMARY KEY,
  tbl text NOT NULL,
  id  text NOT NULL,
  at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS changes_at ON peakdb_watch.changes (at);
CREATE OR REPLACE FUNCTION peakdb_watch.changed () RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ids text[];
  top bigint;
  payload text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    EXECUTE format('SELECT array_agg(DISTINCT %I::text) FROM n', TG_ARGV[0]) INTO ids;
  ELSIF TG_OP = 'DELETE' THEN
    EXECUTE format('SELECT array_agg(DISTINCT %I::text) FROM o', TG_ARGV[0]) INTO ids;
  ELSE
    EXECUTE format('SELECT array_agg(DISTINCT k) FROM (SELECT %I::text AS k FROM n UNION SELECT %I::text FROM o) x', TG_ARGV[0], TG_ARGV[0]) INTO ids;
  END IF;
  IF ids IS NULL THEN
    RETURN NULL;
  END IF;
  INSERT INTO peakdb_watch.changes (tbl, id) SELECT TG_ARGV[1], unnest(ids);
  top := currval(pg_get_serial_sequence('peakdb_watch.changes', 'seq'));
  payload := json_build_object('t', TG_ARGV[1], 's', top, 'ids', ids)::text;
  IF octet_length(payload) > 7900 THEN
    payload := json_build_object('t', TG_ARGV[1], 's', top)::text;
  END IF;
  PERFORM pg_notify('${CHANNEL}', payload);
  RETURN NULL;
END $$;
`

function quote (name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/**
 * Installs the change table and the triggers on one table (idempotent; two processes doing it
 * at once take turns).
 */
export async function installTableWatch (db: pg.Pool | pg.Client, schema: string, table: string, key: string): Promise<void> {
  const qualified = `${quote(schema)}.${quote(table)}`
  const name = `${schema}.${table}`
  const client = db instanceof pg.Pool ? await db.connect() : db
  try {
    await client.query('BEGIN')
    await client.query("SELECT pg_advisory_xact_lock(hashtext('peakdb_watch'))")
    await client.query(SETUP)
    const args = `${pg.escapeLiteral(key)}, ${pg.escapeLiteral(name)}`
    await client.query(`CREATE OR REPLACE TRIGGER peakdb_watch_insert AFTER INSERT ON ${qualified} REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION peakdb_watch.changed(${args})`)
    await client.query(`CREATE OR REPLACE TRIGGER peakdb_watch_update AFTER UPDATE ON ${qualified} REFERENCING OLD TABLE AS o NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION peakdb_watch.changed(${args})`)
    await client.query(`CREATE OR REPLACE TRIGGER peakdb_watch_delete AFTER DELETE ON ${qualified} REFERENCING OLD TABLE AS o FOR EACH STATEMENT EXECUTE FUNCTION peakdb_watch.changed(${args})`)
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw err
  } finally {
    if (db instanceof pg.Pool) (client as pg.PoolClient).release()
  }
}

/** Listens for table changes on one database and hands each watched table its changed keys. */
export class TableWatch {
  private client: pg.Client | undefined
  private readonly tables = new Map<string, Set<(ids: string[]) => void>>()
  private last = 0
  /** Change numbers skipped so far, with when they were first missed. */
  private readonly gaps = new Map<number, number>()
  private draining: Promise<void> | undefined
  private again = false
  private closed = false
  private reconnectDelay = 100
  private timer: NodeJS.Timeout | undefined
  private pruneTimer: NodeJS.Timeout | undefined
  /** Connections made (1 at start; more after drops). */
  connects = 0
  /** Told about a failure of the listening connection (logging). */
  onError: ((err: Error) => void) | undefined

  constructor (private readonly config: pg.ClientConfig) {}

  /** Connects and starts listening (from the current end of the change table). */
  async start (): Promise<void> {
    await this.connect(true)
    this.pruneTimer = setInterval(() => { void this.prune() }, 60_000)
    this.pruneTimer.unref()
  }

  private async connect (first: boolean): Promise<void> {
    const client = new pg.Client({ ...this.config, application_name: 'peakdb-watch' })
    client.on('error', err => this.dropped(err))
    client.on('end', () => this.dropped(new Error('the listening connection ended')))
    client.on('notification', msg => {
      if (msg.channel === CHANNEL) this.schedule()
    })
    await client.connect()
    this.client = client
    this.connects++
    await client.query(`LISTEN ${CHANNEL}`)
    if (first) {
      const top = await client.query<{ s: string | null }>("SELECT (SELECT last_value FROM peakdb_watch.changes_seq_seq WHERE is_called) AS s").catch(() => ({ rows: [{ s: null }] }))
      this.last = Number(top.rows[0]?.s ?? 0)
    } else {
      // notifications sent while away are lost: read what the table holds since
      this.schedule()
    }
    this.reconnectDelay = 100
  }

  private dropped (err: Error): void {
    if (this.closed || this.client === undefined) return
    this.client = undefined
    this.onError?.(err)
    const retry = (): void => {
      if (this.closed) return
      this.timer = setTimeout(() => {
        this.connect(false).catch(e => {
          this.onError?.(e as Error)
          this.reconnectDelay = Math.min(5000, this.reconnectDelay * 2)
          retry()
        })
      }, this.reconnectDelay)
      this.timer.unref()
    }
    retry()
  }

  /** Watches a table (`schema.table`): `onIds` gets the keys of rows changed by any client. */
  watch (table: string, onIds: (ids: string[]) => void): () => void {
    let set = this.tables.get(table)
    if (set === undefined) this.tables.set(table, set = new Set())
    set.add(onIds)
    return () => {
      set?.delete(onIds)
      if (set?.size === 0) this.tables.delete(table)
    }
  }

  private schedule (): void {
    if (this.draining !== undefined) {
      this.again = true
      return
    }
    this.draining = (async () => {
      do {
        this.again = false
        await this.drain().catch(err => this.onError?.(err as Error))
      } while (this.again && !this.closed)
    })().finally(() => { this.draining = undefined })
  }

  /** Reads the change table past the last number seen (and numbers skipped lately), table by table. */
  private async drain (): Promise<void> {
    const client = this.client
    if (client === undefined || this.tables.size === 0) return
    const now = Date.now()
    for (const [seq, since] of this.gaps) if (now - since > GAP_MS) this.gaps.delete(seq)
    for (;;) {
      const { rows } = await client.query<{ seq: string, tbl: string, id: string }>(
        'SELECT seq, tbl, id FROM peakdb_watch.changes WHERE (seq > $1 OR seq = ANY($2::bigint[])) AND tbl = ANY($3::text[]) ORDER BY seq LIMIT $4',
        [this.last, [...this.gaps.keys()], [...this.tables.keys()], PAGE])
      const byTable = new Map<string, Set<string>>()
      let top = this.last
      for (const r of rows) {
        const seq = Number(r.seq)
        this.gaps.delete(seq)
        if (seq > top) {
          // numbers between are changes of other tables, or of transactions not committed yet
          for (let s = top + 1; s < seq && s - top < 10_000; s++) if (!this.gaps.has(s)) this.gaps.set(s, now)
          top = seq
        }
        let ids = byTable.get(r.tbl)
        if (ids === undefined) byTable.set(r.tbl, ids = new Set())
        ids.add(r.id)
      }
      this.last = top
      for (const [table, ids] of byTable) for (const fn of this.tables.get(table) ?? []) fn([...ids])
      if (rows.length < PAGE) break
    }
    // numbers of other tables are no gaps of ours: the table's own sequence moves for everyone
    if (this.gaps.size > 0) {
      const known = await client.query<{ seq: string }>('SELECT seq FROM peakdb_watch.changes WHERE seq = ANY($1::bigint[]) AND NOT (tbl = ANY($2::text[]))', [[...this.gaps.keys()], [...this.tables.keys()]])
      for (const r of known.rows) this.gaps.delete(Number(r.seq))
    }
  }

  private async prune (): Promise<void> {
    await this.client?.query(`DELETE FROM peakdb_watch.changes WHERE at < now() - interval '${KEEP}'`).catch(() => undefined)
  }

  /** Stops listening. Idempotent. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    if (this.pruneTimer !== undefined) clearInterval(this.pruneTimer)
    await this.draining
    const client = this.client
    this.client = undefined
    await client?.end().catch(() => undefined)
  }
}
