import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import type { Browser } from '../support/browser.js'
import {
  countRows,
  createTestUser,
  keyedEmailDigest,
  logIn,
  PASSWORD,
  type Page,
  startTestApp,
  type TestApp,
  uniqueEmail,
} from './helpers/app.js'
import { assertRedirect } from './helpers/assertions.js'

const THROTTLED = 'Too many attempts. Try again later.'
const INVALID_LOGIN = 'Invalid email or password.'
const EMAIL_TAKEN = 'That email is already taken.'
const WRONG_PASSWORD = 'wrong-password-4471'

const perEmail = { LOGIN_MAX_FAILURES: '3', LOGIN_LOCK_MINUTES: '15' }
// One app per configuration; the restart and instance tests close theirs, so each has its own.
const emailApp = await startTestApp(perEmail)
const restartApp = await startTestApp(perEmail)
const instancesApp = await startTestApp(perEmail)
const expiryApp = await startTestApp({ LOGIN_MAX_FAILURES: '2', LOGIN_LOCK_MINUTES: '0.02' })
const rateApp = await startTestApp({ AUTH_RATE_LIMIT: '5' })
const proxyApp = await startTestApp({ AUTH_RATE_LIMIT: '3', TRUST_PROXY: '127.0.0.1' })
const noProxyApp = await startTestApp({ AUTH_RATE_LIMIT: '3' })

/** The 429 answer: the form shown again in the same response, with the flash and the typed email. */
function assertThrottledForm(page: Page, action: '/login' | '/signup', typedEmail: string): void {
  assert.equal(page.status, 429)
  assert.match(page.html, new RegExp(`<form [^>]*action="${action}"`), `the ${action} form is shown`)
  assert.match(page.html, /<input [^>]*name="_csrf" value="[^"]+"/)
  assert.match(page.html, /<input[^>]*name="email"/)
  assert.deepEqual(page.flashes, [{ type: 'error', message: THROTTLED }])
  assert.equal(page.emailValue, typedEmail.trim(), 'the typed email is kept')
}

async function failLogIns(testApp: TestApp, email: string, times: number): Promise<void> {
  for (let attempt = 1; attempt <= times; attempt++) {
    const { response } = await logIn(testApp, email, WRONG_PASSWORD)
    assertRedirect(response, '/login')
  }
}

async function assertNotLoggedIn(browser: Browser): Promise<void> {
  assertRedirect(await browser.get('/profile'), '/login?next=%2Fprofile')
}

/** Each rate-limit test starts with a fresh budget for the loopback address (the window is a minute). */
async function resetRateBudgets(testApp: TestApp): Promise<void> {
  await testApp.db.deleteFrom('auth_counters').where('key', 'like', 'rate:%').execute()
}

/** A wrong-password log-in for a fresh unknown email, so no per-email lock can interfere. */
async function failLogInFrom(testApp: TestApp, headers: Record<string, string> = {}, email = uniqueEmail('nobody')) {
  const browser = testApp.browser()
  await browser.get('/login', headers)
  return browser.post('/login', { email, password: WRONG_PASSWORD }, headers)
}

// Per-email throttle

test('after too many failed log-ins an email is answered 429 with the log-in form, even with the right password', async () => {
  const user = await createTestUser(emailApp)
  await failLogIns(emailApp, user.email, 3)
  const { browser, response } = await logIn(emailApp, user.email, PASSWORD)
  assertThrottledForm(response, '/login', user.email)
  assert.deepEqual((await browser.get('/login')).flashes, [], 'the flash was shown once, in the 429 answer')
  await assertNotLoggedIn(browser)
})

test('a locked email does not keep other users out', async () => {
  const victim = await createTestUser(emailApp)
  const other = await createTestUser(emailApp)
  await failLogIns(emailApp, victim.email, 3)
  assert.equal((await logIn(emailApp, victim.email)).response.status, 429)
  const { browser, response } = await logIn(emailApp, other.email)
  assertRedirect(response, '/profile')
  assert.equal((await browser.get('/profile')).status, 200)
})

test('the failed log-in count is keyed on the normalized email', async () => {
  const user = await createTestUser(emailApp, { email: uniqueEmail('victim') })
  const [local, domain] = user.email.split('@') as [string, string]
  for (const variant of [
    `  ${user.email.toUpperCase()} `,
    ` ${local}@${domain.replace('example', 'Example')}`,
    user.email,
  ]) {
    const { response } = await logIn(emailApp, variant, WRONG_PASSWORD)
    assertRedirect(response, '/login')
  }
  const typed = ` ${user.email.toUpperCase()} `
  const { browser, response } = await logIn(emailApp, typed, PASSWORD)
  assertThrottledForm(response, '/login', typed)
  await assertNotLoggedIn(browser)
})

