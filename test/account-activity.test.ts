// /account/activity and the new-browser notice (issue #25): each auth event is a row of auth_events shown on
// the account's page, newest first, 50 a page; failed log-ins of unknown emails are kept only by the email's
// digest; rows older than AUDIT_RETENTION_DAYS are pruned; a log-in from a browser (family and system) the
// account has not used before mails a notice.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { sql } from 'kysely'
import { Browser, type Page } from '../support/browser.js'
import { createTestUser, keyedEmailDigest, PASSWORD, startTestApp, type TestApp, uniqueEmail } from './helpers/app.js'
import { TestMailbox } from './helpers/mailbox.js'

const mailbox = await TestMailbox.start()
const testApp = await startTestApp({
  PUBLIC_URL: 'https://gatehouse.example',
  MAIL_POLL_SECONDS: '0.2',
  SMTP_URL: mailbox.url,
})

const CHROME_155_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/155.0.0.0 Safari/537.36'
const CHROME_156_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36'
const SAFARI_IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1'
const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0'
const CHROME_WINDOWS =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/155.0.0.0 Safari/537.36'

const NOTICE_SUBJECT = /^A new log-in to your gatehouse account$/

/** A browser that sends its own User-Agent on every request. */
class DeviceBrowser extends Browser {
  constructor(
    baseUrl: string,
    readonly userAgent: string,
  ) {
    super(baseUrl)
  }

  override request(method: string, path: string, options: Parameters<Browser['request']>[2] = {}): Promise<Page> {
    return super.request(method, path, { ...options, headers: { 'user-agent': this.userAgent, ...options.headers } })
  }
}

async function signUpFrom(app: TestApp, email: string, userAgent: string): Promise<DeviceBrowser> {
  const browser = new DeviceBrowser(app.url, userAgent)
  await browser.get('/signup')
  const response = await browser.post('/signup', { email, password: PASSWORD })
  assert.equal(response.status, 303)
  assert.equal(response.location, '/profile', 'signed up and logged in')
  return browser
}

async function logInFrom(app: TestApp, email: string, userAgent: string, password = PASSWORD) {
  const browser = new DeviceBrowser(app.url, userAgent)
  await browser.get('/login')
  const response = await browser.post('/login', { email, password })
  assert.equal(response.status, 303)
  return { browser, response }
}

async function loggedInFrom(app: TestApp, email: string, userAgent: string): Promise<DeviceBrowser> {
  const { browser, response } = await logInFrom(app, email, userAgent)
  assert.equal(response.location, '/profile', 'the log-in succeeds')
  return browser
}

interface ListedEvent {
  type: string
  html: string
  time: string
}

function listedEvents(page: Page): ListedEvent[] {
  const listed = [...page.html.matchAll(/<li\b[^>]*\bdata-event="([^"]*)"[^>]*>([\s\S]*?)<\/li>/g)].map((match) => {
    const times = [...(match[2] ?? '').matchAll(/<time datetime="([^"]*)"/g)]
    assert.equal(times.length, 1, `one <time datetime> in each event: ${match[0]}`)
    return { type: match[1] ?? '', html: match[2] ?? '', time: times[0]?.[1] ?? '' }
  })
  assert.equal((page.html.match(/data-event=/g) ?? []).length, listed.length, 'every data-event read as one')
  return listed
}

async function activity(browser: Browser, query = ''): Promise<{ page: Page; events: ListedEvent[] }> {
  const page = await browser.get(`/account/activity${query}`)
  assert.equal(page.status, 200, `/account/activity${query}`)
  return { page, events: listedEvents(page) }
}

/** Valid ISO 8601 times, within the test, newest first. */
function assertTimes(events: ListedEvent[], from: number, to: number): void {
  let previous = Number.POSITIVE_INFINITY
  for (const event of events) {
    const time = Date.parse(event.time)
    assert.ok(Number.isFinite(time), `${event.type}: a valid date (${event.time})`)
    assert.equal(new Date(time).toISOString(), event.time, `${event.type}: ISO 8601 in UTC`)
    assert.ok(time >= from - 1_000 && time <= to + 1_000, `${event.type}: ${event.time} lies within the test`)
    assert.ok(time <= previous, `${event.type}: newest first`)
    previous = time
  }
}

