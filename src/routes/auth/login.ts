// Log-in: passport-local checks the password; success goes to `next` when it is a local path.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { loginPath, safeLocalPath } from '../../http/local-path.js'
import type { AuthUser } from '../../users/authentication.js'
import { checkCredentials } from '../../users/credentials.js'
import {
  logAuthEvent,
  logInOnNewSession,
  readCredentialFields,
  redirectLoggedIn,
  refuseForm,
  refuseThrottled,
} from './form.js'

export const INVALID_LOGIN_FLASH = 'Invalid email or password.'

interface LoginQuery {
  next?: unknown
}

function nextOf(request: FastifyRequest): string | null {
  return safeLocalPath((request.query as LoginQuery).next)
}

function renderLoginForm(request: FastifyRequest, reply: FastifyReply) {
  return reply.render('login', { title: 'Log in', action: loginPath(nextOf(request)) }, { form: true })
}

export default async function loginRoutes(app: FastifyInstance) {
  app.get('/login', { preHandler: redirectLoggedIn }, renderLoginForm)

  // Rules first (they need no database), then the per-email throttle, then passport-local.
  async function checkLoginForm(request: FastifyRequest, reply: FastifyReply) {
    const fields = readCredentialFields(request.body)
    const check = checkCredentials(fields.email, fields.password)
    if (!check.ok) {
      return refuseForm(request, reply, loginPath(nextOf(request)), check.message, fields.email, check.field)
    }
    // Locked emails are refused before any password check, so the right password does not get through either.
    const throttle = await app.loginThrottle.check(check.email)
    if (throttle.locked) {
      logAuthEvent(request, 'login_throttled', { email: check.email })
      return refuseThrottled(request, reply, renderLoginForm)
    }
    // The user for the password check (the auth plugin's strategy), the failures for the success handler below.
    request.loginCheck = { user: throttle.user, failures: throttle.failures }
    ;(request.body as Record<string, string>).email = check.email
    return undefined
  }

  app.post(
    '/login',
    {
      preHandler: [app.csrfProtection, checkLoginForm],
      config: { rateLimit: app.authRateLimit, renderForm: renderLoginForm },
    },
    // The callback's returned reply tells Fastify the response is sent: no second send while the session saves.
    app.authenticator.authenticate(
      'local',
      async (request: FastifyRequest, reply: FastifyReply, error: Error | null, user?: unknown, info?: unknown) => {
        if (error) throw error
        const { email } = readCredentialFields(request.body)
        if (!user) {
          await app.loginThrottle.recordFailure(email)
          logAuthEvent(request, 'login_failed', { email })
          // No field: saying which of the two was wrong would tell an attacker which emails exist.
          return refuseForm(request, reply, loginPath(nextOf(request)), INVALID_LOGIN_FLASH, email)
        }
        const authUser = user as AuthUser
        // Nothing to clear when there was no failure: one statement less per log-in. A failure recorded by
        // another request meanwhile then stays counted, which errs on the safe side.
        if ((request.loginCheck?.failures ?? 1) > 0) await app.loginThrottle.clear(email)
        await logInOnNewSession(request, authUser)
        const rehashed = (info as { rehashed?: boolean } | undefined)?.rehashed === true
        logAuthEvent(request, 'login', { userId: authUser.id }, rehashed ? { rehashed } : {})
        return reply.redirect(nextOf(request) ?? '/profile', 303)
      },
    ),
  )
}
