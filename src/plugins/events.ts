// The accounts' history: each auth event as a row of auth_events (see src/http/auth-log.ts for the log line
// beside it), and the pruning of rows older than AUDIT_RETENTION_DAYS. Rows go through the async-commit
// connections: an event never makes a log-in wait for the disk (docs/reliability.md, "What waits for the disk").
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { AuthEventType } from '../db/schema.js'
import { type EventInput, type EventOrigin, insertEvent, insertLogInEvent, pruneEvents } from '../events/repository.js'
import { describeUserAgent } from '../events/user-agent.js'
import type { EventSubject } from '../http/auth-log.js'
import { repeatWhileRunning } from '../periodic.js'
import { canonicalEmail } from '../users/email.js'

export interface AuthEvents {
  record(
    request: FastifyRequest,
    type: AuthEventType,
    subject: EventSubject,
    details?: Record<string, unknown>,
  ): Promise<void>
  /** Records a log-in; true when its browser (family and system) is new to an account used before. */
  recordLogIn(request: FastifyRequest, userId: number, details?: Record<string, unknown>): Promise<boolean>
}

declare module 'fastify' {
  interface FastifyInstance {
    events: AuthEvents
  }
}

const PRUNE_INTERVAL_MS = 3_600_000
const FOREIGN_KEY_VIOLATION = '23503'

/** Where a request came from: its address (as TRUST_PROXY decides it) and its browser and system. */
export function eventOriginOf(request: FastifyRequest): EventOrigin {
  return { ip: request.ip ?? null, ...describeUserAgent(request.headers['user-agent']) }
}

function eventInput(request: FastifyRequest, type: AuthEventType, details: Record<string, unknown>): EventInput {
  return { ...eventOriginOf(request), type, actorId: null, details: JSON.stringify(details) }
}

export default fp<{ retentionDays: number }>(
  async function eventsPlugin(app, options) {
    const db = app.asyncCommitDb
    app.decorate('events', {
      async record(request, type, subject, details = {}) {
        const event = eventInput(request, type, details)
        if ('userId' in subject) {
          try {
            await insertEvent(db, { userId: subject.userId }, event)
          } catch (error) {
            // The account was deleted meanwhile (a request that raced its deletion): its history went with it.
            if ((error as { code?: string }).code !== FOREIGN_KEY_VIOLATION) throw error
          }
        } else
          await insertEvent(
            db,
            { emailCanonical: canonicalEmail(subject.email), emailHash: app.emailDigest.of(subject.email) },
            event,
          )
      },
      recordLogIn: (request, userId, details = {}) =>
        insertLogInEvent(db, userId, eventInput(request, 'login', details)),
    } satisfies AuthEvents)

    repeatWhileRunning(app, {
      name: 'pruning old account events',
      intervalMs: PRUNE_INTERVAL_MS,
      runAtReady: true,
      run: () => pruneEvents(app.db, options.retentionDays),
    })
  },
  { name: 'events', dependencies: ['db', 'throttling'] },
)