async function eventRowsOf(app: TestApp, userId: number) {
  return app.db
    .selectFrom('auth_events')
    .select(['id', 'type', 'ip', 'browser', 'system', 'email_hash'])
    .where('user_id', '=', userId)
    .orderBy('id', 'desc')
    .execute()
}

async function userIdOf(app: TestApp, email: string): Promise<number> {
  const row = await app.db.selectFrom('users').select('id').where('email', '=', email).executeTakeFirstOrThrow()
  return row.id
}

/** Rows of auth_events made directly, for speed; `ageSeconds` back from now. */
async function insertEvents(
  app: TestApp,
  rows: Array<{ userId: number | null; type: string; ip: string; ageSeconds?: number; emailHash?: string }>,
): Promise<void> {
  for (const row of rows) {
    await sql`insert into auth_events (type, user_id, email_hash, ip, browser, system, created_at)
      values (${row.type}, ${row.userId}, ${row.emailHash ?? null}, ${row.ip}, 'Firefox', 'Windows',
        now() - make_interval(secs => ${row.ageSeconds ?? 0}))`.execute(app.db)
  }
}

test('anonymous visitors are sent to log in', async () => {
  const page = await testApp.browser().get('/account/activity')
  assert.equal(page.status, 303)
  assert.equal(page.location, '/login?next=%2Faccount%2Factivity')
})

test('each event is written and shown newest first: sign-up, log-out, failed log-in, log-in, reset asked for, session ended', async () => {
  const started = Date.now()
  const email = uniqueEmail('activity')
  const first = await signUpFrom(testApp, email, CHROME_155_LINUX)
  const profile = await first.get('/profile')
  assert.equal((await first.post('/logout', { _csrf: profile.csrfToken })).status, 303)

  const refused = await logInFrom(testApp, email, CHROME_155_LINUX, 'not the right password')
  assert.equal(refused.response.location, '/login', 'a wrong password is refused')
  const second = await loggedInFrom(testApp, email, CHROME_155_LINUX)

  const forgot = new DeviceBrowser(testApp.url, CHROME_155_LINUX)
  await forgot.get('/password/forgot')
  const asked = await forgot.post('/password/forgot', { email })
  assert.equal(asked.status, 303)
  assert.equal(asked.location, '/login')

  const third = await loggedInFrom(testApp, email, CHROME_155_LINUX)
  const sessions = await second.get('/account/sessions')
  const thirdHandle = [
    ...sessions.html.matchAll(/<li\b[^>]*data-session="([^"]*)"(?![^>]*data-current)[^>]*>/g),
  ][0]?.[1]
  assert.ok(thirdHandle, 'the third session is listed')
  const ended = await second.post('/account/sessions/end', { session: thirdHandle })
  assert.equal(ended.status, 303)
  assert.equal((await third.get('/profile')).status, 303, 'the third session is over')

  const { events } = await activity(second)
  const finished = Date.now()
  assert.deepEqual(
    events.map((event) => event.type),
    ['session_ended', 'login', 'password_reset_requested', 'login', 'login_failed', 'logout', 'signup'],
  )
  assertTimes(events, started, finished)
  for (const login of events.filter((event) => event.type === 'login')) {
    assert.match(login.html, /127\.0\.0\.1/, 'a log-in shows its address')
    assert.match(login.html, /Chrome/, 'and its browser')
    assert.match(login.html, /Linux/, 'and its system')
  }
  const userId = await userIdOf(testApp, email)
  const rows = await eventRowsOf(testApp, userId)
  assert.deepEqual(
    rows.map((row) => row.type),
    events.map((event) => event.type),
    'the page shows the rows of auth_events, and only them',
  )
  assert.ok(
    rows.every((row) => row.email_hash === null),
    'events of an account are kept by its id, not by an email digest',
  )
})

test('a failed log-in names the account whose email was typed, in any case and spacing', async () => {
  const email = uniqueEmail('typed')
  const browser = await signUpFrom(testApp, email, CHROME_155_LINUX)
  await logInFrom(testApp, `  ${email.toUpperCase()} `, CHROME_155_LINUX, 'not the right password')
  const { events } = await activity(browser)
  assert.deepEqual(
    events.map((event) => event.type),
    ['login_failed', 'signup'],
  )
  const [failed] = await eventRowsOf(testApp, await userIdOf(testApp, email))
  assert.equal(failed?.type, 'login_failed')
  assert.equal(failed?.email_hash, null)
})

