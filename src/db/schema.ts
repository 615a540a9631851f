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
export type TokenPurpose = 'password_reset' | 'email_confirmation' | 'email_change'

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
export type MailKind =
  | 'password_reset'
  | 'password_changed'
  | 'email_confirmation'
  | 'email_change'
  | 'email_change_notice'
  | 'new_browser'

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

/** The contract's event types (CONTRACT.md, "Your account"). */
export const AUTH_EVENT_TYPES = [
  'signup',
  'login',
  'login_failed',
  'login_throttled',
  'logout',
  'password_reset_requested',
  'password_reset',
  'password_changed',
  'email_change_requested',
  'email_changed',
  'email_confirmed',
  'session_ended',
  'new_browser',
  'account_deleted',
  'role_changed',
  'account_disabled',
  'account_enabled',
  'sessions_ended_by_admin',
  'two_factor_on',
  'two_factor_off',
  'recovery_code_used',
  'passkey_added',
  'passkey_removed',
  'token_created',
  'token_revoked',
] as const
export type AuthEventType = (typeof AUTH_EVENT_TYPES)[number]

export interface AuthEventsTable {
  id: Generated<string>
  type: AuthEventType
  /** The account the event is about; null for an email without one (see email_hash) and for a deletion. */
  user_id: number | null
  /** The admin who acted, when it was not the account's owner. */
  actor_id: number | null
  email_hash: string | null
  ip: string | null
  browser: string | null
  system: string | null
  details: ColumnType<Record<string, unknown>, string, string>
  created_at: ColumnType<Date, never, never>
}

/** What @fastify/session hands the store: its JSON form, cookie included. */
export type SessionData = Record<string, unknown>

export interface Database {
  users: UsersTable
  sessions: SessionsTable
  auth_counters: AuthCountersTable
  account_tokens: AccountTokensTable
  mail_outbox: MailOutboxTable
  auth_events: AuthEventsTable
}

export type User = Selectable<UsersTable>
export type NewUser = Insertable<UsersTable>
export type UserUpdate = Updateable<UsersTable>
