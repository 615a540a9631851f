import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { sign, unsign } from '@fastify/cookie'
import { type Kysely, sql } from 'kysely'
import type { Database } from '../src/db/schema.js'
import type { Browser } from '../support/browser.js'
import {
  createTestUser,
  logIn,
  type Page,
  startTestApp,
  TEST_SECRET,
  type TestApp,
  uniqueEmail,
} from './helpers/app.js'

const MINUTE_MS = 60_000
const HOUR_MS = 60 * MINUTE_MS
const DEFAULT_IDLE_MS = 168 * HOUR_MS
const TOLERANCE_MS = MINUTE_MS
const OLD_SECRET = 'old-session-secret-that-is-at-least-32-characters'
const NEW_SECRET = 'new-session-secret-that-is-at-least-32-characters'

const testApp = await startTestApp()

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** The `sid` cookie as the browser holds it (URL-encoded `<id>.<signature>`). */
function sidOf(browser: Browser): string {
  const cookie = browser.sid
  assert.ok(cookie, 'the browser holds a sid cookie')
  return cookie
}

/** The session id inside a `sid` cookie value. */
function sessionIdIn(cookie: string): string {
  const value = decodeURIComponent(cookie)
  const dot = value.lastIndexOf('.')
  assert.ok(dot > 0, `the sid cookie is <id>.<signature>: ${value}`)
  return value.slice(0, dot)
}

/** The hash under which a browser's session is stored. */
function rowIdOf(browser: Browser): string {
  return sha256(sessionIdIn(sidOf(browser)))
}

/** A browser that holds nothing but the given `sid` cookie value, sent as it is. */
function browserWithSid(app: TestApp, cookie: string): Browser {
  const browser = app.browser()
  browser.cookies.set('sid', cookie)
  return browser
}

async function readRow(db: Kysely<Database>, rowId: string) {
  const row = await db
    .selectFrom('sessions')
    .select(['user_id', 'data', 'expires_at', sql<string>`xmin::text`.as('xmin')])
    .where('id', '=', rowId)
    .executeTakeFirst()
  assert.ok(row, 'the session row exists')
  return row
}

/** Sets data.touchedAt (epoch ms) in the row, keeping the rest of the data. */
async function setTouchedAt(db: Kysely<Database>, rowId: string, touchedAt: number): Promise<void> {
  await db
    .updateTable('sessions')
    .set({ data: sql<string>`jsonb_set(data, '{touchedAt}', to_jsonb(${touchedAt}::bigint))` })
    .where('id', '=', rowId)
    .execute()
}

async function loggedInBrowser(app: TestApp) {
  const user = await createTestUser(app)
  const { browser, response } = await logIn(app, user.email)
  assert.equal(response.location, '/profile', 'the log-in succeeded')
  return { user, browser }
}

function assertRedirectsToLogin(page: Page): void {
  assert.ok(page.status === 303 || page.status === 302, `a redirect, not ${page.status}`)
  assert.equal(page.location, '/login?next=%2Fprofile')
}

function assertNear(actual: Date, expectedMs: number, message: string): void {
  const difference = Math.abs(actual.getTime() - expectedMs)
  assert.ok(difference <= TOLERANCE_MS, `${message}: off by ${Math.round(difference / 1000)} s`)
}

test('a stored session hash does not work as a cookie, signed or not', async () => {
  const { user, browser } = await loggedInBrowser(testApp)
  const cookie = sidOf(browser)
  const sessionId = sessionIdIn(cookie)
  // The app's cookie is exactly what sign() makes with its default algorithm (sha256), so the forgeries
  // below are signed the way the app signs.
  assert.equal(decodeURIComponent(cookie), sign(sessionId, TEST_SECRET))
  const stored = await testApp.db
    .selectFrom('sessions')
    .select('id')
    .where('id', '=', sha256(sessionId))
    .executeTakeFirst()
  assert.ok(stored, 'the row is stored under the SHA-256 of the session id')
  assert.notEqual(stored.id, sessionId)

  for (const forged of [sign(stored.id, TEST_SECRET), stored.id]) {
    const thief = browserWithSid(testApp, encodeURIComponent(forged))
    assertRedirectsToLogin(await thief.get('/profile'))
  }

  const control = await browserWithSid(testApp, cookie).get('/profile')
  assert.equal(control.status, 200, 'the real cookie opens the profile')
  assert.ok(control.html.includes(user.email))
})