test('a failed log-in for an unknown email is kept by its digest only, and shown on no page', async () => {
  const watcher = await signUpFrom(testApp, uniqueEmail('watcher'), CHROME_155_LINUX)
  const before = (await activity(watcher)).events.length
  const unknown = uniqueEmail('nobody-here')
  const localPart = unknown.slice(0, unknown.indexOf('@'))
  const { response } = await logInFrom(testApp, unknown, FIREFOX_WINDOWS, 'some password or other')
  assert.equal(response.location, '/login')

  // A reset asked for the same unknown email: the same answer as for an account, kept the same way.
  const forgot = new DeviceBrowser(testApp.url, FIREFOX_WINDOWS)
  await forgot.get('/password/forgot')
  assert.equal((await forgot.post('/password/forgot', { email: unknown })).location, '/login')

  const digest = keyedEmailDigest(unknown)
  const kept = await testApp.db
    .selectFrom('auth_events')
    .selectAll()
    .where('email_hash', '=', digest)
    .orderBy('id')
    .execute()
  assert.deepEqual(
    kept.map((row) => [row.type, row.user_id, row.browser]),
    [
      ['login_failed', null, 'Firefox'],
      ['password_reset_requested', null, 'Firefox'],
    ],
    'kept by the email digest, with no account',
  )

  const everything = await sql<Record<string, unknown>>`select * from auth_events`.execute(testApp.db)
  const dump = JSON.stringify(everything.rows).toLowerCase()
  assert.ok(!dump.includes(unknown.toLowerCase()), 'the address is in no column of auth_events')
  assert.ok(!dump.includes(localPart.toLowerCase()), 'nor any part of it')

  const after = await activity(watcher)
  assert.equal(after.events.length, before, "it is no other user's event")
  assert.ok(!after.page.html.toLowerCase().includes(localPart.toLowerCase()), 'the address is on no page')
  const signedUpLater = await signUpFrom(testApp, uniqueEmail('later'), FIREFOX_WINDOWS)
  const theirs = await activity(signedUpLater)
  assert.deepEqual(
    theirs.events.map((event) => event.type),
    ['signup'],
  )
  assert.ok(!theirs.page.html.toLowerCase().includes(localPart.toLowerCase()))

  const lines = testApp.logs.filter((line) => line.event === 'login_failed' && line.emailHash === digest)
  assert.equal(lines.length, 1, 'the log line names the digest')
  assert.ok(!JSON.stringify(lines).toLowerCase().includes(localPart.toLowerCase()), 'and not the address')
})

test("another user's events never appear on your page", async () => {
  const mine = uniqueEmail('mine')
  const theirs = uniqueEmail('theirs')
  const me = await signUpFrom(testApp, mine, CHROME_155_LINUX)
  const them = await signUpFrom(testApp, theirs, SAFARI_IPHONE)
  await logInFrom(testApp, theirs, SAFARI_IPHONE, 'not the right password')
  await insertEvents(testApp, [
    { userId: await userIdOf(testApp, theirs), type: 'password_changed', ip: '192.0.2.200' },
  ])

  const { page, events } = await activity(me)
  assert.deepEqual(
    events.map((event) => event.type),
    ['signup'],
  )
  assert.ok(!/192\.0\.2\.200|Safari|iOS/.test(page.html), "nothing of the other user's")
  const theirPage = await activity(them)
  assert.deepEqual(
    theirPage.events.map((event) => event.type),
    ['password_changed', 'login_failed', 'signup'],
  )
  assert.match(theirPage.page.html, /192\.0\.2\.200/)
})

