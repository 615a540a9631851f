// Checking an email and password against the users table, at the same cost whether or not the email exists.
import type { Kysely } from 'kysely'
import type { Database, Role, User } from '../db/schema.js'
import { dummyPasswordHash, verifyPassword } from './passwords.js'
import { findUserByEmail } from './repository.js'

/** What a logged-in request knows of its user: no password hash. */
export interface AuthUser {
  id: number
  email: string
  role: Role
}

export function toAuthUser(user: User): AuthUser {
  return { id: user.id, email: user.email, role: user.role }
}

export async function verifyCredentials(
  db: Kysely<Database>,
  email: string,
  password: string,
): Promise<AuthUser | null> {
  const user = await findUserByEmail(db, email)
  // An unknown email still pays for one verification, so timing does not tell which emails exist.
  const matches = await verifyPassword(user?.password_hash ?? (await dummyPasswordHash()), password)
  return user && matches ? toAuthUser(user) : null
}