test('a cookie the app has just verified is still checked in full: any change to it is refused', async () => {
  const { user, browser } = await loggedInBrowser(testApp)
  const cookie = decodeURIComponent(sidOf(browser))
  // Used twice, so the signer has it among the cookies it remembers.
  for (let use = 0; use < 2; use++) {
    const page = await browserWithSid(testApp, encodeURIComponent(cookie)).get('/profile')
    assert.equal(page.status, 200)
    assert.ok(page.html.includes(user.email))
  }
  const dot = cookie.lastIndexOf('.')
  const flip = (text: string, at: number) => `${text.slice(0, at)}${text[at] === 'A' ? 'B' : 'A'}${text.slice(at + 1)}`
  const tampered = [
    flip(cookie, dot + 1), // the signature
    flip(cookie, 0), // the session id, old signature kept
    `${cookie}A`, // a signature one character longer
    cookie.slice(0, dot), // no signature at all
  ]
  for (const forged of tampered) {
    assertRedirectsToLogin(await browserWithSid(testApp, encodeURIComponent(forged)).get('/profile'))
  }
})

test('rotating SESSION_SECRET keeps old cookies working, re-signs them, and retiring the old secret ends them', async () => {
  const first = await startTestApp({ SESSION_SECRET: OLD_SECRET })
  const { user, browser } = await loggedInBrowser(first)
  assert.equal((await browser.get('/profile')).status, 200)
  const original = sidOf(browser)
  const sessionId = sessionIdIn(original)
  assert.equal(unsign(decodeURIComponent(original), OLD_SECRET).valid, true, 'signed with the old secret')
  await first.close()

  const rotated = await first.restart({ SESSION_SECRET: `${NEW_SECRET},${OLD_SECRET}` })
  let resigned: string
  try {
    // Make sure the next requests fall inside the once-a-minute touch window: only the rotation changes anything.
    await setTouchedAt(rotated.db, sha256(sessionId), Date.now())
    const visitor = browserWithSid(rotated, original)
    const home = await visitor.get('/')
    assert.equal(home.status, 200)
    assert.ok(home.html.includes(user.email), 'the first unmodified request is still logged in')
    const setCookie = home.cookie('sid')
    assert.ok(setCookie, 'the response sends the sid cookie again')
    resigned = sidOf(visitor)
    assert.notEqual(resigned, original, 'the cookie was re-signed, not cleared or kept')
    const unsigned = unsign(decodeURIComponent(resigned), NEW_SECRET)
    assert.equal(unsigned.valid, true, 'the new cookie verifies with the new secret alone')
    assert.equal(unsigned.value, sessionId, 'same session id inside')

    const profile = await visitor.get('/profile')
    assert.equal(profile.status, 200)
    assert.ok(profile.html.includes(user.email))
    assert.equal(profile.cookie('sid'), undefined, 'a re-signed cookie is not sent again')

    const other = await browserWithSid(rotated, original).get('/profile')
    assert.equal(other.status, 200, 'the old cookie still opens /profile while the old secret verifies')
  } finally {
    await rotated.close()
  }

  const retired = await first.restart({ SESSION_SECRET: NEW_SECRET })
  try {
    const profile = await browserWithSid(retired, resigned).get('/profile')
    assert.equal(profile.status, 200, 'the re-signed cookie works with the new secret alone')
    assert.ok(profile.html.includes(user.email))
    assertRedirectsToLogin(await browserWithSid(retired, original).get('/profile'))
  } finally {
    await retired.close()
  }
})

test('a session without a user lives at most an hour, and saving it again never extends it', async () => {
  const browser = testApp.browser()
  await browser.get('/login')
  const rowId = rowIdOf(browser)
  const created = await readRow(testApp.db, rowId)
  assert.equal(created.user_id, null)
  assert.ok(created.expires_at.getTime() > Date.now(), 'the session is live')
  assert.ok(
    created.expires_at.getTime() <= Date.now() + HOUR_MS + 5000,
    `expires_at ${created.expires_at.toISOString()} is within an hour`,
  )

  // Ten minutes have passed: the row's hour ends ten minutes sooner.
  const moved = new Date(created.expires_at.getTime() - 10 * MINUTE_MS)
  await testApp.db.updateTable('sessions').set({ expires_at: moved }).where('id', '=', rowId).execute()

  const failed = await browser.post('/login', { email: uniqueEmail(), password: 'not the password' })
  assert.equal(failed.location, '/login')
  const afterFailure = await readRow(testApp.db, rowId)
  assert.ok(afterFailure.data.flash, 'the failed log-in saved a flash in the same session')
  assert.ok(afterFailure.expires_at.getTime() <= moved.getTime(), 'the failed log-in did not extend expires_at')

  const form = await browser.get('/login')
  assert.equal(form.flashes[0]?.message, 'Invalid email or password.')
  const afterRender = await readRow(testApp.db, rowId)
  assert.ok(afterRender.expires_at.getTime() <= moved.getTime(), 'reading the flash did not extend expires_at')
})

