// Sign-up: create the user, log them in, go to their profile.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { toAuthUser } from '../../users/authentication.js'
import { checkCredentials } from '../../users/credentials.js'
import { createUser } from '../../users/repository.js'
import { logAuthEvent, logInOnNewSession, readCredentialFields, redirectLoggedIn, refuseForm } from './form.js'

export const EMAIL_TAKEN_FLASH = 'That email is already taken.'

function renderSignupForm(_request: FastifyRequest, reply: FastifyReply) {
  return reply.render('signup', { title: 'Sign up' }, { form: true })
}

export default async function signupRoutes(app: FastifyInstance) {
  app.get('/signup', { preHandler: redirectLoggedIn }, renderSignupForm)

  app.post(
    '/signup',
    { preHandler: app.csrfProtection, config: { rateLimit: app.authRateLimit, renderForm: renderSignupForm } },
    async (request, reply) => {
      const fields = readCredentialFields(request.body)
      const check = checkCredentials(fields.email, fields.password)
      if (!check.ok) return refuseForm(request, reply, '/signup', check.message, fields.email, check.field)

      // Hash before touching the database: the slow part never holds a connection.
      const passwordHash = await app.hashPassword(check.password)
      const user = await createUser(app.db, { email: check.email, passwordHash })
      if (!user) return refuseForm(request, reply, '/signup', EMAIL_TAKEN_FLASH, fields.email, 'email')

      await logInOnNewSession(request, toAuthUser(user))
      logAuthEvent(request, 'signup', { userId: user.id })
      request.flash('success', 'Welcome to gatehouse: your account is ready.')
      return reply.redirect('/profile', 303)
    },
  )
}
