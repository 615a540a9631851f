// What the sign-up and log-in forms share: reading their fields, refusing with a flash, logging events.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { FormFieldError } from '../../http/errors.js'
import { ERROR_FIELD_FLASH, KEPT_EMAIL_FLASH } from '../../plugins/view.js'
import { emailDigest } from '../../throttling/login-throttle.js'
import type { AuthUser } from '../../users/authentication.js'
import { type CredentialField, emailToKeep } from '../../users/credentials.js'

export const TOO_MANY_ATTEMPTS_FLASH = 'Too many attempts. Try again later.'

/** Renders a form page (GET, and the 429 answer that shows the form again). */
export type RenderForm = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on form POST routes: how to show their form again. */
    renderForm?: RenderForm
  }
}

export interface CredentialFields {
  email: string
  password: string
}

/** A missing field reads as empty (the rules then say what is missing); anything but one string is a 400. */
export function readCredentialFields(body: unknown): CredentialFields {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
  const read = (name: keyof CredentialFields): string => {
    const value = fields[name]
    if (value === undefined) return ''
    if (typeof value !== 'string') throw new FormFieldError(name)
    return value
  }
  return { email: read('email'), password: read('password') }
}

/** The flash for a refusal, with the typed email for the form to show again (never the password) and,
 * when the refusal is about one field, that field, so the form repeats the message beside it. */
function flashRefusal(request: FastifyRequest, message: string, typedEmail: string, field?: CredentialField): void {
  request.flash('error', message)
  const email = emailToKeep(typedEmail)
  if (email) request.flash(KEPT_EMAIL_FLASH, email)
  if (field) request.flash(ERROR_FIELD_FLASH, field)
}

/** Post/redirect/get: the refusal travels to the form page as a flash. */
export function refuseForm(
  request: FastifyRequest,
  reply: FastifyReply,
  to: string,
  message: string,
  typedEmail: string,
  field?: CredentialField,
): FastifyReply {
  flashRefusal(request, message, typedEmail, field)
  return reply.redirect(to, 303)
}

/** 429 with the form shown again in the same response, so a client that does not follow redirects sees it too. */
export function refuseThrottled(
  request: FastifyRequest,
  reply: FastifyReply,
  renderForm: RenderForm,
): Promise<FastifyReply> {
  let typedEmail = ''
  try {
    typedEmail = readCredentialFields(request.body).email
  } catch {
    // A malformed email field is simply not kept.
  }
  flashRefusal(request, TOO_MANY_ATTEMPTS_FLASH, typedEmail)
  reply.code(429)
  return renderForm(request, reply)
}

export type AuthEvent = 'signup' | 'login' | 'login_failed' | 'login_throttled' | 'logout'

/** One structured line per auth event, naming the user by id or the email by its digest, never by address. */
export function logAuthEvent(
  request: FastifyRequest,
  event: AuthEvent,
  subject: { userId: number } | { email: string },
  extra: Record<string, unknown> = {},
): void {
  const who = 'userId' in subject ? { userId: subject.userId } : { emailHash: emailDigest(subject.email) }
  request.log.info({ event, ...who, ip: request.ip, ...extra }, `auth: ${event}`)
}

/** After a successful log-in or sign-up: the absolute session cap and the sliding expiry count from here. */
function markAuthenticated(request: FastifyRequest): void {
  const now = Date.now()
  request.session.set('authAt', now)
  request.session.set('touchedAt', now)
}

/**
 * Logs the user in on a new session id (passport regenerates the session: no fixation) and stamps the log-in
 * time. A visitor's anonymous session loses its row in the statement that writes the new session (see
 * KyselySessionStore.deferDeleteUntilReplaced); a session that already had a user is deleted at once.
 */
export async function logInOnNewSession(request: FastifyRequest, user: AuthUser): Promise<void> {
  const session = request.session
  const withdraw =
    session.get('passport') === undefined
      ? request.server.sessionStore.deferDeleteUntilReplaced(session.sessionId)
      : null
  try {
    await request.logIn(user)
  } finally {
    withdraw?.()
  }
  markAuthenticated(request)
}

/** preHandler for the anonymous-only pages. */
export async function redirectLoggedIn(request: FastifyRequest, reply: FastifyReply) {
  if (request.user) return reply.redirect('/profile', 303)
  return undefined
}
