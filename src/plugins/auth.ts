// Authentication: @fastify/passport with passport-local on the email field, users serialized by id,
// and the preHandler guards that protect pages.
// @see https://github.com/fastify/fastify-passport#protecting-routes
import { Authenticator } from '@fastify/passport'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Strategy as LocalStrategy } from 'passport-local'
import type { Role, User } from '../db/schema.js'
import { loginPath, safeLocalPath } from '../http/local-path.js'
import { prefersJson } from '../http/negotiation.js'
import { type AuthUser, verifyCredentials } from '../users/authentication.js'
import { type Argon2Parameters, PasswordHasher } from '../users/passwords.js'
import { findUserByEmail } from '../users/repository.js'

type AuthenticatorInstance = InstanceType<typeof Authenticator>
type Guard = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>

declare module 'fastify' {
  interface PassportUser extends AuthUser {}
  interface FastifyRequest {
    /** What the log-in form's throttle check read for the typed email: its user (null: none) and its
     * failures in the window; null before the check. */
    loginCheck: { user: User | null; failures: number } | null
  }
  interface FastifyInstance {
    authenticator: AuthenticatorInstance
    /** argon2id with the configured parameters. */
    hashPassword(password: string): Promise<string>
    /** preHandler: anonymous visitors go to the log-in page (JSON clients get 401). */
    requireUser: Guard
    /** preHandler, after requireUser: other roles get a 403 page (JSON clients get 403 JSON). */
    requireRole(role: Role): Guard
  }
}

export const LOGIN_REQUIRED_FLASH = 'Please log in to continue.'

export interface AuthPluginOptions {
  argon2: Argon2Parameters
  /** Hashes computed at once; the rest wait their turn (see PasswordHasher). */
  maxConcurrentHashes: number
  /** The low-priority hashing threads' nice value. */
  hashThreadNice: number
  /** Hashing threads that keep the normal priority (see hash-worker.ts). */
  normalPriorityHashThreads: number
}

export default fp<AuthPluginOptions>(
  async function authPlugin(app, options) {
    // Log-in regenerates the session (no fixation) and keeps only the flash: never the old CSRF secret.
    const authenticator = new Authenticator({ clearSessionIgnoreFields: ['flash'] })
    const hasher = new PasswordHasher(options.argon2, {
      maxConcurrent: options.maxConcurrentHashes,
      nice: options.hashThreadNice,
      normalPriority: options.normalPriorityHashThreads,
    })
    app.addHook('onClose', () => hasher.close())

    authenticator.use(
      'local',
      new LocalStrategy(
        { usernameField: 'email', passwordField: 'password', passReqToCallback: true },
        // passport-local's types name Express's request; @fastify/passport hands over the Fastify one.
        (expressRequest, email, password, done) => {
          const request = expressRequest as unknown as FastifyRequest
          // Read by the log-in form's throttle check, with the email's failure count; else read here.
          const check = request.loginCheck
          const candidate = check ? Promise.resolve(check.user) : findUserByEmail(app.db, email)
          candidate
            .then((found) => verifyCredentials(app.db, found, password, hasher))
            .then(
              ({ user, rehashed }) => {
                // Passed on as `info` to the log-in route, which logs the upgrade.
                const info = { message: 'verified', rehashed }
                return user ? done(null, user, info) : done(null, false)
              },
              (error: unknown) => done(error),
            )
        },
      ),
    )
    authenticator.registerUserSerializer(async (user: AuthUser) => user.id)
    // The store reads the user with the session, in the same query: a role change or a deleted user takes
    // effect at once, and no second query can fail here (a throwing deserializer logs the user out).
    authenticator.registerUserDeserializer(async (id: unknown, request: FastifyRequest) => {
      const user = request.session.get('sessionUser')
      return user && user.id === id ? user : null
    })

    app.decorateRequest('loginCheck', null)
    await app.register(authenticator.initialize())
    await app.register(authenticator.secureSession())
    app.decorate('authenticator', authenticator)
    app.decorate('hashPassword', (password: string) => hasher.hash(password))

    app.decorate('requireUser', async function requireUser(request: FastifyRequest, reply: FastifyReply) {
      if (request.user) return undefined
      if (prefersJson(request)) return reply.code(401).send({ error: 'You need to log in to see this.' })
      request.flash('info', LOGIN_REQUIRED_FLASH)
      return reply.redirect(loginPath(safeLocalPath(request.url)), 303)
    })

    app.decorate('requireRole', function requireRole(role: Role): Guard {
      return async function requireRoleGuard(request, reply) {
        if (request.user?.role === role) return undefined
        reply.code(403)
        if (prefersJson(request)) return reply.send({ error: 'You do not have access to this.' })
        return reply.render('error', {
          title: 'Access denied',
          message: 'Your account does not have access to this page.',
        })
      }
    })
  },
  { name: 'auth', dependencies: ['session', 'forms', 'view'] },
)
