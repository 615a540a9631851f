// Email confirmation (CONTRACT.md "Email confirmation", "Messages"): the link sent on sign-up, opening it
// logged in or not, its single use, 24-hour life and "only the latest works", the resend form and its hourly
// limit, REQUIRE_EMAIL_CONFIRMATION's refusals, and who counts as confirmed from the start. Mail goes through
// a real SMTP server in this process (helpers/mailbox.ts); one app per configuration, fresh users per test.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { sql } from 'kysely'
import { openDatabase } from '../src/db/database.js'
import { assertMigrated, createMigrator, migrateToLatest } from '../src/db/migrator.js'
import { canonicalEmail } from '../src/users/email.js'
import type { Browser } from '../support/browser.js'
import { createTestDatabase } from '../support/test-database.js'
import {
  createTestUser,
  logIn,
  PASSWORD,
  type Page,
  signUp,
  startTestApp,
  type TestApp,
  uniqueEmail,
} from './helpers/app.js'
import { assertRedirect } from './helpers/assertions.js'
import { pathOf, TestMailbox } from './helpers/mailbox.js'

const PUBLIC_URL = 'https://gatehouse.example'
const SUBJECT = 'Confirm your email address for gatehouse'
const CONFIRMATION = /^Confirm your email address for gatehouse$/
const CONFIRMED = 'Your email address is confirmed.'
const INVALID_LINK = 'That link is invalid or has expired.'
const LINK_SENT = 'We have sent you a link to confirm your email address.'
const UNCONFIRMED_LOGIN = 'Please confirm your email address first. We have sent you a new link.'
const INVALID_LOGIN = 'Invalid email or password.'

const mailbox = await TestMailbox.start()
const mailEnv = { SMTP_URL: mailbox.url, PUBLIC_URL, MAIL_POLL_SECONDS: '0.2' }
const testApp = await startTestApp(mailEnv)
const requiredApp = await startTestApp({ ...mailEnv, REQUIRE_EMAIL_CONFIRMATION: 'true' })

/** The `index`-th confirmation message to `email`: exactly one link, on PUBLIC_URL; returns its path. */
async function confirmationLink(email: string, index = 0): Promise<string> {
  const message = await mailbox.nth(email, CONFIRMATION, index)
  assert.equal(message.subject, SUBJECT)
  assert.equal(message.links.length, 1, `one link in: ${message.text}`)
  const [link = ''] = message.links
  assert.ok(link.startsWith(`${PUBLIC_URL}/`), link)
  return pathOf(link)
}

/** Waits until the app has sent everything it queued for `email`; then the mailbox holds all of it. */
async function settled(app: TestApp, email: string): Promise<number> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const rows = await app.db
      .selectFrom('mail_outbox')
      .select(['sent_at', 'failed_at'])
      .where('recipient', '=', email)
      .where('kind', '=', 'email_confirmation')
      .execute()
    if (rows.every((row) => row.sent_at !== null)) return rows.length
    assert.ok(
      rows.every((row) => row.failed_at === null),
      'no message was given up',
    )
    assert.ok(Date.now() < deadline, `messages to ${email} still unsent`)
    await delay(50)
  }
}

/** How many confirmation messages reached `email`, once the outbox has nothing left for it. */
async function deliveredTo(app: TestApp, email: string): Promise<number> {
  const queued = await settled(app, email)
  const delivered = mailbox.matching(email, CONFIRMATION).length
  assert.equal(delivered, queued, 'every queued message arrived, and nothing else')
  return delivered
}

async function userRow(app: TestApp, email: string) {
  return app.db
    .selectFrom('users')
    .select(['id', 'email_confirmed_at'])
    .where('email_canonical', '=', canonicalEmail(email))
    .executeTakeFirstOrThrow()
}

async function sessionsOf(app: TestApp, userId: number): Promise<number> {
  const row = await app.db
    .selectFrom('sessions')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow()
  return Number(row.count)
}

/** `data-email-confirmed` on the profile: 'true' or 'false'. */
function confirmedMark(profile: Page): string | undefined {
  return /data-email-confirmed="([^"]*)"/.exec(profile.html)?.[1]
}

const RESEND_FORM = /<form [^>]*action="\/email\/confirm\/resend"/

