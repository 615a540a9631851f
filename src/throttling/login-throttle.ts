// Log-in attempts per account, counted in PostgreSQL before any password check: past `maxFailures` within
// the window, that account (or, for an email without one, that email) is refused (429) until the window
// ends, whatever password comes; others are unaffected. A successful log-in clears the count.
import type { Kysely } from 'kysely'
import type { Database, User } from '../db/schema.js'
import { canonicalEmail } from '../users/email.js'
import { countLoginAttempt } from './counters.js'
import type { EmailDigest } from './email-digest.js'

export interface LoginAttempt {
  /** The email's user, null when there is none. */
  user: User | null
  /** This attempt's counter: clear it when the log-in succeeds. */
  counterKey: string
  /** Over the limit: refuse without checking the password. */
  locked: boolean
}

export class LoginThrottle {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly digest: EmailDigest,
    private readonly maxFailures: number,
    private readonly windowMs: number,
  ) {}

  /** Counts this attempt and reads the email's user, in one statement. */
  async attempt(email: string): Promise<LoginAttempt> {
    const key = `login-email:${this.digest.of(email)}`
    const { user, key: counterKey, count } = await countLoginAttempt(this.db, canonicalEmail(email), key, this.windowMs)
    return { user, counterKey, locked: count > this.maxFailures }
  }
}