test('unknown emails are throttled exactly like registered ones', async () => {
  const unknown = uniqueEmail('nobody')
  await failLogIns(emailApp, unknown, 3)
  const { response } = await logIn(emailApp, unknown, PASSWORD)
  assertThrottledForm(response, '/login', unknown)

  const user = await createTestUser(emailApp)
  await failLogIns(emailApp, user.email, 3)
  const known = (await logIn(emailApp, user.email, PASSWORD)).response
  assert.equal(known.status, response.status)
  assert.deepEqual(known.flashes, response.flashes)
})

test('a successful log-in before the limit starts the failed log-in count again', async () => {
  const user = await createTestUser(emailApp)
  await failLogIns(emailApp, user.email, 2)
  assertRedirect((await logIn(emailApp, user.email)).response, '/profile')
  await failLogIns(emailApp, user.email, 2)
  const { browser, response } = await logIn(emailApp, user.email)
  assertRedirect(response, '/profile')
  assert.equal((await browser.get('/profile')).status, 200)
})

test('a throttled log-in is logged as login_throttled with the email hash, never the address', async () => {
  const user = await createTestUser(emailApp)
  await failLogIns(emailApp, user.email, 3)
  const typed = `  ${user.email.toUpperCase()}`
  assert.equal((await logIn(emailApp, typed)).response.status, 429)
  const emailHash = keyedEmailDigest(user.email)
  const lines = emailApp.logs.filter((line) => line.event === 'login_throttled' && line.emailHash === emailHash)
  assert.equal(lines.length, 1, 'one login_throttled line for this email hash')
  const text = JSON.stringify(lines[0]).toLowerCase()
  assert.ok(!text.includes(user.email), `the line carries no email address: ${text}`)
  assert.equal(lines[0]?.msg, 'auth: login_throttled')
})

test('parallel wrong passwords check at most LOGIN_MAX_FAILURES of them; the rest get 429 unhashed, and then the right one too', async () => {
  const user = await createTestUser(emailApp)
  const start = emailApp.logs.length
  const browsers = await Promise.all(
    Array.from({ length: 12 }, async () => {
      const browser = emailApp.browser()
      await browser.get('/login')
      return browser
    }),
  )
  const answers = await Promise.all(
    browsers.map((browser) => browser.post('/login', { email: user.email, password: WRONG_PASSWORD })),
  )
  const statuses = answers.map((answer) => answer.status).sort()
  const events = emailApp.logs.slice(start).map((line) => line.event)
  const checked = events.filter((event) => event === 'login_failed').length
  assert.equal(checked, 3, `exactly LOGIN_MAX_FAILURES passwords checked (statuses ${statuses.join(',')})`)
  assert.equal(statuses.filter((status) => status === 429).length, 9, `the rest refused: ${statuses.join(',')}`)
  assert.equal(events.filter((event) => event === 'login_throttled').length, 9)
  assert.equal((await logIn(emailApp, user.email, PASSWORD)).response.status, 429, 'the right password is refused too')
})

test('a locked account stays locked under every spelling of its email: case, fullwidth, circled, dotted capital I', async () => {
  const user = await createTestUser(emailApp, { email: uniqueEmail('alice') })
  await failLogIns(emailApp, user.email, 3)
  const [local = '', domain = ''] = user.email.split('@')
  const variants = {
    'upper case': user.email.toUpperCase(),
    fullwidth: `${local.replace('a', '\uFF41')}@${domain}`,
    circled: `${local.replace('a', '\u24D0')}@${domain}`,
    'dotted capital I': `${local.replace('i', '\u0130')}@${domain}`,
  }
  for (const [name, email] of Object.entries(variants)) {
    assert.notEqual(email, user.email, name)
    const { browser, response } = await logIn(emailApp, email, PASSWORD)
    assert.notEqual(response.location, '/profile', `${name} (${email}) must not log in`)
    assert.ok([429, 303].includes(response.status), `${name}: refused (${response.status})`)
    await assertNotLoggedIn(browser)
  }
  // The look-alikes fold into the same account, so they meet its lock.
  for (const name of ['upper case', 'fullwidth', 'circled'] as const) {
    assert.equal((await logIn(emailApp, variants[name], PASSWORD)).response.status, 429, name)
  }
})