async function profileOf(browser: Browser): Promise<Page> {
  const profile = await browser.get('/profile')
  assert.equal(profile.status, 200)
  return profile
}

/** A sign-up through the form on the default app (logged in), with its first link. */
async function signedUp() {
  const { browser, email, response } = await signUp(testApp)
  assertRedirect(response, '/profile')
  const { id } = await userRow(testApp, email)
  return { browser, email, userId: id, link: await confirmationLink(email) }
}

/** Opens a link and follows its redirect: the page it lands on. */
async function open(browser: Browser, path: string, landing: string): Promise<Page> {
  const response = await browser.get(path)
  assertRedirect(response, landing)
  return browser.follow(response)
}

/** The resend form, posted with the profile's token. */
async function resend(browser: Browser): Promise<Page> {
  const profile = await profileOf(browser)
  return browser.post('/email/confirm/resend', { _csrf: profile.csrfToken })
}

test('sign-up logs the user in and mails one confirmation link on PUBLIC_URL; the profile says not confirmed', async () => {
  const { browser, email, response, page } = await signUp(testApp)
  assertRedirect(response, '/profile')
  assert.equal(page.status, 200)
  assert.ok(page.html.includes(`data-user-email>${email}<`))
  assert.equal(confirmedMark(page), 'false')
  assert.match(page.html, RESEND_FORM)

  const message = await mailbox.nth(email, CONFIRMATION)
  assert.equal(message.to, email)
  assert.match(message.text, /24 hours/)
  const link = await confirmationLink(email)
  assert.match(link, /^\/email\/confirm\/[A-Za-z0-9_-]{43}$/)
  assert.equal((await userRow(testApp, email)).email_confirmed_at, null)
  assert.equal((await profileOf(browser)).status, 200, 'still logged in')
})

test('opening the link logged in confirms: back to the profile with the flash, then marked confirmed', async () => {
  const { browser, email, userId, link } = await signedUp()
  const landed = await open(browser, link, '/profile')
  assert.equal(landed.status, 200)
  assert.deepEqual(landed.flashes, [{ type: 'success', message: CONFIRMED }])
  assert.equal(confirmedMark(landed), 'true')
  assert.doesNotMatch(landed.html, RESEND_FORM)
  assert.ok((await userRow(testApp, email)).email_confirmed_at instanceof Date)

  const again = await profileOf(browser)
  assert.deepEqual(again.flashes, [], 'the flash is shown once')
  assert.equal(confirmedMark(again), 'true')

  const event = testApp.logs.find((line) => line.event === 'email_confirmed' && line.userId === userId)
  assert.ok(event, 'an email_confirmed auth event names the user')
  assert.ok(!JSON.stringify(event).includes(email), 'by id, not by address')
})

test('opening the link logged out confirms too, and lands on the log-in page', async () => {
  const { email, link } = await signedUp()
  const stranger = testApp.browser()
  const landed = await open(stranger, link, '/login')
  assert.equal(landed.status, 200)
  assert.deepEqual(landed.flashes, [{ type: 'success', message: CONFIRMED }])
  assert.ok((await userRow(testApp, email)).email_confirmed_at instanceof Date)
  assertRedirect(await stranger.get('/profile'), '/login?next=%2Fprofile')
  // The user logs in as usual, and the profile says confirmed.
  const { browser, response } = await logIn(testApp, email)
  assertRedirect(response, '/profile')
  assert.equal(confirmedMark(await profileOf(browser)), 'true')
})

test('a link works once: opened again it gets the error flash, on /login anonymous or /profile logged in', async () => {
  const { browser, email, link } = await signedUp()
  await open(testApp.browser(), link, '/login')
  const confirmedAt = (await userRow(testApp, email)).email_confirmed_at
  assert.ok(confirmedAt instanceof Date)

  const anonymous = await open(testApp.browser(), link, '/login')
  assert.deepEqual(anonymous.flashes, [{ type: 'error', message: INVALID_LINK }])
  const loggedIn = await open(browser, link, '/profile')
  assert.deepEqual(loggedIn.flashes, [{ type: 'error', message: INVALID_LINK }])
  assert.equal(confirmedMark(loggedIn), 'true')
  assert.deepEqual((await userRow(testApp, email)).email_confirmed_at, confirmedAt, 'unchanged')
})

