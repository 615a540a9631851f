// All SQL for the users table. Emails compare through PostgreSQL's lower(), the same function the unique index uses.
import { type Kysely, sql } from 'kysely'
import { prepareStatement } from '../db/prepared.js'
import type { Database, Role, User } from '../db/schema.js'

export async function findUserByEmail(db: Kysely<Database>, email: string): Promise<User | null> {
  const user = await db
    .selectFrom('users')
    .selectAll()
    .where(sql<string>`lower(email)`, '=', sql<string>`lower(${email.trim()})`)
    .executeTakeFirst()
  return user ?? null
}

const userWithCounter = prepareStatement((db, p: { email: string; counterKey: string }) =>
  db
    .selectFrom(sql<{ one: number }>`(select 1 as one)`.as('one'))
    .leftJoin('users', (join) => join.on(sql<string>`lower(users.email)`, '=', sql<string>`lower(${p.email})`))
    .leftJoin('auth_counters', (join) =>
      join.on('auth_counters.key', '=', p.counterKey).on('auth_counters.window_ends_at', '>', sql<Date>`now()`),
    )
    .select([
      'users.id',
      'users.email',
      'users.password_hash',
      'users.role',
      'users.created_at',
      'users.updated_at',
      'auth_counters.count',
    ]),
)

/**
 * The log-in's one read: the user with this email (null when there is none) and the live count of the
 * throttling counter `counterKey` (0 when none), in one round trip. Both joins match at most one row
 * (unique lower(email), primary key), and the one-row source keeps the count when no user matches.
 */
export async function findUserWithCounter(
  db: Kysely<Database>,
  email: string,
  counterKey: string,
): Promise<{ user: User | null; count: number }> {
  const { rows } = await userWithCounter(db, { email: email.trim(), counterKey })
  if (!rows[0]) throw new Error('the one-row read returned no row')
  const { count, ...user } = rows[0]
  // Every users column is NOT NULL: a null id means no user matched, and a matched row is a whole user.
  return { user: user.id === null ? null : (user as User), count: count ?? 0 }
}

export async function findUserById(db: Kysely<Database>, id: number): Promise<User | null> {
  const user = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
  return user ?? null
}

/** Null when the email is taken: the unique index decides, so concurrent sign-ups cannot both win. */
export async function createUser(
  db: Kysely<Database>,
  input: { email: string; passwordHash: string; role?: Role },
): Promise<User | null> {
  const user = await db
    .insertInto('users')
    .values({ email: input.email.trim(), password_hash: input.passwordHash, role: input.role ?? 'user' })
    .onConflict((oc) => oc.expression(sql`lower(email)`).doNothing())
    .returningAll()
    .executeTakeFirst()
  return user ?? null
}

/** The updated user, or null when no user has that email. */
export async function setUserRole(db: Kysely<Database>, email: string, role: Role): Promise<User | null> {
  const user = await db
    .updateTable('users')
    .set({ role, updated_at: new Date() })
    .where(sql<string>`lower(email)`, '=', sql<string>`lower(${email.trim()})`)
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
