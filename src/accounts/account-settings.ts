// What a logged-in user does to their own account: change the password or the email, delete the account.
// Each asks for the current password, and a wrong one counts as a failed log-in for the account's email
// (the same limit, the same 429). No HTTP here; src/routes/account/ maps the answers to pages.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { type EventOrigin, insertEvent } from '../events/repository.js'
import type { Mailer } from '../mail/mailer.js'
import { queueMessage } from '../mail/outbox.js'
import { deleteSessionsOfUser } from '../sessions/store.js'
import { deleteCounter } from '../throttling/counters.js'
import type { EmailDigest } from '../throttling/email-digest.js'
import type { LoginThrottle } from '../throttling/login-throttle.js'
import type { AuthUser } from '../users/auth-user.js'
import { canonicalEmail } from '../users/email.js'
import { HashQueueFullError, type PasswordHasher } from '../users/passwords.js'
import { deleteUser, findUserByEmail, setEmail, updatePasswordHash } from '../users/repository.js'
import { deleteTokens, hashToken, issueLink, isWellFormedToken, newToken, useToken } from './account-tokens.js'

export const EMAIL_CHANGE_LINK_PATH = '/email/change'
export const EMAIL_CHANGE_LINK_HOURS = 24

export interface AccountSettingsDependencies {
  db: Kysely<Database>
  hasher: PasswordHasher
  throttle: LoginThrottle
  mail: Mailer
  emailDigest: EmailDigest
}

/** Refused before anything changes: a wrong current password, or too many of them lately. */
export type CurrentPasswordRefusal = { outcome: 'wrong-password' } | { outcome: 'throttled' }

/** Counted like a log-in attempt for the account's email; the right password clears the count. */
async function checkCurrentPassword(
  deps: AccountSettingsDependencies,
  user: AuthUser,
  password: string,
): Promise<CurrentPasswordRefusal | null> {
  if (deps.hasher.saturated) throw new HashQueueFullError()
  const attempt = await deps.throttle.attempt(user.email)
  if (attempt.locked) return { outcome: 'throttled' }
  const stored = attempt.user
  if (!stored || stored.id !== user.id || !(await deps.hasher.verify(stored.password_hash, password))) {
    return { outcome: 'wrong-password' }
  }
  await deleteCounter(deps.db, attempt.counterKey).execute()
  return null
}

export type PasswordChangeResult = { outcome: 'changed' } | CurrentPasswordRefusal

/**
 * The new password; every other session of the user ends (`keepSessionId`, the stored id of this one, stays
 * for the caller to give a new id), reset links and a pending email change are voided, a notice is mailed.
 */
export async function changePassword(
  deps: AccountSettingsDependencies,
  user: AuthUser,
  currentPassword: string,
  newPassword: string,
  keepSessionId: string,
): Promise<PasswordChangeResult> {
  const refusal = await checkCurrentPassword(deps, user, currentPassword)
  if (refusal) return refusal
  const passwordHash = await deps.hasher.hash(newPassword)
  await deps.db.transaction().execute(async (trx) => {
    await updatePasswordHash(trx, user.id, passwordHash)
    await deleteSessionsOfUser(trx, user.id, { except: keepSessionId })
    await deleteTokens(trx, user.id, ['password_reset', 'email_change'])
    if (deps.mail.enabled) {
      await queueMessage(trx, {
        kind: 'password_changed',
        recipient: user.email,
        body: deps.mail.compose('password_changed', { when: new Date().toUTCString(), otherSessionsOnly: true }),
      }).execute()
    }
  })
  deps.mail.wake()
  return { outcome: 'changed' }
}

export type EmailChangeResult =
  | { outcome: 'requested' }
  | { outcome: 'same-email' }
  | { outcome: 'email-taken' }
  | CurrentPasswordRefusal