test('only the latest link works: after a resend the first is refused and the second confirms', async () => {
  const { browser, email, link: first } = await signedUp()
  const response = await resend(browser)
  assertRedirect(response, '/profile')
  const afterResend = await browser.follow(response)
  assert.deepEqual(afterResend.flashes, [{ type: 'info', message: LINK_SENT }])
  const second = await confirmationLink(email, 1)
  assert.notEqual(second, first)

  const refused = await open(browser, first, '/profile')
  assert.deepEqual(refused.flashes, [{ type: 'error', message: INVALID_LINK }])
  assert.equal(confirmedMark(refused), 'false')
  assert.equal((await userRow(testApp, email)).email_confirmed_at, null)

  const accepted = await open(browser, second, '/profile')
  assert.deepEqual(accepted.flashes, [{ type: 'success', message: CONFIRMED }])
  assert.equal(confirmedMark(accepted), 'true')
})

test('a link expires after 24 hours', async () => {
  const { browser, email, userId, link } = await signedUp()
  const token = await testApp.db
    .selectFrom('account_tokens')
    .select(['created_at', 'expires_at'])
    .where('user_id', '=', userId)
    .where('purpose', '=', 'email_confirmation')
    .executeTakeFirstOrThrow()
  const lifeHours = (token.expires_at.getTime() - token.created_at.getTime()) / 3_600_000
  assert.ok(Math.abs(lifeHours - 24) < 0.01, `a life of ${lifeHours} hours`)

  await testApp.db
    .updateTable('account_tokens')
    .set({ expires_at: sql<Date>`now() - interval '1 second'` })
    .where('user_id', '=', userId)
    .where('purpose', '=', 'email_confirmation')
    .execute()
  const refused = await open(browser, link, '/profile')
  assert.deepEqual(refused.flashes, [{ type: 'error', message: INVALID_LINK }])
  assert.equal((await userRow(testApp, email)).email_confirmed_at, null)
})

test('unknown, malformed and wrong-length tokens get the error flash, never a 5xx', async () => {
  const { browser, link } = await signedUp()
  const real = link.slice('/email/confirm/'.length)
  const tokens = [
    'A'.repeat(43), // well formed, unknown
    real.slice(0, 42), // one short
    `${real}A`, // one long
    `${real.slice(0, 42)}.`, // a character outside base64url
    `${real.slice(0, 40)}%2F%2F`, // encoded slashes
    `${real.slice(0, 42)}%00`, // an encoded NUL
    "x'%20or%201=1--",
    '%E2%82%AC'.repeat(20), // encoded non-ASCII
    'x',
  ]
  for (const token of tokens) {
    const anonymous = await testApp.browser().get(`/email/confirm/${token}`)
    assertRedirect(anonymous, '/login')
    const landed = await browser.follow(await browser.get(`/email/confirm/${token}`))
    assert.deepEqual(landed.flashes, [{ type: 'error', message: INVALID_LINK }], token)
  }
  // Far too long, or badly encoded: refused somehow, but never a server error.
  for (const path of [`/email/confirm/${'A'.repeat(5000)}`, '/email/confirm/%E0%A4%A', '/email/confirm/%']) {
    const page = await testApp.browser().get(path)
    assert.ok(page.status < 500, `${path.slice(0, 40)}: ${page.status}`)
  }
  // None of these used up the real link.
  const accepted = await open(browser, link, '/profile')
  assert.deepEqual(accepted.flashes, [{ type: 'success', message: CONFIRMED }])
})

test('a link to an address the account no longer has changes nothing', async () => {
  const { browser, userId, link } = await signedUp()
  const newEmail = uniqueEmail('moved')
  await testApp.db
    .updateTable('users')
    .set({ email: newEmail, email_canonical: canonicalEmail(newEmail) })
    .where('id', '=', userId)
    .execute()
  const refused = await open(browser, link, '/profile')
  assert.deepEqual(refused.flashes, [{ type: 'error', message: INVALID_LINK }])
  assert.equal(confirmedMark(refused), 'false')
  assert.equal((await userRow(testApp, newEmail)).email_confirmed_at, null)
  assert.ok(!testApp.logs.some((line) => line.event === 'email_confirmed' && line.userId === userId))
})

