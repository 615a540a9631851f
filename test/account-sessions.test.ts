// /account/sessions (issue #25): the account's live sessions, each named by a handle that opens nothing, with
// the browser and system of its log-in, its client address (as TRUST_PROXY decides it), when it began and when
// it was last active; ending one, or all the others; bad input; and what a page view costs.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Signer } from '@fastify/cookie'
import { sql } from 'kysely'
import { hashSessionId } from '../src/sessions/store.js'
import { Browser, type Page } from '../support/browser.js'
import { createTestUser, PASSWORD, startTestApp, type TestApp } from './helpers/app.js'

// The proxy in front is loopback: the client address comes from X-Forwarded-For.
const testApp = await startTestApp({ TRUST_PROXY: '127.0.0.1' })

const CHROME_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/155.0.0.0 Safari/537.36'
const SAFARI_IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1'
const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0'

const SESSION_ENDED = 'That session has been logged out.'
const OTHERS_ENDED = 'Your other sessions have been logged out.'

/** A browser that sends its own User-Agent (and, behind the trusted proxy, its own client address). */
class DeviceBrowser extends Browser {
  constructor(
    baseUrl: string,
    readonly userAgent: string,
    readonly forwardedFor?: string,
  ) {
    super(baseUrl)
  }

  override request(method: string, path: string, options: Parameters<Browser['request']>[2] = {}): Promise<Page> {
    const device: Record<string, string> = { 'user-agent': this.userAgent }
    if (this.forwardedFor) device['x-forwarded-for'] = this.forwardedFor
    return super.request(method, path, { ...options, headers: { ...device, ...options.headers } })
  }
}

/** Logs `email` in through the form from a browser of its own. */
async function logInFrom(app: TestApp, email: string, userAgent: string, forwardedFor?: string) {
  const browser = new DeviceBrowser(app.url, userAgent, forwardedFor)
  await browser.get('/login')
  const response = await browser.post('/login', { email, password: PASSWORD })
  assert.equal(response.status, 303, 'the log-in succeeds')
  assert.equal(response.location, '/profile')
  return browser
}

interface ListedSession {
  handle: string
  current: boolean
  /** The element's inner HTML. */
  html: string
  /** Its <time datetime> values, in order: when it began, when last active. */
  times: string[]
}

function listedSessions(page: Page): ListedSession[] {
  const listed = [...page.html.matchAll(/<li\b([^>]*\bdata-session="([^"]*)"[^>]*)>([\s\S]*?)<\/li>/g)].map(
    (match) => ({
      handle: match[2] ?? '',
      current: /\sdata-current(?=[\s=>]|$)/.test(match[1] ?? ''),
      html: match[3] ?? '',
      times: [...(match[3] ?? '').matchAll(/<time datetime="([^"]*)"/g)].map((time) => time[1] ?? ''),
    }),
  )
  assert.equal(
    (page.html.match(/data-session=/g) ?? []).length,
    listed.length,
    'every data-session element is read as one',
  )
  return listed
}

async function sessionsPage(browser: Browser): Promise<{ page: Page; sessions: ListedSession[] }> {
  const page = await browser.get('/account/sessions')
  assert.equal(page.status, 200)
  return { page, sessions: listedSessions(page) }
}

/** The other session (not current) whose element names `text`. */
function handleNaming(sessions: ListedSession[], text: string): string {
  const found = sessions.filter((session) => !session.current && session.html.includes(text))
  assert.equal(found.length, 1, `one other session names ${text}`)
  return found[0]?.handle ?? ''
}

async function liveSessionsOf(userId: number): Promise<number> {
  const row = await testApp.db
    .selectFrom('sessions')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('user_id', '=', userId)
    .where('expires_at', '>', new Date())
    .executeTakeFirstOrThrow()
  return Number(row.count)
}

/** The session id inside a browser's signed cookie, and the stored id (its digest). */
function sessionIdsOf(browser: Browser): { sessionId: string; storedId: string; signature: string } {
  const value = decodeURIComponent(browser.sid ?? '')
  const dot = value.lastIndexOf('.')
  assert.ok(dot > 0, 'a signed session cookie')
  const sessionId = value.slice(0, dot)
  return { sessionId, storedId: hashSessionId(sessionId), signature: value.slice(dot + 1) }
}

