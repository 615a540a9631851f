// Each auth event, twice: a structured log line (naming the user by id or the email by its keyed digest,
// never by address) and a row of auth_events, the account's history (src/plugins/events.ts).
import type { FastifyRequest } from 'fastify'
import type { AuthEventType } from '../db/schema.js'

/** The account by id, or the email as typed (its account when it has one, else its digest). */
export type EventSubject = { userId: number } | { email: string }

/** A line only, for what is no event of the account's history (a confirmation link sent again). */
export function logAuthLine(
  request: FastifyRequest,
  event: string,
  subject: EventSubject,
  extra: Record<string, unknown> = {},
): void {
  const who =
    'userId' in subject ? { userId: subject.userId } : { emailHash: request.server.emailDigest.of(subject.email) }
  request.log.info({ event, ...who, ip: request.ip, ...extra }, `auth: ${event}`)
}

/** The log line and the event row. `details` go to both; keep them small and free of secrets. */
export async function recordAuthEvent(
  request: FastifyRequest,
  type: AuthEventType,
  subject: EventSubject,
  details: Record<string, unknown> = {},
): Promise<void> {
  logAuthLine(request, type, subject, details)
  await request.server.events.record(request, type, subject, details)
}