test('the resend form queues a new link; the worker logs mail_sent; no log line holds a token', async () => {
  const { browser, email, link } = await signedUp()
  const response = await resend(browser)
  assertRedirect(response, '/profile')
  const second = await confirmationLink(email, 1)
  assert.notEqual(second, link)
  assert.equal(await deliveredTo(testApp, email), 2)

  const sent = testApp.logs.filter((line) => line.event === 'mail_sent' && line.kind === 'email_confirmation')
  assert.ok(sent.length >= 2, 'the worker logs each message it sends')
  const logs = JSON.stringify(testApp.logs)
  for (const path of [link, second]) {
    const token = path.slice('/email/confirm/'.length)
    assert.ok(!logs.includes(token), 'no log line holds a link token')
  }
  assert.ok(!logs.includes(email), 'no log line holds the address')
})

test('for a confirmed user the resend form sends nothing', async () => {
  const { browser, email, link } = await signedUp()
  await open(browser, link, '/profile')
  const response = await browser.post('/email/confirm/resend', { _csrf: (await profileOf(browser)).csrfToken })
  assertRedirect(response, '/profile')
  const landed = await browser.follow(response)
  assert.equal(landed.status, 200)
  assert.ok(!landed.flashes.some((flash) => flash.type === 'error'), JSON.stringify(landed.flashes))
  assert.equal(await deliveredTo(testApp, email), 1, 'only the sign-up message')
})

test('the resend form: anonymous is sent to log in, a missing or wrong CSRF token gets 403 and sends nothing', async () => {
  const anonymous = testApp.browser()
  await anonymous.get('/login')
  const refused = await anonymous.post('/email/confirm/resend', {})
  assert.ok([302, 303].includes(refused.status), `got ${refused.status}`)
  assert.match(refused.location ?? '', /^\/login(\?|$)/)

  const { browser, email } = await signedUp()
  const profile = await profileOf(browser)
  for (const token of [null, 'not-the-token', `${profile.csrfToken}x`]) {
    const response = await browser.post('/email/confirm/resend', { _csrf: token })
    assert.equal(response.status, 403, `token ${token}`)
  }
  assert.equal(await deliveredTo(testApp, email), 1, 'only the sign-up message')
})

test('at most 3 confirmation messages go to an address per hour, sign-up included', async () => {
  const { browser, email } = await signedUp()
  for (let attempt = 1; attempt <= 4; attempt++) {
    const response = await resend(browser)
    assertRedirect(response, '/profile')
    assert.deepEqual((await browser.follow(response)).flashes, [{ type: 'info', message: LINK_SENT }], 'the same page')
  }
  assert.equal(await deliveredTo(testApp, email), 3)
  await delay(500) // a few more polls of the worker: nothing else turns up
  assert.equal(mailbox.matching(email, CONFIRMATION).length, 3)
  // The last link that went out is the one that works.
  const last = await confirmationLink(email, 2)
  assert.deepEqual((await open(browser, last, '/profile')).flashes, [{ type: 'success', message: CONFIRMED }])
})

test('users made directly (as by the CLI) count as confirmed and are sent nothing', async () => {
  const user = await createTestUser(testApp)
  assert.ok((await userRow(testApp, user.email)).email_confirmed_at instanceof Date)
  const { browser, response } = await logIn(testApp, user.email)
  assertRedirect(response, '/profile')
  const profile = await profileOf(browser)
  assert.equal(confirmedMark(profile), 'true')
  assert.doesNotMatch(profile.html, RESEND_FORM)
  assertRedirect(await browser.post('/email/confirm/resend', { _csrf: profile.csrfToken }), '/profile')
  assert.equal(await deliveredTo(testApp, user.email), 0)
})

// REQUIRE_EMAIL_CONFIRMATION=true

test('required: sign-up goes to log in with the info flash, logs nobody in, and mails a link', async () => {
  const { browser, email, response, page } = await signUp(requiredApp)
  assertRedirect(response, '/login')
  assert.equal(page.status, 200)
  assert.deepEqual(page.flashes, [{ type: 'info', message: LINK_SENT }])
  assertRedirect(await browser.get('/profile'), '/login?next=%2Fprofile')
  const { id, email_confirmed_at } = await userRow(requiredApp, email)
  assert.equal(email_confirmed_at, null)
  assert.equal(await sessionsOf(requiredApp, id), 0)
  await confirmationLink(email)
})

