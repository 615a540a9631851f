// A queued message's content, sealed (AES-256-GCM) under a key derived from SESSION_SECRET while it waits in
// the outbox: a reset link is a password for an hour, and the database (a backup, a read replica, a
// leaked dump) must not hand out live ones. Sealed with the first secret; any secret of the list opens it,
// so a rotation does not strand queued mail.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'

export interface MessageContent {
  subject: string
  text: string
}

const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16

function keyOf(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, '', 'gatehouse outbox', 32))
}

export class MessageSeal {
  readonly #keys: Buffer[]

  /** `secrets`: SESSION_SECRET's list, the first one sealing. */
  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('MessageSeal needs at least one secret')
    this.#keys = secrets.map(keyOf)
  }

  /** `v1.<base64url of iv | tag | ciphertext>` */
  seal(content: MessageContent): string {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#keys[0] as Buffer, iv)
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(content), 'utf8'), cipher.final()])
    return `${VERSION}.${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64url')}`
  }

  /** Null when no secret of the list opens it (sealed under a secret since removed, or altered). */
  open(sealed: string): MessageContent | null {
    const [version, payload] = sealed.split('.', 2)
    if (version !== VERSION || payload === undefined) return null
    const bytes = Buffer.from(payload, 'base64url')
    const iv = bytes.subarray(0, IV_BYTES)
    const tag = bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES)
    const ciphertext = bytes.subarray(IV_BYTES + TAG_BYTES)
    for (const key of this.#keys) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, iv)
        decipher.setAuthTag(tag)
        const plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8')
        return JSON.parse(plain) as MessageContent
      } catch {
        // Not this key: try the next.
      }
    }
    return null
  }
}
