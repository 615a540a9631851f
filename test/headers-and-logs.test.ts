import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Browser } from '../support/browser.js'
import {
  createTestUser,
  keyedEmailDigest,
  logIn,
  PASSWORD,
  type Page,
  signUp,
  startTestApp,
  type TestApp,
  uniqueEmail,
} from './helpers/app.js'

const testApp = await startTestApp()

/** The Content-Security-Policy as directive name -> its values. */
function cspOf(page: Page): Map<string, string[]> {
  const header = page.headers.get('content-security-policy')
  assert.ok(header, 'a Content-Security-Policy header')
  const directives = header
    .split(';')
    .map((directive) => directive.trim())
    .filter((directive) => directive !== '')
    .map((directive): [string, string[]] => {
      const [name = '', ...values] = directive.split(/\s+/)
      return [name.toLowerCase(), values]
    })
  return new Map(directives)
}

function assertSecurityHeaders(page: Page, label: string): void {
  const csp = cspOf(page)
  const scriptSrc = csp.get('script-src') ?? []
  assert.ok(scriptSrc.includes("'self'"), `${label}: script-src 'self'`)
  assert.ok(!scriptSrc.includes("'unsafe-inline'"), `${label}: no 'unsafe-inline' in script-src`)
  assert.deepEqual(csp.get('default-src'), ["'self'"], `${label}: default-src 'self'`)
  assert.deepEqual(csp.get('frame-ancestors'), ["'none'"], `${label}: frame-ancestors 'none'`)
  assert.deepEqual(csp.get('form-action'), ["'self'"], `${label}: form-action 'self'`)
  assert.deepEqual(csp.get('object-src'), ["'none'"], `${label}: object-src 'none'`)
  assert.equal(page.headers.get('referrer-policy'), 'same-origin', `${label}: referrer-policy`)
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff', `${label}: x-content-type-options`)
  assert.match(page.headers.get('cache-control') ?? '', /\bno-store\b/, `${label}: cache-control no-store`)
}

/** Nothing the CSP would have to allow inline: no inline scripts or handlers, no inline styles. */
function assertNoInlineCode(page: Page, label: string): void {
  for (const [, attributes = '', body = ''] of page.html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
    assert.ok(/\bsrc=/i.test(attributes) && body.trim() === '', `${label}: an inline <script>`)
  }
  assert.doesNotMatch(page.html, /<[^>]+\son[a-z]+\s*=/i, `${label}: an inline event handler`)
  assert.doesNotMatch(page.html, /<[^>]+\sstyle\s*=/i, `${label}: a style= attribute`)
  assert.doesNotMatch(page.html, /<style\b/i, `${label}: a <style> block`)
}

async function loggedIn(app: TestApp, role: 'user' | 'admin' = 'user'): Promise<Browser> {
  const user = await createTestUser(app, { role })
  const { browser, response } = await logIn(app, user.email)
  assert.equal(response.location, '/profile', 'the log-in succeeded')
  return browser
}

test('every page carries a strict CSP, same-origin referrers, nosniff and no-store, and has no inline code', async () => {
  const anonymous = testApp.browser()
  const user = await loggedIn(testApp)
  const admin = await loggedIn(testApp, 'admin')
  const pages: [string, Browser, string, number][] = [
    ['/ (anonymous)', anonymous, '/', 200],
    ['/login', anonymous, '/login', 200],
    ['/signup', anonymous, '/signup', 200],
    ['404 page', anonymous, '/no-such-page', 404],
    ['/ (logged in)', user, '/', 200],
    ['/profile', user, '/profile', 200],
    ['403 page (/admin for a user)', user, '/admin', 403],
    ['/admin (admin)', admin, '/admin', 200],
  ]
  for (const [label, browser, path, status] of pages) {
    const page = await browser.get(path)
    assert.equal(page.status, status, label)
    assertSecurityHeaders(page, label)
    assertNoInlineCode(page, label)
  }

  const forged = await anonymous.post('/login', { email: uniqueEmail(), password: PASSWORD, _csrf: 'forged' })
  assert.equal(forged.status, 403)
  assertSecurityHeaders(forged, '403 page (CSRF)')
  assertNoInlineCode(forged, '403 page (CSRF)')
})

test('upgrade-insecure-requests is asked only when the app is served over HTTPS', async () => {
  for (const path of ['/', '/login']) {
    assert.ok(!cspOf(await testApp.browser().get(path)).has('upgrade-insecure-requests'), `plain HTTP ${path}`)
  }
  const secureApp = await startTestApp({ COOKIE_SECURE: 'true', TRUST_PROXY: 'true' })
  try {
    const page = await secureApp.browser().get('/login', { 'x-forwarded-proto': 'https' })
    assert.equal(page.status, 200)
    assert.ok(cspOf(page).has('upgrade-insecure-requests'), 'HTTPS app asks to upgrade')
    assertSecurityHeaders(page, 'HTTPS /login')
  } finally {
    await secureApp.close()
  }
})

