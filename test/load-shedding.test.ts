import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { loadConfig } from '../src/config.js'
import type { Browser } from '../support/browser.js'
import { startTestApp } from './helpers/app.js'

// The app runs in this process, so blocking this event loop overloads it.
function blockEventLoop(ms: number): void {
  const end = Date.now() + ms
  while (Date.now() < end) {
    // busy on purpose
  }
}

/** Polls GET / for up to 15 s until it is answered 200. */
async function answersNormally(browser: Browser): Promise<boolean> {
  for (let attempt = 0; attempt < 60; attempt++) {
    if ((await browser.get('/')).status === 200) return true
    await sleep(250)
  }
  return false
}

test('an overloaded service answers 503 with Retry-After at once, then recovers', async () => {
  const testApp = await startTestApp({ OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '40' })
  const browser = testApp.browser()
  // Start from a service that is not overloaded (a busy test machine can lag for a moment after start).
  assert.ok(await answersNormally(browser), 'the service answers normally before the overload')

  // A sustained overload: the event loop is busy 400 ms out of every 450.
  const hog = setInterval(() => blockEventLoop(400), 450)
  let shed: Awaited<ReturnType<Browser['get']>>
  let json: Awaited<ReturnType<Browser['get']>>
  let answeredInMs: number
  try {
    await sleep(1500)
    const started = Date.now()
    shed = await browser.get('/')
    answeredInMs = Date.now() - started
    json = await browser.get('/profile', { accept: 'application/json' })
  } finally {
    clearInterval(hog)
  }
  assert.equal(shed.status, 503, `status ${shed.status}`)
  assert.equal(shed.headers.get('retry-after'), '5')
  assert.match(shed.html, /very busy/)
  assert.ok(answeredInMs < 1000, `answered at once, not queued (${answeredInMs} ms)`)
  assert.equal(json.status, 503)

  assert.ok(await answersNormally(browser), 'the service answers normally again once the lag is gone')
  assert.equal(
    testApp.logs.filter((line) => line.msg === 'request failed').length,
    0,
    'shed requests are not logged one by one as failures',
  )
})

test('the load-shedding thresholds are configurable, and 0 turns a check off', () => {
  assert.equal(loadConfig({}).overload.maxEventLoopDelayMs, 1000)
  assert.equal(loadConfig({ OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0' }).overload.maxEventLoopDelayMs, 0)
  assert.equal(loadConfig({ OVERLOAD_MAX_HEAP_MB: '512' }).overload.maxHeapMb, 512)
  assert.throws(() => loadConfig({ OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: 'soon' }), /OVERLOAD_MAX_EVENT_LOOP_DELAY_MS/)
})
