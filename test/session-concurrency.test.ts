import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Session } from 'fastify'
import { hashSessionId, KyselySessionStore } from '../src/sessions/store.js'
import { Browser } from '../support/browser.js'
import { countRows, signUp, startTestApp, statementsOf, type TestApp } from './helpers/app.js'

const testApp = await startTestApp()

/** A second browser holding the same cookie, as a second tab of one browser would. */
function sameCookie(app: TestApp, browser: Browser): Browser {
  const twin = new Browser(app.url)
  for (const [name, value] of browser.cookies) twin.cookies.set(name, value)
  return twin
}

function sessionId(browser: Browser): string {
  const value = decodeURIComponent(browser.sid ?? '')
  return value.slice(0, value.lastIndexOf('.'))
}

async function forceTouchDue(app: TestApp, browser: Browser): Promise<void> {
  // Make the next request write (the sliding expiry is due), so parallel requests all save.
  const id = hashSessionId(sessionId(browser))
  const row = await app.db.selectFrom('sessions').select('data').where('id', '=', id).executeTakeFirstOrThrow()
  const data = { ...row.data, touchedAt: 0 }
  await app.db
    .updateTable('sessions')
    .set({ data: JSON.stringify(data) })
    .where('id', '=', id)
    .execute()
}

test('parallel requests on one session never log the user out', async () => {
  const { browser, email } = await signUp(testApp)
  for (let round = 0; round < 5; round++) {
    await forceTouchDue(testApp, browser)
    const pages = await Promise.all(Array.from({ length: 20 }, () => sameCookie(testApp, browser).get('/profile')))
    for (const page of pages) {
      assert.equal(page.status, 200, `round ${round}: ${page.status} ${page.location}`)
      assert.ok(page.html.includes(email))
    }
  }
  assert.equal((await browser.get('/profile')).status, 200)
})

test('requests that loaded the session before log-out do not bring it back', async () => {
  for (let round = 0; round < 5; round++) {
    const { browser, email } = await signUp(testApp)
    const user = await testApp.db.selectFrom('users').select('id').where('email', '=', email).executeTakeFirstOrThrow()
    const token = (await browser.get('/profile')).csrfToken
    const stale = sameCookie(testApp, browser)
    await forceTouchDue(testApp, browser)
    // Page views that each want to write (the touch is due), racing the log-out.
    const views = Array.from({ length: 10 }, () => sameCookie(testApp, stale).get('/profile'))
    const logout = browser.post('/logout', { _csrf: token })
    const [loggedOut, ...pages] = await Promise.all([logout, ...views])
    assert.equal(loggedOut?.location, '/', `round ${round}: log-out went home`)
    for (const page of pages) assert.ok(page.status < 500, `round ${round}: status ${page.status}`)
    const rows = await testApp.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()
    assert.deepEqual(rows, [], `round ${round}: no session row of the user survives the log-out`)
    const after = await stale.get('/profile')
    assert.equal(after.location, '/login?next=%2Fprofile', `round ${round}: the old cookie opens nothing`)
  }
})

test('a flash set by one request survives parallel requests that save the same session', async () => {
  const { browser } = await signUp(testApp)
  for (let round = 0; round < 5; round++) {
    const token = (await browser.get('/profile')).csrfToken
    await forceTouchDue(testApp, browser)
    // Requests that save the session (the touch is due) without showing flashes, racing one that sets a flash:
    // a refused sign-up post sets an error flash and redirects.
    const savers = Array.from({ length: 10 }, () => sameCookie(testApp, browser).get('/healthz'))
    const flashing = sameCookie(testApp, browser).post('/signup', {
      _csrf: token,
      email: 'not-an-email',
      password: 'x',
    })
    const [refusal, ...saved] = await Promise.all([flashing, ...savers])
    assert.equal(refusal?.location, '/signup')
    for (const page of saved) assert.equal(page.status, 200)
    const page = await browser.get('/profile')
    assert.ok(
      page.flashes.some((flash) => flash.type === 'error'),
      `round ${round}: the error flash is still there: ${JSON.stringify(page.flashes)}`,
    )
  }
})

