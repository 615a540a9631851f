import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setUserRole } from '../src/users/repository.js'
import { createTestUser, logIn, type Page, startTestApp } from './helpers/app.js'

const testApp = await startTestApp()

const LOGIN_REQUIRED = { type: 'info', message: 'Please log in to continue.' }

function assertJsonError(page: Page, status: number): void {
  assert.equal(page.status, status)
  assert.match(page.headers.get('content-type') ?? '', /^application\/json/)
  const body = page.json() as { error?: unknown }
  assert.equal(typeof body.error, 'string', `body: ${page.html}`)
  assert.notEqual(body.error, '')
}

async function loggedInBrowser(role: 'user' | 'admin' = 'user') {
  const user = await createTestUser(testApp, { role })
  const { browser, response } = await logIn(testApp, user.email)
  assert.equal(response.location, '/profile', 'the log-in succeeded')
  return { browser, email: user.email }
}

test('an anonymous visit to /profile redirects to the log-in form with a flash shown once', async () => {
  const browser = testApp.browser()
  const redirect = await browser.get('/profile')
  assert.ok(redirect.status === 303 || redirect.status === 302, `status ${redirect.status}`)
  assert.equal(redirect.location, '/login?next=%2Fprofile')

  const form = await browser.get('/login?next=%2Fprofile')
  assert.equal(form.status, 200)
  assert.match(form.html, /<form method="post" action="\/login\?next=%2Fprofile">/)
  assert.deepEqual(form.flashes, [LOGIN_REQUIRED])

  const again = await browser.get('/login?next=%2Fprofile')
  assert.equal(again.status, 200)
  assert.deepEqual(again.flashes, [], 'the flash is gone once shown')
})

test('an anonymous visit to /admin redirects to /login?next=%2Fadmin', async () => {
  const redirect = await testApp.browser().get('/admin')
  assert.ok(redirect.status === 303 || redirect.status === 302, `status ${redirect.status}`)
  assert.equal(redirect.location, '/login?next=%2Fadmin')
})

test('a flash survives several redirects until a page renders', async () => {
  const browser = testApp.browser()
  assert.equal((await browser.get('/profile')).location, '/login?next=%2Fprofile')
  assert.equal((await browser.get('/admin')).location, '/login?next=%2Fadmin')

  const form = await browser.get('/login')
  assert.equal(form.status, 200)
  assert.ok(form.flashes.length >= 1, 'the flash is shown after two redirects')
  assert.ok(
    form.flashes.every((flash) => flash.type === LOGIN_REQUIRED.type && flash.message === LOGIN_REQUIRED.message),
    JSON.stringify(form.flashes),
  )

  const next = await browser.get('/login')
  assert.deepEqual(next.flashes, [], 'the flash is gone on the next page')
})

test('a logged-in user sees their profile but gets a 403 page at /admin', async () => {
  const { browser, email } = await loggedInBrowser('user')
  const profile = await browser.get('/profile')
  assert.equal(profile.status, 200)
  assert.ok(profile.html.includes(email), 'the profile shows the email')

  const admin = await browser.get('/admin')
  assert.equal(admin.status, 403)
  assert.match(admin.headers.get('content-type') ?? '', /^text\/html/)
  assert.equal(admin.location, null)
})

test('an admin sees /admin', async () => {
  const { browser } = await loggedInBrowser('admin')
  const admin = await browser.get('/admin')
  assert.equal(admin.status, 200)
  assert.match(admin.headers.get('content-type') ?? '', /^text\/html/)
})

test('anonymous JSON clients get 401 JSON from protected routes instead of a redirect', async () => {
  const browser = testApp.browser()
  for (const path of ['/profile', '/admin']) {
    assertJsonError(await browser.get(path, { accept: 'application/json' }), 401)
  }
})

test('a JSON client without the admin role gets 403 JSON from /admin', async () => {
  const { browser } = await loggedInBrowser('user')
  assertJsonError(await browser.get('/admin', { accept: 'application/json' }), 403)
})

test('the Accept header decides JSON or HTML by preference', async () => {
  const browser = testApp.browser()
  assertJsonError(await browser.get('/profile', { accept: 'application/json, text/html;q=0.5' }), 401)

  const html = await browser.get('/profile', { accept: 'text/html,application/json;q=0.9' })
  assert.ok(html.status === 303 || html.status === 302, `status ${html.status}`)
  assert.equal(html.location, '/login?next=%2Fprofile')
})

test('a role change takes effect on the next request without a new log-in', async () => {
  const { browser, email } = await loggedInBrowser('user')
  assert.equal((await browser.get('/admin')).status, 403)

  assert.ok(await setUserRole(testApp.db, email, 'admin'))
  assert.equal((await browser.get('/admin')).status, 200, 'promoted: /admin opens')

  assert.ok(await setUserRole(testApp.db, email, 'user'))
  assert.equal((await browser.get('/admin')).status, 403, 'demoted: /admin closes again')
})

test('a deleted user is logged out', async () => {
  const { browser, email } = await loggedInBrowser('user')
  assert.equal((await browser.get('/profile')).status, 200)

  await testApp.db.deleteFrom('users').where('email', '=', email).execute()
  const profile = await browser.get('/profile')
  assert.ok(profile.status === 303 || profile.status === 302, `status ${profile.status}`)
  assert.equal(profile.location, '/login?next=%2Fprofile')
})
