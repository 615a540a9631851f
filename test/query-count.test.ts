// The cost of a page view in database round trips: counted, not timed (speed issue, item 2). A logged-in
// user reading a page costs one query, the session read with its user, and no write.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { hashSessionId } from '../src/sessions/store.js'
import type { Browser } from '../support/browser.js'
import { createTestUser, logIn, PASSWORD, signUp, startTestApp, type TestApp } from './helpers/app.js'

const testApp = await startTestApp()

/** The statements the app ran while answering one GET. */
async function queriesOf(app: TestApp, browser: Browser, path: string): Promise<{ status: number; sql: string[] }> {
  const before = app.queries.length
  const page = await browser.get(path)
  return { status: page.status, sql: app.queries.slice(before) }
}

test('a logged-in page view reads the session and its user in one query and writes nothing', async () => {
  const { browser } = await signUp(testApp)
  // The first views after log-in may write once (a CSRF secret for the log-out form, the sliding expiry).
  await browser.get('/profile')
  await browser.get('/profile')
  for (const path of ['/profile', '/', '/profile']) {
    const { status, sql } = await queriesOf(testApp, browser, path)
    assert.equal(status, 200, path)
    assert.equal(sql.length, 1, `${path}: one round trip, got ${sql.length}: ${sql.join(' | ')}`)
    assert.match(sql[0] ?? '', /^select /, `${path}: a read, no write`)
    assert.match(sql[0] ?? '', /join "users"/, `${path}: the user comes with the session`)
  }
})

test("an admin page view: the same one query for the session and its role, then only the page's own read", async () => {
  const { email } = await createTestUser(testApp, { role: 'admin' })
  const { browser } = await logIn(testApp, email)
  await browser.get('/admin')
  await browser.get('/admin')
  const { status, sql } = await queriesOf(testApp, browser, '/admin')
  assert.equal(status, 200)
  assert.equal(sql.length, 2, sql.join(' | '))
  assert.match(sql[0] ?? '', /^select .* from "sessions" .*join "users"/, 'the session and its role, together')
  assert.match(sql[1] ?? '', /^select count\(\*\) as "count" from "users"$/, "the page's own figure")
})

test('an anonymous visitor without a cookie costs no query at all, nor do assets and a cookie', async () => {
  const anonymous = testApp.browser()
  const home = await queriesOf(testApp, anonymous, '/')
  assert.equal(home.status, 200)
  assert.deepEqual(home.sql, [])
  const { browser } = await signUp(testApp)
  const stylesheet = await queriesOf(testApp, browser, '/assets/site.css')
  assert.equal(stylesheet.status, 200)
  assert.deepEqual(stylesheet.sql, [], 'an asset request never reads the session')
})

/** The stored id (a digest) of the session a browser's cookie names. */
function storedSessionId(browser: Browser): string {
  const value = decodeURIComponent(browser.sid ?? '')
  return hashSessionId(value.slice(0, value.lastIndexOf('.')))
}

async function counterExists(app: TestApp, key: string): Promise<boolean> {
  const row = await app.db.selectFrom('auth_counters').select('key').where('key', '=', key).executeTakeFirst()
  return row !== undefined
}

async function sessionRowExists(app: TestApp, id: string): Promise<boolean> {
  const row = await app.db.selectFrom('sessions').select('id').where('id', '=', id).executeTakeFirst()
  return row !== undefined
}