async function isLoggedIn(browser: Browser): Promise<boolean> {
  const page = await browser.get('/profile')
  if (page.status === 200) return true
  assert.equal(page.status, 303, `a logged-out /profile redirects (got ${page.status})`)
  assert.equal(page.location, '/login?next=%2Fprofile')
  return false
}

function assertIsoNear(value: string, from: number, to: number, what: string): number {
  const time = Date.parse(value)
  assert.ok(Number.isFinite(time), `${what}: a valid date (${value})`)
  assert.equal(new Date(time).toISOString(), value, `${what}: ISO 8601 in UTC`)
  assert.ok(time >= from - 1_000 && time <= to + 1_000, `${what}: ${value} lies within the test`)
  return time
}

function assertSuccessFlash(page: Page, message: string): void {
  assert.deepEqual(page.flashes, [{ type: 'success', message }])
}

test('anonymous visitors are sent to log in', async () => {
  const anonymous = testApp.browser()
  const page = await anonymous.get('/account/sessions')
  assert.equal(page.status, 303)
  assert.equal(page.location, '/login?next=%2Faccount%2Fsessions')
  await anonymous.get('/login')
  const end = await anonymous.post('/account/sessions/end', { session: 'A'.repeat(22) })
  assert.ok(end.status < 500 && end.status !== 200, `an anonymous post ends nothing (got ${end.status})`)
})

test('the page lists exactly the live sessions of the user, with browser, system, address and times', async () => {
  const started = Date.now()
  const user = await createTestUser(testApp)
  const desktop = await logInFrom(testApp, user.email, CHROME_LINUX, '203.0.113.10')
  const phone = await logInFrom(testApp, user.email, SAFARI_IPHONE, '198.51.100.20')

  // Sessions that must not appear: another user's, an anonymous visitor's, and an expired one of this user.
  const other = await createTestUser(testApp)
  await logInFrom(testApp, other.email, FIREFOX_WINDOWS, '192.0.2.77')
  const visitor = new DeviceBrowser(testApp.url, FIREFOX_WINDOWS, '192.0.2.78')
  assert.equal((await visitor.get('/login')).status, 200)
  assert.ok(visitor.sid, 'the visitor has an (anonymous) session')
  await testApp.db
    .insertInto('sessions')
    .values({
      id: hashSessionId(`expired-session-of-${user.id}`),
      user_id: user.id,
      data: JSON.stringify({
        passport: user.id,
        authAt: started - 86_400_000,
        touchedAt: started - 3_600_000,
        loginIp: '192.0.2.99',
        loginUserAgent: FIREFOX_WINDOWS,
      }),
      expires_at: new Date(started - 60_000),
    })
    .execute()

  const { page, sessions } = await sessionsPage(desktop)
  const finished = Date.now()
  assert.equal(sessions.length, 2, 'two live sessions, one element each')
  assert.ok(!page.html.includes('Firefox'), "no other user's, visitor's or expired session")
  for (const address of ['192.0.2.77', '192.0.2.78', '192.0.2.99']) assert.ok(!page.html.includes(address), address)

  const current = sessions.filter((session) => session.current)
  assert.equal(current.length, 1, 'exactly one carries data-current')
  const mine = current[0]
  const theirs = sessions.find((session) => !session.current)
  assert.ok(mine && theirs)
  assert.match(mine.html, /Chrome/)
  assert.match(mine.html, /Linux/)
  assert.match(mine.html, /203\.0\.113\.10/)
  assert.ok(!/Safari|iOS|198\.51\.100\.20/.test(mine.html), 'the current session names only its own browser')
  assert.match(theirs.html, /Safari/)
  assert.match(theirs.html, /iOS/)
  assert.match(theirs.html, /198\.51\.100\.20/)
  assert.ok(!/Chrome|Linux/.test(theirs.html))
  assert.notEqual(mine.handle, theirs.handle)

  for (const session of sessions) {
    assert.equal(session.times.length, 2, 'a <time datetime> for when it began and when it was last active')
    const [began, lastActive] = session.times.map((value, index) =>
      assertIsoNear(value, started, finished, `${session.handle} time ${index}`),
    )
    assert.ok((lastActive ?? 0) >= (began ?? 0), 'last active is not before it began')
  }
  assert.ok(Date.parse(theirs.times[0] ?? '') >= Date.parse(mine.times[0] ?? ''), 'the phone logged in later')

  // Only the other session gets a form that ends it, plus the one that ends all others.
  assert.ok(theirs.html.includes(`name="session" value="${theirs.handle}"`), 'a form ends the other session')
  assert.ok(!mine.html.includes('name="session"'), 'no form ends the current session')
  assert.match(page.html, /action="\/account\/sessions\/end-others"/)

  // The phone sees the same two sessions, the other way round, under the same handles.
  const fromPhone = await sessionsPage(phone)
  assert.deepEqual(
    fromPhone.sessions.map((session) => [session.handle, session.current]).sort(),
    [
      [mine.handle, false],
      [theirs.handle, true],
    ].sort(),
  )
})

