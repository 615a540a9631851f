// /account (issue #25), through real HTTP and real SMTP (test/helpers/mailbox.ts): the page (the email, whether
// it is confirmed, three forms found by their fields); changing the password (a new session id here, every other
// session and pending link ended, a notice); changing the email (a link to the new address, a notice at once to
// the old, the change only when the link is opened, voided by a newer change or a password change, refused when
// taken); deleting the account (the user and all that hangs off it gone, one event left, the email free again);
// a wrong current password on each form (nothing changes, and it counts as a failed log-in: LOGIN_MAX_FAILURES);
// bad input, double submits, mail off, and the AUTH_RATE_LIMIT budget.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
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
import { assertRedirect, assertRedirectWithFlash } from './helpers/assertions.js'
import { pathOf, TestMailbox } from './helpers/mailbox.js'

const PUBLIC_URL = 'https://gatehouse.example'
const NEW_PASSWORD = 'a fresh account passphrase 4471'
const WRONG_PASSWORD = 'not the password at all 0000'

const LOGIN_REQUIRED = 'Please log in to continue.'
const PASSWORD_CHANGED = 'Your password has been changed.'
const WRONG_CURRENT = 'Your current password is incorrect.'
const CHANGE_REQUESTED = 'We have sent a link to your new address. Your email changes when you open it.'
const EMAIL_CHANGED = 'Your email address has been changed.'
const ACCOUNT_DELETED = 'Your account has been deleted.'
const EMAIL_TAKEN = 'That email is already taken.'
const INVALID_LINK = 'That link is invalid or has expired.'
const THROTTLED = 'Too many attempts. Try again later.'

const CHANGE_SUBJECT = /^Confirm the new email address of your gatehouse account$/
const CHANGE_NOTICE_SUBJECT = /^The email address of your gatehouse account is being changed$/
const PASSWORD_NOTICE_SUBJECT = /^Your gatehouse password has been changed$/
const RESET_SUBJECT = /^Reset your gatehouse password$/
const CONFIRMATION_SUBJECT = /^Confirm your email address for gatehouse$/
/** How long to wait before saying that a message did not come (the worker polls every 0.2 s). */
const QUIET_MS = 800

const mailbox = await TestMailbox.start()
const mailEnv = { SMTP_URL: mailbox.url, PUBLIC_URL, MAIL_POLL_SECONDS: '0.2' }
const testApp = await startTestApp(mailEnv)
/** Two wrong passwords within the window, and the third attempt (any password) is throttled. */
const lockApp = await startTestApp({ ...mailEnv, LOGIN_MAX_FAILURES: '2' })
/** Three auth-form POSTs a minute per client address. */
const rateApp = await startTestApp({ ...mailEnv, AUTH_RATE_LIMIT: '3' })
/** Production without SMTP_URL: mail is off. */
const mailOffApp = await startTestApp({ NODE_ENV: 'production', COOKIE_SECURE: 'false' })

type FormName = 'change-password' | 'change-email' | 'delete-account'

interface Form {
  action: string
  method: string
  /** Hidden inputs, `_csrf` among them. */
  hidden: Record<string, string>
  /** The names of the inputs a person fills in, in page order. */
  fields: string[]
  /** name -> type of those inputs. */
  types: Record<string, string>
}

function attribute(tag: string, name: string): string | undefined {
  const value = new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1]
  return value?.replaceAll('&amp;', '&').replaceAll('&#39;', "'").replaceAll('&quot;', '"')
}

/** The form carrying `data-form="NAME"`, or null. */
function formOf(page: Page, name: FormName): Form | null {
  const match = new RegExp(`<form\\b[^>]*data-form="${name}"[^>]*>([\\s\\S]*?)</form>`).exec(page.html)
  if (!match) return null
  const tag = match[0].slice(0, match[0].indexOf('>') + 1)
  const form: Form = {
    action: attribute(tag, 'action') ?? '',
    method: (attribute(tag, 'method') ?? 'get').toLowerCase(),
    hidden: {},
    fields: [],
    types: {},
  }
  for (const [input] of (match[1] ?? '').matchAll(/<input\b[^>]*>/g)) {
    const inputName = attribute(input, 'name')
    if (!inputName) continue
    const type = attribute(input, 'type') ?? 'text'
    if (type === 'hidden') form.hidden[inputName] = attribute(input, 'value') ?? ''
    else {
      form.fields.push(inputName)
      form.types[inputName] = type
    }
  }
  return form
}

/** The email the account page shows. */
function shownEmail(page: Page): string | undefined {
  return /<dd data-user-email>([^<]*)</.exec(page.html)?.[1]
}

function shownConfirmed(page: Page): string | undefined {
  return /data-email-confirmed="([^"]*)"/.exec(page.html)?.[1]
}

/** A confirmed user logged in through the form in a fresh browser, with /account open. */
async function loggedIn(app: TestApp = testApp) {
  const user = await createTestUser(app)
  const { browser, response } = await logIn(app, user.email)
  assertRedirect(response, '/profile')
  const account = await browser.get('/account')
  assert.equal(account.status, 200)
  return { user, browser, account }
}

/** Another browser logged in as `email`. */
async function otherBrowser(app: TestApp, email: string, password = PASSWORD): Promise<Browser> {
  const { browser, response } = await logIn(app, email, password)
  assertRedirect(response, '/profile')
  return browser
}

