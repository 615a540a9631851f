// Checking an email and password against the users table, at the same cost whether or not the email exists.
import type { Kysely } from 'kysely'
import type { Database, Role, User } from '../db/schema.js'
import type { PasswordHasher } from './passwords.js'
import { updatePasswordHash } from './repository.js'

/** What a logged-in request knows of its user: no password hash. */
export interface AuthUser {
  id: number
  email: string
  role: Role
}

export function toAuthUser(user: User): AuthUser {
  return { id: user.id, email: user.email, role: user.role }
}

export interface VerifyResult {
  user: AuthUser | null
  /** The stored hash was weaker than the configured parameters and has been replaced. */
  rehashed: boolean
}

/** `user` is the one found for the typed email (null for an unknown email), read by the caller. */
export async function verifyCredentials(
  db: Kysely<Database>,
  user: User | null,
  password: string,
  hasher: PasswordHasher,
): Promise<VerifyResult> {
  // An unknown email still pays for one verification, so timing does not tell which emails exist.
  const matches = user ? await hasher.verify(user.password_hash, password) : await hasher.verifyDummy(password)
  if (!user || !matches) return { user: null, rehashed: false }
  // The only moment we hold the plain password: upgrade a hash made with weaker parameters.
  if (!hasher.needsRehash(user.password_hash)) return { user: toAuthUser(user), rehashed: false }
  await updatePasswordHash(db, user.id, await hasher.hash(password))
  return { user: toAuthUser(user), rehashed: true }
}
