// Email confirmation by a mailed link: sent on sign-up (in its transaction), again on request, and on a
// refused log-in while confirmation is required. Opening the link confirms the address it went to.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import type { Mailer } from '../mail/mailer.js'
import type { EmailDigest } from '../throttling/email-digest.js'
import { confirmWithToken, hashToken, issueLink, isWellFormedToken, newToken } from './account-tokens.js'

export const CONFIRMATION_LINK_PATH = '/email/confirm'
export const CONFIRMATION_LINK_HOURS = 24

export interface EmailConfirmationDependencies {
  mail: Mailer
  emailDigest: EmailDigest
}

/**
 * Queues a confirmation link to the user's address, within the hourly limit; `db` may be the transaction
 * that made the user. The caller wakes the mailer once that has committed. Returns whether one was queued.
 */
export async function queueConfirmation(
  deps: EmailConfirmationDependencies,
  db: Kysely<Database>,
  user: { id: number; email: string },
): Promise<boolean> {
  const { token, hash } = newToken()
  return issueLink(
    db,
    { userId: user.id },
    {
      purpose: 'email_confirmation',
      tokenHash: hash,
      ttlSeconds: CONFIRMATION_LINK_HOURS * 3600,
      limitKey: `mail:email_confirmation:${deps.emailDigest.of(user.email)}`,
      kind: 'email_confirmation',
      body: deps.mail.compose('email_confirmation', {
        link: deps.mail.link(CONFIRMATION_LINK_PATH, token),
        hours: CONFIRMATION_LINK_HOURS,
      }),
    },
  )
}

/** The confirmed user's id, or null when the link does not work (unknown, used, expired, superseded, or the
 * account's address has changed since). */
export async function confirmEmail(db: Kysely<Database>, token: string): Promise<number | null> {
  if (!isWellFormedToken(token)) return null
  return confirmWithToken(db, hashToken(token))
}
