// All SQL for the users table. Emails compare by their canonical form (src/users/email.ts), which is unique.
import { type Kysely, sql } from 'kysely'
import type { Database, Role, User } from '../db/schema.js'
import type { AuthUser } from './auth-user.js'
import { canonicalEmail } from './email.js'

export async function findUserByEmail(db: Kysely<Database>, email: string): Promise<User | null> {
  const user = await db
    .selectFrom('users')
    .selectAll()
    .where('email_canonical', '=', canonicalEmail(email))
    .executeTakeFirst()
  return user ?? null
}

/** The users columns a whole `User` is made of, for statements of other tables that join users. */
export const USER_COLUMNS = [
  'users.id',
  'users.email',
  'users.email_canonical',
  'users.password_hash',
  'users.role',
  'users.email_confirmed_at',
  'users.created_at',
  'users.updated_at',
] as const

/** A `User` from a left join's columns: null when no user matched. The id is NOT NULL, so a null id means
 * no match, and a matched row is a whole user. */
export function userFromJoin(row: { [K in keyof User]: User[K] | null }): User | null {
  return row.id === null ? null : (row as User)
}

/** The users columns an `AuthUser` is made of, for a statement that joins users (the session read). */
export const AUTH_USER_COLUMNS = [
  'users.id as userId',
  'users.email',
  'users.role',
  'users.email_confirmed_at as emailConfirmedAt',
] as const

/** What a logged-in request knows of its user, from AUTH_USER_COLUMNS of a left join (null: no user). */
export function authUserFromJoin(row: {
  userId: number | null
  email: string | null
  role: Role | null
  emailConfirmedAt: Date | null
}): AuthUser | null {
  return row.userId !== null && row.email !== null && row.role !== null
    ? { id: row.userId, email: row.email, role: row.role, emailConfirmed: row.emailConfirmedAt !== null }
    : null
}

/** Null when the email is taken: the unique index decides, so concurrent sign-ups cannot both win. */
export async function createUser(
  db: Kysely<Database>,
  input: { email: string; passwordHash: string; role?: Role; emailConfirmed?: boolean },
): Promise<User | null> {
  const user = await db
    .insertInto('users')
    .values({
      email: input.email.trim(),
      email_canonical: canonicalEmail(input.email),
      password_hash: input.passwordHash,
      role: input.role ?? 'user',
      email_confirmed_at: input.emailConfirmed ? new Date() : null,
    })
    .onConflict((oc) => oc.column('email_canonical').doNothing())
    .returningAll()
    .executeTakeFirst()
  return user ?? null
}

/** The updated user, or null when no user has that email. */
export async function setUserRole(db: Kysely<Database>, email: string, role: Role): Promise<User | null> {
  const user = await db
    .updateTable('users')
    .set({ role, updated_at: new Date() })
    .where('email_canonical', '=', canonicalEmail(email))
    .returningAll()
    .executeTakeFirst()
  return user ?? null
}

export async function countUsers(db: Kysely<Database>): Promise<number> {
  const { count } = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .executeTakeFirstOrThrow()
  // PostgreSQL's count is a bigint, which pg hands over as a string.
  return Number(count)
}

export async function updatePasswordHash(db: Kysely<Database>, id: number, passwordHash: string): Promise<void> {
  await db
    .updateTable('users')
    .set({ password_hash: passwordHash, updated_at: new Date() })
    .where('id', '=', id)
    .execute()
}

export async function findUserById(db: Kysely<Database>, id: number): Promise<User | null> {
  const user = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
  return user ?? null
}

/** A new password (a reset link was used): the address the link went to counts as confirmed too, since
 * only its mailbox could open the link. Returns the user's address, or null when the user is gone. */
export async function setPasswordFromLink(
  db: Kysely<Database>,
  id: number,
  passwordHash: string,
  linkEmail: string,
): Promise<string | null> {
  const row = await db
    .updateTable('users')
    .set({
      password_hash: passwordHash,
      updated_at: new Date(),
      email_confirmed_at: sql<Date | null>`case when email = ${linkEmail} then coalesce(email_confirmed_at, now()) else email_confirmed_at end`,
    })
    .where('id', '=', id)
    .returning('email')
    .executeTakeFirst()
  return row?.email ?? null
}

/** The user and, through the foreign keys, their sessions, links and events. */
export async function deleteUser(db: Kysely<Database>, id: number): Promise<boolean> {
  const result = await db.deleteFrom('users').where('id', '=', id).executeTakeFirst()
  return result.numDeletedRows > 0n
}

/** A new address, confirmed (its link was opened from it). False when the user is gone; a taken address
 * fails on the unique index (23505). */
export async function setEmail(db: Kysely<Database>, id: number, email: string): Promise<boolean> {
  const result = await db
    .updateTable('users')
    .set({
      email: email.trim(),
      email_canonical: canonicalEmail(email),
      email_confirmed_at: sql<Date>`now()`,
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}