/** Secrets that must appear in no log line; each is checked as it is and URL-decoded. */
function assertNotLogged(lines: Record<string, unknown>[], secrets: Record<string, string>): void {
  assert.ok(lines.length > 0, 'there are log lines to check')
  for (const line of lines) {
    const text = JSON.stringify(line)
    for (const [name, secret] of Object.entries(secrets)) {
      for (const form of new Set([secret, decodeURIComponent(secret)])) {
        assert.ok(!text.includes(form), `the ${name} appears in a log line: ${text}`)
      }
    }
  }
}

/** The session id inside a `sid` cookie value. */
function sessionIdIn(cookie: string | undefined): string {
  assert.ok(cookie, 'a sid cookie')
  const value = decodeURIComponent(cookie)
  return value.slice(0, value.lastIndexOf('.'))
}

test('the log of a failed and a successful log-in holds no password, session cookie, CSRF token or email', async () => {
  const user = await createTestUser(testApp)
  const wrongPassword = 'a wrong password that must stay out of logs'
  const start = testApp.logs.length
  const browser = testApp.browser()
  const form = await browser.get('/login')
  const anonymousSid = browser.sid ?? ''
  const failed = await browser.post('/login', { email: user.email, password: wrongPassword })
  assert.equal(failed.location, '/login')
  const again = await browser.get('/login')
  const success = await browser.post('/login', { email: user.email, password: PASSWORD })
  assert.equal(success.location, '/profile')
  const loggedInSid = browser.sid ?? ''
  assert.equal((await browser.get('/profile')).status, 200)

  assertNotLogged(testApp.logs.slice(start), {
    'wrong password': wrongPassword,
    password: PASSWORD,
    'anonymous sid cookie': anonymousSid,
    'anonymous session id': sessionIdIn(anonymousSid),
    'logged-in sid cookie': loggedInSid,
    'logged-in session id': sessionIdIn(loggedInSid),
    'first CSRF token': form.csrfToken,
    'second CSRF token': again.csrfToken,
    email: user.email,
  })
})

/** The lines logged since `start` for one auth event. */
function eventLines(start: number, event: string): Record<string, unknown>[] {
  return testApp.logs.slice(start).filter((line) => line.event === event)
}

test('each auth event is one log line naming the user by id or the email by its hash', async () => {
  let start = testApp.logs.length
  const { browser, email } = await signUp(testApp)
  const user = await testApp.db.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst()
  assert.ok(user, 'the user was created')
  const signup = eventLines(start, 'signup')
  assert.equal(signup.length, 1, 'one signup line')
  assert.equal(signup[0]?.userId, user.id)
  assert.equal(signup[0]?.msg, 'auth: signup')

  start = testApp.logs.length
  assert.equal((await browser.post('/logout', {})).location, '/')
  const logout = eventLines(start, 'logout')
  assert.equal(logout.length, 1, 'one logout line')
  assert.equal(logout[0]?.userId, user.id)
  assert.equal(logout[0]?.msg, 'auth: logout')

  start = testApp.logs.length
  const failed = await logIn(testApp, `  ${email.toUpperCase()}  `, 'not the right password')
  assert.equal(failed.response.location, '/login')
  const loginFailed = eventLines(start, 'login_failed')
  assert.equal(loginFailed.length, 1, 'one login_failed line')
  assert.equal(loginFailed[0]?.emailHash, keyedEmailDigest(email), 'the keyed digest of the normalized email')
  assert.ok(!('userId' in (loginFailed[0] ?? {})), 'a failed log-in names no user')
  assert.equal(loginFailed[0]?.msg, 'auth: login_failed')
  assert.equal(eventLines(start, 'login').length, 0, 'no login line for a failure')

  start = testApp.logs.length
  const success = await logIn(testApp, email)
  assert.equal(success.response.location, '/profile')
  const login = eventLines(start, 'login')
  assert.equal(login.length, 1, 'one login line')
  assert.equal(login[0]?.userId, user.id)
  assert.equal(login[0]?.msg, 'auth: login')
  assert.equal(eventLines(start, 'login_failed').length, 0, 'no login_failed line for a success')
})

test('authorization headers and cookies stay out of the log, even at trace level', async () => {
  const app = await startTestApp({ LOG_LEVEL: 'trace' })
  try {
    const user = await createTestUser(app)
    const auth = { authorization: 'Bearer secret-token-xyz' }
    const browser = app.browser()
    browser.cookies.set('remember', 'secret-cookie-xyz')
    const form = await browser.get('/login', auth)
    const failed = await browser.post('/login', { email: user.email, password: 'not the right password' }, auth)
    assert.equal(failed.location, '/login')
    assert.equal((await browser.post('/login', { email: user.email, password: PASSWORD }, auth)).location, '/profile')
    assert.equal((await browser.get('/profile', auth)).status, 200)
    assert.equal((await browser.get('/no-such-page', auth)).status, 404)
    const sid = browser.sid ?? ''
    assert.equal((await browser.post('/logout', {}, auth)).location, '/')

    assert.ok(
      app.logs.some((line) => line.msg === 'incoming request'),
      'requests are logged at this level',
    )
    assertNotLogged(app.logs, {
      'bearer token': 'secret-token-xyz',
      'other cookie': 'secret-cookie-xyz',
      'sid cookie': sid,
      'session id': sessionIdIn(sid),
      'CSRF token': form.csrfToken,
      password: PASSWORD,
      email: user.email,
    })
  } finally {
    await app.close()
  }
})
