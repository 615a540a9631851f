import assert from 'node:assert/strict'
import { test } from 'node:test'
import { findUserByEmail } from '../src/users/repository.js'
import type { Browser } from '../support/browser.js'
import { createTestUser, PASSWORD, type Page, signUp, startTestApp, uniqueEmail } from './helpers/app.js'

const testApp = await startTestApp()

const HIDDEN_CSRF = /<input type="hidden" name="_csrf" value="[^"]+">/

/** A browser that has read `path`, so its session holds a CSRF secret. */
async function browserOn(path: '/signup' | '/login'): Promise<Browser> {
  const browser = testApp.browser()
  assert.equal((await browser.get(path)).status, 200)
  return browser
}

/** The CSRF token of some other visitor's session. */
async function foreignToken(): Promise<string> {
  return (await testApp.browser().get('/login')).csrfToken
}

function assertForbiddenPage(page: Page): void {
  assert.equal(page.status, 403)
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
  assert.equal(page.location, null)
}

test('the sign-up and log-in forms carry a hidden _csrf input', async () => {
  for (const path of ['/signup', '/login']) {
    const page = await testApp.browser().get(path)
    assert.equal(page.status, 200)
    assert.match(page.html, HIDDEN_CSRF, `${path} has a _csrf input`)
  }
})

test('the log-out form of the logged-in layout carries a hidden _csrf input', async () => {
  const { browser } = await signUp(testApp)
  for (const path of ['/profile', '/']) {
    const page = await browser.get(path)
    assert.equal(page.status, 200)
    const logoutForm = /<form method="post" action="\/logout">[\s\S]*?<\/form>/.exec(page.html)?.[0]
    assert.ok(logoutForm, `${path} has a log-out form`)
    assert.match(logoutForm, HIDDEN_CSRF, `${path}'s log-out form has a _csrf input`)
  }
})

/** The ways a form post can lack a valid token: a fresh browser for each, and the `_csrf` it sends. */
const BAD_TOKENS: [string, (path: '/signup' | '/login') => Promise<Browser>, () => Promise<string | null>][] = [
  ['no token', browserOn, async () => null],
  ['a wrong token', browserOn, async () => 'wrong'],
  ["another browser's token", browserOn, foreignToken],
  ['no session cookie', async () => testApp.browser(), foreignToken],
]

test('a sign-up without a valid CSRF token is refused with 403 and creates no user', async () => {
  for (const [name, makeBrowser, token] of BAD_TOKENS) {
    const email = uniqueEmail('csrf-signup')
    const browser = await makeBrowser('/signup')
    const page = await browser.post('/signup', { _csrf: await token(), email, password: PASSWORD })
    assert.equal(page.status, 403, name)
    assert.equal(await findUserByEmail(testApp.db, email), null, `${name}: no user created`)
  }
})

test('a log-in with the right password but without a valid CSRF token is refused and logs nobody in', async () => {
  const { email } = await createTestUser(testApp)
  for (const [name, makeBrowser, token] of BAD_TOKENS) {
    const browser = await makeBrowser('/login')
    const page = await browser.post('/login', { _csrf: await token(), email, password: PASSWORD })
    assert.equal(page.status, 403, name)
    const profile = await browser.get('/profile')
    assert.equal(profile.location, '/login?next=%2Fprofile', `${name}: still anonymous`)
  }
})

test('the CSRF token is also accepted from the x-csrf-token header', async () => {
  const { email } = await createTestUser(testApp)
  const browser = await browserOn('/login')
  const token = browser.lastCsrfToken
  assert.ok(token)
  const page = await browser.post('/login', { _csrf: null, email, password: PASSWORD }, { 'x-csrf-token': token })
  assert.equal(page.location, '/profile')
  assert.equal((await browser.get('/profile')).status, 200)
})

test('every page carries a fresh token (a new salt each time): two pages of one session differ, each accepted', async () => {
  const { email } = await createTestUser(testApp)
  const browser = await browserOn('/login')
  const first = browser.lastCsrfToken
  await browser.get('/login')
  const second = browser.lastCsrfToken
  assert.ok(first && second)
  assert.notEqual(first, second, 'no two pages carry the same token (BREACH)')
  const wrong = await browser.post('/login', { _csrf: first, email, password: `${PASSWORD} but wrong` })
  assert.equal(wrong.location, '/login', 'the first page’s token is accepted: the password is what failed')
  const right = await browser.post('/login', { _csrf: second, email, password: PASSWORD })
  assert.equal(right.location, '/profile', 'the second page’s token is accepted too')
})

test('a token changed in one character is refused', async () => {
  const { email } = await createTestUser(testApp)
  const browser = await browserOn('/login')
  const token = browser.lastCsrfToken ?? assert.fail('no token')
  const last = token.at(-2) === 'A' ? 'B' : 'A'
  const changed = `${token.slice(0, -2)}${last}${token.slice(-1)}`
  const page = await browser.post('/login', { _csrf: changed, email, password: PASSWORD })
  assert.equal(page.status, 403)
  assert.equal((await browser.get('/profile')).location, '/login?next=%2Fprofile', 'still anonymous')
})

test('a CSRF refusal is an HTML page for a browser and JSON for a JSON client', async () => {
  const html = await (await browserOn('/login')).post('/login', { _csrf: 'wrong', email: uniqueEmail() })
  assertForbiddenPage(html)

  const json = await (await browserOn('/login')).post(
    '/login',
    { _csrf: 'wrong', email: uniqueEmail() },
    { accept: 'application/json' },
  )
  assert.equal(json.status, 403)
  assert.match(json.headers.get('content-type') ?? '', /^application\/json/)
  const body = json.json() as { error?: unknown }
  assert.equal(typeof body.error, 'string', `body: ${json.html}`)
  assert.notEqual(body.error, '')
})
