// Accounts: the password hasher's owner and the account decisions (log-in, sign-up) bound to this app's database
// and throttle, so the forms, and later the API, call the same code.
import fp from 'fastify-plugin'
import { type LogInResult, logIn } from '../accounts/log-in.js'
import { type SignUpResult, signUp } from '../accounts/sign-up.js'
import type { Config } from '../config.js'
import { PasswordHasher } from '../users/passwords.js'

export interface Accounts {
  logIn(email: string, password: string): Promise<LogInResult>
  signUp(email: string, password: string): Promise<SignUpResult>
}

declare module 'fastify' {
  interface FastifyInstance {
    accounts: Accounts
  }
}

export default fp<Config['hashing']>(
  async function accountsPlugin(app, options) {
    const hasher = new PasswordHasher(options.argon2, {
      ...options,
      onQueueFull: () =>
        app.log.warn(
          { event: 'hash_queue_full', maxQueue: options.maxQueue },
          'password hashing queue full: log-ins and sign-ups are answered 503 until it drains',
        ),
    })
    app.addHook('onClose', () => hasher.close())
    const deps = { db: app.db, hasher, throttle: app.loginThrottle }
    app.decorate('accounts', {
      logIn: (email, password) => logIn(deps, email, password),
      signUp: (email, password) => signUp(deps, email, password),
    } satisfies Accounts)
  },
  { name: 'accounts', dependencies: ['db', 'throttling'] },
)
