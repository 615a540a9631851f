import assert from 'node:assert/strict'
import { test } from 'node:test'
import { hashSessionId } from '../src/sessions/store.js'
import { createTestUser, logIn, PASSWORD, type Page, startTestApp, uniqueEmail } from './helpers/app.js'
import { assertRedirect } from './helpers/assertions.js'

const testApp = await startTestApp()

const INVALID_LOGIN = 'Invalid email or password.'

/** The sessions row behind a `sid` cookie value (`<id>.<signature>`; rows are keyed by sha256 of the id). */
function sessionRow(sid: string) {
  const id = decodeURIComponent(sid).replace(/\.[^.]*$/, '')
  return testApp.db.selectFrom('sessions').select('id').where('id', '=', hashSessionId(id)).executeTakeFirst()
}

function formAction(page: Page): string {
  const action = /<form method="post" action="([^"]*)">/.exec(page.html)?.[1]
  assert.ok(action !== undefined, 'the page has a form')
  return action.replaceAll('&amp;', '&')
}

test('an anonymous visitor gets the log-in form with a CSRF token', async () => {
  const page = await testApp.browser().get('/login')
  assert.equal(page.status, 200)
  assert.match(page.html, /<input type="hidden" name="_csrf" value="[^"]+">/)
  assert.ok(page.csrfToken.length > 0)
  assert.match(page.html, /<input[^>]*name="email"/)
  assert.match(page.html, /<input[^>]*name="password"[^>]*type="password"/)
})

test('a logged-in user asking for the log-in form is sent to their profile', async () => {
  const user = await createTestUser(testApp)
  const { browser } = await logIn(testApp, user.email)
  assertRedirect(await browser.get('/login'), '/profile')
})

test('log-in goes to the profile, which shows the email', async () => {
  const user = await createTestUser(testApp)
  const { browser, response } = await logIn(testApp, user.email)
  assertRedirect(response, '/profile')
  const profile = await browser.follow(response)
  assert.equal(profile.status, 200)
  assert.ok(profile.html.includes(`data-user-email>${user.email}<`), 'the profile shows the email')
})

test('log-in matches the email case-insensitively and ignores surrounding spaces', async () => {
  const user = await createTestUser(testApp, { email: uniqueEmail('mixed') })
  const { browser, response } = await logIn(testApp, `  ${user.email.toUpperCase()} `)
  assertRedirect(response, '/profile')
  const profile = await browser.follow(response)
  assert.ok(profile.html.includes(`data-user-email>${user.email}<`), 'the profile shows the stored email')
})

test('a wrong password and an unknown email get the same refusal, once, with the email kept', async () => {
  const user = await createTestUser(testApp)
  const password = 'wrong-password-never-shown-9931'
  for (const email of [user.email, uniqueEmail('nobody')]) {
    const { browser, response } = await logIn(testApp, email, password)
    assert.ok([302, 303].includes(response.status), `expected a redirect, got ${response.status}`)
    assert.ok(response.location?.startsWith('/login'), `went to ${response.location}`)
    const page = await browser.follow(response)
    assert.equal(page.status, 200)
    assert.deepEqual(page.flashes, [{ type: 'error', message: INVALID_LOGIN }])
    assert.equal(page.emailValue, email)
    assert.ok(!page.html.includes(password), 'the password is never shown again')
    assert.deepEqual((await browser.get('/login')).flashes, [], 'the flash is shown only once')
    assert.equal((await browser.get('/profile')).status, 303, 'the visitor is not logged in')
  }
})

test('log-in goes to a local `next` path, query included', async () => {
  const user = await createTestUser(testApp)
  const browser = testApp.browser()
  await browser.get('/login')
  const response = await browser.post('/login?next=%2Fadmin%3Fx%3D1', { email: user.email, password: PASSWORD })
  assertRedirect(response, '/admin?x=1')
})

