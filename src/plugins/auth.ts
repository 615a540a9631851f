// Authentication core: @fastify/passport with passport-local on the log-in decision, users serialized by id,
// and starting and ending a logged-in session. No pages here: the page guards and forms build on it.
// @see https://github.com/fastify/fastify-passport
import { Authenticator } from '@fastify/passport'
import { isAuthenticated, isUnauthenticated, logIn, logOut } from '@fastify/passport/dist/decorators/index.js'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Strategy as LocalStrategy } from 'passport-local'
import type { LogInResult } from '../accounts/log-in.js'
import { USER_AGENT_MAX_LENGTH } from '../events/user-agent.js'
import type { AuthUser } from '../users/auth-user.js'

type AuthenticatorInstance = InstanceType<typeof Authenticator>

declare module 'fastify' {
  interface PassportUser extends AuthUser {}
  interface FastifyRequest {
    /** Logs `user` in on a new session id and stamps the log-in time (see startSession below). */
    startSession(user: AuthUser, options?: StartSessionOptions): Promise<void>
    /** Logs out: the session's row is deleted and a new, empty session takes its place. */
    endSession(): Promise<void>
  }
  interface FastifyInstance {
    authenticator: AuthenticatorInstance
  }
}

/** How the strategy hands the decision to the route: as passport's `info`. */
interface DecisionInfo {
  message: LogInResult['outcome']
  result: LogInResult
}

/** The log-in decision behind an authenticate() callback's `info`; passport-local's own refusals (a missing
 * field) are not decisions and read as invalid. */
export function logInResultOf(info: unknown): LogInResult {
  return (info as Partial<DecisionInfo> | undefined)?.result ?? { outcome: 'invalid' }
}

export interface StartSessionOptions {
  /** The log-in's attempt counter (LogInResult's `counterKey`), cleared with the new session's first write. */
  clearCounter?: string
}

/**
 * Logs the user in on a new session id (passport regenerates the session: no fixation) and stamps the log-in
 * time, from which the absolute cap and the sliding expiry count. A visitor's anonymous session loses its row
 * in the statement that writes the new session, as does the attempt counter (see
 * KyselySessionStore.deferToNewSession); a session that already had a user is deleted at once.
 */
async function startSession(this: FastifyRequest, user: AuthUser, options: StartSessionOptions = {}): Promise<void> {
  const session = this.session
  const withdraw = this.server.sessionStore.deferToNewSession(session.sessionId, {
    replaceRow: session.get('passport') === undefined,
    counterKey: options.clearCounter,
  })
  try {
    await this.logIn(user)
  } finally {
    withdraw()
  }
  const now = Date.now()
  this.session.set('authAt', now)
  this.session.set('touchedAt', now)
  // What the account's sessions page shows of this one; written with the new session's first save.
  this.session.set('loginIp', this.ip)
  this.session.set('loginUserAgent', (this.headers['user-agent'] ?? '').slice(0, USER_AGENT_MAX_LENGTH))
}

async function endSession(this: FastifyRequest): Promise<void> {
  // logOut regenerates: the old row is deleted, so the old cookie opens nothing.
  await this.logOut()
}

export default fp(
  async function authPlugin(app) {
    // Log-in regenerates the session (no fixation) and keeps only the flash: never the old CSRF secret.
    const authenticator = new Authenticator({ clearSessionIgnoreFields: ['flash'] })

    authenticator.use(
      'local',
      new LocalStrategy({ usernameField: 'email', passwordField: 'password' }, (email, password, done) => {
        app.accounts.logIn(email, password).then(
          (result) => {
            const info: DecisionInfo = { message: result.outcome, result }
            done(null, result.outcome === 'logged-in' ? result.user : false, info)
          },
          (error: unknown) => done(error),
        )
      }),
    )
    authenticator.registerUserSerializer(async (user: AuthUser) => user.id)
    // The store reads the user with the session, in the same query: a role change or a deleted user takes
    // effect at once, and no second query can fail here (a throwing deserializer logs the user out).
    authenticator.registerUserDeserializer(async (id: unknown, request: FastifyRequest) => {
      const user = request.session.get('sessionUser')
      return user && user.id === id ? user : null
    })

    // What authenticator.initialize() does, less its own registration of @fastify/flash: the flash plugin
    // registers it explicitly, and a second registration stops the start (FST_ERR_DEC_ALREADY_PRESENT).
    app.decorateRequest('passport', { getter: () => authenticator })
    app.decorateRequest('logIn', logIn)
    app.decorateRequest('login', logIn)
    app.decorateRequest('logOut', logOut)
    app.decorateRequest('logout', logOut)
    app.decorateRequest('isAuthenticated', isAuthenticated)
    app.decorateRequest('isUnauthenticated', isUnauthenticated)
    app.decorateRequest(authenticator.userProperty, null)
    await app.register(authenticator.secureSession())

    app.decorate('authenticator', authenticator)
    app.decorateRequest('startSession', startSession)
    app.decorateRequest('endSession', endSession)
  },
  { name: 'auth', dependencies: ['session', 'accounts'] },
)
