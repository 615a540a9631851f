// Sign-up: create the user, log them in, go to their profile.
import type { FastifyInstance } from 'fastify'
import { recordAuthEvent } from '../../http/auth-log.js'
import { type FormPage, readFields, refuseForm } from '../../http/forms.js'
import { checkCredentials } from '../../users/credentials.js'
import { CONFIRMATION_SENT_FLASH } from '../email-confirmation.js'

export const EMAIL_TAKEN_FLASH = 'That email is already taken.'

const SIGNUP_FORM: FormPage = {
  render: (_request, reply) => reply.render('signup', { title: 'Sign up' }, { form: true }),
  keep: ['email'],
}

export default async function signupRoutes(app: FastifyInstance) {
  app.get('/signup', { preHandler: app.requireAnonymous }, SIGNUP_FORM.render)

  app.post(
    '/signup',
    {
      preHandler: app.csrfProtection,
      config: { rateLimit: app.authRateLimit, form: SIGNUP_FORM },
    },
    async (request, reply) => {
      const fields = readFields(request.body, ['email', 'password'])
      const keep = { email: fields.email }
      const check = checkCredentials(fields.email, fields.password)
      if (!check.ok) return refuseForm(request, reply, '/signup', { message: check.message, field: check.field, keep })

      const result = await app.accounts.signUp(check.email, check.password)
      switch (result.outcome) {
        case 'email-taken':
          return refuseForm(request, reply, '/signup', { message: EMAIL_TAKEN_FLASH, field: 'email', keep })
        case 'created':
          if (result.confirmationRequired) {
            await recordAuthEvent(request, 'signup', { userId: result.user.id }, { confirmationRequired: true })
            request.flash('info', CONFIRMATION_SENT_FLASH)
            return reply.redirect('/login', 303)
          }
          await request.startSession(result.user)
          await recordAuthEvent(request, 'signup', { userId: result.user.id })
          request.flash('success', 'Welcome to gatehouse: your account is ready.')
          return reply.redirect('/profile', 303)
      }
    },
  )
}
