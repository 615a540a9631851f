// What the account flows see of mail: whether it is on, links that start with PUBLIC_URL, messages rendered
// and sealed for the outbox, and a nudge for this instance's worker once their transaction has committed.

import type { MailMode } from '../config.js'
import type { MailKind } from '../db/schema.js'
import type { MessageSeal } from './sealed-body.js'
import type { MailTemplates } from './templates.js'

export class Mailer {
  constructor(
    readonly mode: MailMode,
    /** PUBLIC_URL: links never come from the request's Host or X-Forwarded-Host. */
    private readonly publicUrl: string,
    private readonly templates: MailTemplates,
    private readonly seal: MessageSeal,
    private readonly nudge: () => void,
  ) {}

  /** Off in production without SMTP_URL: no reset, no confirmation, no page that offers them. */
  get enabled(): boolean {
    return this.mode !== 'off'
  }

  /** `path` is ours (`/password/reset`); the token is base64url, safe in a path as it is. */
  link(path: string, token: string): string {
    return `${this.publicUrl}${path}/${token}`
  }

  /** A message ready for the outbox: rendered, then sealed. */
  compose(kind: MailKind, data: Record<string, unknown>): string {
    return this.seal.seal(this.templates.render(kind, data))
  }

  /** Call once the transaction that queued a message has committed: this instance sends it at once. */
  wake(): void {
    this.nudge()
  }
}
