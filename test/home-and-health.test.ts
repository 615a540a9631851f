import assert from 'node:assert/strict'
import { test } from 'node:test'
import { countRows, signUp, startTestApp } from './helpers/app.js'

const testApp = await startTestApp()

test('an anonymous visitor sees the home page with links to log in and sign up', async () => {
  const page = await testApp.browser().get('/')
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
  assert.match(page.html, /href="\/login"/)
  assert.match(page.html, /href="\/signup"/)
})

test('reading / and /healthz creates no session row and sends no cookie', async () => {
  const before = await countRows(testApp.db, 'sessions')
  const browser = testApp.browser()
  for (const path of ['/', '/healthz', '/', '/healthz']) {
    const page = await browser.get(path)
    assert.equal(page.status, 200)
    assert.deepEqual(page.setCookies, [], `${path} sent a cookie`)
  }
  assert.equal(await countRows(testApp.db, 'sessions'), before)
})

test('/healthz answers 200 {"status":"ok"} while the database answers', async () => {
  const page = await testApp.browser().get('/healthz', { accept: 'application/json' })
  assert.equal(page.status, 200)
  assert.deepEqual(page.json(), { status: 'ok' })
})

test('the home page names a logged-in user', async () => {
  const { browser, email } = await signUp(testApp)
  const page = await browser.get('/')
  assert.equal(page.status, 200)
  assert.ok(page.html.includes(email), 'the home page shows the email')
  assert.match(page.html, /action="\/logout"/)
})

test('an unknown page is a 404 page, or 404 JSON for JSON clients', async () => {
  const browser = testApp.browser()
  const html = await browser.get('/no-such-page')
  assert.equal(html.status, 404)
  assert.match(html.html, /Page not found/)
  const json = await browser.get('/no-such-page', { accept: 'application/json' })
  assert.equal(json.status, 404)
  assert.deepEqual(json.json(), { error: 'Not found' })
})
