// The links sent by mail, and all SQL for account_tokens. A token is 256 random bits, in the link only; the
// table keeps its SHA-256. One live token per user and purpose: a new link replaces the last one.
import { createHash, randomBytes } from 'node:crypto'
import { type Kysely, sql, type Transaction } from 'kysely'
import { prepareStatement } from '../db/prepared.js'
import type { Database, MailKind, TokenPurpose } from '../db/schema.js'
import { incrementStatement } from '../throttling/counters.js'

const TOKEN_BYTES = 32
/** base64url of TOKEN_BYTES, without padding: 43 characters. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/

export function newToken(): { token: string; hash: string } {
  const token = randomBytes(TOKEN_BYTES).toString('base64url')
  return { token, hash: hashToken(token) }
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

/** A token of the wrong length or alphabet is refused before any database work. */
export function isWellFormedToken(token: unknown): token is string {
  return typeof token === 'string' && TOKEN_SHAPE.test(token)
}

/** At most this many messages with a link of one kind go to one address per hour, whoever asks. */
export const LINKS_PER_ADDRESS_PER_HOUR = 3
const HOUR_SECONDS = 3600

/** Which account a link is for: by its canonical email (asked for on a form), or by id (a known user), the
 * link then going to the account's address or, for an email change, to `sendTo`. */
export type LinkAccount = { emailCanonical: string } | { userId: number; sendTo?: string }

export interface Link {
  purpose: TokenPurpose
  tokenHash: string
  ttlSeconds: number
  /** The auth_counters key of the hourly limit for this kind and address. */
  limitKey: string
  kind: MailKind
  /** The message, sealed (src/mail/sealed-body.ts), its link in it. */
  body: string
}

/**
 * One statement: counts the request against the address's hourly limit, and only for an existing account
 * within that limit stores the token (replacing the last) and queues the message to the account's stored
 * address. The work is the same whether or not the account exists, so the time taken tells nothing. Returns
 * whether a message was queued.
 */
/** The statement's parameters: both look-ups' values, of which its variant reads one. */
type LinkParameters = Link & { emailCanonical: string; userId: number; sendTo: string }

function issueLinkStatement(by: 'email' | 'id' | 'id-to-address') {
  return prepareStatement((db, p: LinkParameters) =>
    db
      .with('c', (qb) => incrementStatement(qb, p.limitKey, HOUR_SECONDS))
      .with('u', (qb) => {
        if (by === 'id-to-address') {
          return qb
            .selectFrom('users')
            .select(['users.id', sql<string>`${p.sendTo}::text`.as('email')])
            .where('users.id', '=', p.userId)
        }
        const users = qb.selectFrom('users').select(['users.id', 'users.email'])
        return by === 'email'
          ? users.where('users.email_canonical', '=', p.emailCanonical)
          : users.where('users.id', '=', p.userId)
      })
      .with('t', (qb) =>
        qb
          .insertInto('account_tokens')
          .columns(['user_id', 'purpose', 'token_hash', 'email', 'expires_at'])
          .expression((eb) =>
            eb
              .selectFrom(['u', 'c'])
              .select([
                'u.id',
                sql<TokenPurpose>`${p.purpose}::text`.as('purpose'),
                sql<string>`${p.tokenHash}::text`.as('token_hash'),
                'u.email',
                sql<Date>`now() + make_interval(secs => ${p.ttlSeconds})`.as('expires_at'),
              ])
              .where('c.count', '<=', LINKS_PER_ADDRESS_PER_HOUR),
          )
          .onConflict((oc) =>
            oc.columns(['user_id', 'purpose']).doUpdateSet((eb) => ({
              token_hash: eb.ref('excluded.token_hash'),
              email: eb.ref('excluded.email'),
              expires_at: eb.ref('excluded.expires_at'),
              created_at: sql<Date>`now()`,
              used_at: null,
            })),
          )
          .returning(['account_tokens.email']),
      )
      .insertInto('mail_outbox')
      .columns(['kind', 'recipient', 'body'])
      .expression((eb) =>
        eb
          .selectFrom('t')
          .select([
            sql<MailKind>`${p.kind}::text`.as('kind'),
            't.email as recipient',
            sql<string>`${p.body}::text`.as('body'),
          ]),
      )
      .returning('mail_outbox.id'),
  )
}

