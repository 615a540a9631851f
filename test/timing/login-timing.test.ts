// Timing comparisons: run by `npm test` after the other files, alone, since a test file busy beside them on
// two cores would measure the neighbour, not the hashing.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createTestUser, startTestApp, type TestApp, uniqueEmail } from '../helpers/app.js'

// Throttling would answer before any hashing; this file is about the hashing alone. Every hashing thread at
// the normal priority: the two kinds of request alternate, and so may the threads they land on, so with one
// thread at nice 19 and another test file busy beside this one, one kind would keep meeting the starved
// thread and the comparison would measure the scheduler, not the work.
const HASHING = { LOGIN_MAX_FAILURES: '1000', ARGON2_MAX_CONCURRENT: '2', ARGON2_NORMAL_PRIORITY_THREADS: '2' }
const testApp = await startTestApp(HASHING)
// Raised parameters: a user's stored hash made at OWASP's (as before the raise) is weaker than the configured
// ones until their next log-in upgrades it.
const raisedApp = await startTestApp({ ...HASHING, ARGON2_MEMORY_KIB: '65536' })

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

/** Median times of wrong-password log-ins for fresh unknown emails and for `email`, taken in turns. */
async function timeRefusals(app: TestApp, email: string, rounds: number) {
  const browser = app.browser()
  await browser.get('/login')
  const timePost = async (typed: string): Promise<number> => {
    const started = performance.now()
    const response = await browser.post('/login', { email: typed, password: 'wrong-password-4471' })
    const elapsed = performance.now() - started
    assert.equal(response.location, '/login', `refused like any failed log-in (status ${response.status})`)
    return elapsed
  }
  // Warm-up, not measured: first requests pay for lazy set-up (the unknown-email path's reference hash included).
  await timePost(uniqueEmail('nobody'))
  await timePost(email)
  const unknown: number[] = []
  const known: number[] = []
  for (let round = 0; round < rounds; round++) {
    unknown.push(await timePost(uniqueEmail('nobody')))
    known.push(await timePost(email))
  }
  return { unknown: median(unknown), known: median(known) }
}

test('a log-in with an unknown email takes as long as one with a wrong password', async (t) => {
  const user = await createTestUser(testApp)
  const { unknown, known } = await timeRefusals(testApp, user.email, 15)
  const ratio = unknown / known
  const summary = `unknown email median ${unknown.toFixed(1)} ms, wrong password median ${known.toFixed(1)} ms, ratio ${ratio.toFixed(2)}`
  t.diagnostic(summary)
  assert.ok(ratio >= 0.67 && ratio <= 1.5, `the two refusals take about as long: ${summary}`)
  assert.ok(unknown >= 5, `an unknown email is really hashed against: ${summary}`)
})

test('after the parameters are raised, a wrong password for an old, weaker hash takes as long as an unknown email', async (t) => {
  const user = await createTestUser(raisedApp)
  const { unknown, known } = await timeRefusals(raisedApp, user.email, 11)
  const ratio = known / unknown
  const summary = `old-hash wrong password median ${known.toFixed(1)} ms, unknown email median ${unknown.toFixed(1)} ms, ratio ${ratio.toFixed(2)}`
  t.diagnostic(summary)
  assert.ok(ratio >= 0.67 && ratio <= 1.5, `the two refusals take about as long: ${summary}`)
})
