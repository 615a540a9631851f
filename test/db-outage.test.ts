import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { signUp, startTestApp } from './helpers/app.js'
import { startThrowawayPostgres, throwawayPostgresUnavailable } from './helpers/postgres-server.js'

const unavailable = throwawayPostgresUnavailable()
if (unavailable) console.log(`# db-outage tests skipped: ${unavailable}`)

test('a database outage answers 503, logs once, and heals by itself', { skip: unavailable ?? false }, async (t) => {
  const server = await startThrowawayPostgres()
  after(() => server.remove())
  const testApp = await startTestApp({ DATABASE_URL: server.url })
  const { browser } = await signUp(testApp)
  assert.equal((await browser.get('/profile')).status, 200)

  // Stop the server with requests in flight: connections in use when it goes away must not crash the process.
  const inFlight = Array.from({ length: 30 }, () => browser.get('/profile').catch((error: Error) => error))
  await server.stop()
  for (const result of await Promise.all(inFlight)) {
    if (!(result instanceof Error)) assert.ok(result.status === 200 || result.status === 503, `status ${result.status}`)
  }

  const page = await browser.get('/profile')
  assert.equal(page.status, 503, page.html.slice(0, 300))
  assert.equal(page.headers.get('retry-after'), '5')
  assert.match(page.html, /Temporarily unavailable/)
  assert.doesNotMatch(page.html, /Not logged in/, 'without its session the page does not claim who is logged in')
  // The 503 page keeps its look: assets never read the session, so the cookie costs them nothing.
  const stylesheet = await browser.get('/assets/site.css', { accept: 'text/css' })
  assert.equal(stylesheet.status, 200, 'the stylesheet loads during the outage, cookie and all')
  assert.match(stylesheet.headers.get('content-type') ?? '', /^text\/css/)
  const json = await browser.get('/profile', { accept: 'application/json' })
  assert.equal(json.status, 503)
  assert.equal(typeof (json.json() as { error: unknown }).error, 'string')
  const health = await browser.get('/healthz', { accept: 'application/json' })
  assert.equal(health.status, 503)
  assert.deepEqual(health.json(), { status: 'unavailable' })
  const login = await testApp.browser().get('/login')
  assert.equal(login.status, 503, 'a page that needs a session answers 503 too')
  assert.match(login.html, /Temporarily unavailable/, 'as the 503 page, not a bare fallback answer')
  for (let i = 0; i < 5; i++) assert.equal((await browser.get('/profile')).status, 503)

  const outageLines = testApp.logs.filter((line) => /^database unavailable/.test(String(line.msg)))
  assert.equal(outageLines.length, 1, `one log line for the outage, got ${outageLines.length}`)
  assert.equal(
    testApp.logs.filter((line) => Number(line.level) >= 50 && line.msg === 'request failed').length,
    0,
    'no per-request error lines during the outage',
  )

  await server.start()
  const startedAt = Date.now()
  let healed = false
  while (Date.now() - startedAt < 5000) {
    if ((await browser.get('/healthz')).status === 200) {
      healed = true
      break
    }
    await sleep(100)
  }
  const seconds = (Date.now() - startedAt) / 1000
  t.diagnostic(`healthy again ${seconds.toFixed(2)} s after the server came back`)
  assert.ok(healed, 'healthy again within 5 s, without a restart')
  const back = await browser.get('/profile')
  assert.equal(back.status, 200, 'the session outlived the outage')
  await sleep(1200)
  assert.equal(testApp.logs.filter((line) => line.msg === 'database available again').length, 1)
})