// Raw query strings: each must be refused as a `next` target.
const unsafeNextQueries: Record<string, string> = {
  'a protocol-relative URL': `next=${encodeURIComponent('//evil.example')}`,
  'an absolute URL': `next=${encodeURIComponent('https://evil.example')}`,
  'a backslash after the slash': `next=${encodeURIComponent('/\\evil.example')}`,
  'an encoded backslash': 'next=/%5Cevil.example',
  'a scheme with one slash': `next=${encodeURIComponent('http:/evil.example')}`,
  'a javascript: URL': `next=${encodeURIComponent('javascript:alert(1)')}`,
  'a tab between the slashes': `next=${encodeURIComponent('/\t/evil.example')}`,
  'a leading space': `next=${encodeURIComponent(' //evil.example')}`,
  'two next values': `next=${encodeURIComponent('/admin')}&next=${encodeURIComponent('//evil.example')}`,
}

for (const [name, query] of Object.entries(unsafeNextQueries)) {
  test(`log-in ignores an unsafe next (${name}) and goes to the profile`, async () => {
    const user = await createTestUser(testApp)
    const browser = testApp.browser()
    await browser.get('/login')
    const response = await browser.post(`/login?${query}`, { email: user.email, password: PASSWORD })
    assert.ok([302, 303].includes(response.status), `expected a redirect, got ${response.status}`)
    const location = response.location ?? ''
    assert.ok(!location.includes('evil.example'), `went to ${location}`)
    assert.match(location, /^\/(?![/\\])/, `not a local path: ${location}`)
    assert.equal(location, '/profile')
  })
}

test('the log-in form carries a local `next` along, and submitting it lands there', async () => {
  const user = await createTestUser(testApp)
  for (const next of ['/profile', '/admin?x=1']) {
    const browser = testApp.browser()
    const form = await browser.get(`/login?next=${encodeURIComponent(next)}`)
    assert.equal(form.status, 200)
    const action = formAction(form)
    assert.equal(action, `/login?next=${encodeURIComponent(next)}`)
    assertRedirect(await browser.post(action, { email: user.email, password: PASSWORD }), next)
  }
})

test('the log-in form drops an unsafe `next`', async () => {
  const form = await testApp.browser().get(`/login?next=${encodeURIComponent('//evil.example')}`)
  assert.equal(form.status, 200)
  const action = formAction(form)
  assert.ok(!action.includes('evil'), action)
  assert.ok(!form.html.includes('evil.example'), 'the page does not carry the unsafe value anywhere')
})

test('log-in issues a new session id, and the one from before opens nothing', async () => {
  const user = await createTestUser(testApp)
  const browser = testApp.browser()
  await browser.get('/login')
  const before = browser.sid
  assert.ok(before, 'the log-in form gave the visitor a session cookie')
  assert.ok(await sessionRow(before), 'the pre-log-in session has a row')
  const response = await browser.post('/login', { email: user.email, password: PASSWORD })
  assertRedirect(response, '/profile')
  assert.ok(response.cookie('sid'), 'log-in sends a new sid cookie')
  assert.ok(browser.sid && browser.sid !== before, 'the session id changed')
  assert.equal((await browser.get('/profile')).status, 200)

  const replay = testApp.browser()
  replay.cookies.set('sid', before)
  assertRedirect(await replay.get('/profile'), '/login?next=%2Fprofile')

  assert.equal(await sessionRow(before), undefined, 'the pre-log-in session row is gone')
})

test('log-in rotates the CSRF secret: the log-out form needs the new token', async () => {
  const user = await createTestUser(testApp)
  const browser = testApp.browser()
  const loginForm = await browser.get('/login')
  const oldToken = loginForm.csrfToken
  const response = await browser.post('/login', { email: user.email, password: PASSWORD })
  assertRedirect(response, '/profile')

  const profile = await browser.follow(response)
  assert.equal(profile.status, 200)
  assert.match(profile.html, /<form method="post" action="\/logout">/)
  assert.notEqual(profile.csrfToken, oldToken)

  assert.equal((await browser.post('/logout', { _csrf: oldToken })).status, 403)
  assert.equal((await browser.get('/profile')).status, 200, 'still logged in after the refused log-out')
  assertRedirect(await browser.post('/logout', { _csrf: profile.csrfToken }), '/')
  assert.equal((await browser.get('/profile')).status, 303, 'logged out with the new token')
})
