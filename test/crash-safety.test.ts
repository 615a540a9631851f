import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Browser } from '../support/browser.js'
import { createTestDatabase } from '../support/test-database.js'
import { PASSWORD, uniqueEmail } from './helpers/app.js'
import { type ServerProcess, startServer } from './helpers/server-process.js'

const database = await createTestDatabase()
after(() => database.drop())

const ENV = { ...database.env, AUTH_RATE_LIMIT: '100000' }
const CLIENTS = 10
const LOAD_MS = 1500
/** On a busy machine 1.5 s may answer nothing: the load then runs until this many were answered (30 s at most). */
const MIN_ANSWERED = 10
const CYCLES = 3
const LOCK_FILE = path.join(database.env.DATA_DIR, 'gatehouse.pid')

interface Load {
  /** Emails whose sign-up was answered 303 to /profile, in the order the answers came. */
  answered: string[]
  /** Any other answer to a sign-up of a fresh email: there should be none. */
  unexpected: string[]
  /** Resolves when every client has stopped (the server is gone). */
  done: Promise<void>
}

/** CLIENTS clients signing up fresh users one after another until the server stops answering. */
function signUpContinuously(url: string, cycle: number): Load {
  const load: Load = { answered: [], unexpected: [], done: Promise.resolve() }
  const client = async () => {
    for (;;) {
      const email = uniqueEmail(`crash-${cycle}`)
      const browser = new Browser(url)
      try {
        await browser.get('/signup')
        const response = await browser.post('/signup', { email, password: PASSWORD })
        if (response.status === 303 && response.location === '/profile') load.answered.push(email)
        else load.unexpected.push(`${email}: ${response.status} ${response.location}`)
      } catch {
        // A network error: the server was killed. This sign-up was never answered.
        return
      }
    }
  }
  load.done = Promise.all(Array.from({ length: CLIENTS }, client)).then(() => undefined)
  return load
}

/** Every answered email when there are few, else 30 at random plus the last 10 answered. */
function emailsToCheck(answered: string[]): string[] {
  if (answered.length <= 40) return answered
  const earlier = answered.slice(0, -10)
  const picked = new Set<string>()
  while (picked.size < 30) picked.add(earlier[Math.floor(Math.random() * earlier.length)] ?? '')
  return [...picked, ...answered.slice(-10)]
}

/** Whether `email` can log in on `url` and sees its profile. */
async function canLogIn(url: string, email: string): Promise<boolean> {
  const browser = new Browser(url)
  await browser.get('/login')
  const login = await browser.post('/login', { email, password: PASSWORD })
  if (login.status !== 303 || login.location !== '/profile') return false
  const profile = await browser.get('/profile')
  return profile.status === 200 && profile.html.includes(email)
}

test('every sign-up answered before a SIGKILL survives the restart, cycle after cycle', async (t) => {
  let server: ServerProcess & { url: string } = await startServer(ENV)
  const started = [server]
  after(() => {
    for (const each of started) each.child.kill('SIGKILL')
  })
  const answeredInEarlierCycles: string[] = []

  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const load = signUpContinuously(server.url, cycle)
    const loadStarted = Date.now()
    while (
      Date.now() - loadStarted < LOAD_MS ||
      (load.answered.length < MIN_ANSWERED && Date.now() - loadStarted < 30_000)
    ) {
      await sleep(50)
    }
    const killed = server
    killed.child.kill('SIGKILL')
    assert.equal(await killed.exited, null, 'killed by the signal, not exited by itself')
    await load.done
    t.diagnostic(
      `cycle ${cycle}: ${load.answered.length} sign-ups answered before the kill (after ${Date.now() - loadStarted} ms)`,
    )
    assert.deepEqual(load.unexpected, [], 'every sign-up of a fresh email was answered with a redirect to /profile')
    assert.ok(load.answered.length >= MIN_ANSWERED, `a meaningful load: ${load.answered.length} sign-ups answered`)
    if (database.face === 'pglite') {
      assert.equal(
        fs.readFileSync(LOCK_FILE, 'utf8').trim(),
        String(killed.child.pid),
        'the killed process left its lock',
      )
    }

    server = await startServer(ENV)
    started.push(server)
    if (database.face === 'pglite') {
      assert.equal(fs.readFileSync(LOCK_FILE, 'utf8').trim(), String(server.child.pid), 'the stale lock was taken over')
    }

    const checked = emailsToCheck(load.answered)
    const earlier = [...answeredInEarlierCycles].sort(() => Math.random() - 0.5).slice(0, 5)
    const lost: string[] = []
    for (const email of [...checked, ...earlier]) if (!(await canLogIn(server.url, email))) lost.push(email)
    assert.deepEqual(
      lost,
      [],
      `cycle ${cycle}: ${lost.length} of ${checked.length + earlier.length} checked sign-ups ` +
        `(answered 303 /profile before the kill) are lost after the restart`,
    )
    answeredInEarlierCycles.push(...load.answered)
  }

  server.child.kill('SIGTERM')
  assert.equal(await server.exited, 0, 'the last server stops cleanly')
})
