// Which writes wait for the disk. Session inserts and updates, and the per-address POST counts, go through the
// async-commit connections: a crash of the database server may lose the last fraction of a second of them,
// which can end a session early (its user logs in again) but never opens one. What ends access or locks it
// (a log-out's delete, a log-in attempt's count) and the users themselves commit durably.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { sql } from 'kysely'
import type { Commits } from '../src/db/database.js'
import {
  createTestUser,
  logIn,
  PASSWORD,
  type Statement,
  signUp,
  startTestApp,
  statementsOf,
  uniqueEmail,
} from './helpers/app.js'

const testApp = await startTestApp()

function writesTo(statements: Statement[], table: string): Statement[] {
  // A write of the table itself, not one that only reads it (a CTE that selects users, say).
  const write = new RegExp(`(insert into|update|delete from) "${table}"`)
  return statements.filter((statement) => write.test(statement.sql))
}

const describe = (statements: Statement[]) => statements.map((s) => `[${s.commits}] ${s.sql}`).join('\n')

test("a visitor's form session is written without waiting for the disk", async () => {
  const browser = testApp.browser()
  const statements = await statementsOf(testApp, () => browser.get('/login'))
  const sessionWrites = writesTo(statements, 'sessions')
  assert.equal(sessionWrites.length, 1, describe(statements))
  assert.equal(sessionWrites[0]?.commits, 'async', describe(statements))
})

test('a log-in: the POST count and the new session are async, the attempt count durable', async () => {
  const { email } = await createTestUser(testApp)
  const browser = testApp.browser()
  await browser.get('/login')
  const statements = await statementsOf(testApp, () => browser.post('/login', { email, password: PASSWORD }))
  const counts = writesTo(statements, 'auth_counters').filter((s) => /insert into "auth_counters"/.test(s.sql))
  assert.equal(counts.length, 2, describe(statements))
  assert.match(counts[0]?.sql ?? '', /^insert into "auth_counters"/)
  assert.equal(counts[0]?.commits, 'async', 'the per-address count')
  assert.equal(counts[1]?.commits, 'durable', 'the attempt, counted before the password check')
  const sessionWrites = writesTo(statements, 'sessions')
  assert.equal(sessionWrites.length, 1, describe(statements))
  assert.equal(
    sessionWrites[0]?.commits,
    'async',
    'the logged-in session, with the delete of the pre-session and the clear of the count (losing it errs on the safe side)',
  )
  assert.equal((await browser.get('/profile')).status, 200)
})

test("a failed log-in: the attempt's count is durable, the flash session async", async () => {
  const { email } = await createTestUser(testApp)
  const browser = testApp.browser()
  await browser.get('/login')
  const statements = await statementsOf(testApp, () =>
    browser.post('/login', { email, password: `${PASSWORD} but wrong` }),
  )
  const failureCounts = writesTo(statements, 'auth_counters').filter((s) => /insert into "auth_counters"/.test(s.sql))
  assert.equal(failureCounts.length, 2, `the address's count and the attempt's: ${describe(statements)}`)
  assert.deepEqual(
    failureCounts.map((s) => s.commits),
    ['async', 'durable'],
    'the per-address count first (before the form is read), then the attempt that can lock the account',
  )
  const sessionWrites = writesTo(statements, 'sessions')
  assert.equal(sessionWrites.length, 1, describe(statements))
  assert.equal(sessionWrites[0]?.commits, 'async', 'the anonymous session now carrying the flash')
})

test('a sign-up: the user is durable, its session async', async () => {
  const statements = await statementsOf(testApp, () => signUp(testApp, uniqueEmail('durable')))
  const userWrites = writesTo(statements, 'users')
  assert.equal(userWrites.length, 1, describe(statements))
  assert.equal(userWrites[0]?.commits, 'durable')
  const loggedInWrites = writesTo(statements, 'sessions').filter((s) => s.sql.startsWith('with "replaced"'))
  assert.equal(loggedInWrites.length, 1, describe(statements))
  assert.equal(loggedInWrites[0]?.commits, 'async')
})

test("a log-out: the session's delete is durable, the next session (its flash) async", async () => {
  const { email } = await createTestUser(testApp)
  const { browser } = await logIn(testApp, email)
  await browser.get('/profile')
  const statements = await statementsOf(testApp, () => browser.post('/logout', {}))
  const sessionWrites = writesTo(statements, 'sessions')
  assert.deepEqual(
    sessionWrites.map((s) => [s.sql.split(' ')[0], s.commits]),
    [
      ['delete', 'durable'],
      ['insert', 'async'],
    ],
    describe(statements),
  )
})

test("on PostgreSQL the async-commit connections commit with synchronous_commit off, the others don't", {
  skip:
    testApp.database.face === 'postgres'
      ? false
      : 'PGlite has one connection: both instances share it and its setting (the routing is tested above)',
}, async () => {
  const setting = async (commits: Commits) => {
    const db = commits === 'async' ? testApp.app.asyncCommitDb : testApp.db
    const result = await sql<{ synchronous_commit: string }>`show synchronous_commit`.execute(db)
    return result.rows[0]?.synchronous_commit
  }
  assert.equal(await setting('async'), 'off')
  assert.equal(await setting('durable'), 'on')
})