/** `newEmail` as it passed the input rules. A link goes to the new address, a notice at once to the old. */
export async function requestEmailChange(
  deps: AccountSettingsDependencies,
  user: AuthUser,
  newEmail: string,
  currentPassword: string,
): Promise<EmailChangeResult> {
  const refusal = await checkCurrentPassword(deps, user, currentPassword)
  if (refusal) return refusal
  if (canonicalEmail(newEmail) === canonicalEmail(user.email)) return { outcome: 'same-email' }
  if (await findUserByEmail(deps.db, newEmail)) return { outcome: 'email-taken' }
  const { token, hash } = newToken()
  const queued = await deps.db.transaction().execute(async (trx) => {
    const sent = await issueLink(
      trx,
      { userId: user.id, sendTo: newEmail },
      {
        purpose: 'email_change',
        tokenHash: hash,
        ttlSeconds: EMAIL_CHANGE_LINK_HOURS * 3600,
        limitKey: `mail:email_change:${deps.emailDigest.of(newEmail)}`,
        kind: 'email_change',
        body: deps.mail.compose('email_change', {
          link: deps.mail.link(EMAIL_CHANGE_LINK_PATH, token),
          hours: EMAIL_CHANGE_LINK_HOURS,
        }),
      },
    )
    if (sent) {
      await queueMessage(trx, {
        kind: 'email_change_notice',
        recipient: user.email,
        body: deps.mail.compose('email_change_notice', { when: new Date().toUTCString(), newAddress: newEmail }),
      }).execute()
    }
    return sent
  })
  if (queued) deps.mail.wake()
  // Past the hourly limit nothing is sent, and the answer is the same.
  return { outcome: 'requested' }
}

/**
 * Uses an email-change link: the account takes the address it went to (confirmed, since the link was
 * opened from it), unless another account has taken it meanwhile; reset links sent to the old address are
 * voided. The user's id and new address, or null when the link does not work.
 */
export async function confirmEmailChange(
  deps: AccountSettingsDependencies,
  token: string,
): Promise<{ userId: number; email: string } | null> {
  if (!isWellFormedToken(token)) return null
  try {
    return await deps.db.transaction().execute(async (trx) => {
      const link = await useToken(trx, hashToken(token), 'email_change')
      if (!link) return null
      if (await findUserByEmail(trx, link.email)) return null
      if (!(await setEmail(trx, link.userId, link.email))) return null
      await deleteTokens(trx, link.userId, ['password_reset', 'email_confirmation'])
      return { userId: link.userId, email: link.email }
    })
  } catch (error) {
    // Taken between the check and the update (the unique index decides): the link changes nothing.
    if ((error as { code?: string }).code === '23505') return null
    throw error
  }
}

export type DeleteAccountResult = { outcome: 'deleted' } | CurrentPasswordRefusal

/**
 * The user and everything that hangs off them (sessions, links, events, mail not yet sent to them) go, in
 * one transaction; one event stays, naming the account by id and the address by its digest only.
 */
export async function deleteAccount(
  deps: AccountSettingsDependencies,
  user: AuthUser,
  currentPassword: string,
  origin: EventOrigin,
): Promise<DeleteAccountResult> {
  const refusal = await checkCurrentPassword(deps, user, currentPassword)
  if (refusal) return refusal
  await deps.db.transaction().execute(async (trx) => {
    // Already gone: the same form posted twice at once, and the other request did it all (one event only).
    if (!(await deleteUser(trx, user.id))) return
    await trx.deleteFrom('mail_outbox').where('recipient', '=', user.email).where('sent_at', 'is', null).execute()
    await deleteCounter(trx, `login-user:${user.id}`).execute()
    await insertEvent(
      trx,
      { userId: null, emailHash: deps.emailDigest.of(user.email) },
      { ...origin, type: 'account_deleted', actorId: null, details: JSON.stringify({ userId: user.id }) },
    )
  })
  return { outcome: 'deleted' }
}

/** A notice that the account was logged in to from a browser it had not used before (no link in it). */
export async function noticeNewBrowser(
  deps: AccountSettingsDependencies,
  user: AuthUser,
  seen: { browser: string; system: string; ip: string; at: Date },
): Promise<void> {
  await queueMessage(deps.db, {
    kind: 'new_browser',
    recipient: user.email,
    body: deps.mail.compose('new_browser', { ...seen, when: seen.at.toUTCString() }),
  }).execute()
  deps.mail.wake()
}
