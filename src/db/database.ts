// The two faces of the database behind one Kysely<Database>: a PostgreSQL server through a `pg` Pool,
// or embedded PGlite through its node-postgres adapter, so both share one driver and one code path.
import path from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { Kysely, PostgresDialect, type PostgresPool } from 'kysely'
import pg from 'pg'
import { lockDataDir } from './data-dir-lock.js'
import { namedStatementPool } from './named-statements.js'
import type { Database } from './schema.js'

export type DatabaseFace = 'postgres' | 'pglite'

/** Which of the handle's two Kysely instances ran a statement. */
export type Commits = 'durable' | 'async'

export interface DatabaseHandle {
  db: Kysely<Database>
  /**
   * The same database, for writes whose loss in a crash of the database server can only cost a retry, never
   * open access: session inserts and updates (a lost one ends a session early) and the per-address POST
   * counts. On PostgreSQL its connections commit without waiting for the disk (synchronous_commit=off):
   * such a commit is visible at once and atomic, and a crash loses at most the last fraction of a second of
   * them, never one that a durable commit followed. Users, session deletes (log-outs) and failed log-ins'
   * counts go through `db`. On PGlite it is the same connection.
   */
  asyncCommitDb: Kysely<Database>
  face: DatabaseFace
  /** Where the data is, for log lines: a URL without its password, or a folder. */
  location: string
  close(): Promise<void>
}

export interface OpenDatabaseOptions {
  databaseUrl: string | null
  dataDir: string
  /** Errors of idle connections (a server restart, a network cut); without a listener they crash the process. */
  onPoolError?: (error: Error) => void
  /** Called with each statement's SQL once it has run (or failed), and which instance ran it: for tests
   * that count round trips. */
  onQuery?: (sql: string, commits: Commits) => void
}

/** One of the handle's Kysely instances on `pool`, reporting its statements to `onQuery` as `commits`. */
function kyselyOn(pool: PostgresPool, options: OpenDatabaseOptions, commits: Commits): Kysely<Database> {
  const onQuery = options.onQuery
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    ...(onQuery ? { log: (event) => onQuery(event.query.sql, commits) } : {}),
  })
}

/** Connections of the async-commit instance (see DatabaseHandle): a few suffice, their writes are short. */
const ASYNC_COMMIT_CONNECTIONS = 4

export function pgliteDir(dataDir: string): string {
  return path.join(dataDir, 'pglite')
}

function redactPassword(databaseUrl: string): string {
  const url = new URL(databaseUrl)
  if (url.password) url.password = '***'
  return url.toString()
}

export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  const onPoolError = options.onPoolError ?? (() => {})

  if (options.databaseUrl) {
    const connectionString = options.databaseUrl
    const openPool = (config: pg.PoolConfig) => {
      const pool = new pg.Pool({ connectionString, connectionTimeoutMillis: 5000, ...config })
      pool.on('error', onPoolError)
      // The pool listens only to idle clients; a client in use when the server goes away emits 'error' on
      // itself, which with no listener is an uncaught exception that kills the process. Its query fails anyway.
      pool.on('connect', (client) => client.on('error', onPoolError))
      return namedStatementPool(pool)
    }
    const db = kyselyOn(openPool({ max: 10 }), options, 'durable')
    // Set at connection start-up, so no statement is added per write. (Options in DATABASE_URL take
    // precedence in pg: such a URL leaves these commits durable, which is only slower.)
    const asyncCommitDb = kyselyOn(
      openPool({ max: ASYNC_COMMIT_CONNECTIONS, options: '-c synchronous_commit=off' }),
      options,
      'async',
    )
    return {
      db,
      asyncCommitDb,
      face: 'postgres',
      location: redactPassword(options.databaseUrl),
      close: async () => {
        await Promise.all([db.destroy(), asyncCommitDb.destroy()])
      },
    }
  }

  const releaseLock = lockDataDir(options.dataDir)
  try {
    // Loaded only for this face: a server on PostgreSQL does not carry the embedded one's code (about 5 MiB).
    const [{ PGlite }, { createPgConfig }] = await Promise.all([
      import('@electric-sql/pglite'),
      import('@electric-sql/pglite/node-postgres'),
    ])
    const pglite = await PGlite.create(pgliteDir(options.dataDir))
    // One connection for life: PGlite is single-connection, and the adapter's connection is reused by the
    // pool. The timeout turns a would-be deadlock (a query on `db` inside a transaction) into an error.
    const pool = new pg.Pool({
      ...createPgConfig(pglite),
      max: 1,
      idleTimeoutMillis: 0,
      connectionTimeoutMillis: 10_000,
    })
    pool.on('error', onPoolError)
    // PGlite answers in the main thread, synchronously, and the adapter hands the one connection on
    // from query to query through promises alone: a queue of queries under load would run back to back
    // without the event loop turning, so timers, sockets and new requests would wait for all of them
    // (seconds at 100 clients, which load shedding then takes for overload). Each checkout of the
    // connection waits for one turn of the loop before its query runs.
    const onePool = namedStatementPool(pool, { afterCheckout: () => nextTurn() })
    const db = kyselyOn(onePool, options, 'durable')
    // The same single connection (the pool is ended once, by `db`): the code paths stay those of PostgreSQL.
    const asyncCommitDb = kyselyOn({ connect: onePool.connect, end: async () => {} }, options, 'async')
    return {
      db,
      asyncCommitDb,
      face: 'pglite',
      location: pgliteDir(options.dataDir),
      async close() {
        try {
          await asyncCommitDb.destroy()
          await db.destroy()
          await pglite.close()
        } finally {
          releaseLock()
        }
      },
    }
  } catch (error) {
    releaseLock()
    throw error
  }
}
