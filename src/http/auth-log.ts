// One structured log line per auth event, naming the user by id or the email by its digest, never by address.
import type { FastifyRequest } from 'fastify'
import { emailDigest } from '../throttling/login-throttle.js'

export type AuthEvent = 'signup' | 'login' | 'login_failed' | 'login_throttled' | 'logout'

export function logAuthEvent(
  request: FastifyRequest,
  event: AuthEvent,
  subject: { userId: number } | { email: string },
  extra: Record<string, unknown> = {},
): void {
  const who = 'userId' in subject ? { userId: subject.userId } : { emailHash: emailDigest(subject.email) }
  request.log.info({ event, ...who, ip: request.ip, ...extra }, `auth: ${event}`)
}