test('log lines and counters carry a keyed digest of the email, not its plain SHA-256', async () => {
  const email = uniqueEmail('nobody')
  const start = emailApp.logs.length
  await failLogIns(emailApp, email, 1)
  const line = emailApp.logs.slice(start).find((entry) => entry.event === 'login_failed')
  assert.equal(line?.emailHash, keyedEmailDigest(email))
  assert.notEqual(line?.emailHash, createHash('sha256').update(email).digest('hex'))
  const keys = await emailApp.db
    .selectFrom('auth_counters')
    .select('key')
    .where('key', 'like', 'login-email:%')
    .execute()
  assert.ok(
    keys.some((row) => row.key === `login-email:${keyedEmailDigest(email)}`),
    'the unknown email is counted under its keyed digest',
  )
})

test('the per-email lock is kept in the database and holds across a restart', async () => {
  const user = await createTestUser(restartApp)
  await failLogIns(restartApp, user.email, 3)
  assert.equal((await logIn(restartApp, user.email)).response.status, 429)
  await restartApp.close()
  const again = await restartApp.restart()
  try {
    const { browser, response } = await logIn(again, user.email)
    assertThrottledForm(response, '/login', user.email)
    await assertNotLoggedIn(browser)
  } finally {
    await again.close()
  }
})

const face = instancesApp.database.face
test(
  face === 'postgres'
    ? 'two instances on one database share the failed log-in count of an email'
    : 'failed log-ins counted by one instance count for the next one on the same database (PGlite: one process per data folder, so one instance after the other)',
  async () => {
    const user = await createTestUser(instancesApp)
    await failLogIns(instancesApp, user.email, 2)
    // PGlite lets one process open the data folder at a time; PostgreSQL runs both at once.
    if (face === 'pglite') await instancesApp.close()
    const second = await instancesApp.restart()
    try {
      await failLogIns(second, user.email, 1)
      assertThrottledForm((await logIn(second, user.email)).response, '/login', user.email)
      if (face === 'postgres') {
        assertThrottledForm((await logIn(instancesApp, user.email)).response, '/login', user.email)
      }
    } finally {
      await second.close()
    }
  },
)

test('the per-email lock lifts when its window ends, and the right password then logs in', async () => {
  const user = await createTestUser(expiryApp)
  const started = performance.now()
  await failLogIns(expiryApp, user.email, 2)
  assert.equal((await logIn(expiryApp, user.email)).response.status, 429, 'locked at first')
  let attempt = await logIn(expiryApp, user.email)
  // The window is 0.02 minutes (1.2 s); polling is the only way to see it end.
  while (attempt.response.status === 429 && performance.now() - started < 5000) {
    await delay(100)
    attempt = await logIn(expiryApp, user.email)
  }
  const waited = performance.now() - started
  assertRedirect(attempt.response, '/profile')
  assert.ok(waited >= 1000, `the lock held for its window (lifted after ${Math.round(waited)} ms)`)
  assert.equal((await attempt.browser.get('/profile')).status, 200)
})

// Rate limit per client address

test('the auth forms share one POST budget per address: the next POST is 429 with its form shown again', async () => {
  await resetRateBudgets(rateApp)
  const taken = await createTestUser(rateApp)
  const loginBrowser = rateApp.browser()
  await loginBrowser.get('/login')
  const signupBrowser = rateApp.browser()
  await signupBrowser.get('/signup')
  for (const form of ['/login', '/signup', '/login', '/signup', '/login'] as const) {
    if (form === '/login') {
      const response = await loginBrowser.post('/login', { email: uniqueEmail('nobody'), password: WRONG_PASSWORD })
      assertRedirect(response, '/login')
      assert.deepEqual((await loginBrowser.follow(response)).flashes, [{ type: 'error', message: INVALID_LOGIN }])
    } else {
      const response = await signupBrowser.post('/signup', { email: taken.email, password: PASSWORD })
      assertRedirect(response, '/signup')
      assert.deepEqual((await signupBrowser.follow(response)).flashes, [{ type: 'error', message: EMAIL_TAKEN }])
    }
  }

  const typed = uniqueEmail('sixth')
  const login = await loginBrowser.post('/login', { email: typed, password: PASSWORD })
  assertThrottledForm(login, '/login', typed)
  const signup = await signupBrowser.post('/signup', { email: typed, password: PASSWORD })
  assertThrottledForm(signup, '/signup', typed)
  for (const page of [login, signup]) {
    const retryAfter = page.headers.get('retry-after')
    assert.match(retryAfter ?? '', /^\d+$/, `retry-after header: ${retryAfter}`)
    assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= 60, `retry-after ${retryAfter} is within the minute`)
  }
  const created = await rateApp.db.selectFrom('users').select('id').where('email', '=', typed).executeTakeFirst()
  assert.equal(created, undefined, 'the refused sign-up created no user')
})

