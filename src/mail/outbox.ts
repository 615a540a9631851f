// All SQL for mail_outbox: queueing a message in the caller's transaction, and the worker's claim, outcome
// and pruning. A claim takes due rows with FOR UPDATE SKIP LOCKED and leases them (next_attempt_at moves
// past the longest send), so two instances never take the same message, and one that dies mid-send leaves
// it to be taken again when the lease ends.
import { type Kysely, type QueryCreator, sql } from 'kysely'
import type { Database, MailKind } from '../db/schema.js'

export interface QueuedMessage {
  id: string
  kind: MailKind
  recipient: string
  body: string | null
  attempts: number
}

/** Queues one message; run it in the transaction (or the statement) of the change that causes it. */
export function queueMessage(db: QueryCreator<Database>, message: { kind: MailKind; recipient: string; body: string }) {
  return db.insertInto('mail_outbox').values(message)
}

/** Takes up to `limit` due messages for `leaseSeconds` and counts the attempt. */
export async function claimDueMessages(
  db: Kysely<Database>,
  limit: number,
  leaseSeconds: number,
): Promise<QueuedMessage[]> {
  return db
    .updateTable('mail_outbox')
    .set((eb) => ({
      attempts: eb('attempts', '+', 1),
      next_attempt_at: sql<Date>`now() + make_interval(secs => ${leaseSeconds})`,
    }))
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('mail_outbox')
        .select('id')
        .where('sent_at', 'is', null)
        .where('failed_at', 'is', null)
        .where('next_attempt_at', '<=', sql<Date>`now()`)
        .orderBy('next_attempt_at')
        .orderBy('id')
        .limit(limit)
        .forUpdate()
        .skipLocked(),
    )
    .returning(['id', 'kind', 'recipient', 'body', 'attempts'])
    .execute()
}

/** Sent: the content is wiped at once; the row stays a while for diagnostics (see pruneOutbox). */
export async function markSent(db: Kysely<Database>, id: string): Promise<void> {
  await db
    .updateTable('mail_outbox')
    .set({ sent_at: sql<Date>`now()`, body: null, last_error: null })
    .where('id', '=', id)
    .execute()
}

/** Failed for now: due again after `delayMs`. */
export async function scheduleRetry(db: Kysely<Database>, id: string, delayMs: number, error: string): Promise<void> {
  await db
    .updateTable('mail_outbox')
    .set({ next_attempt_at: sql<Date>`now() + make_interval(secs => ${delayMs / 1000})`, last_error: error })
    .where('id', '=', id)
    .execute()
}

/** Given up: never tried again, and its content is wiped. */
export async function markFailed(db: Kysely<Database>, id: string, error: string): Promise<void> {
  await db
    .updateTable('mail_outbox')
    .set({ failed_at: sql<Date>`now()`, body: null, last_error: error })
    .where('id', '=', id)
    .execute()
}

/** Deletes sent rows after a day and given-up ones after a week; returns how many. */
export async function pruneOutbox(db: Kysely<Database>): Promise<number> {
  const result = await db
    .deleteFrom('mail_outbox')
    .where((eb) =>
      eb.or([
        eb('sent_at', '<', sql<Date>`now() - interval '1 day'`),
        eb('failed_at', '<', sql<Date>`now() - interval '7 days'`),
      ]),
    )
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