test('50 events a page, newest first, with links between pages; junk page numbers are page 1, never an error', async () => {
  const user = await createTestUser(testApp)
  const browser = await loggedInFrom(testApp, user.email, CHROME_155_LINUX)
  const types = ['login', 'logout', 'login_failed', 'password_changed', 'email_confirmed']
  await insertEvents(
    testApp,
    Array.from({ length: 70 }, (_, index) => ({
      userId: user.id,
      type: types[index % types.length] ?? 'login',
      ip: `10.0.0.${index + 1}`,
    })),
  )
  const rows = await eventRowsOf(testApp, user.id)
  assert.equal(rows.length, 71, 'the log-in and 70 more')
  const ipsOf = (events: ListedEvent[]) => events.map((event) => /\b(\d+\.\d+\.\d+\.\d+)\b/.exec(event.html)?.[1])
  const pageLinks = (page: Page) => [...page.html.matchAll(/href="\/account\/activity\?page=(\d+)"/g)].map((m) => m[1])

  const first = await activity(browser)
  assert.equal(first.events.length, 50)
  assert.deepEqual(
    ipsOf(first.events),
    rows.slice(0, 50).map((row) => row.ip),
  )
  assert.deepEqual(
    first.events.map((event) => event.type),
    rows.slice(0, 50).map((row) => row.type),
  )
  assert.deepEqual(pageLinks(first.page), ['2'], 'page 1 links to page 2 only')

  const second = await activity(browser, '?page=2')
  assert.equal(second.events.length, 21)
  assert.deepEqual(
    ipsOf(second.events),
    rows.slice(50).map((row) => row.ip),
  )
  assert.equal(second.events.at(-1)?.type, 'login', 'the oldest is the real log-in')
  assert.match(second.events.at(-1)?.html ?? '', /127\.0\.0\.1/)
  assert.deepEqual(pageLinks(second.page), ['1'], 'page 2 links back to page 1 and to no page 3')
  assert.deepEqual(
    ipsOf([...first.events, ...second.events]),
    rows.map((row) => row.ip),
    'the two pages hold every event once',
  )

  for (const junk of ['abc', '-1', '0', '', '1.5', '2abc', '1e1', '%00', '%F0%9F%98%80', ' 2']) {
    const { events } = await activity(browser, `?page=${junk}`)
    assert.deepEqual(ipsOf(events), ipsOf(first.events), `?page=${junk} is the first page`)
  }
  for (const query of [
    '?page=99999999',
    '?page=99999',
    '?page=3',
    '?page=1&page=2',
    '?page[]=2',
    `?page=${'9'.repeat(400)}`,
  ]) {
    const page = await browser.get(`/account/activity${query}`)
    assert.equal(page.status, 200, `${query}: a page`)
    assert.ok(listedEvents(page).length <= 50)
  }
  assert.equal((await activity(browser, '?page=3')).events.length, 0, 'past the end: an empty page')
})

test('events older than AUDIT_RETENTION_DAYS are deleted by the service when it starts', async () => {
  const own = await startTestApp()
  const user = await createTestUser(own)
  const DAY = 86_400
  await insertEvents(own, [
    { userId: user.id, type: 'login', ip: '192.0.2.1', ageSeconds: 100 * DAY },
    { userId: null, type: 'login_failed', ip: '192.0.2.2', ageSeconds: 91 * DAY, emailHash: 'a'.repeat(64) },
    { userId: user.id, type: 'login', ip: '192.0.2.3', ageSeconds: 89 * DAY },
    { userId: user.id, type: 'login', ip: '192.0.2.4', ageSeconds: 2 * DAY },
    { userId: user.id, type: 'login', ip: '192.0.2.45', ageSeconds: 13 * 3_600 },
    { userId: user.id, type: 'login', ip: '192.0.2.5', ageSeconds: 3_600 },
    { userId: null, type: 'login_failed', ip: '192.0.2.6', ageSeconds: 60, emailHash: 'b'.repeat(64) },
  ])
  const ipsLeft = async (app: TestApp) =>
    (await app.db.selectFrom('auth_events').select('ip').orderBy('ip').execute()).map((row) => row.ip)
  assert.equal((await ipsLeft(own)).length, 7)
  await own.close()

  // The default, 90 days.
  const restarted = await own.restart()
  try {
    assert.deepEqual(await ipsLeft(restarted), ['192.0.2.3', '192.0.2.4', '192.0.2.45', '192.0.2.5', '192.0.2.6'])
  } finally {
    await restarted.close()
  }
  const shorter = await own.restart({ AUDIT_RETENTION_DAYS: '1' })
  try {
    assert.deepEqual(await ipsLeft(shorter), ['192.0.2.45', '192.0.2.5', '192.0.2.6'])
  } finally {
    await shorter.close()
  }
  // A fraction of a day is a valid setting (AUDIT_RETENTION_DAYS is a positive number): 12 hours.
  const halfDay = await own.restart({ AUDIT_RETENTION_DAYS: '0.5' })
  try {
    assert.deepEqual(await ipsLeft(halfDay), ['192.0.2.5', '192.0.2.6'])
    assert.ok(
      !halfDay.logs.some((line) => /pruning old account events failed/.test(String(line.msg))),
      'the pruning did not fail',
    )
    // From the browser of the kept events (a known one: no new-browser event on top).
    const browser = await loggedInFrom(halfDay, user.email, FIREFOX_WINDOWS)
    const { page, events } = await activity(browser)
    assert.deepEqual(
      events.map((event) => event.type),
      ['login', 'login'],
    )
    assert.ok(!/192\.0\.2\.(?:[1-4]|45)\b/.test(page.html), 'the pruned events are not shown')
  } finally {
    await halfDay.close()
  }
})