/** Opens /account (unless `page` is given), then submits the form by its action, hidden inputs included. */
async function submit(
  browser: Browser,
  name: FormName,
  values: Record<string, string | string[] | null>,
  page?: Page,
): Promise<Page> {
  const account = page ?? (await browser.get('/account'))
  assert.equal(account.status, 200, `/account answered ${account.status}`)
  const form = formOf(account, name)
  assert.ok(form, `the ${name} form is on the page`)
  assert.equal(form.method, 'post')
  return browser.post(form.action, { ...form.hidden, ...values })
}

async function logsIn(app: TestApp, email: string, password = PASSWORD): Promise<boolean> {
  const { response } = await logIn(app, email, password)
  assert.ok([302, 303].includes(response.status), `log-in answered ${response.status}`)
  return response.location === '/profile'
}

async function isLoggedIn(browser: Browser): Promise<boolean> {
  const profile = await browser.get('/profile')
  if (profile.status === 200) return true
  assertRedirect(profile, '/login?next=%2Fprofile')
  return false
}

async function userRow(app: TestApp, id: number) {
  return app.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

async function outbox(app: TestApp, recipient: string, kind?: string) {
  let query = app.db.selectFrom('mail_outbox').selectAll().where('recipient', '=', recipient)
  if (kind) query = query.where('kind', '=', kind as never)
  return query.execute()
}

async function tokensOf(app: TestApp, userId: number, purpose?: string) {
  let query = app.db.selectFrom('account_tokens').selectAll().where('user_id', '=', userId)
  if (purpose) query = query.where('purpose', '=', purpose as never)
  return query.execute()
}

/** The single link of the `index`-th email-change message to `address`, as a path. */
async function changeLink(address: string, index = 0): Promise<string> {
  const message = await mailbox.nth(address, CHANGE_SUBJECT, index)
  assert.equal(message.links.length, 1, 'exactly one link')
  const link = message.links[0] as string
  assert.ok(link.startsWith(`${PUBLIC_URL}/`), link)
  const path = pathOf(link)
  assert.match(path.split('/').at(-1) ?? '', /^[A-Za-z0-9_-]{22,}$/, 'a token of at least 128 bits')
  return path
}

/** Asks for a reset link for `email` (anonymously) and returns its path. */
async function resetLinkFor(app: TestApp, email: string, index = 0): Promise<string> {
  const browser = app.browser()
  await browser.get('/password/forgot')
  assertRedirect(await browser.post('/password/forgot', { email }), '/login')
  const message = await mailbox.nth(email, RESET_SUBJECT, index)
  return pathOf(message.links[0] as string)
}

async function assertResetLinkDead(app: TestApp, path: string): Promise<void> {
  const browser = app.browser()
  await assertRedirectWithFlash(browser, await browser.get(path), '/password/forgot', ['error', INVALID_LINK])
}

/** Opening the email-change link anonymously: refused with the link flash. */
async function assertChangeLinkDead(app: TestApp, path: string): Promise<void> {
  const browser = app.browser()
  await assertRedirectWithFlash(browser, await browser.get(path), '/login', ['error', INVALID_LINK])
}

/** Asks for an email change in `browser` and checks the answer; returns nothing (read the links from the mailbox). */
async function requestChange(browser: Browser, email: string, password = PASSWORD): Promise<void> {
  const answer = await submit(browser, 'change-email', { email, current_password: password })
  await assertRedirectWithFlash(browser, answer, '/account', ['info', CHANGE_REQUESTED])
}

async function resetRateBudget(app: TestApp): Promise<void> {
  await app.db.deleteFrom('auth_counters').where('key', 'like', 'rate:%').execute()
}

function noTokenLink(links: string[]): boolean {
  return links.every((link) => !/\/email\/change|\/password\/reset|\/email\/confirm/.test(link))
}

// The page

test('GET /account shows the email, whether it is confirmed, and the three forms by their fields', async () => {
  const { user, account } = await loggedIn()
  assert.equal(shownEmail(account), user.email)
  assert.equal(shownConfirmed(account), 'true', 'a CLI-made user counts as confirmed')
  const expected: Record<FormName, string[]> = {
    'change-password': ['current_password', 'password'],
    'change-email': ['email', 'current_password'],
    'delete-account': ['current_password'],
  }
  for (const [name, fields] of Object.entries(expected) as [FormName, string[]][]) {
    const form = formOf(account, name)
    assert.ok(form, `${name} is there`)
    assert.equal(form.method, 'post', name)
    assert.ok(form.action.startsWith('/'), `${name} posts to a local path (${form.action})`)
    assert.deepEqual([...form.fields].sort(), [...fields].sort(), name)
    assert.ok(form.hidden._csrf, `${name} carries _csrf`)
    assert.equal(form.types.current_password, 'password', `${name}: the current password is masked`)
  }
  assert.equal(formOf(account, 'change-password')?.types.password, 'password')
  assert.notEqual(formOf(account, 'change-email')?.action, formOf(account, 'change-password')?.action)

  // A user who signed up and did not open the link yet: not confirmed.
  const fresh = await signUp(testApp)
  const freshAccount = await fresh.browser.get('/account')
  assert.equal(freshAccount.status, 200)
  assert.equal(shownEmail(freshAccount), fresh.email)
  assert.equal(shownConfirmed(freshAccount), 'false')
})

test('GET /account anonymously redirects to log in, then comes back', async () => {
  const user = await createTestUser(testApp)
  const browser = testApp.browser()
  const answer = await browser.get('/account')
  const login = await assertRedirectWithFlash(browser, answer, '/login?next=%2Faccount', ['info', LOGIN_REQUIRED])
  assert.match(login.html, /name="password"/)
  const loggedInAnswer = await browser.post('/login?next=%2Faccount', { email: user.email, password: PASSWORD })
  assertRedirect(loggedInAnswer, '/account')
  assert.equal(shownEmail(await browser.follow(loggedInAnswer)), user.email)
})

// Changing the password

test('password change: new sid here, other sessions and pending links ended, a notice, the new password only', async () => {
  const { user, browser } = await loggedIn()
  const other = await otherBrowser(testApp, user.email)
  const resetPath = await resetLinkFor(testApp, user.email)
  const newAddress = uniqueEmail('pending')
  await requestChange(browser, newAddress)
  const changePath = await changeLink(newAddress)
  const oldSid = browser.sid
  assert.ok(oldSid)
  const oldHash = (await userRow(testApp, user.id))?.password_hash

  const answer = await submit(browser, 'change-password', { current_password: PASSWORD, password: NEW_PASSWORD })
  assert.ok(answer.cookie('sid'), 'the answer sets a new session cookie')
  assert.ok(browser.sid && browser.sid !== oldSid, 'the session id changed')
  const page = await assertRedirectWithFlash(browser, answer, '/account', ['success', PASSWORD_CHANGED])
  assert.equal(shownEmail(page), user.email, 'still logged in')
  assert.equal(await isLoggedIn(browser), true)

  const replay = testApp.browser()
  replay.cookies.set('sid', oldSid)
  assert.equal(await isLoggedIn(replay), false, 'the old sid opens nothing')
  assert.equal(await isLoggedIn(other), false, 'the other browser is logged out')
  const sessions = await testApp.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()
  assert.equal(sessions.length, 1, 'only this browser’s new session is left')

  assert.notEqual((await userRow(testApp, user.id))?.password_hash, oldHash)
  await assertResetLinkDead(testApp, resetPath)
  await assertChangeLinkDead(testApp, changePath)
  assert.equal((await userRow(testApp, user.id))?.email, user.email, 'the voided change changed nothing')
  assert.equal(await logsIn(testApp, newAddress, NEW_PASSWORD), false)

  const notice = await mailbox.nth(user.email, PASSWORD_NOTICE_SUBJECT)
  assert.ok(noTokenLink(notice.links), `the notice holds no link that acts: ${notice.links.join(' ')}`)
  assert.equal(await logsIn(testApp, user.email, NEW_PASSWORD), true, 'the new password works')
  assert.equal(await logsIn(testApp, user.email, PASSWORD), false, 'the old one does not')
})

test('a new password that breaks the rules is refused as on sign-up, and nothing changes', async () => {
  const { user, browser } = await loggedIn()
  const other = await otherBrowser(testApp, user.email)
  const oldSid = browser.sid
  for (const [password, message] of [
    ['short', 'Passwords are at least 8 characters.'],
    ['x'.repeat(257), 'Passwords are at most 256 characters.'],
  ] as const) {
    const answer = await submit(browser, 'change-password', { current_password: PASSWORD, password })
    await assertRedirectWithFlash(browser, answer, '/account', ['error', message])
  }
  assert.equal(browser.sid, oldSid)
  assert.equal(await isLoggedIn(other), true)
  assert.equal(await logsIn(testApp, user.email, PASSWORD), true)
})

// A wrong current password

test('a wrong current password changes nothing on any of the three forms', async () => {
  const { user, browser } = await loggedIn()
  const other = await otherBrowser(testApp, user.email)
  const hash = (await userRow(testApp, user.id))?.password_hash
  const newAddress = uniqueEmail('wrong')

  const password = await submit(browser, 'change-password', {
    current_password: WRONG_PASSWORD,
    password: NEW_PASSWORD,
  })
  await assertRedirectWithFlash(browser, password, '/account', ['error', WRONG_CURRENT])
  const email = await submit(browser, 'change-email', { email: newAddress, current_password: WRONG_PASSWORD })
  const shown = await assertRedirectWithFlash(browser, email, '/account', ['error', WRONG_CURRENT])
  assert.equal(shown.emailValue, newAddress, 'the typed email is kept')
  assert.ok(!shown.html.includes(WRONG_PASSWORD), 'never the password')
  const deleted = await submit(browser, 'delete-account', { current_password: WRONG_PASSWORD })
  await assertRedirectWithFlash(browser, deleted, '/account', ['error', WRONG_CURRENT])
  // An empty one is just as wrong.
  const empty = await submit(browser, 'delete-account', { current_password: '' })
  await assertRedirectWithFlash(browser, empty, '/account', ['error', WRONG_CURRENT])

  const row = await userRow(testApp, user.id)
  assert.ok(row, 'the account is still there')
  assert.equal(row.email, user.email)
  assert.equal(row.password_hash, hash)
  assert.equal(await isLoggedIn(browser), true)
  assert.equal(await isLoggedIn(other), true)
  assert.equal((await outbox(testApp, newAddress)).length, 0, 'nothing queued to the new address')
  assert.equal((await outbox(testApp, user.email, 'email_change_notice')).length, 0)
  assert.equal((await tokensOf(testApp, user.id, 'email_change')).length, 0)
  const failed = await testApp.db
    .selectFrom('auth_events')
    .select('type')
    .where('user_id', '=', user.id)
    .where('type', '=', 'login_failed')
    .execute()
  assert.equal(failed.length, 4, 'each counts as a failed log-in of the account')
  await delay(QUIET_MS)
  assert.deepEqual(mailbox.to(newAddress), [])
  assert.equal(await logsIn(testApp, user.email, PASSWORD), true)
})

for (const name of ['change-password', 'change-email', 'delete-account'] as const) {
  test(`a wrong current password on ${name} counts as a failed log-in: past LOGIN_MAX_FAILURES, 429 here and on /login`, async () => {
    const { user, browser } = await loggedIn(lockApp)
    const values = (currentPassword: string): Record<string, string> =>
      name === 'change-password'
        ? { current_password: currentPassword, password: NEW_PASSWORD }
        : name === 'change-email'
          ? { email: uniqueEmail('locked'), current_password: currentPassword }
          : { current_password: currentPassword }
    for (let attempt = 1; attempt <= 2; attempt++) {
      const answer = await submit(browser, name, values(WRONG_PASSWORD))
      await assertRedirectWithFlash(browser, answer, '/account', ['error', WRONG_CURRENT])
    }
    const hash = (await userRow(lockApp, user.id))?.password_hash
    // Past the limit even the right password is refused, with the account page itself.
    const last = values(PASSWORD)
    const throttled = await submit(browser, name, last)
    assert.equal(throttled.status, 429)
    assert.deepEqual(throttled.flashes, [{ type: 'error', message: THROTTLED }])
    assert.ok(formOf(throttled, 'change-password'), 'the 429 answer is the account page')
    assert.equal(shownEmail(throttled), user.email)
    const row = await userRow(lockApp, user.id)
    assert.ok(row, 'not deleted')
    assert.equal(row.password_hash, hash, 'not changed')
    assert.equal(row.email, user.email)
    if (last.email) assert.equal((await outbox(lockApp, last.email)).length, 0, 'nothing sent')

    const login = await logIn(lockApp, user.email, PASSWORD)
    assert.equal(login.response.status, 429, 'the log-in form is throttled for that email too')
    assert.deepEqual(login.response.flashes, [{ type: 'error', message: THROTTLED }])
    assert.equal(await isLoggedIn(browser), true, 'this session goes on')
    // Another email is not affected.
    assert.equal(await logsIn(lockApp, (await createTestUser(lockApp)).email), true)
  })
}

// Changing the email

test('email change: link to the new address, notice at once to the old, the change only when the link is opened', async () => {
  const { user, browser } = await loggedIn()
  const newAddress = uniqueEmail('new')
  await requestChange(browser, newAddress)

  const path = await changeLink(newAddress)
  const notice = await mailbox.nth(user.email, CHANGE_NOTICE_SUBJECT)
  assert.ok(noTokenLink(notice.links), `the notice holds no link that acts: ${notice.links.join(' ')}`)
  assert.ok(!notice.text.includes(path.split('/').at(-1) as string), 'nor the token')
  assert.equal(mailbox.matching(newAddress, CHANGE_NOTICE_SUBJECT).length, 0, 'the notice goes to the old address')
  assert.equal(mailbox.matching(user.email, CHANGE_SUBJECT).length, 0, 'the link goes to the new address')

  // Not yet changed.
  assert.equal(shownEmail(await browser.get('/account')), user.email)
  assert.equal((await userRow(testApp, user.id))?.email, user.email)
  assert.equal(await logsIn(testApp, newAddress), false)
  assert.equal(await logsIn(testApp, user.email), true)
  // A reset link sent to the old address before the change stops working with it.
  const resetPath = await resetLinkFor(testApp, user.email)

  // Opened in the logged-in browser: back to /account.
  const opened = await browser.get(path)
  const account = await assertRedirectWithFlash(browser, opened, '/account', ['success', EMAIL_CHANGED])
  assert.equal(shownEmail(account), newAddress)
  assert.equal(shownConfirmed(account), 'true')
  const row = await userRow(testApp, user.id)
  assert.equal(row?.email, newAddress)
  assert.ok(row?.email_confirmed_at, 'the new address counts as confirmed')

  assert.equal(await logsIn(testApp, newAddress), true, 'the new address logs in')
  assert.equal(await logsIn(testApp, user.email), false, 'the old one no longer does')
  await assertResetLinkDead(testApp, resetPath)
  // Once only.
  await assertRedirectWithFlash(browser, await browser.get(path), '/account', ['error', INVALID_LINK])
  assert.equal(mailbox.matching(newAddress, CHANGE_SUBJECT).length, 1)
  const token = path.split('/').at(-1) as string
  assert.ok(!JSON.stringify(testApp.logs).includes(token), 'no log line holds the token')
})

test('email change opened anonymously: to /login; an unconfirmed account ends up confirmed at the new address', async () => {
  const { browser, email } = await signUp(testApp)
  const confirmation = await mailbox.nth(email, CONFIRMATION_SUBJECT)
  const newAddress = uniqueEmail('Anon.Case')
  await requestChange(browser, newAddress)
  const path = await changeLink(newAddress)
  await mailbox.nth(email, CHANGE_NOTICE_SUBJECT)

  const stranger = testApp.browser()
  await assertRedirectWithFlash(stranger, await stranger.get(path), '/login', ['success', EMAIL_CHANGED])
  const account = await browser.get('/account')
  assert.equal(shownEmail(account), newAddress, 'the session sees the new address at once')
  assert.equal(shownConfirmed(account), 'true')
  assert.equal(await logsIn(testApp, newAddress.toLowerCase()), true, 'compared case-insensitively')
  assert.equal(await logsIn(testApp, email), false)
  // The old address's confirmation link no longer confirms anything.
  const late = testApp.browser()
  const lateAnswer = await late.get(pathOf(confirmation.links[0] as string))
  assert.ok([302, 303].includes(lateAnswer.status))
  assert.deepEqual((await late.follow(lateAnswer)).flashes, [{ type: 'error', message: INVALID_LINK }])
})

test('a taken email is refused at once with the sign-up flash, and nothing is sent', async () => {
  const { user, browser } = await loggedIn()
  const taken = await createTestUser(testApp)
  for (const email of [taken.email, taken.email.toUpperCase(), `  ${taken.email}  `]) {
    const answer = await submit(browser, 'change-email', { email, current_password: PASSWORD })
    await assertRedirectWithFlash(browser, answer, '/account', ['error', EMAIL_TAKEN])
  }
  assert.equal((await outbox(testApp, taken.email)).length, 0)
  assert.equal((await outbox(testApp, user.email, 'email_change_notice')).length, 0)
  assert.equal((await tokensOf(testApp, user.id, 'email_change')).length, 0)
  await delay(QUIET_MS)
  assert.equal(mailbox.matching(taken.email, CHANGE_SUBJECT).length, 0)
  assert.equal(mailbox.matching(user.email, CHANGE_NOTICE_SUBJECT).length, 0)
  assert.equal((await userRow(testApp, user.id))?.email, user.email)
})

test('the same address, in any case, is refused with an error flash, and nothing is sent', async () => {
  const { user, browser } = await loggedIn()
  for (const email of [user.email, user.email.toUpperCase(), ` ${user.email} `]) {
    const answer = await submit(browser, 'change-email', { email, current_password: PASSWORD })
    assertRedirect(answer, '/account')
    const shown = await browser.follow(answer)
    assert.equal(shown.flashes.length, 1)
    assert.equal(shown.flashes[0]?.type, 'error')
    assert.notEqual(shown.flashes[0]?.message, CHANGE_REQUESTED)
  }
  assert.equal((await outbox(testApp, user.email)).filter((row) => row.kind.startsWith('email_change')).length, 0)
  assert.equal((await tokensOf(testApp, user.id, 'email_change')).length, 0)
  await delay(QUIET_MS)
  assert.equal(mailbox.matching(user.email, CHANGE_SUBJECT).length, 0)
  assert.equal(mailbox.matching(user.email, CHANGE_NOTICE_SUBJECT).length, 0)
})

test('a newer email change voids the older link', async () => {
  const { user, browser } = await loggedIn()
  const first = uniqueEmail('first')
  const second = uniqueEmail('second')
  await requestChange(browser, first)
  const firstPath = await changeLink(first)
  await requestChange(browser, second)
  const secondPath = await changeLink(second)
  await mailbox.nth(user.email, CHANGE_NOTICE_SUBJECT, 1)

  await assertChangeLinkDead(testApp, firstPath)
  assert.equal((await userRow(testApp, user.id))?.email, user.email)
  const stranger = testApp.browser()
  await assertRedirectWithFlash(stranger, await stranger.get(secondPath), '/login', ['success', EMAIL_CHANGED])
  assert.equal((await userRow(testApp, user.id))?.email, second)
  await assertChangeLinkDead(testApp, firstPath)
  assert.equal(await logsIn(testApp, first), false)
})

test('at most 3 email-change links to one address per hour; further asks get the same answer and send nothing', async () => {
  const { user, browser } = await loggedIn()
  const target = uniqueEmail('limit')
  for (let ask = 1; ask <= 4; ask++) await requestChange(browser, target)
  await mailbox.nth(target, CHANGE_SUBJECT, 2)
  await mailbox.nth(user.email, CHANGE_NOTICE_SUBJECT, 2)
  await delay(QUIET_MS)
  assert.equal(mailbox.matching(target, CHANGE_SUBJECT).length, 3)
  assert.equal((await outbox(testApp, target, 'email_change')).length, 3)
  assert.equal(mailbox.matching(user.email, CHANGE_NOTICE_SUBJECT).length, 3, 'no notice for an ask that sent nothing')
  // The limit is the address's, whoever asks.
  const { browser: otherUser } = await loggedIn()
  await requestChange(otherUser, target.toUpperCase())
  await delay(QUIET_MS)
  assert.equal((await outbox(testApp, target, 'email_change')).length, 3)
  // The third link is the live one: the refused asks did not replace it.
  for (const index of [0, 1]) await assertChangeLinkDead(testApp, await changeLink(target, index))
  const stranger = testApp.browser()
  const third = await stranger.get(await changeLink(target, 2))
  await assertRedirectWithFlash(stranger, third, '/login', ['success', EMAIL_CHANGED])
  assert.equal((await userRow(testApp, user.id))?.email, target)
})

test('two accounts asking for the same new address: the first link opened wins, the other changes nothing', async () => {
  const first = await loggedIn()
  const second = await loggedIn()
  const wanted = uniqueEmail('contested')
  await requestChange(first.browser, wanted)
  const firstPath = await changeLink(wanted, 0)
  await requestChange(second.browser, wanted)
  const secondPath = await changeLink(wanted, 1)
  await assertRedirectWithFlash(second.browser, await second.browser.get(secondPath), '/account', [
    'success',
    EMAIL_CHANGED,
  ])
  await assertRedirectWithFlash(first.browser, await first.browser.get(firstPath), '/account', ['error', INVALID_LINK])
  assert.equal((await userRow(testApp, first.user.id))?.email, first.user.email)
  assert.equal((await userRow(testApp, second.user.id))?.email, wanted)
  // Now taken: asking for it again is refused at once.
  const again = await submit(first.browser, 'change-email', { email: wanted, current_password: PASSWORD })
  await assertRedirectWithFlash(first.browser, again, '/account', ['error', EMAIL_TAKEN])
})

test('a link opened after its address was taken meanwhile changes nothing', async () => {
  const { user, browser } = await loggedIn()
  const wanted = uniqueEmail('wanted')
  await requestChange(browser, wanted)
  const path = await changeLink(wanted)
  // Someone else signs up with it first (nobody had it yet, so that is allowed).
  const rival = await signUp(testApp, wanted)
  assertRedirect(rival.response, '/profile')

  await assertRedirectWithFlash(browser, await browser.get(path), '/account', ['error', INVALID_LINK])
  assert.equal((await userRow(testApp, user.id))?.email, user.email)
  assert.equal(shownEmail(await rival.browser.get('/account')), wanted, 'the rival keeps it')
  assert.equal(await logsIn(testApp, user.email), true)
  await assertChangeLinkDead(testApp, path)
})

test('malformed emails are refused with the flash sign-up gives, nothing sent', async () => {
  const { user, browser } = await loggedIn()
  const malformed = [
    '',
    '   ',
    'not-an-email',
    'a@b',
    'two@@example.com',
    'a b@example.com',
    `${'x'.repeat(250)}@example.com`,
  ]
  for (const email of malformed) {
    const signup = testApp.browser()
    await signup.get('/signup')
    const refused = await signup.follow(await signup.post('/signup', { email, password: PASSWORD }))
    const expected = refused.flashes
    assert.equal(expected.length, 1, `sign-up refuses ${JSON.stringify(email)}`)
    assert.equal(expected[0]?.type, 'error')

    const answer = await submit(browser, 'change-email', { email, current_password: PASSWORD })
    assertRedirect(answer, '/account')
    assert.deepEqual((await browser.follow(answer)).flashes, expected, JSON.stringify(email))
  }
  assert.equal((await outbox(testApp, user.email, 'email_change_notice')).length, 0)
  assert.equal((await tokensOf(testApp, user.id, 'email_change')).length, 0)
})

test('email-change links that do not work redirect with the link flash, never a 5xx', async () => {
  const { browser } = await loggedIn()
  for (const token of ['x', randomBytes(32).toString('base64url'), 'a'.repeat(2000), '%E0%A4%A', '..%2F..%2Fetc']) {
    const answer = await browser.get(`/email/change/${token}`)
    assert.ok(answer.status < 500, `${token.slice(0, 20)}: ${answer.status}`)
    if (answer.status === 303 || answer.status === 302) {
      assert.equal(answer.location, '/account')
      assert.deepEqual((await browser.follow(answer)).flashes, [{ type: 'error', message: INVALID_LINK }])
    }
  }
  const anonymous = testApp.browser()
  const answer = await anonymous.get(`/email/change/${randomBytes(32).toString('base64url')}`)
  await assertRedirectWithFlash(anonymous, answer, '/login', ['error', INVALID_LINK])
})

// Deleting the account

test('delete: the user, sessions, links, unsent mail and events go; one event stays; the email is free again', async () => {
  const { user, browser } = await loggedIn()
  const other = await otherBrowser(testApp, user.email)
  const resetPath = await resetLinkFor(testApp, user.email)
  const newAddress = uniqueEmail('never')
  await requestChange(browser, newAddress)
  const changePath = await changeLink(newAddress)
  // A message to the account that has not gone out yet, and one to someone else.
  const later = new Date(Date.now() + 3_600_000)
  await testApp.db
    .insertInto('mail_outbox')
    .values([
      { kind: 'password_changed', recipient: user.email, body: null, next_attempt_at: later },
      { kind: 'password_changed', recipient: 'bystander@example.com', body: null, next_attempt_at: later },
    ])
    .execute()
  assert.ok((await tokensOf(testApp, user.id)).length >= 2)
  assert.ok(
    (await testApp.db.selectFrom('auth_events').select('id').where('user_id', '=', user.id).execute()).length > 0,
  )

  const answer = await submit(browser, 'delete-account', { current_password: PASSWORD })
  const home = await assertRedirectWithFlash(browser, answer, '/', ['success', ACCOUNT_DELETED])
  assert.ok(!home.html.includes(user.email), 'the home page names nobody')
  assert.equal(await isLoggedIn(browser), false)
  assert.equal(await isLoggedIn(other), false, 'the other session is dead')

  assert.equal(await userRow(testApp, user.id), undefined)
  const sessions = await testApp.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()
  assert.equal(sessions.length, 0)
  assert.equal((await tokensOf(testApp, user.id)).length, 0)
  const unsent = (await outbox(testApp, user.email)).filter((row) => row.sent_at === null)
  assert.equal(unsent.length, 0, 'no unsent mail to the address')
  assert.equal((await outbox(testApp, 'bystander@example.com')).length, 1, 'other mail stays')
  await testApp.db.deleteFrom('mail_outbox').where('recipient', '=', 'bystander@example.com').execute()
  const events = await testApp.db.selectFrom('auth_events').selectAll().where('user_id', '=', user.id).execute()
  assert.equal(events.length, 0, 'the account’s events are gone')
  const deletions = (
    await testApp.db.selectFrom('auth_events').selectAll().where('type', '=', 'account_deleted').execute()
  ).filter((row) => {
    const details = typeof row.details === 'string' ? JSON.parse(row.details) : row.details
    return details.userId === user.id
  })
  assert.equal(deletions.length, 1, 'one account_deleted event stays')
  assert.equal(deletions[0]?.user_id, null)
  assert.equal(deletions[0]?.email_hash, keyedEmailDigest(user.email), 'the address only by its digest')

  await assertResetLinkDead(testApp, resetPath)
  await assertChangeLinkDead(testApp, changePath)
  assert.equal(await logsIn(testApp, user.email), false)
  const again = await signUp(testApp, user.email.toUpperCase())
  assertRedirect(again.response, '/profile')
  assert.equal(await logsIn(testApp, user.email), true, 'the email signed up again')
})

// Bad input and double submits

test('arrays in fields get 400, missing or wrong CSRF 403, and nothing changes', async () => {
  const { user, browser } = await loggedIn()
  const hash = (await userRow(testApp, user.id))?.password_hash
  const cases: [FormName, Record<string, string | string[]>][] = [
    ['change-password', { current_password: [PASSWORD, PASSWORD], password: NEW_PASSWORD }],
    ['change-password', { current_password: PASSWORD, password: [NEW_PASSWORD, NEW_PASSWORD] }],
    ['change-email', { email: [uniqueEmail('a'), uniqueEmail('b')], current_password: PASSWORD }],
    ['change-email', { email: uniqueEmail('c'), current_password: [PASSWORD, PASSWORD] }],
    ['delete-account', { current_password: [PASSWORD, PASSWORD] }],
  ]
  for (const [name, values] of cases) {
    const answer = await submit(browser, name, values)
    assert.equal(answer.status, 400, `${name} ${JSON.stringify(values)}`)
  }
  const good: Record<FormName, Record<string, string>> = {
    'change-password': { current_password: PASSWORD, password: NEW_PASSWORD },
    'change-email': { email: uniqueEmail('csrf'), current_password: PASSWORD },
    'delete-account': { current_password: PASSWORD },
  }
  for (const [name, values] of Object.entries(good) as [FormName, Record<string, string>][]) {
    for (const token of [null, 'not-the-token']) {
      const answer = await submit(browser, name, { ...values, _csrf: token })
      assert.equal(answer.status, 403, `${name} with CSRF ${token}`)
    }
  }
  const row = await userRow(testApp, user.id)
  assert.equal(row?.password_hash, hash)
  assert.equal(row?.email, user.email)
  assert.equal((await tokensOf(testApp, user.id, 'email_change')).length, 0)
  assert.equal(await isLoggedIn(browser), true)
  // Anonymous POSTs go to log in, whatever they carry.
  const stranger = testApp.browser()
  await stranger.get('/login')
  for (const path of ['/account/password', '/account/email', '/account/delete']) {
    const answer = await stranger.post(path, { current_password: PASSWORD, password: NEW_PASSWORD, email: 'x@y.z' })
    assert.ok([302, 303].includes(answer.status), `${path}: ${answer.status}`)
    assert.ok(answer.location?.startsWith('/login'), `${path}: ${answer.location}`)
  }
})

test('the delete form posted twice: the second answer redirects, never a 5xx', async () => {
  // One after the other, the page not reloaded.
  {
    const { user, browser, account } = await loggedIn()
    const first = await submit(browser, 'delete-account', { current_password: PASSWORD }, account)
    assertRedirect(first, '/')
    const second = await submit(browser, 'delete-account', { current_password: PASSWORD }, account)
    assert.ok([302, 303].includes(second.status), `second: ${second.status}`)
    assert.ok(second.location === '/' || second.location?.startsWith('/login'), `second: ${second.location}`)
    assert.equal(await userRow(testApp, user.id), undefined)
  }
  // At once (a double click).
  {
    const { user, browser, account } = await loggedIn()
    const answers = await Promise.all([
      submit(browser, 'delete-account', { current_password: PASSWORD }, account),
      submit(browser, 'delete-account', { current_password: PASSWORD }, account),
    ])
    for (const answer of answers) {
      assert.ok(answer.status < 500, `answered ${answer.status}`)
      assert.ok([302, 303].includes(answer.status), `answered ${answer.status}`)
    }
    assert.ok(answers.some((answer) => answer.location === '/'))
    assert.equal(await userRow(testApp, user.id), undefined)
    const deletions = (
      await testApp.db.selectFrom('auth_events').selectAll().where('type', '=', 'account_deleted').execute()
    ).filter((row) => (typeof row.details === 'string' ? JSON.parse(row.details) : row.details).userId === user.id)
    assert.equal(deletions.length, 1, 'one account_deleted event')
    assertRedirect(await signUp(testApp, user.email).then((result) => result.response), '/profile')
  }
})

test('the password form posted twice: never a 5xx, and the account stays usable', async () => {
  // One after the other, the page reloaded in between: the old password is now wrong.
  {
    const { user, browser } = await loggedIn()
    const values = { current_password: PASSWORD, password: NEW_PASSWORD }
    await assertRedirectWithFlash(browser, await submit(browser, 'change-password', values), '/account', [
      'success',
      PASSWORD_CHANGED,
    ])
    const second = await submit(browser, 'change-password', values)
    await assertRedirectWithFlash(browser, second, '/account', ['error', WRONG_CURRENT])
    assert.equal(await logsIn(testApp, user.email, NEW_PASSWORD), true)
  }
  // One after the other, the page not reloaded: the form's token belonged to the old session.
  {
    const { user, browser, account } = await loggedIn()
    const values = { current_password: PASSWORD, password: NEW_PASSWORD }
    assertRedirect(await submit(browser, 'change-password', values, account), '/account')
    const second = await submit(browser, 'change-password', values, account)
    assert.ok(second.status < 500, `second: ${second.status}`)
    assert.ok([302, 303, 403].includes(second.status), `second: ${second.status}`)
    assert.equal(await isLoggedIn(browser), true)
    assert.equal(await logsIn(testApp, user.email, NEW_PASSWORD), true)
  }
  // At once (a double click).
  {
    const { user, browser, account } = await loggedIn()
    const values = { current_password: PASSWORD, password: NEW_PASSWORD }
    const answers = await Promise.all([
      submit(browser, 'change-password', values, account),
      submit(browser, 'change-password', values, account),
    ])
    for (const answer of answers) {
      assert.ok([302, 303].includes(answer.status), `answered ${answer.status}`)
      assert.ok(answer.location === '/account' || answer.location?.startsWith('/login'), `${answer.location}`)
    }
    assert.equal(await logsIn(testApp, user.email, NEW_PASSWORD), true, 'the new password works')
    assert.equal(await logsIn(testApp, user.email, PASSWORD), false)
  }
})

// Mail off

test('with mail off: no email-change form, its POST and link 404, and the password still changes', async () => {
  const { user, browser, account } = await loggedIn(mailOffApp)
  assert.equal(shownEmail(account), user.email)
  assert.equal(formOf(account, 'change-email'), null)
  assert.doesNotMatch(account.html, /<input [^>]*name="email"/)
  assert.ok(formOf(account, 'change-password'))
  assert.ok(formOf(account, 'delete-account'))

  const posted = await browser.post('/account/email', {
    _csrf: account.csrfToken,
    email: uniqueEmail('off'),
    current_password: PASSWORD,
  })
  assert.equal(posted.status, 404)
  assert.equal((await browser.get(`/email/change/${randomBytes(32).toString('base64url')}`)).status, 404)

  const other = await otherBrowser(mailOffApp, user.email)
  const answer = await submit(browser, 'change-password', { current_password: PASSWORD, password: NEW_PASSWORD })
  await assertRedirectWithFlash(browser, answer, '/account', ['success', PASSWORD_CHANGED])
  assert.equal(await isLoggedIn(other), false)
  assert.equal((await outbox(mailOffApp, user.email)).length, 0, 'no mail queued')
  assert.equal(await logsIn(mailOffApp, user.email, NEW_PASSWORD), true)
})

// The AUTH_RATE_LIMIT budget

test('AUTH_RATE_LIMIT covers the account forms: the 4th POST gets 429 with the page, and changes nothing', async () => {
  await resetRateBudget(rateApp)
  const { user, browser } = await loggedIn(rateApp)
  await resetRateBudget(rateApp)
  const newAddress = uniqueEmail('rate')
  const posts: [FormName, Record<string, string>][] = [
    ['change-password', { current_password: PASSWORD, password: 'short' }],
    ['change-email', { email: 'not-an-email', current_password: PASSWORD }],
    ['delete-account', { current_password: WRONG_PASSWORD }],
  ]
  for (const [name, values] of posts) {
    const answer = await submit(browser, name, values)
    assertRedirect(answer, '/account')
  }
  const throttled = await submit(browser, 'delete-account', { current_password: PASSWORD })
  assert.equal(throttled.status, 429)
  assert.deepEqual(throttled.flashes, [{ type: 'error', message: THROTTLED }])
  assert.ok(formOf(throttled, 'delete-account'), 'the 429 answer shows the account page')
  const email = await submit(browser, 'change-email', { email: newAddress, current_password: PASSWORD })
  assert.equal(email.status, 429)
  const password = await submit(browser, 'change-password', { current_password: PASSWORD, password: NEW_PASSWORD })
  assert.equal(password.status, 429)
  assert.ok(await userRow(rateApp, user.id), 'not deleted')
  assert.equal((await outbox(rateApp, newAddress)).length, 0)
  // An anonymous POST over the budget (counted before the page guard) is refused the same way, never a 5xx.
  const stranger = rateApp.browser()
  await stranger.get('/login')
  for (const path of ['/account/password', '/account/email', '/account/delete']) {
    const anonymous = await stranger.post(path, { current_password: PASSWORD, password: NEW_PASSWORD, email: 'a@b.c' })
    assert.equal(anonymous.status, 429, path)
    assert.deepEqual(anonymous.flashes, [{ type: 'error', message: THROTTLED }], path)
  }

  await resetRateBudget(rateApp)
  assert.equal(await logsIn(rateApp, user.email, PASSWORD), true, 'the password did not change')
  await resetRateBudget(rateApp)
})
