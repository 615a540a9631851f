// What the sign-up and log-in forms share: reading their fields and refusing with a flash.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { FormFieldError } from '../../http/errors.js'
import { KEPT_EMAIL_FLASH } from '../../plugins/view.js'
import { emailToKeep } from '../../users/credentials.js'

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

/** Post/redirect/get: the refusal travels as a flash, with the typed email (never the password). */
export function refuseForm(
  request: FastifyRequest,
  reply: FastifyReply,
  to: string,
  message: string,
  typedEmail: string,
): FastifyReply {
  request.flash('error', message)
  const email = emailToKeep(typedEmail)
  if (email) request.flash(KEPT_EMAIL_FLASH, email)
  return reply.redirect(to, 303)
}

/** After a successful log-in or sign-up: the absolute session cap counts from here. */
export function markAuthenticated(request: FastifyRequest): void {
  request.session.set('authAt', Date.now())
}

/** preHandler for the anonymous-only pages. */
export async function redirectLoggedIn(request: FastifyRequest, reply: FastifyReply) {
  if (request.user) return reply.redirect('/profile', 303)
  return undefined
}
