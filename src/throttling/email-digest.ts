// What logs and throttle keys carry instead of an email address: an HMAC of its canonical form under a key
// derived from the first SESSION_SECRET, so the logs or the database alone cannot confirm a guessed address.
import { createHmac, hkdfSync } from 'node:crypto'
import { canonicalEmail } from '../users/email.js'

export class EmailDigest {
  readonly #key: Buffer

  constructor(secret: string) {
    // A key of its own (HKDF), never the cookie-signing secret itself.
    this.#key = Buffer.from(hkdfSync('sha256', secret, '', 'gatehouse email digest', 32))
  }

  of(email: string): string {
    return createHmac('sha256', this.#key).update(canonicalEmail(email)).digest('hex')
  }
}
