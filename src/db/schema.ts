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
  /** Null until the address is confirmed by its link (accounts from before confirmation, and the CLI's, are). */
  email_confirmed_at: ColumnType<Date | null, Date | null | undefined, Date | null>
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

/** What a mailed link is for. */
export type TokenPurpose = 'password_reset' | 'email_confirmation'

export interface AccountTokensTable {
  user_id: number
  purpose: TokenPurpose
  /** SHA-256 (hex) of the token: the token itself is only ever in the message. */
  token_hash: string
  /** The address the link was sent to. */
  email: string
  created_at: ColumnType<Date, never, Date>
  expires_at: Date
  used_at: ColumnType<Date | null, never, Date | null>
}

/** A message's kind: its template, and for a message with a link, the hourly limit it counts against. */
export type MailKind = 'password_reset' | 'password_changed' | 'email_confirmation'

export interface MailOutboxTable {
  id: Generated<string>
  kind: MailKind
  recipient: string
  /** Subject and text, sealed (src/mail/sealed-body.ts); null once sent or given up. */
  body: string | null
  created_at: ColumnType<Date, never, never>
  attempts: ColumnType<number, never, number>
  next_attempt_at: ColumnType<Date, Date | undefined, Date>
  sent_at: ColumnType<Date | null, never, Date | null>
  failed_at: ColumnType<Date | null, never, Date | null>
  last_error: ColumnType<string | null, never, string | null>
}

/** What @fastify/session hands the store: its JSON form, cookie included. */
export type SessionData = Record<string, unknown>

export interface Database {
  users: UsersTable
  sessions: SessionsTable
  auth_counters: AuthCountersTable
  account_tokens: AccountTokensTable
  mail_outbox: MailOutboxTable
}

export type User = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