test('required: the right password of an unconfirmed account is refused and sends a fresh link; a wrong one is not', async () => {
  const { email } = await signUp(requiredApp)
  const first = await confirmationLink(email)
  const { id } = await userRow(requiredApp, email)

  const wrong = await logIn(requiredApp, email, 'not-the-password-4471')
  assertRedirect(wrong.response, '/login')
  assert.deepEqual((await wrong.browser.follow(wrong.response)).flashes, [{ type: 'error', message: INVALID_LOGIN }])
  assert.equal(await deliveredTo(requiredApp, email), 1, 'a wrong password sends nothing')

  const right = await logIn(requiredApp, email, PASSWORD)
  assertRedirect(right.response, '/login')
  const refusal = await right.browser.follow(right.response)
  assert.deepEqual(refusal.flashes, [{ type: 'error', message: UNCONFIRMED_LOGIN }])
  assertRedirect(await right.browser.get('/profile'), '/login?next=%2Fprofile')
  assert.equal(await sessionsOf(requiredApp, id), 0)

  const fresh = await confirmationLink(email, 1)
  assert.notEqual(fresh, first)
  assert.equal(await deliveredTo(requiredApp, email), 2)
  const stranger = requiredApp.browser()
  assert.deepEqual((await open(stranger, first, '/login')).flashes, [{ type: 'error', message: INVALID_LINK }])
  assert.deepEqual((await open(stranger, fresh, '/login')).flashes, [{ type: 'success', message: CONFIRMED }])
  const confirmed = await logIn(requiredApp, email, PASSWORD)
  assertRedirect(confirmed.response, '/profile')
  assert.equal(confirmedMark(await profileOf(confirmed.browser)), 'true')
  assert.equal(await sessionsOf(requiredApp, id), 1)
})

test('required: users made directly (as by the CLI) log in without confirming', async () => {
  const user = await createTestUser(requiredApp)
  const { response } = await logIn(requiredApp, user.email)
  assertRedirect(response, '/profile')
  assert.equal(await deliveredTo(requiredApp, user.email), 0)
})

test('users that existed before the confirmation migration count as confirmed; later ones do not', async () => {
  const database = await createTestDatabase()
  after(() => database.drop())
  const handle = await openDatabase({ databaseUrl: database.env.DATABASE_URL ?? null, dataDir: database.env.DATA_DIR })
  try {
    const migrator = createMigrator(handle.db)
    const migrations = (await migrator.getMigrations()).map((migration) => migration.name)
    const confirmation = migrations.findIndex((name) => name.endsWith('_add_email_confirmation_and_account_tokens'))
    assert.ok(confirmation > 0, `migrations: ${migrations}`)
    // A fresh database may start anywhere (a copy of a migrated template, or empty): go to just before.
    await migrateToLatest(handle.db)
    assertMigrated(await migrator.migrateTo(migrations[confirmation - 1] ?? ''))
    const columns = await handle.db.introspection.getTables()
    assert.ok(!columns.find((table) => table.name === 'users')?.columns.some((c) => c.name === 'email_confirmed_at'))

    const older = 'older@example.com'
    await sql`insert into users (email, email_canonical, password_hash) values (${older}, ${older}, 'hash')`.execute(
      handle.db,
    )
    await migrateToLatest(handle.db)
    const row = await handle.db
      .selectFrom('users')
      .select('email_confirmed_at')
      .where('email', '=', older)
      .executeTakeFirstOrThrow()
    assert.ok(row.email_confirmed_at instanceof Date, 'confirmed by the migration')

    const newer = 'newer@example.com'
    await sql`insert into users (email, email_canonical, password_hash) values (${newer}, ${newer}, 'hash')`.execute(
      handle.db,
    )
    const later = await handle.db
      .selectFrom('users')
      .select('email_confirmed_at')
      .where('email', '=', newer)
      .executeTakeFirstOrThrow()
    assert.equal(later.email_confirmed_at, null, 'an account made afterwards is not confirmed by default')
  } finally {
    await handle.close()
  }
})