const issueLinkByEmail = issueLinkStatement('email')
const issueLinkById = issueLinkStatement('id')
const issueLinkToAddress = issueLinkStatement('id-to-address')

export async function issueLink(db: Kysely<Database>, account: LinkAccount, link: Link): Promise<boolean> {
  const { rows } =
    'emailCanonical' in account
      ? await issueLinkByEmail(db, { ...link, emailCanonical: account.emailCanonical, userId: 0, sendTo: '' })
      : account.sendTo === undefined
        ? await issueLinkById(db, { ...link, emailCanonical: '', userId: account.userId, sendTo: '' })
        : await issueLinkToAddress(db, { ...link, emailCanonical: '', userId: account.userId, sendTo: account.sendTo })
  return rows.length > 0
}

const liveToken = prepareStatement((db, p: { tokenHash: string; purpose: TokenPurpose }) =>
  db
    .selectFrom('account_tokens')
    .select(['user_id', 'email'])
    .where('token_hash', '=', p.tokenHash)
    .where('purpose', '=', p.purpose)
    .where('used_at', 'is', null)
    .where('expires_at', '>', sql<Date>`now()`),
)

/** The link's account, while the link works (unused, unexpired, the latest); it is not used up. */
export async function findLiveToken(db: Kysely<Database>, tokenHash: string, purpose: TokenPurpose) {
  const { rows } = await liveToken(db, { tokenHash, purpose })
  return rows[0] ? { userId: rows[0].user_id, email: rows[0].email } : null
}

/** Uses the link up, in the caller's transaction: its account, or null when it does not work. */
export async function useToken(trx: Transaction<Database>, tokenHash: string, purpose: TokenPurpose) {
  const row = await trx
    .updateTable('account_tokens')
    .set({ used_at: sql<Date>`now()` })
    .where('token_hash', '=', tokenHash)
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .where('expires_at', '>', sql<Date>`now()`)
    .returning(['user_id', 'email'])
    .executeTakeFirst()
  return row ? { userId: row.user_id, email: row.email } : null
}

/** The account of a link used within the last `seconds` (a form submitted twice), or null. */
export async function findRecentlyUsedToken(
  db: Kysely<Database>,
  tokenHash: string,
  purpose: TokenPurpose,
  seconds: number,
) {
  const row = await db
    .selectFrom('account_tokens')
    .select('user_id')
    .where('token_hash', '=', tokenHash)
    .where('purpose', '=', purpose)
    .where('used_at', '>', sql<Date>`now() - make_interval(secs => ${seconds})`)
    .executeTakeFirst()
  return row ? { userId: row.user_id } : null
}

/**
 * Uses a confirmation link and confirms the address, in one statement: only while the account still has the
 * address the link went to. The confirmed user's id, or null when the link does not work.
 */
export async function confirmWithToken(db: Kysely<Database>, tokenHash: string): Promise<number | null> {
  const row = await db
    .with('t', (qb) =>
      qb
        .updateTable('account_tokens')
        .set({ used_at: sql<Date>`now()` })
        .where('token_hash', '=', tokenHash)
        .where('purpose', '=', 'email_confirmation')
        .where('used_at', 'is', null)
        .where('expires_at', '>', sql<Date>`now()`)
        .returning(['user_id', 'email']),
    )
    .updateTable('users')
    .from('t')
    .set({ email_confirmed_at: sql<Date>`coalesce(users.email_confirmed_at, now())` })
    .whereRef('users.id', '=', 't.user_id')
    .whereRef('users.email', '=', 't.email')
    .returning('users.id')
    .executeTakeFirst()
  return row?.id ?? null
}

/** Deletes links expired for a day (kept that long so a late double submit is still recognised). */
export async function pruneExpiredTokens(db: Kysely<Database>): Promise<number> {
  const result = await db
    .deleteFrom('account_tokens')
    .where('expires_at', '<', sql<Date>`now() - interval '1 day'`)
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}

/** Voids every link of these purposes the user has, in the caller's transaction. */
export async function deleteTokens(
  trx: Transaction<Database>,
  userId: number,
  purposes: readonly TokenPurpose[],
): Promise<void> {
  await trx.deleteFrom('account_tokens').where('user_id', '=', userId).where('purpose', 'in', purposes).execute()
}