test('without a trusted proxy, X-Forwarded-For is not the address shown', async () => {
  // An app of its own that trusts no proxy (TRUST_PROXY unset).
  const direct = await startTestApp()
  const user = await createTestUser(direct)
  const browser = await logInFrom(direct, user.email, CHROME_LINUX, '203.0.113.66')
  const { sessions } = await sessionsPage(browser)
  assert.equal(sessions.length, 1)
  assert.ok(!sessions[0]?.html.includes('203.0.113.66'), 'a spoofed header is not believed')
  assert.match(sessions[0]?.html ?? '', /127\.0\.0\.1/)
  await direct.close()
})

test('ending the other session logs it out at once; posted twice, the second says it is gone', async () => {
  const user = await createTestUser(testApp)
  const desktop = await logInFrom(testApp, user.email, CHROME_LINUX)
  const phone = await logInFrom(testApp, user.email, SAFARI_IPHONE)
  const { sessions } = await sessionsPage(desktop)
  const phoneHandle = handleNaming(sessions, 'Safari')

  const response = await desktop.post('/account/sessions/end', { session: phoneHandle })
  assert.equal(response.status, 303)
  assert.equal(response.location, '/account/sessions')
  const after = await desktop.follow(response)
  assertSuccessFlash(after, SESSION_ENDED)
  const left = listedSessions(after)
  assert.equal(left.length, 1)
  assert.equal(left[0]?.current, true)

  assert.equal(await isLoggedIn(phone), false, 'the phone is logged out at once')
  assert.equal(await isLoggedIn(desktop), true, 'this session goes on')
  assert.equal(await liveSessionsOf(user.id), 1)

  // The same form posted again (a double click, a second tab): refused calmly, nothing else ends.
  await desktop.get('/account/sessions')
  const again = await desktop.post('/account/sessions/end', { session: phoneHandle })
  assert.equal(again.status, 303)
  const againPage = await desktop.follow(again)
  assert.equal(againPage.flashes.length, 1)
  assert.equal(againPage.flashes[0]?.type, 'error')
  assert.equal(await isLoggedIn(desktop), true)
})

test('ending all other sessions leaves this one, and no other user is touched', async () => {
  const user = await createTestUser(testApp)
  const desktop = await logInFrom(testApp, user.email, CHROME_LINUX)
  const phone = await logInFrom(testApp, user.email, SAFARI_IPHONE)
  const laptop = await logInFrom(testApp, user.email, FIREFOX_WINDOWS)
  const other = await createTestUser(testApp)
  const bystander = await logInFrom(testApp, other.email, CHROME_LINUX)
  assert.equal(listedSessions(await desktop.get('/account/sessions')).length, 3)

  const response = await desktop.post('/account/sessions/end-others', {})
  assert.equal(response.status, 303)
  assert.equal(response.location, '/account/sessions')
  const after = await desktop.follow(response)
  assertSuccessFlash(after, OTHERS_ENDED)
  const left = listedSessions(after)
  assert.equal(left.length, 1)
  assert.equal(left[0]?.current, true)
  assert.ok(!after.html.includes('action="/account/sessions/end-others"'), 'nothing else to end')

  assert.equal(await isLoggedIn(phone), false)
  assert.equal(await isLoggedIn(laptop), false)
  assert.equal(await isLoggedIn(desktop), true)
  assert.equal(await isLoggedIn(bystander), true, "another user's session is untouched")
  assert.equal(await liveSessionsOf(user.id), 1)

  // Posted twice: nothing left to end, still no harm.
  const again = await desktop.post('/account/sessions/end-others', {})
  assert.equal(again.status, 303)
  const againPage = await desktop.follow(again)
  assert.ok(
    againPage.flashes.every((flash) => flash.type !== 'error'),
    JSON.stringify(againPage.flashes),
  )
  assert.equal(await isLoggedIn(desktop), true)
})