test('POSTs without a valid CSRF token use up the budget too', async () => {
  await resetRateBudgets(rateApp)
  const browser = rateApp.browser()
  await browser.get('/login')
  for (const [path, token] of [
    ['/login', null],
    ['/signup', 'forged-token'],
    ['/login', 'forged-token'],
    ['/signup', null],
    ['/login', null],
  ] as const) {
    const forged = await browser.post(path, { email: uniqueEmail('forger'), password: PASSWORD, _csrf: token })
    assert.equal(forged.status, 403, `a forged POST to ${path} is refused`)
  }
  const typed = uniqueEmail('honest')
  assertThrottledForm(await browser.post('/login', { email: typed, password: PASSWORD }), '/login', typed)
})

test('GET pages are never rate limited', async () => {
  await resetRateBudgets(rateApp)
  for (let attempt = 1; attempt <= 5; attempt++) assertRedirect(await failLogInFrom(rateApp), '/login')
  assert.equal((await failLogInFrom(rateApp)).status, 429, 'the POST budget is spent')
  const browser = rateApp.browser()
  for (let round = 1; round <= 3; round++) {
    for (const path of ['/login', '/signup', '/']) {
      assert.equal((await browser.get(path)).status, 200, `GET ${path} after the limit`)
    }
  }
})

test('behind a trusted proxy each forwarded client address has its own budget', async () => {
  const first = { 'x-forwarded-for': '203.0.113.7' }
  const second = { 'x-forwarded-for': '203.0.113.8' }
  for (let attempt = 1; attempt <= 3; attempt++) assertRedirect(await failLogInFrom(proxyApp, first), '/login')
  const typed = uniqueEmail('fourth')
  assertThrottledForm(await failLogInFrom(proxyApp, first, typed), '/login', typed)
  for (let attempt = 1; attempt <= 3; attempt++) {
    assertRedirect(await failLogInFrom(proxyApp, second), '/login')
  }
  assert.equal((await failLogInFrom(proxyApp, second)).status, 429, 'the second address has a budget of its own size')
})

test('a flood of cookieless form GETs from one address stores a bounded number of sessions; other addresses still get theirs', async () => {
  await resetRateBudgets(proxyApp)
  const flooder = { 'x-forwarded-for': '198.51.100.7' }
  const before = await countRows(proxyApp.db, 'sessions')
  for (let request = 0; request < 60; request++) {
    const page = await proxyApp.browser().get(request % 2 === 0 ? '/login' : '/signup', flooder)
    assert.equal(page.status, 200, 'the form page is still served')
  }
  const stored = (await countRows(proxyApp.db, 'sessions')) - before
  // AUTH_RATE_LIMIT is 3 here: ten new sessions per allowed POST, 30 a minute.
  assert.equal(stored, 30, `new sessions stored for one address: ${stored}`)

  const other = proxyApp.browser()
  await other.get('/login', { 'x-forwarded-for': '198.51.100.8' })
  const user = await createTestUser(proxyApp)
  const response = await other.post(
    '/login',
    { email: user.email, password: PASSWORD },
    { 'x-forwarded-for': '198.51.100.8' },
  )
  assertRedirect(response, '/profile')
})

test('IPv6 clients share one budget per /64', async () => {
  await resetRateBudgets(proxyApp)
  const sameNetwork = ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::abcd']
  for (const address of sameNetwork) {
    assertRedirect(await failLogInFrom(proxyApp, { 'x-forwarded-for': address }), '/login')
  }
  const fourth = await failLogInFrom(proxyApp, { 'x-forwarded-for': '2001:db8:1:2::beef' })
  assert.equal(fourth.status, 429, 'a fourth address of the same /64 meets the spent budget')
  assertRedirect(await failLogInFrom(proxyApp, { 'x-forwarded-for': '2001:db8:1:3::1' }), '/login')
})

test('without a trusted proxy a forged x-forwarded-for does not buy a fresh budget', async () => {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const forged = { 'x-forwarded-for': `198.51.100.${attempt}` }
    assertRedirect(await failLogInFrom(noProxyApp, forged), '/login')
  }
  const typed = uniqueEmail('forger')
  const page = await failLogInFrom(noProxyApp, { 'x-forwarded-for': '198.51.100.4' }, typed)
  assertThrottledForm(page, '/login', typed)
})
