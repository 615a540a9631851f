// All SQL for auth_counters: fixed-window counters in PostgreSQL, so every instance sees the same counts
// and a restart forgets nothing.
import { type Kysely, sql } from 'kysely'
import { prepareStatement } from '../db/prepared.js'
import type { Database, User } from '../db/schema.js'
import { isUserWithEmail, USER_COLUMNS, userFromJoin } from '../users/repository.js'

export interface CounterState {
  count: number
  /** Milliseconds until the window ends. */
  ttlMs: number
}

const ttlMs = sql<string>`greatest(0, ceil(extract(epoch from (window_ends_at - now())) * 1000))`

/** Adds one; a window that has ended starts again at 1. Atomic under concurrency (one upsert). */
const increment = prepareStatement((db, p: { key: string; windowSeconds: number }) => {
  const windowEnd = sql<Date>`now() + make_interval(secs => ${p.windowSeconds})`
  return db
    .insertInto('auth_counters')
    .values({ key: p.key, count: 1, window_ends_at: windowEnd })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet({
        count: sql`case when auth_counters.window_ends_at <= now() then 1 else auth_counters.count + 1 end`,
        window_ends_at: sql`case when auth_counters.window_ends_at <= now() then ${windowEnd} else auth_counters.window_ends_at end`,
      }),
    )
    .returning(['count', ttlMs.as('ttl_ms')])
})

export async function incrementCounter(db: Kysely<Database>, key: string, windowMs: number): Promise<CounterState> {
  const { rows } = await increment(db, { key, windowSeconds: windowMs / 1000 })
  const row = rows[0]
  if (!row) throw new Error('auth_counters upsert returned no row')
  return { count: row.count, ttlMs: Number(row.ttl_ms) }
}

const reset = prepareStatement((db, p: { key: string }) => db.deleteFrom('auth_counters').where('key', '=', p.key))

export async function resetCounter(db: Kysely<Database>, key: string): Promise<void> {
  await reset(db, { key })
}

export async function pruneExpiredCounters(db: Kysely<Database>): Promise<number> {
  const result = await db.deleteFrom('auth_counters').where('window_ends_at', '<=', sql<Date>`now()`).executeTakeFirst()
  return Number(result.numDeletedRows)
}

const countWithUser = prepareStatement((db, p: { key: string; email: string }) =>
  db
    .selectFrom(sql<{ one: number }>`(select 1 as one)`.as('one'))
    .leftJoin('users', (join) => join.on(isUserWithEmail(p.email)))
    .leftJoin('auth_counters', (join) =>
      join.on('auth_counters.key', '=', p.key).on('auth_counters.window_ends_at', '>', sql<Date>`now()`),
    )
    .select([...USER_COLUMNS, 'auth_counters.count']),
)

/**
 * The live count of counter `key` (0 when none) and the user with this email (null when none), in one round
 * trip: the log-in's one read. Both joins match at most one row (unique lower(email), primary key), and the
 * one-row source keeps the count when no user matches.
 */
export async function readCounterWithUser(
  db: Kysely<Database>,
  key: string,
  email: string,
): Promise<{ count: number; user: User | null }> {
  const { rows } = await countWithUser(db, { key, email: email.trim() })
  if (!rows[0]) throw new Error('the one-row read returned no row')
  const { count, ...user } = rows[0]
  return { count: count ?? 0, user: userFromJoin(user) }
}
