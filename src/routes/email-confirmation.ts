// Email confirmation (mail on only): opening the link confirms the address, logged in or not; a logged-in
// user whose address is not confirmed can have the link sent again from their profile.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CONFIRMATION_LINK_PATH } from '../accounts/email-confirmation.js'
import { logAuthLine, recordAuthEvent } from '../http/auth-log.js'

export const INVALID_LINK_FLASH = 'That link is invalid or has expired.'
export const EMAIL_CONFIRMED_FLASH = 'Your email address is confirmed.'
export const CONFIRMATION_SENT_FLASH = 'We have sent you a link to confirm your email address.'
export const ALREADY_CONFIRMED_FLASH = 'Your email address is already confirmed.'
export const RESEND_CONFIRMATION_PATH = '/email/confirm/resend'

/** Logged-in visitors go back to their profile, others to the log-in page. */
function landing(request: FastifyRequest): string {
  return request.user ? '/profile' : '/login'
}

export default async function emailConfirmationRoutes(app: FastifyInstance) {
  app.get<{ Params: { token: string } }>(
    `${CONFIRMATION_LINK_PATH}/:token`,
    async (request: FastifyRequest<{ Params: { token: string } }>, reply: FastifyReply) => {
      const userId = await app.accounts.confirmEmail(request.params.token)
      if (userId === null) {
        request.flash('error', INVALID_LINK_FLASH)
        return reply.redirect(landing(request), 303)
      }
      await recordAuthEvent(request, 'email_confirmed', { userId })
      request.flash('success', EMAIL_CONFIRMED_FLASH)
      return reply.redirect(landing(request), 303)
    },
  )

  app.post(
    RESEND_CONFIRMATION_PATH,
    { preHandler: [app.requireUser, app.csrfProtection], config: { rateLimit: app.authRateLimit } },
    async (request, reply) => {
      const user = request.user
      if (!user) return reply.redirect('/login', 303)
      if (user.emailConfirmed) {
        request.flash('info', ALREADY_CONFIRMED_FLASH)
        return reply.redirect('/profile', 303)
      }
      const queued = await app.accounts.resendConfirmation(user)
      logAuthLine(request, 'email_confirmation_requested', { userId: user.id }, { queued })
      request.flash('info', CONFIRMATION_SENT_FLASH)
      return reply.redirect('/profile', 303)
    },
  )
}
