import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createTestUser, startTestApp, uniqueEmail } from './helpers/app.js'

// Throttling would answer before any hashing; this file is about the hashing alone.
const testApp = await startTestApp({ LOGIN_MAX_FAILURES: '1000' })

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

test('a log-in with an unknown email takes as long as one with a wrong password', async (t) => {
  const user = await createTestUser(testApp)
  const browser = testApp.browser()
  await browser.get('/login')
  const timePost = async (email: string): Promise<number> => {
    const started = performance.now()
    const response = await browser.post('/login', { email, password: 'wrong-password-4471' })
    const elapsed = performance.now() - started
    assert.equal(response.location, '/login', `refused like any failed log-in (status ${response.status})`)
    return elapsed
  }
  // Warm-up, not measured: first requests pay for lazy set-up (the unknown-email path's reference hash included).
  await timePost(uniqueEmail('nobody'))
  await timePost(user.email)

  const unknown: number[] = []
  const wrongPassword: number[] = []
  for (let round = 0; round < 15; round++) {
    unknown.push(await timePost(uniqueEmail('nobody')))
    wrongPassword.push(await timePost(user.email))
  }
  const unknownMedian = median(unknown)
  const wrongMedian = median(wrongPassword)
  const ratio = unknownMedian / wrongMedian
  const summary = `unknown email median ${unknownMedian.toFixed(1)} ms, wrong password median ${wrongMedian.toFixed(1)} ms, ratio ${ratio.toFixed(2)}`
  t.diagnostic(summary)
  assert.ok(ratio >= 0.67 && ratio <= 1.5, `the two refusals take about as long: ${summary}`)
  assert.ok(unknownMedian >= 5, `an unknown email is really hashed against: ${summary}`)
})
