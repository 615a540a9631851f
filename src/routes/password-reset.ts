// Password reset (mail on only): ask for a link, open it (the form only: mail scanners open links too), set
// the new password with the form's POST. The answer to asking is the same whether or not the email has an
// account.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { RESET_LINK_PATH } from '../accounts/password-reset.js'
import { recordAuthEvent } from '../http/auth-log.js'
import { type FormPage, readFields, refuseForm } from '../http/forms.js'
import { checkEmail, checkPassword } from '../users/credentials.js'
import { INVALID_LINK_FLASH } from './email-confirmation.js'

export const RESET_REQUESTED_FLASH = 'If that email has an account, we have sent it a link to reset the password.'
export const PASSWORD_RESET_FLASH = 'Your password has been changed. Please log in.'
export const FORGOT_PATH = '/password/forgot'

const FORGOT_FORM: FormPage = {
  render: (_request, reply) => reply.render('password-forgot', { title: 'Forgot your password?' }, { form: true }),
  keep: ['email'],
}

/** The link's token, as the form posts it back; whatever it holds is checked before it is used. */
function postedToken(request: FastifyRequest): string {
  try {
    return readFields(request.body, ['token']).token
  } catch {
    return ''
  }
}

/** The link's page: the token travels in the form, never in the form's URL, and no Referer leaves the page. */
async function renderResetForm(reply: FastifyReply, token: string) {
  reply.header('referrer-policy', 'no-referrer')
  return reply.render('password-reset', { title: 'Choose a new password', token }, { form: true })
}

const RESET_FORM: FormPage = {
  render: (request, reply) => renderResetForm(reply, postedToken(request)),
  keep: [],
}

function invalidLink(request: FastifyRequest, reply: FastifyReply) {
  request.flash('error', INVALID_LINK_FLASH)
  return reply.redirect(FORGOT_PATH, 303)
}

export default async function passwordResetRoutes(app: FastifyInstance) {
  app.get(FORGOT_PATH, FORGOT_FORM.render)

  app.post(
    FORGOT_PATH,
    { preHandler: app.csrfProtection, config: { rateLimit: app.authRateLimit, form: FORGOT_FORM } },
    async (request, reply) => {
      const { email } = readFields(request.body, ['email'])
      const check = checkEmail(email)
      if (!check.ok) return refuseForm(request, reply, FORGOT_PATH, { ...check, keep: { email } })
      await app.accounts.requestPasswordReset(check.value)
      await recordAuthEvent(request, 'password_reset_requested', { email: check.value })
      request.flash('info', RESET_REQUESTED_FLASH)
      return reply.redirect('/login', 303)
    },
  )

  app.get<{ Params: { token: string } }>(`${RESET_LINK_PATH}/:token`, async (request, reply) => {
    const { token } = request.params
    if (!(await app.accounts.isResetLinkLive(token))) return invalidLink(request, reply)
    return renderResetForm(reply, token)
  })

  app.post(
    RESET_LINK_PATH,
    { preHandler: app.csrfProtection, config: { rateLimit: app.authRateLimit, form: RESET_FORM } },
    async (request, reply) => {
      const { token, password } = readFields(request.body, ['token', 'password'])
      const check = checkPassword(password)
      if (!check.ok) {
        // Refused before the link is touched: it still works, and the form shows the rule that was broken.
        if (!(await app.accounts.isResetLinkLive(token))) return invalidLink(request, reply)
        return refuseForm(request, reply, `${RESET_LINK_PATH}/${token}`, check)
      }
      const result = await app.accounts.resetPassword(token, check.value)
      switch (result.outcome) {
        case 'invalid-link':
          return invalidLink(request, reply)
        case 'reset':
        case 'already-reset':
          if (result.outcome === 'reset') await recordAuthEvent(request, 'password_reset', { userId: result.userId })
          // Every session of the user has ended; if this browser had one, it starts again empty (for the flash).
          if (request.user?.id === result.userId) await request.endSession()
          request.flash('success', PASSWORD_RESET_FLASH)
          return reply.redirect('/login', 303)
      }
    },
  )
}
