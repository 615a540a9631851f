// /account: the email and its state, and three forms, each asking for the current password: change the
// password, change the email (mail on: the link goes to the new address), delete the account. The
// email-change link's page is here too.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { type CurrentPasswordRefusal, EMAIL_CHANGE_LINK_PATH } from '../../accounts/account-settings.js'
import { logAuthLine, recordAuthEvent } from '../../http/auth-log.js'
import { type FormPage, readFields, refuseForm, refuseThrottled } from '../../http/forms.js'
import { loginPath } from '../../http/local-path.js'
import { eventOriginOf } from '../../plugins/events.js'
import { requiredUser } from '../../plugins/page-guards.js'
import { hashSessionId } from '../../sessions/store.js'
import { checkEmail, checkPassword } from '../../users/credentials.js'
import { EMAIL_TAKEN_FLASH } from '../auth/signup.js'
import { INVALID_LINK_FLASH } from '../email-confirmation.js'

export const PASSWORD_CHANGED_FLASH = 'Your password has been changed.'
export const WRONG_CURRENT_PASSWORD_FLASH = 'Your current password is incorrect.'
export const EMAIL_CHANGE_REQUESTED_FLASH =
  'We have sent a link to your new address. Your email changes when you open it.'
export const EMAIL_CHANGED_FLASH = 'Your email address has been changed.'
export const ACCOUNT_DELETED_FLASH = 'Your account has been deleted.'
export const SAME_EMAIL_FLASH = 'That is already your email address.'

const ACCOUNT_PAGE: FormPage = {
  render: (request, reply) =>
    request.user
      ? reply.render('account', { title: 'Your account', mailEnabled: request.server.mail.enabled })
      : // An anonymous POST over the AUTH_RATE_LIMIT budget (counted before the page guard): no account page
        // to show, so the form it needs first, as /login answers its own 429.
        reply.render(
          'login',
          { title: 'Log in', action: loginPath(null), mailEnabled: request.server.mail.enabled },
          { form: true },
        ),
  keep: ['email'],
}

/**
 * A refused current password, as a log-in would be refused: its event (a failed or throttled log-in for the
 * account, naming the form), then the account page again with its 429, or the flash.
 */
async function refuseCurrentPassword(
  request: FastifyRequest,
  reply: FastifyReply,
  refusal: CurrentPasswordRefusal,
  form: string,
  keep: Record<string, string> = {},
) {
  const userId = requiredUser(request).id
  if (refusal.outcome === 'throttled') {
    await recordAuthEvent(request, 'login_throttled', { userId }, { form })
    return refuseThrottled(request, reply, ACCOUNT_PAGE)
  }
  await recordAuthEvent(request, 'login_failed', { userId }, { form })
  return refuseForm(request, reply, '/account', { message: WRONG_CURRENT_PASSWORD_FLASH, keep })
}

export default async function accountSettingsRoutes(app: FastifyInstance) {
  const guarded = { preHandler: [app.requireUser, app.csrfProtection] }
  const form = { rateLimit: app.authRateLimit, form: ACCOUNT_PAGE }

  app.get('/account', { preHandler: app.requireUser }, ACCOUNT_PAGE.render)

  app.post('/account/password', { ...guarded, config: form }, async (request, reply) => {
    const user = requiredUser(request)
    const fields = readFields(request.body, ['current_password', 'password'])
    const check = checkPassword(fields.password)
    if (!check.ok) return refuseForm(request, reply, '/account', check)
    const keep = hashSessionId(request.session.sessionId)
    const result = await app.accounts.changePassword(user, fields.current_password, check.value, keep)
    switch (result.outcome) {
      case 'throttled':
      case 'wrong-password':
        return refuseCurrentPassword(request, reply, result, 'change-password')
      case 'changed':
        // This session goes on under a new id; every other one has ended.
        await request.startSession(user)
        await recordAuthEvent(request, 'password_changed', { userId: user.id })
        request.flash('success', PASSWORD_CHANGED_FLASH)
        return reply.redirect('/account', 303)
    }
  })

  app.post('/account/email', { ...guarded, config: form }, async (request, reply) => {
    if (!app.mail.enabled) return reply.callNotFound()
    const user = requiredUser(request)
    const fields = readFields(request.body, ['email', 'current_password'])
    const keep = { email: fields.email }
    const check = checkEmail(fields.email)
    if (!check.ok) return refuseForm(request, reply, '/account', { ...check, keep })
    const result = await app.accounts.requestEmailChange(user, check.value, fields.current_password)
    switch (result.outcome) {
      case 'throttled':
      case 'wrong-password':
        return refuseCurrentPassword(request, reply, result, 'change-email', keep)
      case 'same-email':
        return refuseForm(request, reply, '/account', { message: SAME_EMAIL_FLASH, field: 'email', keep })
      case 'email-taken':
        return refuseForm(request, reply, '/account', { message: EMAIL_TAKEN_FLASH, field: 'email', keep })
      case 'requested':
        await recordAuthEvent(request, 'email_change_requested', { userId: user.id })
        request.flash('info', EMAIL_CHANGE_REQUESTED_FLASH)
        return reply.redirect('/account', 303)
    }
  })

  app.post('/account/delete', { ...guarded, config: form }, async (request, reply) => {
    const user = requiredUser(request)
    const { current_password } = readFields(request.body, ['current_password'])
    const result = await app.accounts.deleteAccount(user, current_password, eventOriginOf(request))
    switch (result.outcome) {
      case 'throttled':
      case 'wrong-password':
        return refuseCurrentPassword(request, reply, result, 'delete-account')
      case 'deleted':
        // Its row is written with the deletion (the account's other events go with it): the line only.
        logAuthLine(request, 'account_deleted', { userId: user.id })
        // The session's row went with the user: a new, empty one carries the flash.
        await request.endSession()
        request.flash('success', ACCOUNT_DELETED_FLASH)
        return reply.redirect('/', 303)
    }
  })

  // The link in the message to the new address: opening it makes the change, logged in or not.
  if (app.mail.enabled) {
    app.get<{ Params: { token: string } }>(`${EMAIL_CHANGE_LINK_PATH}/:token`, async (request, reply) => {
      const landing = request.user ? '/account' : '/login'
      const changed = await app.accounts.confirmEmailChange(request.params.token)
      if (!changed) {
        request.flash('error', INVALID_LINK_FLASH)
        return reply.redirect(landing, 303)
      }
      await recordAuthEvent(request, 'email_changed', { userId: changed.userId })
      request.flash('success', EMAIL_CHANGED_FLASH)
      return reply.redirect(landing, 303)
    })
  }
}