test('bad input ends no session: malformed, foreign, gone or own handles, arrays, no CSRF token', async () => {
  const user = await createTestUser(testApp)
  const desktop = await logInFrom(testApp, user.email, CHROME_LINUX)
  const phone = await logInFrom(testApp, user.email, SAFARI_IPHONE)
  const other = await createTestUser(testApp)
  const stranger = await logInFrom(testApp, other.email, FIREFOX_WINDOWS)

  // A handle that was real once: a session since logged out.
  const gone = await logInFrom(testApp, user.email, FIREFOX_WINDOWS)
  const goneHandle = handleNaming((await sessionsPage(desktop)).sessions, 'Firefox')
  const goneProfile = await gone.get('/profile')
  assert.equal((await gone.post('/logout', { _csrf: goneProfile.csrfToken })).status, 303)

  const { sessions } = await sessionsPage(desktop)
  assert.equal(sessions.length, 2)
  const ownHandle = sessions.find((session) => session.current)?.handle ?? ''
  const phoneHandle = handleNaming(sessions, 'Safari')
  const strangerHandle = listedSessions(await stranger.get('/account/sessions')).find((s) => s.current)?.handle ?? ''
  assert.ok(ownHandle && strangerHandle)
  const phoneIds = sessionIdsOf(phone)

  const bodies: Array<[string, Record<string, string | string[] | null>]> = [
    ['a malformed handle', { session: 'not a handle' }],
    ['an empty handle', { session: '' }],
    ['no handle at all', {}],
    ['a handle one character short', { session: phoneHandle.slice(0, -1) }],
    ['a handle with a character outside its alphabet', { session: `${phoneHandle.slice(0, -1)}!` }],
    ['a very long handle', { session: phoneHandle.repeat(500) }],
    ['the session id instead of the handle', { session: phoneIds.sessionId }],
    ['the stored id instead of the handle', { session: phoneIds.storedId }],
    ["another user's handle", { session: strangerHandle }],
    ['the handle of a session already gone', { session: goneHandle }],
    ["this session's own handle", { session: ownHandle }],
    ['an array', { session: [phoneHandle, phoneHandle] }],
    ['an array with the handle and junk', { session: [phoneHandle, 'x'] }],
    ['no CSRF token', { session: phoneHandle, _csrf: null }],
    ['a wrong CSRF token', { session: phoneHandle, _csrf: 'not-the-token' }],
  ]
  for (const [what, body] of bodies) {
    await desktop.get('/account/sessions')
    const response = await desktop.post('/account/sessions/end', body)
    assert.ok(response.status < 500, `${what}: never a 5xx (got ${response.status})`)
    if (response.status >= 300 && response.status < 400) {
      assert.equal(response.location, '/account/sessions', what)
      const page = await desktop.follow(response)
      assert.ok(page.flashes.length > 0, `${what}: says why`)
      assert.ok(
        page.flashes.every((flash) => flash.type === 'error'),
        `${what}: an error flash, got ${JSON.stringify(page.flashes)}`,
      )
    } else {
      assert.ok(response.status >= 400, `${what}: a 4xx or an error flash (got ${response.status})`)
    }
    assert.equal(await liveSessionsOf(user.id), 2, `${what}: no session ended`)
    assert.equal(await isLoggedIn(phone), true, `${what}: the phone is still logged in`)
    assert.equal(await isLoggedIn(desktop), true, `${what}: this session is still logged in`)
    assert.equal(await isLoggedIn(stranger), true, `${what}: the other user is still logged in`)
  }

  // Ending all others needs the token too.
  for (const token of [null, 'not-the-token']) {
    const response = await desktop.post('/account/sessions/end-others', { _csrf: token })
    assert.equal(response.status, 403, `end-others with token ${token}`)
    assert.equal(await liveSessionsOf(user.id), 2)
  }
  // And nobody's session ends by a post from an anonymous visitor, even one that has a form's token.
  const visitor = testApp.browser()
  await visitor.get('/login')
  for (const path of ['/account/sessions/end', '/account/sessions/end-others']) {
    const response = await visitor.post(path, { session: phoneHandle })
    assert.ok(response.status < 500 && response.status !== 200, `${path} anonymous: ${response.status}`)
  }
  assert.equal(await liveSessionsOf(user.id), 2)
  assert.equal(await isLoggedIn(phone), true)
})

