// Log-in: passport-local checks the password; success goes to `next` when it is a local path.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { loginPath, safeLocalPath } from '../../http/local-path.js'
import type { AuthUser } from '../../users/authentication.js'
import { checkCredentials } from '../../users/credentials.js'
import { markAuthenticated, readCredentialFields, redirectLoggedIn, refuseForm } from './form.js'

export const INVALID_LOGIN_FLASH = 'Invalid email or password.'

interface LoginQuery {
  next?: unknown
}

function nextOf(request: FastifyRequest): string | null {
  return safeLocalPath((request.query as LoginQuery).next)
}

export default async function loginRoutes(app: FastifyInstance) {
  app.get('/login', { preHandler: redirectLoggedIn }, async (request, reply) => {
    return reply.render('login', { title: 'Log in', action: loginPath(nextOf(request)) }, { form: true })
  })

  // Rules first (they need no database), then passport-local for the password check.
  async function checkLoginForm(request: FastifyRequest, reply: FastifyReply) {
    const fields = readCredentialFields(request.body)
    const check = checkCredentials(fields.email, fields.password)
    if (!check.ok) return refuseForm(request, reply, loginPath(nextOf(request)), check.message, fields.email)
    ;(request.body as Record<string, string>).email = check.email
    return undefined
  }

  app.post(
    '/login',
    { preHandler: [app.csrfProtection, checkLoginForm] },
    // The callback's returned reply tells Fastify the response is sent: no second send while the session saves.
    app.authenticator.authenticate(
      'local',
      async (request: FastifyRequest, reply: FastifyReply, error: Error | null, user?: unknown) => {
        if (error) throw error
        if (!user) {
          const { email } = readCredentialFields(request.body)
          return refuseForm(request, reply, loginPath(nextOf(request)), INVALID_LOGIN_FLASH, email)
        }
        await request.logIn(user as AuthUser)
        markAuthenticated(request)
        return reply.redirect(nextOf(request) ?? '/profile', 303)
      },
    ),
  )
}
