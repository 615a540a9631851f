import assert from 'node:assert/strict'
import http, { type IncomingHttpHeaders } from 'node:http'
import { test } from 'node:test'
import { findUserByEmail } from '../src/users/repository.js'
import type { Browser } from '../support/browser.js'
import {
  countRows,
  createTestUser,
  logIn,
  PASSWORD,
  type Page,
  signUp,
  startTestApp,
  uniqueEmail,
} from './helpers/app.js'

// This file posts far more often than a person would: throttling is tested elsewhere, not tripped here.
const testApp = await startTestApp({ AUTH_RATE_LIMIT: '10000', LOGIN_MAX_FAILURES: '10000' })

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const FORMS = ['/signup', '/login'] as const
type FormPath = (typeof FORMS)[number]

/** Fails the test instead of waiting forever when the app never answers. */
function within<T>(work: Promise<T>, ms = 5000): Promise<T> {
  const signal = AbortSignal.timeout(ms)
  const timedOut = new Promise<never>((_, reject) => {
    signal.addEventListener('abort', () => reject(new Error(`no answer within ${ms} ms`)))
  })
  return Promise.race([work, timedOut])
}

/** A browser on the form's page, so its session holds a CSRF secret; and that page's token. */
async function onForm(path: FormPath): Promise<{ browser: Browser; token: string }> {
  const browser = testApp.browser()
  const page = await browser.get(path)
  assert.equal(page.status, 200)
  return { browser, token: page.csrfToken }
}

/** Posts a raw urlencoded body (with a valid `_csrf` in front) to a form. */
async function postRaw(path: FormPath, body: string, headers: Record<string, string> = FORM) {
  const { browser, token } = await onForm(path)
  const page = await within(
    browser.request('POST', path, { headers, body: `_csrf=${encodeURIComponent(token)}&${body}` }),
  )
  return { browser, page }
}

function assertNot5xx(page: Page, what: string): void {
  assert.ok(page.status < 500, `${what}: status ${page.status} ${page.html.slice(0, 300)}`)
}

/** A 4xx answer, or a redirect back to the form whose page shows an error flash. */
async function assertRefused(browser: Browser, page: Page, what: string): Promise<void> {
  assertNot5xx(page, what)
  if (page.status >= 400) return
  assert.ok(page.status === 303 || page.status === 302, `${what}: status ${page.status}`)
  assert.match(page.location ?? '', /^\/(signup|login)/, `${what}: redirected back to the form`)
  const form = await browser.follow(page)
  assert.ok(
    form.flashes.some((flash) => flash.type === 'error'),
    `${what}: an error flash, got ${JSON.stringify(form.flashes)}`,
  )
}

/** The redirect back to the form, and the error flash its page shows. */
async function refusalFlash(browser: Browser, page: Page, path: FormPath): Promise<string> {
  assert.ok(page.status === 303 || page.status === 302, `status ${page.status} ${page.html.slice(0, 300)}`)
  assert.equal(page.location, path)
  const form = await browser.follow(page)
  const errors = form.flashes.filter((flash) => flash.type === 'error')
  assert.equal(errors.length, 1, JSON.stringify(form.flashes))
  return errors[0]?.message ?? ''
}

test('repeated fields (arrays where strings belong) are refused and create no user', async () => {
  for (const path of FORMS) {
    const email = uniqueEmail('array')
    const other = uniqueEmail('array')
    const body = `email=${encodeURIComponent(email)}&email=${encodeURIComponent(other)}&password=${encodeURIComponent(PASSWORD)}`
    const { browser, page } = await postRaw(path, body)
    if (page.status >= 400) assert.equal(page.status, 400, `${path}: ${page.html}`)
    else await assertRefused(browser, page, path)
    assert.equal(await findUserByEmail(testApp.db, email), null)
    assert.equal(await findUserByEmail(testApp.db, other), null)
  }
})

