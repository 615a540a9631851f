// All SQL for auth_counters: fixed-window counters in PostgreSQL, so every instance sees the same counts
// and a restart forgets nothing.
import { type Kysely, type QueryCreator, type RawBuilder, sql } from 'kysely'
import { prepareStatement } from '../db/prepared.js'
import type { Database, User } from '../db/schema.js'
import { USER_COLUMNS, userFromJoin } from '../users/repository.js'

export interface CounterState {
  count: number
  /** Milliseconds until the window ends. */
  ttlMs: number
}

/** An upsert's update of a counter: one more in a live window; a window that has ended starts again at 1. */
function countInWindow(windowEnd: RawBuilder<Date>) {
  return {
    count: sql<number>`case when auth_counters.window_ends_at <= now() then 1 else auth_counters.count + 1 end`,
    window_ends_at: sql<Date>`case when auth_counters.window_ends_at <= now() then ${windowEnd} else auth_counters.window_ends_at end`,
  }
}

const ttlMs = sql<string>`greatest(0, ceil(extract(epoch from (window_ends_at - now())) * 1000))`

/** Adds one; a window that has ended starts again at 1. Atomic under concurrency (one upsert). Returns the
 * new count and the window's remaining milliseconds; also for a caller that runs it with other work. */
export function incrementStatement(db: QueryCreator<Database>, key: string, windowSeconds: number) {
  const windowEnd = sql<Date>`now() + make_interval(secs => ${windowSeconds})`
  return db
    .insertInto('auth_counters')
    .values({ key, count: 1, window_ends_at: windowEnd })
    .onConflict((oc) => oc.column('key').doUpdateSet(countInWindow(windowEnd)))
    .returning(['count', ttlMs.as('ttl_ms')])
}

const increment = prepareStatement((db, p: { key: string; windowSeconds: number }) =>
  incrementStatement(db, p.key, p.windowSeconds),
)

export async function incrementCounter(db: Kysely<Database>, key: string, windowMs: number): Promise<CounterState> {
  const { rows } = await increment(db, { key, windowSeconds: windowMs / 1000 })
  const row = rows[0]
  if (!row) throw new Error('auth_counters upsert returned no row')
  return { count: row.count, ttlMs: Number(row.ttl_ms) }
}

export async function pruneExpiredCounters(db: Kysely<Database>): Promise<number> {
  const result = await db.deleteFrom('auth_counters').where('window_ends_at', '<=', sql<Date>`now()`).executeTakeFirst()
  return Number(result.numDeletedRows)
}

const countAttempt = prepareStatement((db, p: { emailCanonical: string; emailKey: string; windowSeconds: number }) => {
  const windowEnd = sql<Date>`now() + make_interval(secs => ${p.windowSeconds})`
  return db
    .with('u', (qb) =>
      qb.selectFrom('users').select(USER_COLUMNS).where('users.email_canonical', '=', p.emailCanonical),
    )
    .with('c', (qb) =>
      qb
        .insertInto('auth_counters')
        .columns(['key', 'count', 'window_ends_at'])
        .expression(
          db.selectNoFrom([
            sql<string>`coalesce('login-user:' || (select id from u), ${p.emailKey})`.as('key'),
            sql<number>`1`.as('count'),
            windowEnd.as('window_ends_at'),
          ]),
        )
        .onConflict((oc) => oc.column('key').doUpdateSet(countInWindow(windowEnd)))
        .returning(['key', 'count']),
    )
    .selectFrom('c')
    .leftJoin('u', (join) => join.onTrue())
    .selectAll('u')
    .select(['c.key as counter_key', 'c.count'])
})

/**
 * Counts one log-in attempt for an email and reads its user (null when none), in one atomic statement that
 * returns the new count: parallel attempts each see their own number, so no more than the limit are ever
 * checked. The counter is the user's (`login-user:<id>`) when the email has one, so every spelling of that
 * email shares it; else `emailKey`'s.
 */
export async function countLoginAttempt(
  db: Kysely<Database>,
  emailCanonical: string,
  emailKey: string,
  windowMs: number,
): Promise<{ user: User | null; key: string; count: number }> {
  const { rows } = await countAttempt(db, { emailCanonical, emailKey, windowSeconds: windowMs / 1000 })
  if (!rows[0]) throw new Error('the counter upsert returned no row')
  const { counter_key, count, ...user } = rows[0]
  return { user: userFromJoin(user), key: counter_key, count }
}

/** The statement that deletes a counter, for a caller that runs it with other work (see the session store). */
export function deleteCounter(db: QueryCreator<Database>, key: string) {
  return db.deleteFrom('auth_counters').where('key', '=', key)
}
