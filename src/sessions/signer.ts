// The session cookie's signer: @fastify/cookie's HMAC Signer (the first secret signs, every secret verifies),
// remembering the cookies it verified lately. A page view otherwise computes two HMACs over the same id:
// @fastify/session verifies the cookie, then signs the id again for the session it restores.
import { Signer, type UnsignResult } from '@fastify/cookie'
import { FifoMap } from 'toad-cache'

/** Cookies remembered; a few hundred KiB at most. Past this, the oldest are forgotten (and verified again). */
const REMEMBERED_COOKIES = 2_000

export class SessionCookieSigner {
  private readonly signer: Signer
  /** Signed cookie → session id, for cookies found valid and signed with the current (first) secret. */
  private readonly verified = new FifoMap<string>(REMEMBERED_COOKIES)
  /** The other way round, so the restored session's re-sign is a lookup too. */
  private readonly signedIds = new FifoMap<string>(REMEMBERED_COOKIES)

  constructor(secrets: string[]) {
    this.signer = new Signer(secrets, 'sha256')
  }

  sign(value: string): string {
    return this.signedIds.get(value) ?? this.signer.sign(value)
  }

  unsign(signedValue: string): UnsignResult {
    // Only cookies that passed the constant-time check are remembered: a forged one always meets the HMAC.
    const value = this.verified.get(signedValue)
    if (value !== undefined) return { valid: true, renew: false, value }
    const result = this.signer.unsign(signedValue)
    if (result.valid && !result.renew && result.value !== null) {
      this.verified.set(signedValue, result.value)
      this.signedIds.set(result.value, signedValue)
    }
    return result
  }
}
