// All SQL for auth_events: recording an event (by the account's id, or by the email typed, resolved in the
// statement so an unknown email costs the same), the log-in's new-browser check, an account's history, and
// pruning by age.
import { type Kysely, sql } from 'kysely'
import { prepareStatement } from '../db/prepared.js'
import type { AuthEventType, Database } from '../db/schema.js'

/** Where and how a request came: the address as TRUST_PROXY decides it, the browser from its User-Agent. */
export interface EventOrigin {
  ip: string | null
  browser: string | null
  system: string | null
}

export interface EventInput extends EventOrigin {
  type: AuthEventType
  /** The admin who acted on someone else's account. */
  actorId: number | null
  details: string
}

const insertForUser = prepareStatement((db, p: EventInput & { userId: number | null; emailHash: string | null }) =>
  db.insertInto('auth_events').values({
    type: p.type,
    user_id: p.userId,
    actor_id: p.actorId,
    email_hash: p.emailHash,
    ip: p.ip,
    browser: p.browser,
    system: p.system,
    details: sql<string>`${p.details}::jsonb`,
  }),
)

/** For an email as typed: the account's event when it has one, else the email's digest (never shown on a page). */
const insertForEmail = prepareStatement((db, p: EventInput & { emailCanonical: string; emailHash: string }) =>
  db.insertInto('auth_events').values((eb) => {
    const account = eb.selectFrom('users').select('users.id').where('users.email_canonical', '=', p.emailCanonical)
    return {
      type: p.type,
      user_id: account,
      actor_id: p.actorId,
      email_hash: sql<string | null>`case when (${account}) is null then ${p.emailHash}::text end`,
      ip: p.ip,
      browser: p.browser,
      system: p.system,
      details: sql<string>`${p.details}::jsonb`,
    }
  }),
)

export async function insertEvent(
  db: Kysely<Database>,
  subject: { userId: number | null; emailHash?: string } | { emailCanonical: string; emailHash: string },
  event: EventInput,
): Promise<void> {
  if ('emailCanonical' in subject) await insertForEmail(db, { ...event, ...subject })
  else await insertForUser(db, { ...event, userId: subject.userId, emailHash: subject.emailHash ?? null })
}

/**
 * A log-in's event, and in the same statement whether the account had been used from this browser and
 * system before (a log-in or its sign-up), and whether it had any such event at all.
 */
const insertLogIn = prepareStatement((db, p: EventInput & { userId: number }) =>
  db
    // Two probes of the partial index auth_events_known_browsers_idx, however long the account's history.
    .with('previous', (qb) =>
      qb.selectNoFrom([
        sql<boolean>`exists (select 1 from auth_events where user_id = ${p.userId} and type in ('login', 'signup') and browser = ${p.browser} and system = ${p.system})`.as(
          'same',
        ),
        sql<boolean>`exists (select 1 from auth_events where user_id = ${p.userId} and type in ('login', 'signup'))`.as(
          'any',
        ),
      ]),
    )
    .insertInto('auth_events')
    .values({
      type: p.type,
      user_id: p.userId,
      actor_id: p.actorId,
      ip: p.ip,
      browser: p.browser,
      system: p.system,
      details: sql<string>`${p.details}::jsonb`,
    })
    .returning([
      sql<boolean>`(select same from previous)`.as('same'),
      sql<boolean>`(select "any" from previous)`.as('any'),
    ]),
)

/** Records a log-in; true when it came from a browser new to an account that has been used before. */
export async function insertLogInEvent(db: Kysely<Database>, userId: number, event: EventInput): Promise<boolean> {
  const { rows } = await insertLogIn(db, { ...event, userId })
  const row = rows[0]
  return row !== undefined && row.any === true && row.same === false
}

export interface AccountEvent {
  id: string
  type: AuthEventType
  ip: string | null
  browser: string | null
  system: string | null
  details: Record<string, unknown>
  created_at: Date
}

/** An account's events, newest first: `limit` of them after skipping `offset`. */
export async function listEventsOfUser(
  db: Kysely<Database>,
  userId: number,
  limit: number,
  offset: number,
): Promise<AccountEvent[]> {
  return db
    .selectFrom('auth_events')
    .select(['id', 'type', 'ip', 'browser', 'system', 'details', 'created_at'])
    .where('user_id', '=', userId)
    .orderBy('id', 'desc')
    .limit(limit)
    .offset(offset)
    .execute()
}

/** Deletes events older than `days` (a fraction of a day too: AUDIT_RETENTION_DAYS is any positive number);
 * returns how many. */
export async function pruneEvents(db: Kysely<Database>, days: number): Promise<number> {
  const result = await db
    .deleteFrom('auth_events')
    // In seconds: make_interval's `days` takes only a whole number, and a fraction failed every pruning.
    .where('created_at', '<', sql<Date>`now() - make_interval(secs => ${days * 86_400})`)
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