/** The notices queued for `email` (kept in the outbox after they are sent). */
async function noticesQueued(email: string): Promise<number> {
  const row = await testApp.db
    .selectFrom('mail_outbox')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('recipient', '=', email)
    .where('kind', '=', 'new_browser')
    .executeTakeFirstOrThrow()
  return Number(row.count)
}

test('a log-in from a new browser mails a notice naming it; a known browser, or a new version of one, does not', async () => {
  const email = uniqueEmail('new-browser')
  const first = await signUpFrom(testApp, email, CHROME_155_LINUX)
  await loggedInFrom(testApp, email, CHROME_155_LINUX)
  await loggedInFrom(testApp, email, CHROME_156_LINUX)
  assert.equal(await noticesQueued(email), 0, 'the browser used to sign up is known, in any version')

  const before = Date.now()
  const phone = await loggedInFrom(testApp, email, SAFARI_IPHONE)
  const notice = await mailbox.nth(email, NOTICE_SUBJECT, 0)
  assert.match(notice.text, /Safari/)
  assert.match(notice.text, /iOS/)
  assert.match(notice.text, /127\.0\.0\.1/, 'the address')
  const time = /Time:\s*(.+)/.exec(notice.text)?.[1]?.trim() ?? ''
  const at = Date.parse(time)
  assert.ok(Number.isFinite(at), `the time (${time})`)
  assert.ok(at >= Math.floor(before / 1000) * 1000 && at <= Date.now(), `the time of the log-in (${time})`)
  for (const link of notice.links) {
    const url = new URL(link)
    assert.equal(url.search, '', `no token in a query: ${link}`)
    assert.ok(!/[A-Za-z0-9_-]{20,}/.test(url.pathname), `no token in the path: ${link}`)
  }

  const userId = await userIdOf(testApp, email)
  const recorded = await testApp.db
    .selectFrom('auth_events')
    .select(['browser', 'system'])
    .where('user_id', '=', userId)
    .where('type', '=', 'new_browser')
    .execute()
  assert.deepEqual(recorded, [{ browser: 'Safari', system: 'iOS' }])
  assert.equal((await activity(phone)).events[0]?.type, 'new_browser', 'shown on the page')

  // The phone again: known now. Then another system (Chrome on Windows: same family, new system) is new.
  await loggedInFrom(testApp, email, SAFARI_IPHONE)
  assert.equal(await noticesQueued(email), 1, 'no second notice for the same browser')
  await loggedInFrom(testApp, email, CHROME_WINDOWS)
  const second = await mailbox.nth(email, NOTICE_SUBJECT, 1)
  assert.match(second.text, /Chrome/)
  assert.match(second.text, /Windows/)
  await delay(500)
  assert.equal(mailbox.matching(email, NOTICE_SUBJECT).length, 2, 'two notices in all')
  assert.equal(await noticesQueued(email), 2)
  const types = (await activity(first)).events.map((event) => event.type)
  assert.equal(types.filter((type) => type === 'new_browser').length, 2)
})

test('an account with no earlier log-in gets no notice for its first one, and one for the next new browser', async () => {
  const user = await createTestUser(testApp)
  await loggedInFrom(testApp, user.email, FIREFOX_WINDOWS)
  assert.equal(await noticesQueued(user.email), 0, 'nothing known yet: nothing is new')
  await loggedInFrom(testApp, user.email, SAFARI_IPHONE)
  const notice = await mailbox.nth(user.email, NOTICE_SUBJECT, 0)
  assert.match(notice.text, /Safari/)
  assert.equal(await noticesQueued(user.email), 1)
})
