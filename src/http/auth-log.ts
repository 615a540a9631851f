// One structured log line per auth event, naming the user by id or the email by its keyed digest, never by
// address.
import type { FastifyRequest } from 'fastify'

export type AuthEvent =
  | 'signup'
  | 'login'
  | 'login_failed'
  | 'login_throttled'
  | 'logout'
  | 'password_reset_requested'
  | 'password_reset'
  | 'email_confirmation_requested'
  | 'email_confirmed'

export function logAuthEvent(
  request: FastifyRequest,
  event: AuthEvent,
  subject: { userId: number } | { email: string },
  extra: Record<string, unknown> = {},
): void {
  const who =
    'userId' in subject ? { userId: subject.userId } : { emailHash: request.server.emailDigest.of(subject.email) }
  request.log.info({ event, ...who, ip: request.ip, ...extra }, `auth: ${event}`)
}
