// Log-in: the input rules, then passport-local runs the log-in decision; success goes to `next` when it is
// a local path.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { describeUserAgent } from '../../events/user-agent.js'
import { logAuthLine, recordAuthEvent } from '../../http/auth-log.js'
import { type FormPage, readFields, refuseForm, refuseThrottled } from '../../http/forms.js'
import { loginPath, safeLocalPath } from '../../http/local-path.js'
import { logInResultOf } from '../../plugins/auth.js'
import type { AuthUser } from '../../users/auth-user.js'
import { checkCredentials } from '../../users/credentials.js'

export const INVALID_LOGIN_FLASH = 'Invalid email or password.'
export const UNCONFIRMED_LOGIN_FLASH = 'Please confirm your email address first. We have sent you a new link.'

const FIELDS = ['email', 'password'] as const

interface LoginQuery {
  next?: unknown
}

function nextOf(request: FastifyRequest): string | null {
  return safeLocalPath((request.query as LoginQuery).next)
}

const LOGIN_FORM: FormPage = {
  render: (request, reply) =>
    reply.render(
      'login',
      { title: 'Log in', action: loginPath(nextOf(request)), mailEnabled: request.server.mail.enabled },
      { form: true },
    ),
  keep: ['email'],
}

/**
 * The log-in's event; from a browser (family and system) this account has not used before, and with mail
 * on, a notice to its address naming the browser, the address and the time.
 */
async function recordLogIn(request: FastifyRequest, user: AuthUser, details: Record<string, unknown>) {
  const app = request.server
  const newBrowser = await app.events.recordLogIn(request, user.id, details)
  logAuthLine(request, 'login', { userId: user.id }, details)
  if (!newBrowser || !app.mail.enabled) return
  const { browser, system } = describeUserAgent(request.headers['user-agent'])
  await app.accounts.noticeNewBrowser(user, { browser, system, ip: request.ip, at: new Date() })
  await recordAuthEvent(request, 'new_browser', { userId: user.id }, { browser, system })
}

/** The contract's rules need no database: a refusal here never reaches the decision. */
async function checkLoginForm(request: FastifyRequest, reply: FastifyReply) {
  const fields = readFields(request.body, FIELDS)
  const check = checkCredentials(fields.email, fields.password)
  if (check.ok) return undefined
  return refuseForm(request, reply, loginPath(nextOf(request)), {
    message: check.message,
    field: check.field,
    keep: { email: fields.email },
  })
}

export default async function loginRoutes(app: FastifyInstance) {
  app.get('/login', { preHandler: app.requireAnonymous }, LOGIN_FORM.render)

  app.post(
    '/login',
    {
      preHandler: [app.csrfProtection, checkLoginForm],
      config: { rateLimit: app.authRateLimit, form: LOGIN_FORM },
    },
    // The callback's returned reply tells Fastify the response is sent: no second send while the session saves.
    app.authenticator.authenticate(
      'local',
      async (request: FastifyRequest, reply: FastifyReply, error: Error | null, _user?: unknown, info?: unknown) => {
        if (error) throw error
        const { email } = readFields(request.body, FIELDS)
        const result = logInResultOf(info)
        switch (result.outcome) {
          case 'logged-in': {
            await request.startSession(result.user, { clearCounter: result.counterKey })
            await recordLogIn(request, result.user, result.rehashed ? { rehashed: true } : {})
            return reply.redirect(nextOf(request) ?? '/profile', 303)
          }
          case 'invalid':
            await recordAuthEvent(request, 'login_failed', { email })
            // No field: saying which of the two was wrong would tell an attacker which emails exist.
            return refuseForm(request, reply, loginPath(nextOf(request)), {
              message: INVALID_LOGIN_FLASH,
              keep: { email },
            })
          case 'unconfirmed':
            await recordAuthEvent(request, 'login_failed', { userId: result.user.id }, { reason: 'email_unconfirmed' })
            return refuseForm(request, reply, loginPath(nextOf(request)), {
              message: UNCONFIRMED_LOGIN_FLASH,
              keep: { email },
            })
          case 'throttled':
            await recordAuthEvent(request, 'login_throttled', { email })
            return refuseThrottled(request, reply, LOGIN_FORM)
        }
      },
    ),
  )
}
