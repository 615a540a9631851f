// Whether the database answers: errors that mean "unreachable" become 503s, and an outage is logged
// once when it starts and once when it ends, not once per request.
import type { FastifyBaseLogger } from 'fastify'
import { type Kysely, sql } from 'kysely'
import type { Database } from './schema.js'

// Socket-level failures from pg, and the SQLSTATEs of a server that is going away or not yet there.
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
])
const SERVER_GONE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300'])
const POOL_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection refused/i

/** True for errors that say the database cannot be reached, as opposed to a bad query. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code
    if (
      typeof code === 'string' &&
      (NETWORK_CODES.has(code) || SERVER_GONE_SQLSTATES.has(code) || code.startsWith('08'))
    ) {
      return true
    }
    if (POOL_MESSAGES.test(current.message)) return true
    if (current instanceof AggregateError && current.errors.some(isDatabaseUnavailable)) return true
    current = current.cause
  }
  return false
}

export class DatabaseAvailability {
  private down = false
  private probe: NodeJS.Timeout | undefined

  constructor(
    private readonly db: Kysely<Database>,
    private readonly log: FastifyBaseLogger,
    private readonly probeIntervalMs = 1000,
  ) {}

  get available(): boolean {
    return !this.down
  }

  /** An unreachable-database error was seen: log the outage once, then probe until it is over. */
  reportUnavailable(error: unknown): void {
    if (this.down) return
    this.down = true
    this.log.error({ err: error }, 'database unavailable: answering 503 until it is back')
    this.probe = setInterval(() => this.check(), this.probeIntervalMs)
    this.probe.unref()
  }

  /** One `select 1`; true when the database answers. Ends an outage that is over. */
  async check(): Promise<boolean> {
    try {
      await sql`select 1`.execute(this.db)
    } catch (error) {
      if (isDatabaseUnavailable(error)) this.reportUnavailable(error)
      return false
    }
    if (this.down) {
      this.down = false
      clearInterval(this.probe)
      this.log.info('database available again')
    }
    return true
  }

  stop(): void {
    clearInterval(this.probe)
  }
}
