// The log-in decision: an email and a password in, one answer out. No HTTP here: the form route (through
// passport-local), and later the JSON API and the second-factor step, map the answer to a page or a body.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { deleteCounter } from '../throttling/counters.js'
import type { LoginThrottle } from '../throttling/login-throttle.js'
import { type AuthUser, toAuthUser } from '../users/auth-user.js'
import { HashQueueFullError, type PasswordHasher } from '../users/passwords.js'
import { updatePasswordHash } from '../users/repository.js'
import { type EmailConfirmationDependencies, queueConfirmation } from './email-confirmation.js'

export interface LogInDependencies extends EmailConfirmationDependencies {
  db: Kysely<Database>
  hasher: PasswordHasher
  throttle: LoginThrottle
  /** REQUIRE_EMAIL_CONFIRMATION: an unconfirmed account is refused, the right password notwithstanding. */
  requireConfirmation: boolean
}

/** Callers switch on `outcome`; a new answer (disabled, unconfirmed, second factor) is a new member here. */
export type LogInResult =
  | {
      outcome: 'logged-in'
      user: AuthUser
      /** The stored hash was weaker than the configured parameters and has been replaced. */
      rehashed: boolean
      /** This log-in's attempt counter: cleared by the new session's first write (request.startSession). */
      counterKey: string
    }
  /** Unknown email or wrong password: the same answer, so it does not tell which emails exist. */
  | { outcome: 'invalid' }
  /** Too many attempts for this account or email lately: refused whatever the password. */
  | { outcome: 'throttled' }
  /** The right password, but the address is not confirmed while confirmation is required: a fresh link is
   * on its way (within the hourly limit). Told only after the right password. */
  | { outcome: 'unconfirmed'; user: AuthUser }

/** `email` as typed, once it has passed the input rules (see users/credentials.ts). */
export async function logIn(deps: LogInDependencies, email: string, password: string): Promise<LogInResult> {
  // A refusal for a full hashing queue should not cost the account one of its attempts.
  if (deps.hasher.saturated) throw new HashQueueFullError()
  // Counted before the password check, in the statement that reads the user: parallel attempts cannot all
  // slip under the limit, and a locked account is refused before any hashing, the right password too.
  const attempt = await deps.throttle.attempt(email)
  if (attempt.locked) return { outcome: 'throttled' }
  const user = attempt.user
  const matches = await verifyAtFullCost(deps.hasher, user?.password_hash ?? null, password)
  if (!user || !matches) return { outcome: 'invalid' }
  if (deps.requireConfirmation && user.email_confirmed_at === null) {
    // The right password: its attempts are not failures, or confirming would end in a lock-out.
    await deleteCounter(deps.db, attempt.counterKey).execute()
    await queueConfirmation(deps, deps.db, user)
    deps.mail.wake()
    return { outcome: 'unconfirmed', user: toAuthUser(user) }
  }
  // The only moment we hold the plain password: upgrade a hash made with weaker parameters.
  const rehashed = deps.hasher.needsRehash(user.password_hash)
  if (rehashed) await updatePasswordHash(deps.db, user.id, await deps.hasher.hash(password))
  return { outcome: 'logged-in', user: toAuthUser(user), rehashed, counterKey: attempt.counterKey }
}

/**
 * Every check costs at least one verification at the configured parameters, so timing does not tell an
 * unknown email (checked against a dummy hash) or an older, weaker hash from any other account.
 */
async function verifyAtFullCost(hasher: PasswordHasher, passwordHash: string | null, password: string) {
  if (passwordHash === null) {
    await hasher.verifyDummy(password)
    return false
  }
  if (!hasher.needsRehash(passwordHash)) return hasher.verify(passwordHash, password)
  const [matches] = await Promise.all([hasher.verify(passwordHash, password), hasher.verifyDummy(password)])
  return matches
}
