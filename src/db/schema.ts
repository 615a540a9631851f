// Table types for Kysely: one place, matching migrations/ (columns are never optional, nullable is `| null`).
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely'

export type Role = 'user' | 'admin'
export const ROLES: readonly Role[] = ['user', 'admin']

export interface UsersTable {
  id: Generated<number>
  /** As typed at sign-up (trimmed). */
  email: string
  /** canonicalEmail(email) (src/users/email.ts): unique, and what every look-up compares. */
  email_canonical: string
  /** argon2id PHC string. */
  password_hash: string
  role: ColumnType<Role, Role | undefined, Role>
  created_at: ColumnType<Date, never, never>
  updated_at: ColumnType<Date, never, Date>
}

export interface SessionsTable {
  /** SHA-256 (hex) of the session id: the id itself is never stored. */
  id: string
  user_id: number | null
  data: ColumnType<SessionData, string, string>
  expires_at: Date
}

export interface AuthCountersTable {
  /** `login-user:<id>`, `login-email:<HMAC of the canonical email>`, or `rate:<client address><group>`. */
  key: string
  count: number
  window_ends_at: Date
}

/** What @fastify/session hands the store: its JSON form, cookie included. */
export type SessionData = Record<string, unknown>

export interface Database {
  users: UsersTable
  sessions: SessionsTable
  auth_counters: AuthCountersTable
}

export type User = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
