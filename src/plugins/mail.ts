// Mail: the outbox worker (every instance runs one) and `app.mail` for the account flows. Without SMTP_URL,
// development writes each message to the log; production turns mail off (see config.ts).
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { Mailer } from '../mail/mailer.js'
import { pruneOutbox } from '../mail/outbox.js'
import { OutboxWorker } from '../mail/outbox-worker.js'
import { MessageSeal } from '../mail/sealed-body.js'
import { logSender, smtpSender } from '../mail/senders.js'
import { MailTemplates } from '../mail/templates.js'
import { repeatWhileRunning } from '../periodic.js'

declare module 'fastify' {
  interface FastifyInstance {
    mail: Mailer
  }
}

const PRUNE_INTERVAL_MS = 3_600_000

/** The SMTP server, for the start-up line: never its credentials. */
function smtpServerOf(smtpUrl: string): string {
  const url = new URL(smtpUrl)
  return `${url.protocol}//${url.host}`
}

export default fp<Config['mail'] & { secrets: readonly string[] }>(
  async function mailPlugin(app, options) {
    const seal = new MessageSeal(options.secrets)
    const templates = new MailTemplates()
    if (options.mode === 'off') {
      app.log.info(
        { event: 'mail_off' },
        'mail is off: SMTP_URL is unset in production, so password reset and email confirmation are off (set SMTP_URL to turn them on)',
      )
      app.decorate('mail', new Mailer('off', options.publicUrl, templates, seal, () => {}))
      return
    }

    const sender = options.smtpUrl ? smtpSender(options.smtpUrl) : logSender(app.log)
    const worker = new OutboxWorker({
      db: app.db,
      seal,
      sender,
      from: options.from,
      log: app.log,
      pollIntervalMs: options.pollIntervalMs,
      retryBaseMs: options.retryBaseMs,
    })
    app.decorate('mail', new Mailer(options.mode, options.publicUrl, templates, seal, () => worker.wake()))
    app.log.info(
      options.smtpUrl
        ? { event: 'mail_on', smtp: smtpServerOf(options.smtpUrl), from: options.from, publicUrl: options.publicUrl }
        : { event: 'mail_on', smtp: null, publicUrl: options.publicUrl },
      options.smtpUrl
        ? 'mail goes out over SMTP'
        : 'mail is written to this log (SMTP_URL is unset): the development mailbox',
    )

    // Started once the app is ready (the database migrated), stopped before the database closes.
    app.addHook('onReady', async () => worker.start())
    app.addHook('onClose', async () => {
      await worker.stop()
      sender.close()
    })
    repeatWhileRunning(app, {
      name: 'pruning sent mail',
      intervalMs: PRUNE_INTERVAL_MS,
      run: () => pruneOutbox(app.db),
    })
  },
  { name: 'mail', dependencies: ['db'] },
)