test('SESSION_IDLE_HOURS sets how long a logged-in session lives unused', async () => {
  const app = await startTestApp({ SESSION_IDLE_HOURS: '2' })
  try {
    const { browser } = await loggedInBrowser(app)
    const row = await readRow(app.db, rowIdOf(browser))
    assertNear(row.expires_at, Date.now() + 2 * HOUR_MS, 'expires_at is now + 2 h')
  } finally {
    await app.close()
  }
})

test('reading pages while logged in writes nothing when nothing changed', async () => {
  const { browser } = await loggedInBrowser(testApp)
  assert.equal((await browser.get('/profile')).status, 200)
  const rowId = rowIdOf(browser)
  const { data } = await readRow(testApp.db, rowId)
  assert.equal(typeof data.touchedAt, 'number', 'the session records when it was last touched')
  // Keep the next requests well inside the once-a-minute touch window.
  if (Date.now() - Number(data.touchedAt) > 50_000) await setTouchedAt(testApp.db, rowId, Date.now())
  const before = await readRow(testApp.db, rowId)

  for (const path of ['/profile', '/', '/profile']) {
    const page = await browser.get(path)
    assert.equal(page.status, 200)
    assert.deepEqual(page.setCookies, [], `${path} sent no cookie`)
  }
  const after = await readRow(testApp.db, rowId)
  assert.equal(after.xmin, before.xmin, 'the row was not written')
  assert.deepEqual(after.data, before.data)
  assert.equal(after.expires_at.getTime(), before.expires_at.getTime())
})

test('the sliding expiry is written at most once a minute', async () => {
  const { browser } = await loggedInBrowser(testApp)
  assert.equal((await browser.get('/profile')).status, 200)
  const rowId = rowIdOf(browser)
  // A minute and a second since the last touch, and an expiry that has come closer meanwhile.
  await setTouchedAt(testApp.db, rowId, Date.now() - 61_000)
  await testApp.db
    .updateTable('sessions')
    .set({ expires_at: new Date(Date.now() + HOUR_MS) })
    .where('id', '=', rowId)
    .execute()
  const stale = await readRow(testApp.db, rowId)

  const touched = await browser.get('/profile')
  assert.equal(touched.status, 200)
  assert.ok(touched.cookie('sid'), 'the sliding write sends the cookie again')
  const slid = await readRow(testApp.db, rowId)
  assert.notEqual(slid.xmin, stale.xmin, 'the row was rewritten')
  assert.ok(slid.expires_at > stale.expires_at, 'expires_at moved later')
  assertNear(slid.expires_at, Date.now() + DEFAULT_IDLE_MS, 'expires_at is now + 168 h again')

  const again = await browser.get('/profile')
  assert.equal(again.status, 200)
  assert.deepEqual(again.setCookies, [], 'no cookie on the second request')
  const unchanged = await readRow(testApp.db, rowId)
  assert.equal(unchanged.xmin, slid.xmin, 'no second write within the minute')
  assert.equal(unchanged.expires_at.getTime(), slid.expires_at.getTime())
})

test('SESSION_MAX_DAYS ends a session counted from log-in, even one in constant use', async () => {
  // 0.00002 days is 1728 ms.
  const app = await startTestApp({ SESSION_MAX_DAYS: '0.00002' })
  const maxMs = 0.00002 * 86_400_000
  try {
    const before = Date.now()
    const { browser } = await loggedInBrowser(app)
    const rowId = rowIdOf(browser)
    const row = await readRow(app.db, rowId)
    const authAt = Number(row.data.authAt)
    assert.ok(authAt >= before && authAt <= Date.now(), 'authAt is the log-in time')
    const cap = authAt + maxMs
    assert.ok(Math.abs(row.expires_at.getTime() - cap) <= 1, `expires_at is log-in + ${maxMs} ms`)

    let servedBeforeCap = 0
    while (Date.now() < cap + 800) {
      // Every request is due a sliding write, which must not carry the session past the cap.
      await setTouchedAt(app.db, rowId, Date.now() - 61_000)
      const sentAt = Date.now()
      const page = await browser.get('/profile')
      const answeredAt = Date.now()
      if (answeredAt < cap - 50) {
        assert.equal(page.status, 200, 'the session works before the cap')
        const touched = await readRow(app.db, rowId)
        assert.ok(touched.expires_at.getTime() <= cap + 1, 'the sliding write kept the cap')
        servedBeforeCap += 1
      } else if (sentAt > cap + 50) {
        assertRedirectsToLogin(page)
        break
      }
      await sleep(500)
    }
    assert.ok(servedBeforeCap > 0, 'at least one request was served before the cap')
    if (Date.now() < cap + 800) await sleep(cap + 800 - Date.now())
    assertRedirectsToLogin(await browser.get('/profile'))
  } finally {
    await app.close()
  }
})
