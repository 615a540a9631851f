import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Kysely } from 'kysely'
import type { Database } from '../src/db/schema.js'
import { Browser } from '../support/browser.js'
import { createTestUser, logIn, PASSWORD, signUp, startTestApp, type TestApp } from './helpers/app.js'

const HOUR_MS = 3_600_000
const DEFAULT_IDLE_MS = 168 * HOUR_MS
const TOLERANCE_MS = 5 * 60_000
const FORWARDED_HTTPS = { 'x-forwarded-proto': 'https' }

const testApp = await startTestApp()
const secureApp = await startTestApp({ COOKIE_SECURE: 'true', TRUST_PROXY: 'true' })

/** The session id inside the `sid` cookie (`<id>.<signature>`, URL-encoded), as the browser holds it. */
function sessionIdOf(browser: Browser): string {
  const cookie = browser.sid
  assert.ok(cookie, 'the browser holds a sid cookie')
  const value = decodeURIComponent(cookie)
  const dot = value.lastIndexOf('.')
  assert.ok(dot > 0, `the sid cookie is <id>.<signature>: ${value}`)
  return value.slice(0, dot)
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

function sessionRow(db: Kysely<Database>, browser: Browser) {
  return db
    .selectFrom('sessions')
    .selectAll()
    .where('id', '=', sha256(sessionIdOf(browser)))
    .executeTakeFirst()
}

async function loggedInBrowser(app: TestApp) {
  const user = await createTestUser(app)
  const { browser, response } = await logIn(app, user.email)
  assert.equal(response.location, '/profile', 'the log-in succeeded')
  return { user, browser }
}

function cookieAttributes(header: string | undefined): string[] {
  assert.ok(header, 'a sid cookie was set')
  return header
    .split(';')
    .slice(1)
    .map((attribute) => attribute.trim().toLowerCase())
}

function assertRedirectsToLogin(page: { status: number; location: string | null }): void {
  assert.ok(page.status === 303 || page.status === 302, `a redirect, not ${page.status}`)
  assert.equal(page.location, '/login?next=%2Fprofile')
}

function assertNear(actual: Date, expectedMs: number, message: string): void {
  const difference = Math.abs(actual.getTime() - expectedMs)
  assert.ok(difference <= TOLERANCE_MS, `${message}: off by ${Math.round(difference / 1000)} s`)
}

/** The sliding write happens once a minute: keep two requests that must share a minute away from its edge. */
async function awayFromMinuteEdge(): Promise<void> {
  const intoMinute = Date.now() % 60_000
  if (intoMinute > 50_000) await sleep(60_000 - intoMinute + 100)
}

test('the session cookie is sid, HttpOnly, SameSite=Lax, Path=/, and not Secure in test', async () => {
  const { response } = await signUp(testApp)
  const attributes = cookieAttributes(response.cookie('sid'))
  assert.ok(attributes.includes('httponly'), `HttpOnly in ${attributes}`)
  assert.ok(attributes.includes('samesite=lax'), `SameSite=Lax in ${attributes}`)
  assert.ok(attributes.includes('path=/'), `Path=/ in ${attributes}`)
  assert.ok(!attributes.includes('secure'), `no Secure in ${attributes}`)
})

test('with COOKIE_SECURE behind a trusted proxy the cookie is Secure and log-in works over forwarded HTTPS', async () => {
  const user = await createTestUser(secureApp)
  const browser = secureApp.browser()
  const form = await browser.get('/login', FORWARDED_HTTPS)
  assert.ok(cookieAttributes(form.cookie('sid')).includes('secure'), 'the form page cookie is Secure')
  const response = await browser.post('/login', { email: user.email, password: PASSWORD }, FORWARDED_HTTPS)
  assert.equal(response.location, '/profile')
  assert.ok(cookieAttributes(response.cookie('sid')).includes('secure'), 'the log-in cookie is Secure')
  const profile = await browser.get('/profile', FORWARDED_HTTPS)
  assert.equal(profile.status, 200)
  assert.ok(profile.html.includes(user.email))
})

test('with COOKIE_SECURE a plain HTTP request gets no cookie and the log says why', async () => {
  const page = await secureApp.browser().get('/login')
  assert.equal(page.status, 200)
  assert.equal(page.cookie('sid'), undefined, 'no sid cookie over plain HTTP')
  const warning = secureApp.logs.find(
    (line) => line.level === 40 && /plain HTTP/i.test(String(line.msg)) && /Secure/.test(String(line.msg)),
  )
  assert.ok(warning, 'a warning about Secure cookies over plain HTTP was logged')
  assert.ok(
    !secureApp.logs.some((line) => line.level === 40 && String(line.msg).includes('TRUST_PROXY is not set')),
    'no TRUST_PROXY warning when TRUST_PROXY is set',
  )
})

test('COOKIE_SECURE without TRUST_PROXY logs a warning naming TRUST_PROXY at start', async () => {
  const app = await startTestApp({ COOKIE_SECURE: 'true' })
  try {
    const warning = app.logs.find((line) => line.level === 40 && String(line.msg).includes('TRUST_PROXY'))
    assert.ok(warning, 'a warning naming TRUST_PROXY was logged at start')
  } finally {
    await app.close()
  }
})

test('the sessions table stores a SHA-256 of the session id, never the id itself', async () => {
  const { browser } = await loggedInBrowser(testApp)
  const id = sessionIdOf(browser)
  const rows = await testApp.db.selectFrom('sessions').select('id').where('id', '=', sha256(id)).execute()
  assert.equal(rows.length, 1, 'exactly one row has the hashed id')
  const raw = await testApp.db.selectFrom('sessions').select('id').where('id', '=', id).execute()
  assert.equal(raw.length, 0, 'no row has the raw id')
})

test('a logged-in session row names its user and expires SESSION_IDLE_HOURS from now', async () => {
  const { user, browser } = await loggedInBrowser(testApp)
  const row = await sessionRow(testApp.db, browser)
  assert.ok(row, 'the session row exists')
  assert.equal(row.user_id, user.id)
  assertNear(row.expires_at, Date.now() + DEFAULT_IDLE_MS, 'expires_at is now + 168 h')
})

test('a session row stores no cookie; a row that holds one still works and loses it at its next save', async () => {
  const { browser } = await loggedInBrowser(testApp)
  const row = await sessionRow(testApp.db, browser)
  assert.ok(row, 'the session row exists')
  assert.equal('cookie' in row.data, false, `no cookie in the stored data: ${JSON.stringify(row.data)}`)
  assert.equal(typeof row.data.passport, 'number', 'the log-in is stored')

  // As rows were written before: with the cookie, and a touch due so the next page view saves.
  const legacyCookie = { expires: new Date(Date.now() + HOUR_MS).toISOString(), originalMaxAge: DEFAULT_IDLE_MS }
  await testApp.db
    .updateTable('sessions')
    .set({ data: JSON.stringify({ ...row.data, cookie: legacyCookie, touchedAt: 0 }) })
    .where('id', '=', row.id)
    .execute()
  assert.equal((await browser.get('/profile')).status, 200, 'the row with a cookie still opens the profile')
  const saved = await sessionRow(testApp.db, browser)
  assert.ok(saved, 'the session row still exists')
  assert.equal('cookie' in saved.data, false, 'the save dropped the stored cookie')
  assert.ok(Number(saved.data.touchedAt) > 0, 'the save wrote the touch')
  assertNear(saved.expires_at, Date.now() + DEFAULT_IDLE_MS, 'expires_at slid to now + 168 h')
})

test('an expired session stops working at once', async () => {
  const { browser } = await loggedInBrowser(testApp)
  assert.equal((await browser.get('/profile')).status, 200)
  await testApp.db
    .updateTable('sessions')
    .set({ expires_at: new Date(Date.now() - 1000) })
    .where('id', '=', sha256(sessionIdOf(browser)))
    .execute()
  assertRedirectsToLogin(await browser.get('/profile'))
})

test('SESSION_MAX_DAYS ends a session that long after log-in, however busy it is', async () => {
  // 0.00001 days is 864 ms.
  const app = await startTestApp({ SESSION_MAX_DAYS: '0.00001' })
  try {
    const { browser } = await loggedInBrowser(app)
    const loggedInAt = Date.now()
    const row = await sessionRow(app.db, browser)
    assert.ok(row, 'the session row exists')
    assert.ok(
      row.expires_at.getTime() <= loggedInAt + 1000,
      `expires_at ${row.expires_at.toISOString()} is capped near the log-in`,
    )
    assert.equal((await browser.get('/profile')).status, 200, 'the session works at first')
    await sleep(loggedInAt + 1500 - Date.now())
    assertRedirectsToLogin(await browser.get('/profile'))
  } finally {
    await app.close()
  }
})

test('the idle expiry slides on use, written at most once a minute', async () => {
  const { browser } = await loggedInBrowser(testApp)
  const id = sha256(sessionIdOf(browser))
  const first = await sessionRow(testApp.db, browser)
  assert.ok(first, 'the session row exists')
  assertNear(first.expires_at, Date.now() + DEFAULT_IDLE_MS, 'expires_at after log-in')

  await awayFromMinuteEdge()
  const longAgo = Math.floor(Date.now() / 60_000) - 10
  await testApp.db
    .updateTable('sessions')
    .set({ data: JSON.stringify({ ...first.data, touchedAt: longAgo }), expires_at: new Date(Date.now() + HOUR_MS) })
    .where('id', '=', id)
    .execute()

  assert.equal((await browser.get('/profile')).status, 200)
  const slid = await sessionRow(testApp.db, browser)
  assert.ok(slid, 'the session row still exists')
  assertNear(slid.expires_at, Date.now() + DEFAULT_IDLE_MS, 'expires_at slid back to now + 168 h')

  assert.equal((await browser.get('/profile')).status, 200)
  const again = await sessionRow(testApp.db, browser)
  assert.ok(again, 'the session row still exists')
  assert.equal(again.expires_at.getTime(), slid.expires_at.getTime(), 'no second write within the minute')
})

test('the service removes expired rows by itself', async () => {
  const app = await startTestApp({ SESSION_PRUNE_SECONDS: '0.2' })
  try {
    const expired = await loggedInBrowser(app)
    const live = await loggedInBrowser(app)
    const expiredId = sha256(sessionIdOf(expired.browser))
    await app.db
      .updateTable('sessions')
      .set({ expires_at: new Date(Date.now() - 60_000) })
      .where('id', '=', expiredId)
      .execute()
    const anonymousId = sha256(randomBytes(24).toString('base64url'))
    await app.db
      .insertInto('sessions')
      .values({ id: anonymousId, user_id: null, data: '{}', expires_at: new Date(Date.now() - 1000) })
      .execute()

    const deadline = Date.now() + 5000
    const remaining = async () =>
      app.db.selectFrom('sessions').select('id').where('id', 'in', [expiredId, anonymousId]).execute()
    while ((await remaining()).length > 0 && Date.now() < deadline) await sleep(50)
    assert.deepEqual(await remaining(), [], 'the expired rows were removed within 5 s')
    assert.ok(await sessionRow(app.db, live.browser), 'a live session row is kept')
  } finally {
    await app.close()
  }
})

test('sessions live in the database and survive a restart', async () => {
  const app = await startTestApp()
  const { user, browser } = await loggedInBrowser(app)
  assert.equal((await browser.get('/profile')).status, 200)
  await app.close()
  const second = await app.restart()
  try {
    const returning = new Browser(second.url)
    returning.cookies.set('sid', browser.sid ?? '')
    const profile = await returning.get('/profile')
    assert.equal(profile.status, 200)
    assert.ok(profile.html.includes(user.email), 'the restarted app knows the user')
  } finally {
    await second.close()
  }
})

test('a second instance on the same database shares sessions (PostgreSQL) or refuses the data folder (PGlite)', async () => {
  const app = await startTestApp()
  const { user, browser } = await loggedInBrowser(app)
  if (app.database.face === 'postgres') {
    const second = await app.restart()
    try {
      const other = new Browser(second.url)
      other.cookies.set('sid', browser.sid ?? '')
      const profile = await other.get('/profile')
      assert.equal(profile.status, 200)
      assert.ok(profile.html.includes(user.email), 'the second instance knows the user')
      assert.equal((await browser.get('/profile')).status, 200, 'the first instance still serves the session')
    } finally {
      await second.close()
    }
  } else {
    let refusal: unknown
    try {
      // Should it start after all, close it so that the file can end.
      await (await app.restart()).close()
    } catch (error) {
      refusal = error
    }
    assert.match(String(refusal), /in use/, 'a second instance refuses the embedded data folder')
    assert.equal((await browser.get('/profile')).status, 200, 'the first instance keeps working')
  }
  await app.close()
})

test('a flash set before a redirect is stored before the redirect reaches the browser', async () => {
  const { browser } = await loggedInBrowser(testApp)
  await browser.get('/profile')
  const response = await browser.post('/logout', {})
  assert.equal(response.location, '/')
  // Read the row before any other request: the response alone must prove the store has finished.
  const row = await sessionRow(testApp.db, browser)
  assert.ok(row, 'the new session row exists when the redirect arrives')
  assert.equal(row.user_id, null)
  assert.deepEqual((row.data.flash as Record<string, unknown> | undefined)?.success, ['You have been logged out.'])
  const home = await browser.get('/')
  assert.deepEqual(home.flashes, [{ type: 'success', message: 'You have been logged out.' }])
})
