// Throttling, with every count in PostgreSQL so it holds across restarts and instances: auth form POSTs
// per client address (@fastify/rate-limit on our store) and failed log-ins per email.
// @see https://github.com/fastify/fastify-rate-limit
import fastifyRateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { TooManyAttemptsError } from '../http/errors.js'
import { repeatWhileRunning } from '../periodic.js'
import { pruneExpiredCounters } from '../throttling/counters.js'
import { EmailDigest } from '../throttling/email-digest.js'
import { LoginThrottle } from '../throttling/login-throttle.js'
import { postgresRateLimitStore } from '../throttling/rate-limit-store.js'

export interface AuthRateLimit {
  max: number
  timeWindow: number
  groupId: string
}

declare module 'fastify' {
  interface FastifyInstance {
    loginThrottle: LoginThrottle
    /** Keyed digests of emails, for log lines and counters (never the address itself). */
    emailDigest: EmailDigest
    /** Route config for the auth forms: one shared budget per client address. */
    authRateLimit: AuthRateLimit
  }
}

export default fp<Config['throttling'] & { digestSecret: string }>(
  async function throttlingPlugin(app, options) {
    await app.register(fastifyRateLimit, {
      global: false,
      // After body parsing (the refused form can keep the typed email), before CSRF and validation,
      // so every POST counts, forged ones included.
      hook: 'preValidation',
      // Losing the last fraction of a second of these counts in a database crash is harmless: their commits
      // do not wait for the disk. The failed log-ins per email, which lock an account, stay durable.
      store: postgresRateLimitStore(app.asyncCommitDb),
      errorResponseBuilder: () => new TooManyAttemptsError(),
      onExceeded: (request) => request.log.warn({ event: 'rate_limited', ip: request.ip }, 'auth rate limit exceeded'),
    })
    app.decorate('authRateLimit', { max: options.authRateLimit, timeWindow: 60_000, groupId: 'auth-forms' })
    const emailDigest = new EmailDigest(options.digestSecret)
    app.decorate('emailDigest', emailDigest)
    app.decorate('loginThrottle', new LoginThrottle(app.db, emailDigest, options.loginMaxFailures, options.loginLockMs))

    repeatWhileRunning(app, {
      name: 'pruning expired auth counters',
      intervalMs: options.pruneIntervalMs,
      run: () => pruneExpiredCounters(app.db),
    })
  },
  { name: 'throttling', dependencies: ['db'] },
)