test('parallel first visits make one session each, and no 5xx', async () => {
  const before = await countRows(testApp.db, 'sessions')
  const pages = await Promise.all(Array.from({ length: 20 }, () => testApp.browser().get('/login')))
  for (const page of pages) assert.equal(page.status, 200)
  assert.equal(await countRows(testApp.db, 'sessions'), before + 20)
})

// The same races, with the interleaving fixed: two requests' views of one session, driven through the
// app's own store on this file's database.
const store = new KyselySessionStore(
  testApp.db,
  testApp.app.asyncCommitDb,
  { idleMs: 3_600_000, maxMs: 86_400_000 },
  (error) => {
    throw error
  },
)

function load(id: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) =>
    store.get(id, (error, session) => (error ? reject(error) : resolve({ ...(session as object) }))),
  )
}

function save(id: string, session: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) =>
    store.set(id, session as unknown as Session, (error) => (error ? reject(error) : resolve())),
  )
}

async function storedRow(id: string) {
  return testApp.db.selectFrom('sessions').selectAll().where('id', '=', hashSessionId(id)).executeTakeFirst()
}

test('a save by a request that loaded the session earlier keeps what another request wrote since', async () => {
  const { browser } = await signUp(testApp)
  const id = sessionId(browser)
  const first = await load(id)
  const second = await load(id)
  store.markLoaded(first)
  store.markLoaded(second)

  // Each request changes its own session object, as @fastify/session hands the store the same one it loaded.
  first.flash = { error: ['set by the first request'] }
  await save(id, first)
  second.touchedAt = 12345
  await save(id, second)

  const row = await storedRow(id)
  assert.deepEqual(row?.data.flash, { error: ['set by the first request'] }, 'the first request’s flash is kept')
  assert.equal(row?.data.touchedAt, 12345, 'the second request’s change is written')
  assert.equal(row?.data.sessionUser, undefined, 'the user read with the session is never stored')
})

test('a save by a request that loaded the session before log-out does not revive it', async () => {
  const { browser } = await signUp(testApp)
  const id = sessionId(browser)
  const token = (await browser.get('/profile')).csrfToken
  const loadedBeforeLogout = await load(id)
  store.markLoaded(loadedBeforeLogout)

  assert.equal((await browser.post('/logout', { _csrf: token })).location, '/')
  assert.equal(await storedRow(id), undefined, 'log-out deleted the row')
  loadedBeforeLogout.touchedAt = Date.now()
  await save(id, loadedBeforeLogout)

  assert.equal(await storedRow(id), undefined, 'the late save wrote nothing')
})

test('a save that takes the user off a session commits durably; other saves of it do not wait for the disk', async () => {
  const { browser } = await signUp(testApp)
  const id = sessionId(browser)
  const commitsOfSave = async (session: Record<string, unknown>) =>
    (await statementsOf(testApp, () => save(id, session))).map((s) => [s.sql.split(' ')[0], s.commits])
  const touched = await load(id)
  store.markLoaded(touched)
  touched.touchedAt = Date.now()
  assert.deepEqual(await commitsOfSave(touched), [['update', 'async']], 'a touch may be lost: the session ends early')

  const loggedOut = await load(id)
  store.markLoaded(loggedOut)
  delete loggedOut.passport
  assert.deepEqual(await commitsOfSave(loggedOut), [['update', 'durable']], 'losing this write would open access')
  assert.equal((await storedRow(id))?.user_id, null)
})

/** destroy(), with `inside` run from its callback, as @fastify/session's regenerate() runs its save. */
function destroyThen(id: string, inside: () => Promise<void>[]): Promise<void> {
  return new Promise((resolve, reject) =>
    store.destroy(id, (error) => (error ? reject(error) : Promise.all(inside()).then(() => resolve(), reject))),
  )
}

