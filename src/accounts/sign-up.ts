// Making an account: the password hashed, the user stored and, with mail on, a confirmation link queued in
// the same transaction. The caller starts the session (unless confirmation is required first).
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { type AuthUser, toAuthUser } from '../users/auth-user.js'
import type { PasswordHasher } from '../users/passwords.js'
import { createUser } from '../users/repository.js'
import { type EmailConfirmationDependencies, queueConfirmation } from './email-confirmation.js'

export interface SignUpDependencies extends EmailConfirmationDependencies {
  db: Kysely<Database>
  hasher: PasswordHasher
  /** REQUIRE_EMAIL_CONFIRMATION: the new account may not log in before its address is confirmed. */
  requireConfirmation: boolean
}

export type SignUpResult =
  | {
      outcome: 'created'
      user: AuthUser
      /** Log nobody in: the account waits for its confirmation link. */
      confirmationRequired: boolean
    }
  | { outcome: 'email-taken' }

/** `email` and `password` as they passed the input rules (the email trimmed). */
export async function signUp(deps: SignUpDependencies, email: string, password: string): Promise<SignUpResult> {
  // Hash before touching the database: the slow part never holds a connection.
  const passwordHash = await deps.hasher.hash(password)
  const user = deps.mail.enabled
    ? await deps.db.transaction().execute(async (trx) => {
        const created = await createUser(trx, { email, passwordHash })
        if (created) await queueConfirmation(deps, trx, created)
        return created
      })
    : await createUser(deps.db, { email, passwordHash })
  if (!user) return { outcome: 'email-taken' }
  deps.mail.wake()
  return { outcome: 'created', user: toAuthUser(user), confirmationRequired: deps.requireConfirmation }
}
