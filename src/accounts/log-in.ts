// The log-in decision: an email and a password in, one answer out. No HTTP here: the form route (through
// passport-local), and later the JSON API and the second-factor step, map the answer to a page or a body.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import type { LoginThrottle } from '../throttling/login-throttle.js'
import { type AuthUser, toAuthUser } from '../users/auth-user.js'
import type { PasswordHasher } from '../users/passwords.js'
import { updatePasswordHash } from '../users/repository.js'

export interface LogInDependencies {
  db: Kysely<Database>
  hasher: PasswordHasher
  throttle: LoginThrottle
}

/** Callers switch on `outcome`; a new answer (disabled, unconfirmed, second factor) is a new member here. */
export type LogInResult =
  | {
      outcome: 'logged-in'
      user: AuthUser
      /** The stored hash was weaker than the configured parameters and has been replaced. */
      rehashed: boolean
    }
  /** Unknown email or wrong password: the same answer, so it does not tell which emails exist. */
  | { outcome: 'invalid' }
  /** Too many failures for this email lately: refused whatever the password. */
  | { outcome: 'throttled' }

export type LogInOutcome = LogInResult['outcome']

/** `email` as typed, once it has passed the input rules (see users/credentials.ts). */
export async function logIn(deps: LogInDependencies, email: string, password: string): Promise<LogInResult> {
  // The email's failures and its user in one read; a locked email is refused before any password check,
  // so the right password does not get through either.
  const throttle = await deps.throttle.check(email)
  if (throttle.locked) return { outcome: 'throttled' }
  const user = throttle.user
  // An unknown email still pays for one verification, so timing does not tell which emails exist.
  const matches = user
    ? await deps.hasher.verify(user.password_hash, password)
    : await deps.hasher.verifyDummy(password)
  if (!user || !matches) {
    await deps.throttle.recordFailure(email)
    return { outcome: 'invalid' }
  }
  // Nothing to clear when there was no failure: one statement less per log-in. A failure recorded by
  // another request meanwhile then stays counted, which errs on the safe side.
  if (throttle.failures > 0) await deps.throttle.clear(email)
  // The only moment we hold the plain password: upgrade a hash made with weaker parameters.
  const rehashed = deps.hasher.needsRehash(user.password_hash)
  if (rehashed) await updatePasswordHash(deps.db, user.id, await deps.hasher.hash(password))
  return { outcome: 'logged-in', user: toAuthUser(user), rehashed }
}