test("only regenerate()'s save of its new, empty session is skipped", async () => {
  const { browser } = await signUp(testApp)
  const userId = (await storedRow(sessionId(browser)))?.user_id
  assert.equal(typeof userId, 'number', 'the signed-up session names its user')
  const stamp = `${process.pid}-${Date.now()}`
  const old = `old-${stamp}`
  await save(old, { flash: { info: ['before'] } })

  await destroyThen(old, () => [
    save(`regenerated-${stamp}`, { flash: { info: ['kept'] } }),
    save(`second-${stamp}`, { flash: { info: ['second'] } }),
  ])
  assert.equal(await storedRow(old), undefined, 'the old row is deleted')
  assert.equal(await storedRow(`regenerated-${stamp}`), undefined, 'the first set inside the callback writes nothing')
  assert.ok(await storedRow(`second-${stamp}`), 'a second set inside the same callback is written')

  await save(old, { flash: {} })
  await destroyThen(old, () => [save(`with-user-${stamp}`, { passport: userId })])
  assert.equal((await storedRow(`with-user-${stamp}`))?.user_id, userId, 'a session with a user is written')

  await save(`later-${stamp}`, { flash: {} })
  assert.ok(await storedRow(`later-${stamp}`), 'a set outside a destroy callback is written')
})

test('a brand-new session is inserted as a whole', async () => {
  const id = `new-session-${process.pid}-${Date.now()}`
  await save(id, { cookie: { expires: new Date(Date.now() + 60_000).toISOString() }, flash: { info: ['hello'] } })
  const row = await storedRow(id)
  assert.deepEqual(row?.data.flash, { info: ['hello'] })
})

test('an anonymous session whose delete waits for its replacement goes in the statement that first writes it', async () => {
  const stamp = `${process.pid}-${Date.now()}`
  const old = `deferred-${stamp}`
  await save(old, { flash: {} })
  store.deferToNewSession(old, { replaceRow: true })
  // regenerate(): the destroy, then the new session's set from inside its callback (skipped, see above).
  const replacement: Record<string, unknown> = { flash: {} }
  await destroyThen(old, () => [save(`replacement-${stamp}`, replacement)])
  assert.ok(await storedRow(old), 'the old row waits for the replacement')
  assert.equal(await storedRow(`replacement-${stamp}`), undefined, 'nothing is written yet')
  replacement.authAt = Date.now()
  await save(`replacement-${stamp}`, replacement)
  assert.equal(await storedRow(old), undefined, 'the old row went with the first write')
  assert.equal((await storedRow(`replacement-${stamp}`))?.data.authAt, replacement.authAt)
  // Later writes of the new session are plain ones.
  replacement.touchedAt = 1
  await save(`replacement-${stamp}`, replacement)
  assert.equal((await storedRow(`replacement-${stamp}`))?.data.touchedAt, 1)
})

test('a deferred delete still happens when no new session takes the row over, or when it is withdrawn', async () => {
  const stamp = `${process.pid}-${Date.now()}`
  // A destroy whose callback writes no new session (not regenerate after all): the row is deleted on its own.
  const lone = `deferred-lone-${stamp}`
  await save(lone, { flash: {} })
  store.deferToNewSession(lone, { replaceRow: true })
  await destroyThen(lone, () => [])
  const deadline = Date.now() + 5_000
  while ((await storedRow(lone)) !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  assert.equal(await storedRow(lone), undefined, 'deleted without a replacement')

  // Withdrawn before the destroy (regenerate never reached the store): destroy deletes it as usual.
  const withdrawn = `deferred-withdrawn-${stamp}`
  await save(withdrawn, { flash: {} })
  store.deferToNewSession(withdrawn, { replaceRow: true })()
  await destroyThen(withdrawn, () => [save(`after-withdrawn-${stamp}`, { flash: {} })])
  assert.equal(await storedRow(withdrawn), undefined, 'deleted by the destroy itself')
})
