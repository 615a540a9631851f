// Password reset by a mailed link. Asking for one does the same work whether or not the email has an
// account (one statement, see issueLink); using one sets the password, ends every session of the user and
// queues a notice, in one transaction. A user has one reset link at a time (a new one replaces the last),
// so the used one was their only one: it stays, marked used, to recognise a form submitted twice.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import type { Mailer } from '../mail/mailer.js'
import { queueMessage } from '../mail/outbox.js'
import { deleteSessionsOfUser } from '../sessions/store.js'
import { deleteCounter } from '../throttling/counters.js'
import type { EmailDigest } from '../throttling/email-digest.js'
import { canonicalEmail } from '../users/email.js'
import type { PasswordHasher } from '../users/passwords.js'
import { findUserById, setPasswordFromLink } from '../users/repository.js'
import {
  findLiveToken,
  findRecentlyUsedToken,
  hashToken,
  issueLink,
  isWellFormedToken,
  newToken,
  useToken,
} from './account-tokens.js'

export const RESET_LINK_PATH = '/password/reset'
export const RESET_LINK_MINUTES = 60
/** A second submit of the same form within this long is told apart from a stale link (see resetPassword). */
const DOUBLE_SUBMIT_SECONDS = 600

export interface PasswordResetDependencies {
  db: Kysely<Database>
  hasher: PasswordHasher
  mail: Mailer
  emailDigest: EmailDigest
}

/** `email` as it passed the input rules. Returns whether a message was queued (for the log line only). */
export async function requestPasswordReset(deps: PasswordResetDependencies, email: string): Promise<boolean> {
  // Made, rendered and sealed for every request: the work must not depend on whether the account exists.
  const { token, hash } = newToken()
  const body = deps.mail.compose('password_reset', {
    link: deps.mail.link(RESET_LINK_PATH, token),
    minutes: RESET_LINK_MINUTES,
  })
  const queued = await issueLink(
    deps.db,
    { emailCanonical: canonicalEmail(email) },
    {
      purpose: 'password_reset',
      tokenHash: hash,
      ttlSeconds: RESET_LINK_MINUTES * 60,
      limitKey: `mail:password_reset:${deps.emailDigest.of(email)}`,
      kind: 'password_reset',
      body,
    },
  )
  deps.mail.wake()
  return queued
}

/** Whether a reset link still works (opening it only shows the form: mail scanners open links too). */
export async function isResetLinkLive(deps: PasswordResetDependencies, token: string): Promise<boolean> {
  return isWellFormedToken(token) && (await findLiveToken(deps.db, hashToken(token), 'password_reset')) !== null
}

export type ResetResult =
  | { outcome: 'reset'; userId: number }
  /** The same form was submitted again with the same password after it worked: answered as a success. */
  | { outcome: 'already-reset'; userId: number }
  /** Unknown, used, expired or superseded. */
  | { outcome: 'invalid-link' }

/** `password` as it passed the input rules. */
export async function resetPassword(
  deps: PasswordResetDependencies,
  token: string,
  password: string,
): Promise<ResetResult> {
  if (!isWellFormedToken(token)) return { outcome: 'invalid-link' }
  const tokenHash = hashToken(token)
  // A dead link costs no hashing.
  if ((await findLiveToken(deps.db, tokenHash, 'password_reset')) === null) {
    return submittedAgain(deps, tokenHash, password)
  }
  // Hashed before the transaction: the slow part never holds a connection.
  const passwordHash = await deps.hasher.hash(password)
  const userId = await deps.db.transaction().execute(async (trx) => {
    const link = await useToken(trx, tokenHash, 'password_reset')
    if (link === null) return null
    const address = await setPasswordFromLink(trx, link.userId, passwordHash, link.email)
    if (address === null) return null
    await deleteSessionsOfUser(trx, link.userId)
    // The account proved it is its owner's: a lock-out from failed log-ins ends too.
    await deleteCounter(trx, `login-user:${link.userId}`).execute()
    await queueMessage(trx, {
      kind: 'password_changed',
      recipient: address,
      body: deps.mail.compose('password_changed', { when: new Date().toUTCString() }),
    }).execute()
    return link.userId
  })
  if (userId === null) return submittedAgain(deps, tokenHash, password)
  deps.mail.wake()
  return { outcome: 'reset', userId }
}

/**
 * A link that does not work. If it was used moments ago and this is the password it set (a form submitted
 * twice: the browser shows the second answer), the answer is the first one's; nothing changes either way.
 */
async function submittedAgain(
  deps: PasswordResetDependencies,
  tokenHash: string,
  password: string,
): Promise<ResetResult> {
  const used = await findRecentlyUsedToken(deps.db, tokenHash, 'password_reset', DOUBLE_SUBMIT_SECONDS)
  const user = used ? await findUserById(deps.db, used.userId) : null
  if (user && (await deps.hasher.verify(user.password_hash, password))) {
    return { outcome: 'already-reset', userId: user.id }
  }
  return { outcome: 'invalid-link' }
}
