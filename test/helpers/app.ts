// Builds the app exactly as the server does (same loadConfig, same buildApp), listening on a free
// loopback port, on a fresh database of its own.
import { createHmac, hkdfSync } from 'node:crypto'
import { Writable } from 'node:stream'
import { after } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { type AppConfig, buildApp } from '../../src/app.js'
import { loadConfig, withSessionSecrets } from '../../src/config.js'
import type { Commits } from '../../src/db/database.js'
import type { Database } from '../../src/db/schema.js'
import { checkCredentials } from '../../src/users/credentials.js'
import { hashPassword } from '../../src/users/passwords.js'
import { createUser } from '../../src/users/repository.js'
import { Browser, type Page } from '../../support/browser.js'
import { createTestDatabase, type TestDatabase } from '../../support/test-database.js'

export const TEST_SECRET = 'test-secret-that-is-at-least-32-characters-long'
export const PASSWORD = 'correct horse battery staple'

/** SECURITY.md's email digest, computed here on its own: HMAC-SHA-256 of the trimmed, lower-cased email under
 * a key derived (HKDF-SHA-256, info "gatehouse email digest") from the first SESSION_SECRET. */
export function keyedEmailDigest(email: string, secret = TEST_SECRET): string {
  const key = Buffer.from(hkdfSync('sha256', secret, '', 'gatehouse email digest', 32))
  return createHmac('sha256', key).update(email.trim().toLowerCase()).digest('hex')
}

export interface TestApp {
  app: FastifyInstance
  db: Kysely<Database>
  config: AppConfig
  database: TestDatabase
  url: string
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[]
  /** Every SQL statement the app ran, in order (migrations included), but the mail outbox worker's. */
  queries: string[]
  /** For each of `queries`: whether it ran on the durable connections or the async-commit ones. */
  queryCommits: Commits[]
  browser(): Browser
  /** Stops this app (the database stays); safe to call twice. */
  close(): Promise<void>
  /** Another app on the same database and environment: a restart, or a second instance. */
  restart(env?: Record<string, string>): Promise<TestApp>
}

const OUTBOX_WORKER_STATEMENT = /^(update|delete from) "mail_outbox"/

class LogCollector extends Writable {
  readonly lines: Record<string, unknown>[] = []
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString().split('\n')) if (line) this.lines.push(JSON.parse(line))
    done()
  }
}

async function listen(database: TestDatabase, env: Record<string, string>): Promise<TestApp> {
  const config = loadConfig({
    NODE_ENV: 'test',
    SESSION_SECRET: TEST_SECRET,
    LOG_LEVEL: 'info',
    // Tests post far more often than a person; the throttling tests set their own limits.
    AUTH_RATE_LIMIT: '100000',
    // Several apps and embedded databases share one event loop in a test process: its lag is the
    // harness's, not overload. The load-shedding test sets its own threshold.
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
    ...database.env,
    ...env,
  })
  const appConfig: AppConfig = withSessionSecrets(config, config.session.secrets ?? [TEST_SECRET])
  const collector = new LogCollector()
  const queries: string[] = []
  const queryCommits: Commits[] = []
  const onQuery = (sql: string, commits: Commits) => {
    // The outbox worker's statements (claims, outcomes, prunes) run beside requests on their own schedule:
    // counting them would make a request's round trips depend on when mail went out.
    if (OUTBOX_WORKER_STATEMENT.test(sql)) return
    queries.push(sql)
    queryCommits.push(commits)
  }
  const app = await buildApp(appConfig, { logStream: collector, onQuery })
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  let closed: Promise<void> | undefined
  const testApp: TestApp = {
    app,
    db: app.db,
    config: appConfig,
    database,
    url: address,
    logs: collector.lines,
    queries,
    queryCommits,
    browser: () => new Browser(address),
    close: () => {
      closed ??= app.close()
      return closed
    },
    restart: (moreEnv = {}) => listen(database, { ...env, ...moreEnv }),
  }
  return testApp
}

/**
 * Starts the app for one test file; it and its database are removed when the file's tests end.
 * Apps made with `restart()` must be closed by the test that made them.
 */
export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const database = await createTestDatabase()
  const testApp = await listen(database, env)
  after(async () => {
    await testApp.close()
    await database.drop()
  })
  return testApp
}

/** A statement the app ran, and whether it ran on the durable connections or the async-commit ones. */
export interface Statement {
  sql: string
  commits: Commits
}

/** The statements `app` ran during `action`, in order. */
export async function statementsOf(app: TestApp, action: () => Promise<unknown>): Promise<Statement[]> {
  const before = app.queries.length
  await action()
  return app.queries
    .slice(before)
    .map((sql, index) => ({ sql, commits: app.queryCommits[before + index] ?? 'durable' }))
}

let emailCounter = 0
/** A fresh email for each call, so tests in one file never collide. */
export function uniqueEmail(prefix = 'user'): string {
  emailCounter += 1
  return `${prefix}-${process.pid}-${emailCounter}@example.com`
}

/** Signs up through the forms; returns the browser (logged in) and the final page. */
export async function signUp(testApp: TestApp, email = uniqueEmail(), password = PASSWORD) {
  const browser = testApp.browser()
  await browser.get('/signup')
  const response = await browser.post('/signup', { email, password })
  return { browser, email, password, response, page: await browser.follow(response) }
}

/** Logs in through the forms with a fresh browser. */
export async function logIn(testApp: TestApp, email: string, password = PASSWORD, next?: string) {
  const browser = testApp.browser()
  await browser.get('/login')
  const response = await browser.post(next === undefined ? '/login' : `/login?next=${encodeURIComponent(next)}`, {
    email,
    password,
  })
  return { browser, response }
}

/** A user made directly in the database (no HTTP), for tests about other things. */
export async function createTestUser(testApp: TestApp, options: { email?: string; role?: 'user' | 'admin' } = {}) {
  const email = options.email ?? uniqueEmail()
  const check = checkCredentials(email, PASSWORD)
  if (!check.ok) throw new Error(check.message)
  const user = await createUser(testApp.db, {
    email,
    passwordHash: await hashPassword(PASSWORD),
    role: options.role,
    emailConfirmed: true,
  })
  if (!user) throw new Error(`could not create ${email}`)
  return user
}

export async function countRows(db: Kysely<Database>, table: 'users' | 'sessions'): Promise<number> {
  const row = await db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .executeTakeFirstOrThrow()
  return Number(row.count)
}

export type { Page }
