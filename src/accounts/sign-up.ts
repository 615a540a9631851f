// Making an account: the password hashed, the user stored. The caller starts the session.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { type AuthUser, toAuthUser } from '../users/auth-user.js'
import type { PasswordHasher } from '../users/passwords.js'
import { createUser } from '../users/repository.js'

export interface SignUpDependencies {
  db: Kysely<Database>
  hasher: PasswordHasher
}

export type SignUpResult = { outcome: 'created'; user: AuthUser } | { outcome: 'email-taken' }

/** `email` and `password` as they passed the input rules (the email trimmed). */
export async function signUp(deps: SignUpDependencies, email: string, password: string): Promise<SignUpResult> {
  // Hash before touching the database: the slow part never holds a connection.
  const passwordHash = await deps.hasher.hash(password)
  const user = await createUser(deps.db, { email, passwordHash })
  return user ? { outcome: 'created', user: toAuthUser(user) } : { outcome: 'email-taken' }
}
