// The cost of a page view in database round trips: counted, not timed (speed issue, item 2). A logged-in
// user reading a page costs one query, the session read with its user, and no write.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createTestUser, logIn, PASSWORD, signUp, startTestApp, type TestApp } from './helpers/app.js'
import type { Browser } from './helpers/browser.js'

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

test('a log-in with no failed attempt before it: five statements, the user read with its failure count, the new session written once', async () => {
  const { email } = await createTestUser(testApp)
  const browser = testApp.browser()
  await browser.get('/login')
  const before = testApp.queries.length
  const page = await browser.post('/login', { email, password: PASSWORD })
  const sql = testApp.queries.slice(before)
  assert.equal(page.status, 303)
  assert.equal(page.location, '/profile')
  assert.ok(!sql.some((statement) => /^delete from "auth_counters"/.test(statement)), sql.join(' | '))
  // The session read, the rate-limit count, the user with the email's failure count, the old session's
  // delete, and the new session, written once with the log-in's keys.
  assert.equal(sql.length, 5, sql.join(' | '))
  const sessionWrites = sql.filter((statement) => /^(insert into|update|delete from) "sessions"/.test(statement))
  assert.equal(sessionWrites.length, 2, sessionWrites.join(' | '))
  assert.match(sessionWrites[0] ?? '', /^delete from "sessions"/, 'the pre-session is deleted first')
  assert.match(sessionWrites[1] ?? '', /^insert into "sessions"/, 'then the new session is written, once')
  const userReads = sql.filter((statement) => /from "users"|join "users"/.test(statement))
  assert.equal(userReads.length, 2, `the session read and the log-in's own read: ${userReads.join(' | ')}`)
  assert.match(userReads[1] ?? '', /join "auth_counters"/, 'the user and the failure count in one query')
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
