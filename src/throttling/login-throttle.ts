// Failed log-ins per email, counted in PostgreSQL: after `maxFailures` within the window, that email is
// refused (429) until the window ends, whatever password comes; other emails are unaffected.
import { createHash } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Database, User } from '../db/schema.js'
import { normalizeEmail } from '../users/credentials.js'
import { incrementCounter, readCounterWithUser, resetCounter } from './counters.js'

/** SHA-256 of the normalized email: what logs and counters carry instead of the address. */
export function emailDigest(email: string): string {
  return createHash('sha256').update(normalizeEmail(email)).digest('hex')
}

export class LoginThrottle {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly maxFailures: number,
    private readonly windowMs: number,
  ) {}

  private key(email: string): string {
    return `login-email:${emailDigest(email)}`
  }

  /** The email's failures in the current window and whether they lock it, with the email's user (null when
   * none), read in the same query: the password check that follows needs no query of its own. */
  async check(email: string): Promise<{ failures: number; locked: boolean; user: User | null }> {
    const { user, count } = await readCounterWithUser(this.db, this.key(email), email)
    return { failures: count, locked: count >= this.maxFailures, user }
  }

  async recordFailure(email: string): Promise<void> {
    await incrementCounter(this.db, this.key(email), this.windowMs)
  }

  /** A success before the limit starts the count again. */
  async clear(email: string): Promise<void> {
    await resetCounter(this.db, this.key(email))
  }
}
