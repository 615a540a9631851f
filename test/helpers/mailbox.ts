// A real SMTP server in the test process (smtp-server, from the nodemailer project), on loopback: what the
// app sends arrives here, parsed by mailparser. It can refuse for a while, to show that mail is retried.
import { after } from 'node:test'
import { simpleParser } from 'mailparser'
import { SMTPServer } from 'smtp-server'
import { freePort } from '../../support/free-port.js'

export interface ReceivedMessage {
  from: string
  to: string
  subject: string
  text: string
  messageId: string
  /** Every http(s) URL in the text. */
  links: string[]
  receivedAt: number
}

type SmtpError = Error & { responseCode?: number }

export class TestMailbox {
  readonly messages: ReceivedMessage[] = []
  /** Deliveries refused so far (each with 451, "try again later"). */
  refused = 0
  private refuseRemaining = 0
  private waiters: Array<() => void> = []
  private server: SMTPServer | null = null

  private constructor(readonly port: number) {}

  /** Listening on `port` (a free one by default); closed when the test file ends. */
  static async start(port?: number): Promise<TestMailbox> {
    const mailbox = new TestMailbox(port ?? (await freePort()))
    await mailbox.listen()
    after(() => mailbox.close())
    return mailbox
  }

  /** An SMTP_URL for the app. */
  get url(): string {
    return `smtp://127.0.0.1:${this.port}`
  }

  /** The next `count` messages are refused with a temporary error (451) at the end of DATA. */
  refuseNext(count: number): void {
    this.refuseRemaining = count
  }

  /** Listens again after close(): an SMTP server that was down comes back. */
  async listen(): Promise<void> {
    // The defaults' STARTTLS uses a built-in certificate that has expired, and AUTH is not needed on loopback
    // (STACK-NOTES P2.1); no reverse DNS per connection; a short close, as the app may hold pooled connections.
    const server = new SMTPServer({
      disabledCommands: ['STARTTLS', 'AUTH'],
      disableReverseLookup: true,
      size: 1 << 20,
      logger: false,
      closeTimeout: 200,
      onData: (stream, _session, callback) => {
        simpleParser(stream).then(
          (parsed) => {
            if (this.refuseRemaining > 0) {
              this.refuseRemaining -= 1
              this.refused += 1
              const error: SmtpError = new Error('Mailbox busy, try again later')
              error.responseCode = 451
              callback(error)
              return
            }
            const text = parsed.text ?? ''
            const to = Array.isArray(parsed.to) ? parsed.to[0] : parsed.to
            this.messages.push({
              from: parsed.from?.text ?? '',
              to: to?.value[0]?.address ?? '',
              subject: parsed.subject ?? '',
              text,
              messageId: parsed.messageId ?? '',
              links: [...text.matchAll(/https?:\/\/\S+/g)].map((match) => match[0]),
              receivedAt: Date.now(),
            })
            callback()
            for (const wake of this.waiters.splice(0)) wake()
          },
          (error: Error) => callback(error),
        )
      },
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    this.server = server
  }

  /** Stops accepting connections: the SMTP server is down until listen(). */
  async close(): Promise<void> {
    const server = this.server
    this.server = null
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** Messages to `address` (compared case-insensitively), oldest first. */
  to(address: string): ReceivedMessage[] {
    return this.messages.filter((message) => message.to.toLowerCase() === address.toLowerCase())
  }

  /** Waits until a message matches, and returns the newest that does. */
  async waitFor(match: (message: ReceivedMessage) => boolean, timeoutMs = 15_000): Promise<ReceivedMessage> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.messages.filter(match).at(-1)
      if (found) return found
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no such message within ${timeoutMs} ms (${this.messages.length} received)`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250))
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** Messages to `address` whose subject matches, oldest first. */
  matching(address: string, subject: RegExp): ReceivedMessage[] {
    return this.to(address).filter((message) => subject.test(message.subject))
  }

  /** Waits for the `index`-th (from 0) message to `address` whose subject matches. */
  async nth(address: string, subject: RegExp, index = 0): Promise<ReceivedMessage> {
    await this.waitFor(() => this.matching(address, subject).length > index)
    const message = this.matching(address, subject)[index]
    if (!message) throw new Error('unreachable: waitFor returned')
    return message
  }
}

/** The path (and query) of a link, to open on the test app whatever origin PUBLIC_URL names. */
export function pathOf(link: string): string {
  const url = new URL(link)
  return `${url.pathname}${url.search}`
}