test('a handle opens nothing: it is neither the session id nor the stored id, and no cookie made of it works', async () => {
  const user = await createTestUser(testApp)
  const desktop = await logInFrom(testApp, user.email, CHROME_LINUX)
  const phone = await logInFrom(testApp, user.email, SAFARI_IPHONE)
  const { page, sessions } = await sessionsPage(desktop)
  const phoneHandle = handleNaming(sessions, 'Safari')
  const ownHandle = sessions.find((session) => session.current)?.handle ?? ''
  const phoneIds = sessionIdsOf(phone)
  const ownIds = sessionIdsOf(desktop)

  for (const [handle, ids] of [
    [phoneHandle, phoneIds],
    [ownHandle, ownIds],
  ] as const) {
    assert.notEqual(handle, ids.sessionId)
    assert.notEqual(handle, ids.storedId)
    assert.ok(!ids.sessionId.includes(handle) && !ids.storedId.includes(handle), 'not a piece of either id')
    assert.ok(!page.html.includes(ids.sessionId), 'the page shows no session id')
    assert.ok(!page.html.includes(ids.storedId), 'the page shows no stored id')
    const row = await testApp.db.selectFrom('sessions').select('id').where('id', '=', handle).executeTakeFirst()
    assert.equal(row, undefined, 'no row is stored under a handle')
  }

  const signer = new Signer(testApp.config.session.secrets, 'sha256')
  const cookies = [
    phoneHandle,
    `${phoneHandle}.${phoneIds.signature}`,
    encodeURIComponent(`${phoneHandle}.${phoneIds.signature}`),
    // Signed with the service's own secret: a valid cookie, naming a session id that is the handle.
    encodeURIComponent(signer.sign(phoneHandle)),
    encodeURIComponent(signer.sign(hashSessionId(phoneHandle))),
  ]
  for (const cookie of cookies) {
    const forger = testApp.browser()
    forger.cookies.set('sid', cookie)
    const profile = await forger.get('/profile')
    assert.equal(profile.status, 303, `sid=${cookie} opens no session`)
    assert.equal(profile.location, '/login?next=%2Fprofile')
    const list = await forger.get('/account/sessions')
    assert.equal(list.status, 303)
  }
  assert.equal(await isLoggedIn(phone), true, 'the real session is unharmed')
})

test('a page view costs one round trip: /profile stays at one statement, also after /account/sessions', async () => {
  const user = await createTestUser(testApp)
  const desktop = await logInFrom(testApp, user.email, CHROME_LINUX)
  await logInFrom(testApp, user.email, SAFARI_IPHONE)
  // The first views after log-in may write once (a CSRF secret for the log-out form).
  await desktop.get('/profile')
  await desktop.get('/profile')

  const statementsOf = async (path: string) => {
    const before = testApp.queries.length
    const page = await desktop.get(path)
    assert.equal(page.status, 200, path)
    return testApp.queries.slice(before)
  }
  const assertOneRead = (statements: string[], what: string) => {
    assert.equal(statements.length, 1, `${what}: one round trip, got ${statements.join(' | ')}`)
    assert.match(statements[0] ?? '', /^select .*from "sessions" .*join "users"/, `${what}: the session read`)
  }
  assertOneRead(await statementsOf('/profile'), '/profile')

  // The sessions page itself: the session read and its own list, and no write once its form secret exists.
  await statementsOf('/account/sessions')
  const list = await statementsOf('/account/sessions')
  assert.equal(list.length, 2, `/account/sessions: two reads, got ${list.join(' | ')}`)
  assert.ok(
    list.every((statement) => /^select /.test(statement)),
    `/account/sessions writes nothing: ${list.join(' | ')}`,
  )

  assertOneRead(await statementsOf('/profile'), '/profile after /account/sessions')
  assertOneRead(await statementsOf('/profile'), '/profile again')
})

/** The stored last-activity stamp (epoch ms) of a browser's session. */
async function touchedAtOf(browser: Browser): Promise<number> {
  const row = await testApp.db
    .selectFrom('sessions')
    .select('data')
    .where('id', '=', sessionIdsOf(browser).storedId)
    .executeTakeFirstOrThrow()
  return Number((row.data as Record<string, unknown>).touchedAt)
}

