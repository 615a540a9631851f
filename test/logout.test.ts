import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createTestUser, logIn, startTestApp } from './helpers/app.js'
import { assertRedirect } from './helpers/assertions.js'

const testApp = await startTestApp()

const LOGGED_OUT = 'You have been logged out.'

/** A user logged in through the form, with their profile open (so the log-out form's token is at hand). */
async function loggedIn() {
  const user = await createTestUser(testApp)
  const { browser, response } = await logIn(testApp, user.email)
  assertRedirect(response, '/profile')
  const profile = await browser.follow(response)
  assert.equal(profile.status, 200)
  return { user, browser, profile }
}

async function sessionsOf(userId: number): Promise<number> {
  const row = await testApp.db
    .selectFrom('sessions')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow()
  return Number(row.count)
}

test('log-out goes home, says so once, and the home page no longer names the user', async () => {
  const { user, browser, profile } = await loggedIn()
  const response = await browser.post('/logout', { _csrf: profile.csrfToken })
  assertRedirect(response, '/')

  const home = await browser.follow(response)
  assert.equal(home.status, 200)
  assert.deepEqual(home.flashes, [{ type: 'success', message: LOGGED_OUT }])
  assert.ok(!home.html.includes(user.email), 'the home page does not name the user')
  assert.match(home.html, /href="\/login"/)

  const again = await browser.get('/')
  assert.deepEqual(again.flashes, [], 'the flash is shown only once')
})

test("log-out deletes the user's session row", async () => {
  const { user, browser, profile } = await loggedIn()
  assert.ok((await sessionsOf(user.id)) >= 1, 'the logged-in session has a row')
  assertRedirect(await browser.post('/logout', { _csrf: profile.csrfToken }), '/')
  assert.equal(await sessionsOf(user.id), 0)
})

test('the cookie from before log-out is worthless afterwards', async () => {
  const { browser, profile } = await loggedIn()
  const oldSid = browser.sid
  assert.ok(oldSid)
  assertRedirect(await browser.post('/logout', { _csrf: profile.csrfToken }), '/')

  const replay = testApp.browser()
  replay.cookies.set('sid', oldSid)
  assertRedirect(await replay.get('/profile'), '/login?next=%2Fprofile')
})

test('log-out while anonymous just goes home', async () => {
  const browser = testApp.browser()
  assertRedirect(await browser.post('/logout', { _csrf: null }), '/')
  await browser.get('/login')
  assertRedirect(await browser.post('/logout', {}), '/')
})

test('log-out without a valid CSRF token is refused with 403 and the user stays logged in', async () => {
  const { browser, profile } = await loggedIn()
  for (const token of [null, 'not-the-token', `${profile.csrfToken}x`]) {
    const response = await browser.post('/logout', { _csrf: token })
    assert.equal(response.status, 403, `token ${token}`)
    assert.equal((await browser.get('/profile')).status, 200, 'still logged in')
  }
})

test("log-out in one browser leaves the same user's other session alone", async () => {
  const { user, browser, profile } = await loggedIn()
  const other = await logIn(testApp, user.email)
  assertRedirect(other.response, '/profile')
  assert.equal(await sessionsOf(user.id), 2)

  assertRedirect(await browser.post('/logout', { _csrf: profile.csrfToken }), '/')
  const otherProfile = await other.browser.get('/profile')
  assert.equal(otherProfile.status, 200)
  assert.ok(otherProfile.html.includes(`data-user-email>${user.email}<`))
  assert.equal(await sessionsOf(user.id), 1)
})
