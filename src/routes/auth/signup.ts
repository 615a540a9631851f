// Sign-up: create the user, log them in, go to their profile.
import type { FastifyInstance } from 'fastify'
import { toAuthUser } from '../../users/authentication.js'
import { checkCredentials } from '../../users/credentials.js'
import { hashPassword } from '../../users/passwords.js'
import { createUser } from '../../users/repository.js'
import { markAuthenticated, readCredentialFields, redirectLoggedIn, refuseForm } from './form.js'

export const EMAIL_TAKEN_FLASH = 'That email is already taken.'

export default async function signupRoutes(app: FastifyInstance) {
  app.get('/signup', { preHandler: redirectLoggedIn }, async (_request, reply) => {
    return reply.render('signup', { title: 'Sign up' }, { form: true })
  })

  app.post('/signup', { preHandler: app.csrfProtection }, async (request, reply) => {
    const fields = readCredentialFields(request.body)
    const check = checkCredentials(fields.email, fields.password)
    if (!check.ok) return refuseForm(request, reply, '/signup', check.message, fields.email)

    // Hash before touching the database: the slow part never holds a connection.
    const passwordHash = await hashPassword(check.password)
    const user = await createUser(app.db, { email: check.email, passwordHash })
    if (!user) return refuseForm(request, reply, '/signup', EMAIL_TAKEN_FLASH, fields.email)

    await request.logIn(toAuthUser(user))
    markAuthenticated(request)
    request.flash('success', 'Welcome to gatehouse: your account is ready.')
    return reply.redirect('/profile', 303)
  })
}