test('"last active" is written at most once a minute, and shown as written', async () => {
  const user = await createTestUser(testApp)
  const desktop = await logInFrom(testApp, user.email, CHROME_LINUX)
  const phone = await logInFrom(testApp, user.email, SAFARI_IPHONE)
  await desktop.get('/account/sessions')
  // The phone's first pages after log-in may write once (a CSRF secret for their forms).
  await phone.get('/profile')
  await phone.get('/account/sessions')
  const stamped = await touchedAtOf(phone)

  // Views within the minute: no write at all.
  const sessionWrites = (from: number) =>
    testApp.queries.slice(from).filter((statement) => /^(insert into|update|delete from|with) /.test(statement))
  const before = testApp.queries.length
  for (const path of ['/profile', '/account/sessions', '/profile']) assert.equal((await phone.get(path)).status, 200)
  assert.deepEqual(sessionWrites(before), [], 'two views within a minute do not write')
  assert.equal(await touchedAtOf(phone), stamped)

  const shown = () =>
    sessionsPage(desktop).then(({ sessions }) => {
      const phoneSession = sessions.find((session) => session.html.includes('Safari'))
      return phoneSession?.times[1]
    })
  assert.equal(await shown(), new Date(stamped).toISOString(), 'last active is the stored stamp')

  // A minute later (the stamp moved back 61 s): the next view writes once, the one after does not.
  const backdated = stamped - 61_000
  await sql`update sessions set data = jsonb_set(data, '{touchedAt}', to_jsonb(${backdated}::bigint))
    where id = ${sessionIdsOf(phone).storedId}`.execute(testApp.db)
  assert.equal(await shown(), new Date(backdated).toISOString())
  const beforeTouch = testApp.queries.length
  const viewed = Date.now()
  assert.equal((await phone.get('/profile')).status, 200)
  const writes = sessionWrites(beforeTouch)
  assert.equal(writes.length, 1, `one write for the minute: ${writes.join(' | ')}`)
  assert.match(writes[0] ?? '', /^update "sessions"/)
  const touched = await touchedAtOf(phone)
  assert.ok(touched >= viewed - 1_000 && touched <= Date.now(), 'last active moved to the view')
  assert.equal(await shown(), new Date(touched).toISOString())

  const beforeNext = testApp.queries.length
  assert.equal((await phone.get('/profile')).status, 200)
  assert.deepEqual(sessionWrites(beforeNext), [], 'and not again within the minute')
})

test('the current session, back after a long pause, shows itself active now, as the view writes it', async () => {
  const user = await createTestUser(testApp)
  const desktop = await logInFrom(testApp, user.email, CHROME_LINUX)
  await desktop.get('/account/sessions')
  const twoHoursAgo = Date.now() - 2 * 3_600_000
  await sql`update sessions set data = jsonb_set(data, '{touchedAt}', to_jsonb(${twoHoursAgo}::bigint))
    where id = ${sessionIdsOf(desktop).storedId}`.execute(testApp.db)
  const viewed = Date.now()
  const { sessions } = await sessionsPage(desktop)
  const current = sessions.find((session) => session.current)
  assert.ok(current)
  const lastActive = assertIsoNear(current.times[1] ?? '', viewed, Date.now(), 'last active')
  assert.ok(lastActive >= viewed - 1_000, `this very view is activity, not ${current.times[1]}`)
  assert.equal(current.times[1], new Date(await touchedAtOf(desktop)).toISOString(), 'as stored by this view')
})

test('what the browser sends (User-Agent, forwarded address) is shown as text, never as markup', async () => {
  const user = await createTestUser(testApp)
  const odd = await logInFrom(testApp, user.email, 'Evil<b>Browser</b>/1.0 (<i>OS</i>)', '<i id="ip">x</i>')
  for (const path of ['/account/sessions', '/account/activity']) {
    const page = await odd.get(path)
    assert.equal(page.status, 200, path)
    assert.ok(
      !page.html.includes('<b>Browser</b>') && !page.html.includes('<i id="ip">'),
      `${path}: no markup injected`,
    )
  }
  const { sessions } = await sessionsPage(odd)
  assert.match(sessions[0]?.html ?? '', /Evil&lt;b&gt;Browser/, 'the browser named as text')
})