test('objects where strings belong (a JSON body) are answered 4xx', async () => {
  for (const path of FORMS) {
    const { browser, token } = await onForm(path)
    const users = await countRows(testApp.db, 'users')
    const page = await within(
      browser.request('POST', path, {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: { $gt: '' }, password: 'x', _csrf: token }),
      }),
    )
    assert.ok(page.status >= 400 && page.status < 500, `${path}: status ${page.status} ${page.html}`)
    assert.equal(await countRows(testApp.db, 'users'), users)
    assert.equal((await browser.get('/profile')).location, '/login?next=%2Fprofile', 'nobody is logged in')
  }
})

test('bracketed form keys (email[a]=1) do not count as an email', async () => {
  for (const path of FORMS) {
    const { browser, page } = await postRaw(path, `email%5Ba%5D=1&password=${encodeURIComponent(PASSWORD)}`)
    await assertRefused(browser, page, path)
  }
})

test('bodies over the 16 KiB limit are answered 413', async () => {
  for (const size of [20 * 1024, 1024 * 1024, 1024 * 1024 + 1]) {
    for (const path of FORMS) {
      const { browser, token } = await onForm(path)
      const head = `_csrf=${encodeURIComponent(token)}&email=a%40example.com&password=`
      const body = head + 'x'.repeat(size - head.length)
      assert.equal(body.length, size)
      const page = await within(browser.request('POST', path, { headers: FORM, body }))
      assert.equal(page.status, 413, `${path}, ${size} bytes`)
    }
  }
})

test('broken percent-encoding in a form body is refused, not a server error', async () => {
  for (const path of FORMS) {
    const { browser, page } = await postRaw(path, 'email=%E0%A4%A&password=%ZZ%ZZ%ZZ%ZZ')
    await assertRefused(browser, page, path)
  }
})

test('broken percent-encoding in the query or the path gets a 4xx or a normal page', async () => {
  const browser = testApp.browser()
  for (const path of ['/login?next=%E0%A4%A', '/signup?x=%ZZ', '/%ZZ', '/profile%', '/login%', '/%E0%A4%A']) {
    const page = await within(browser.get(path))
    assertNot5xx(page, path)
  }
})

test('an email with a NUL byte is refused with a flash', async () => {
  for (const path of FORMS) {
    const { browser, page } = await postRaw(path, `email=a%00b%40example.com&password=${encodeURIComponent(PASSWORD)}`)
    const message = await refusalFlash(browser, page, path)
    assert.match(message, /valid email/i)
  }
})

test('a password with a NUL byte either works for sign-up and log-in alike or is clearly refused', async () => {
  const email = uniqueEmail('nul-password')
  const password = 'before\u0000after-the-nul'
  const { browser, response } = await signUp(testApp, email, password)
  assertNot5xx(response, 'sign-up')
  if (response.location === '/profile') {
    const { response: login } = await logIn(testApp, email, password)
    assert.equal(login.location, '/profile', 'the same password logs in')
    const { response: truncated } = await logIn(testApp, email, 'before')
    assert.equal(truncated.location, '/login', 'the password is not cut at the NUL')
  } else {
    await refusalFlash(browser, response, '/signup')
    assert.equal(await findUserByEmail(testApp.db, email), null)
  }
})

test('a next value with a NUL byte is not followed after log-in', async () => {
  const { email } = await createTestUser(testApp)
  const form = await testApp.browser().get('/login?next=%2F%00evil')
  assert.equal(form.status, 200)
  assert.doesNotMatch(form.html, /evil/)
  const { response } = await logIn(testApp, email, PASSWORD, '/\u0000evil')
  assert.equal(response.location, '/profile')
})