test('a log-in: five statements, the attempt counted where the user is read, the pre-session swapped for the new one and the count cleared in one, and the event', async () => {
  const user = await createTestUser(testApp)
  const email = user.email
  const browser = testApp.browser()
  await browser.get('/login')
  const preSession = storedSessionId(browser)
  assert.ok(await sessionRowExists(testApp, preSession), 'the log-in form made a pre-session')
  const before = testApp.queries.length
  const page = await browser.post('/login', { email, password: PASSWORD })
  const sql = testApp.queries.slice(before)
  assert.equal(page.status, 303)
  assert.equal(page.location, '/profile')
  assert.ok(!sql.some((statement) => /^delete from "auth_counters"/.test(statement)), sql.join(' | '))
  // The session read, the rate-limit count, the attempt counted with the user read, the new session,
  // written once with the log-in's keys, in the statement that deletes the pre-session and clears the count,
  // and the log-in's event, which reads in the same statement whether the browser is new to the account.
  assert.equal(sql.length, 5, sql.join(' | '))
  const eventIndex = sql.findIndex((statement) =>
    /^with "previous" as \(select exists \(select 1 from auth_events .*\) insert into "auth_events"/.test(statement),
  )
  assert.ok(eventIndex >= 0, `the log-in's event: ${sql.join(' | ')}`)
  assert.equal(testApp.queryCommits[before + eventIndex], 'async', 'the event does not wait for the disk')
  const sessionWrites = sql.filter((statement) => /"sessions"/.test(statement) && !/^select/.test(statement))
  assert.equal(sessionWrites.length, 1, sessionWrites.join(' | '))
  assert.match(
    sessionWrites[0] ?? '',
    /^with "replaced" as \(delete from "sessions" where "id" = \$1\), "cleared" as \(delete from "auth_counters" where "key" = \$2\) insert into "sessions"/,
  )
  assert.equal(await sessionRowExists(testApp, preSession), false, 'the pre-session is gone')
  assert.notEqual(storedSessionId(browser), preSession, 'a new session id')
  assert.ok(await sessionRowExists(testApp, storedSessionId(browser)), 'the new session is stored')
  const userReads = sql.filter((statement) => /from "users"|join "users"/.test(statement))
  assert.equal(userReads.length, 2, `the session read and the log-in's own read: ${userReads.join(' | ')}`)
  assert.match(
    userReads[1] ?? '',
    /insert into "auth_counters"/,
    'the attempt counted in the query that reads the user',
  )
  assert.equal(await counterExists(testApp, `login-user:${user.id}`), false, 'the attempt counter is cleared')
})

test('a log-in over a session that already has a user deletes that session at once', async () => {
  const { browser, email } = await signUp(testApp)
  const loggedIn = storedSessionId(browser)
  const form = await browser.get('/login')
  assert.equal(form.location, '/profile', 'the form itself sends a logged-in user on')
  // A log-in posted anyway (another tab's form) still replaces the session, and the old row never waits.
  const token = (await browser.get('/profile')).csrfToken
  const before = testApp.queries.length
  const page = await browser.post('/login', { email, password: PASSWORD, _csrf: token })
  const sql = testApp.queries.slice(before)
  assert.equal(page.status, 303)
  const sessionWrites = sql.filter((statement) => /"sessions"/.test(statement) && !/^select/.test(statement))
  assert.match(sessionWrites[0] ?? '', /^delete from "sessions"/, sessionWrites.join(' | '))
  assert.ok(!sessionWrites.some((statement) => statement.startsWith('with')), 'no delete waits for a later write')
  assert.equal(await sessionRowExists(testApp, loggedIn), false, 'the old session is gone')
})

test('a log-out deletes the session and writes the next one once, with its flash', async () => {
  const { browser } = await signUp(testApp)
  // The log-out form's token comes with the page.
  await browser.get('/profile')
  const before = testApp.queries.length
  const page = await browser.post('/logout', {})
  const sql = testApp.queries.slice(before)
  assert.equal(page.status, 303)
  const sessionWrites = sql.filter((statement) => /^(insert into|update|delete from) "sessions"/.test(statement))
  assert.equal(sessionWrites.length, 2, sessionWrites.join(' | '))
  assert.match(sessionWrites[0] ?? '', /^delete from "sessions"/, 'the session is deleted first')
  assert.match(sessionWrites[1] ?? '', /^insert into "sessions"/, 'then the next one, carrying the flash, once')
  const home = await browser.follow(page)
  assert.deepEqual(home.flashes, [{ type: 'success', message: 'You have been logged out.' }])
})
