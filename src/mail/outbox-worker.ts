// Sends what the outbox holds, in every instance: woken at once by this instance's own requests, and
// polling for the rest (other instances' messages, retries that fall due, what a restart left behind).
// A failure is retried with a doubling delay; a request never waits for any of it.
import type { FastifyBaseLogger } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { claimDueMessages, markFailed, markSent, scheduleRetry } from './outbox.js'
import type { MessageSeal } from './sealed-body.js'
import type { MailSender } from './senders.js'

/** Longer than the slowest send the SMTP timeouts allow (senders.ts): a claimed message is not taken twice. */
const LEASE_SECONDS = 120
const BATCH = 10
/** Retries double from the first delay up to this. */
const MAX_RETRY_DELAY_MS = 3_600_000
/** With the default first delay, about a day of trying before a message is given up. */
const MAX_ATTEMPTS = 30

export interface OutboxWorkerOptions {
  db: Kysely<Database>
  seal: MessageSeal
  sender: MailSender
  from: string
  log: FastifyBaseLogger
  pollIntervalMs: number
  retryBaseMs: number
}

export function retryDelayMs(attempts: number, baseMs: number): number {
  return Math.min(baseMs * 2 ** Math.max(0, attempts - 1), MAX_RETRY_DELAY_MS)
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const { code, responseCode, command } = error as Error & { code?: string; responseCode?: number; command?: string }
  return [code, command, responseCode, error.message]
    .filter((part) => part !== undefined)
    .join(' ')
    .slice(0, 500)
}

export class OutboxWorker {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | null = null
  /** A wake-up came while a pass ran: run another, the new message may have missed the last claim. */
  private again = false
  private stopped = true

  constructor(private readonly options: OutboxWorkerOptions) {}

  start(): void {
    this.stopped = false
    this.schedule()
    this.wake()
  }

  /** Sends what is due now, without waiting for the next poll. */
  wake(): void {
    if (this.stopped) return
    if (this.running) {
      this.again = true
      return
    }
    this.running = this.drain().finally(() => {
      this.running = null
      if (this.again && !this.stopped) {
        this.again = false
        this.wake()
      }
    })
  }

  /** No new pass starts; the one under way finishes (its sends are bounded by the SMTP timeouts). */
  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.running
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.wake()
      this.schedule()
    }, this.options.pollIntervalMs)
    this.timer.unref()
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        if (this.stopped) return
        const batch = await claimDueMessages(this.options.db, BATCH, LEASE_SECONDS)
        for (const message of batch) await this.deliver(message)
        if (batch.length < BATCH) return
      }
    } catch (error) {
      // The database is away: the next poll tries again, and leased messages come back when their lease ends.
      this.options.log.error({ err: error }, 'mail outbox: could not read the outbox')
    }
  }

  private async deliver(message: Awaited<ReturnType<typeof claimDueMessages>>[number]): Promise<void> {
    const { db, seal, sender, from, log } = this.options
    const content = message.body === null ? null : seal.open(message.body)
    if (content === null) {
      // Sealed under a secret no longer in SESSION_SECRET's list: it can never be read.
      await markFailed(db, message.id, 'sealed under a secret no longer configured')
      log.error({ event: 'mail_failed', kind: message.kind, outboxId: message.id }, 'auth: mail_failed (unreadable)')
      return
    }
    try {
      await sender.send({ ...content, from, to: message.recipient, outboxId: message.id })
    } catch (error) {
      const reason = describe(error)
      if (message.attempts >= MAX_ATTEMPTS) {
        await markFailed(db, message.id, reason)
        log.error(
          { event: 'mail_failed', kind: message.kind, outboxId: message.id, attempts: message.attempts, reason },
          'auth: mail_failed (given up)',
        )
        return
      }
      const delayMs = retryDelayMs(message.attempts, this.options.retryBaseMs)
      await scheduleRetry(db, message.id, delayMs, reason)
      log.warn(
        {
          event: 'mail_failed',
          kind: message.kind,
          outboxId: message.id,
          attempts: message.attempts,
          retryInMs: delayMs,
          reason,
        },
        'auth: mail_failed (will retry)',
      )
      return
    }
    await markSent(db, message.id)
    log.info(
      { event: 'mail_sent', kind: message.kind, outboxId: message.id, attempts: message.attempts },
      'auth: mail_sent',
    )
  }
}