test('a 10 KiB email or password is refused quickly with a flash', async () => {
  const longEmail = `${'a'.repeat(10 * 1024 - '@example.com'.length)}@example.com`
  const longPassword = 'p'.repeat(10 * 1024)
  for (const path of FORMS) {
    for (const [what, email, password, expected] of [
      ['email', longEmail, PASSWORD, /at most 254/],
      ['password', uniqueEmail('long'), longPassword, /at most 256/],
    ] as const) {
      const body = `email=${encodeURIComponent(email)}&password=${encodeURIComponent(password)}`
      const started = performance.now()
      const { browser, page } = await postRaw(path, body)
      const elapsed = performance.now() - started
      const message = await refusalFlash(browser, page, path)
      assert.match(message, expected, `${path}, long ${what}`)
      assert.ok(elapsed < 1000, `${path}, long ${what}: answered in ${Math.round(elapsed)} ms`)
      assert.equal(await findUserByEmail(testApp.db, email), null)
    }
  }
})

test('a text/plain body on POST /login is a 4xx', async () => {
  const { page } = await postRaw('/login', `email=a%40example.com&password=${PASSWORD}`, {
    'content-type': 'text/plain',
  })
  assert.ok(page.status >= 400 && page.status < 500, `status ${page.status}`)
})

test('a garbled or forged session cookie still gets the page', async () => {
  const browser = testApp.browser()
  for (const cookie of ['sid=%%%; other=', 'sid=; =; ;;', 'sid="unterminated']) {
    const page = await within(browser.get('/', { cookie }))
    assert.equal(page.status, 200, cookie)
  }

  const { browser: loggedIn } = await signUp(testApp)
  const sid = loggedIn.sid
  assert.ok(sid)
  const dot = sid.lastIndexOf('.')
  const flipped = sid[dot + 1] === 'A' ? 'B' : 'A'
  const forged = `${sid.slice(0, dot + 1)}${flipped}${sid.slice(dot + 2)}`
  assert.notEqual(forged, sid)
  const home = await within(browser.get('/', { cookie: `sid=${forged}` }))
  assert.equal(home.status, 200)
  const profile = await within(browser.get('/profile', { cookie: `sid=${forged}` }))
  assert.equal(profile.location, '/login?next=%2Fprofile', 'a forged signature opens no session')
})

test('none of the bad input above made the app log an error', () => {
  const errors = testApp.logs.filter((line) => Number(line.level) >= 50)
  assert.deepEqual(errors, [], JSON.stringify(errors, null, 2))
})

/** GET `path` exactly as written: the URL classes would touch a bare `%`. */
function rawGet(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(testApp.url, { path, headers }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
      })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }))
      response.on('error', reject)
    })
    request.on('error', reject)
  })
}

test('a path the router cannot decode gets the 400 page in the layout, or 400 JSON, never echoing the path', async () => {
  const logged = testApp.logs.length
  for (const path of ['/%', '/%zz']) {
    const page = await within(rawGet(path))
    assert.equal(page.status, 400, `${path}: ${page.body}`)
    assert.match(String(page.headers['content-type']), /^text\/html/, path)
    assert.match(page.body, /<h1[^>]*>Bad request<\/h1>/, `${path}: ${page.body}`)
    assert.match(page.body, /class="site-header"/, `${path}: the page is in the site's layout`)
    assert.ok(!page.body.includes(path), `${path}: the path is not echoed: ${page.body}`)
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/, path)
    assert.equal(page.headers['x-content-type-options'], 'nosniff', path)
    assert.equal(page.headers['cache-control'], 'no-store', path)

    const json = await within(rawGet(path, { accept: 'application/json' }))
    assert.equal(json.status, 400, `${path} as JSON: ${json.body}`)
    assert.match(String(json.headers['content-type']), /^application\/json/, path)
    assert.deepEqual(JSON.parse(json.body), { error: 'That request could not be understood.' })
    assert.ok(!json.body.includes(path), `${path} as JSON: the path is not echoed`)
    assert.match(String(json.headers['content-security-policy']), /default-src 'self'/, path)
  }
  const errors = testApp.logs.slice(logged).filter((line) => Number(line.level) >= 50)
  assert.deepEqual(errors, [], JSON.stringify(errors, null, 2))
})
