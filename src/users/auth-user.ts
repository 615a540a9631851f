// What a logged-in request knows of its user.
import type { Role, User } from '../db/schema.js'

/** A user as sessions and pages see them: no password hash. */
export interface AuthUser {
  id: number
  email: string
  role: Role
  /** The address has been confirmed by its link (see accounts/email-confirmation.ts). */
  emailConfirmed: boolean
}

export function toAuthUser(user: User): AuthUser {
  return { id: user.id, email: user.email, role: user.role, emailConfirmed: user.email_confirmed_at !== null }
}
