// Kysely's pool, with every statement that has parameters sent as a named (prepared) statement: PostgreSQL
// parses and plans it once per connection, and each later run only binds and executes. The session read
// on every page view is the one that pays off. pg remembers, per connection, which names it has prepared.
// @see https://node-postgres.com/features/queries#prepared-statements
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely'
import pg from 'pg'

/** Our statements come in a few dozen shapes; past this many, something builds SQL per call: run it unnamed. */
const MAX_NAMED_STATEMENTS = 500

const statementNames = new Map<string, string>()

function statementName(sql: string): string | undefined {
  let name = statementNames.get(sql)
  if (name === undefined && statementNames.size < MAX_NAMED_STATEMENTS) {
    name = `gatehouse_${statementNames.size + 1}`
    statementNames.set(sql, name)
  }
  return name
}

function namedStatementClient(client: pg.PoolClient): PostgresPoolClient {
  function query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>
  function query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>
  function query<R>(
    sqlOrCursor: string | PostgresCursor<R>,
    parameters: ReadonlyArray<unknown> = [],
  ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    if (typeof sqlOrCursor !== 'string') return sqlOrCursor
    const name = parameters.length > 0 ? statementName(sqlOrCursor) : undefined
    // Kysely's connection already hands over a fresh copy of the parameters: no second copy here.
    const values = parameters as unknown[]
    // pg's result has every field Kysely reads (command, rowCount, rows); its command type is a plain string.
    if (!name) return client.query(sqlOrCursor, values) as unknown as Promise<PostgresQueryResult<R>>
    return new Promise((resolve, reject) => {
      // A Query made from the text, then named: given a config object instead, pg copies it property by
      // property (through property descriptors) on every call.
      const query = new pg.Query(sqlOrCursor, values, (error, result) =>
        error ? reject(error) : resolve(result as unknown as PostgresQueryResult<R>),
      )
      client.query(Object.assign(query, { name }))
    })
  }
  return { query, release: () => client.release() }
}

export interface NamedStatementPoolOptions {
  /** Awaited after each checkout, before the connection is handed to Kysely. */
  afterCheckout?: () => Promise<unknown>
}

export function namedStatementPool(pool: pg.Pool, options: NamedStatementPoolOptions = {}): PostgresPool {
  // Kysely keeps one connection object per client it is given: the same wrapper for the same client.
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>()
  return {
    async connect() {
      const client = await pool.connect()
      if (options.afterCheckout) await options.afterCheckout()
      let wrapper = wrappers.get(client)
      if (!wrapper) {
        wrapper = namedStatementClient(client)
        wrappers.set(client, wrapper)
      }
      return wrapper
    },
    end: () => pool.end(),
  }
}
