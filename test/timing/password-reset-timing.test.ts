// Asking for a reset link takes as long for an email without an account as for one with: the request does the
// same work either way (one statement; the message is made for both, queued only for one), and the sending
// happens later, in the worker. Run alone, after the other files, like the log-in comparisons.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createTestUser, startTestApp, uniqueEmail } from '../helpers/app.js'

// An SMTP server nobody listens on: the worker's attempts fail at once and wait out a long retry, so the
// comparison measures the request, not deliveries running beside it.
const testApp = await startTestApp({ SMTP_URL: 'smtp://127.0.0.1:9', MAIL_RETRY_SECONDS: '3600' })

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

test('a reset request for an email without an account takes as long as one for an account', async (t) => {
  const rounds = 25
  // Each account asked once, so every "known" request queues a message (the hourly limit never applies).
  const users = await Promise.all(Array.from({ length: rounds + 1 }, () => createTestUser(testApp)))
  const browser = testApp.browser()
  await browser.get('/password/forgot')
  const timePost = async (email: string): Promise<number> => {
    const started = performance.now()
    const response = await browser.post('/password/forgot', { email })
    const elapsed = performance.now() - started
    assert.equal(response.location, '/login')
    return elapsed
  }
  // Warm-up, not measured.
  await timePost(uniqueEmail('nobody'))
  await timePost(users[rounds]?.email ?? '')
  const unknown: number[] = []
  const known: number[] = []
  for (let round = 0; round < rounds; round++) {
    unknown.push(await timePost(uniqueEmail('nobody')))
    known.push(await timePost(users[round]?.email ?? ''))
  }
  const queued = await testApp.db.selectFrom('mail_outbox').select('recipient').execute()
  assert.equal(queued.length, rounds + 1, 'a message was queued for each account, none for the others')
  const ratio = median(unknown) / median(known)
  const summary = `unknown email median ${median(unknown).toFixed(2)} ms, account median ${median(known).toFixed(2)} ms, ratio ${ratio.toFixed(2)}`
  t.diagnostic(summary)
  assert.ok(ratio >= 0.67 && ratio <= 1.5, `the two answers take about as long: ${summary}`)
})
