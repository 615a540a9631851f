// Messages rendered from templates/mail/<kind>.txt.eta: plain text (no HTML part, so no remote images and
// nothing to escape), the subject beside the template's name.
import fs from 'node:fs'
import path from 'node:path'
import { Eta } from 'eta'
import type { MailKind } from '../db/schema.js'
import { TEMPLATES_DIR } from '../paths.js'
import type { MessageContent } from './sealed-body.js'

export const MAIL_TEMPLATES_DIR = path.join(TEMPLATES_DIR, 'mail')

const SUBJECTS: Record<MailKind, string> = {
  password_reset: 'Reset your gatehouse password',
  password_changed: 'Your gatehouse password has been changed',
  email_confirmation: 'Confirm your email address for gatehouse',
  email_change: 'Confirm the new email address of your gatehouse account',
  email_change_notice: 'The email address of your gatehouse account is being changed',
  new_browser: 'A new log-in to your gatehouse account',
}

export class MailTemplates {
  private readonly eta = new Eta({ views: MAIL_TEMPLATES_DIR, autoEscape: false, autoTrim: false })

  constructor() {
    // Compiled once, at start: a missing template stops the start rather than a message.
    for (const kind of Object.keys(SUBJECTS) as MailKind[]) {
      this.eta.loadTemplate(`@${kind}`, fs.readFileSync(path.join(MAIL_TEMPLATES_DIR, `${kind}.txt.eta`), 'utf8'))
    }
  }

  render(kind: MailKind, data: Record<string, unknown>): MessageContent {
    return { subject: SUBJECTS[kind], text: this.eta.render(`@${kind}`, data) }
  }
}
