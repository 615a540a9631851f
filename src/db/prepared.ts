// Statements built with Kysely once and then run with fresh parameters. A statement's SQL never changes
// between runs, and building it (the builder's immutable nodes, then the compiler) is a real share of a
// log-in's CPU (docs/performance.md). The SQL stays Kysely's, typed, in the file of its
// table; each run only maps its parameters and goes to the driver (as a named statement, named-statements.ts).
import { type Compilable, CompiledQuery, type Kysely, type QueryResult } from 'kysely'
import type { Database } from './schema.js'

/** Stands for the parameter `key` while the statement is built. */
class Placeholder {
  constructor(readonly key: string) {}
}

export type PreparedStatement<P, R> = (db: Kysely<Database>, parameters: P) => Promise<QueryResult<R>>

/**
 * `build` is called once, with placeholders for `parameters`: it must pass each one to Kysely as a value
 * (a comparison, a column's value, a `sql` template's argument), never compute with it. Values it writes
 * itself (a constant 1) stay in the statement as they are. Both of our databases speak PostgreSQL through
 * Kysely's PostgreSQL dialect, so one compiled form serves every instance.
 */
export function prepareStatement<P extends object, R>(
  build: (db: Kysely<Database>, parameters: P) => Compilable<R>,
): PreparedStatement<P, R> {
  let compiled: { sql: string; parameters: readonly unknown[] } | undefined
  return (db, parameters) => {
    try {
      compiled ??= compile(db, build)
    } catch (error) {
      // Callers settle on the promise (the session store's callbacks): a builder's mistake arrives there too.
      return Promise.reject(error)
    }
    const values = compiled.parameters.map((value) =>
      value instanceof Placeholder ? (parameters as Record<string, unknown>)[value.key] : value,
    )
    return db.executeQuery(CompiledQuery.raw(compiled.sql, values) as CompiledQuery<R>)
  }
}

function compile<P extends object, R>(
  db: Kysely<Database>,
  build: (db: Kysely<Database>, parameters: P) => Compilable<R>,
): { sql: string; parameters: readonly unknown[] } {
  const used = new Set<string>()
  const placeholders = new Proxy({} as P, {
    get: (_target, key) => {
      used.add(String(key))
      return new Placeholder(String(key))
    },
  })
  const query = build(db, placeholders).compile()
  const bound = new Set(query.parameters.flatMap((value) => (value instanceof Placeholder ? [value.key] : [])))
  // A placeholder the builder computed with, or put where Kysely does not bind a value, would be sent as
  // an object or lost: a programming error, caught at the statement's first run in any test.
  for (const key of used) {
    if (!bound.has(key)) throw new Error(`prepared statement: parameter "${key}" is not bound as a value`)
  }
  return { sql: query.sql, parameters: query.parameters }
}
