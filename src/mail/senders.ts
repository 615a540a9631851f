// Where a message goes once the worker takes it: an SMTP server (nodemailer), or the log (development
// without SMTP_URL: the newcomer's mailbox).
import type { FastifyBaseLogger } from 'fastify'
import nodemailer from 'nodemailer'
import type { MessageContent } from './sealed-body.js'

export interface OutgoingMessage extends MessageContent {
  from: string
  to: string
  /** The outbox row's id, so a message that is retried keeps one Message-ID. */
  outboxId: string
}

export interface MailSender {
  send(message: OutgoingMessage): Promise<void>
  close(): void
}

/** The hostname of an address's domain, for Message-IDs. */
function domainOf(from: string): string {
  return /@([^>\s]+)/.exec(from)?.[1] ?? 'localhost'
}

/**
 * nodemailer over SMTP, pooled. Its own timeouts (two minutes to connect, ten to read) would hold a message
 * far longer than the outbox's lease: these bound a send to under a minute (STACK-NOTES P2.1).
 */
export function smtpSender(smtpUrl: string): MailSender {
  const transport = nodemailer.createTransport({
    url: smtpUrl,
    pool: true,
    maxConnections: 2,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  })
  return {
    async send(message) {
      await transport.sendMail({
        from: message.from,
        to: message.to,
        subject: message.subject,
        text: message.text,
        messageId: `<outbox-${message.outboxId}@${domainOf(message.from)}>`,
      })
    },
    close: () => transport.close(),
  }
}

/** The message, headers and text, as one log line at info: readable as it is when the log is pretty-printed. */
export function logSender(log: FastifyBaseLogger): MailSender {
  return {
    async send(message) {
      log.info(
        { event: 'mail_logged', to: message.to },
        [
          'mail (SMTP_URL is unset: the message is written here instead of being sent)',
          `From: ${message.from}`,
          `To: ${message.to}`,
          `Subject: ${message.subject}`,
          '',
          message.text,
        ].join('\n'),
      )
    },
    close: () => {},
  }
}
