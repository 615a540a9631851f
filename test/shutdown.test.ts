import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Browser } from '../support/browser.js'
import { createTestDatabase } from '../support/test-database.js'
import { PASSWORD } from './helpers/app.js'
import { startServer } from './helpers/server-process.js'

const database = await createTestDatabase()
after(() => database.drop())

test('SIGTERM lets requests in flight finish, closes the database and exits 0', async (t) => {
  const server = await startServer({ ...database.env, AUTH_RATE_LIMIT: '1000' })
  after(() => server.child.kill('SIGKILL'))

  // Twenty sign-ups, each with its own session and token, sent together: argon2 keeps them in flight.
  const browsers = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const browser = new Browser(server.url)
      await browser.get('/signup')
      return browser
    }),
  )
  const signUps = browsers.map((browser, i) =>
    browser.post('/signup', { email: `shutdown-${process.pid}-${i}@example.com`, password: PASSWORD }),
  )
  // Every request read by the server before the signal (argon2 keeps them in flight far longer): a request
  // still unread on a socket that looks idle when close() begins can be reset, and is not in flight.
  const received = () =>
    server.lines.filter((line) => {
      const req = line.req as { method?: string; url?: string } | undefined
      return line.msg === 'incoming request' && req?.method === 'POST' && req.url === '/signup'
    }).length
  for (const startedAt = Date.now(); received() < 20 && Date.now() - startedAt < 15_000; ) await sleep(10)
  assert.equal(received(), 20, 'all twenty sign-ups reached the server')
  const signalledAt = Date.now()
  server.child.kill('SIGTERM')

  const responses = await Promise.all(signUps)
  assert.deepEqual(
    responses.map((response) => `${response.status} ${response.location}`),
    responses.map(() => '303 /profile'),
    'every sign-up in flight was answered',
  )
  const code = await server.exited
  t.diagnostic(`exited ${Date.now() - signalledAt} ms after SIGTERM`)
  assert.equal(code, 0)
  assert.ok(Date.now() - signalledAt < 10_000, 'within the 10 s grace period')
  assert.ok(
    server.lines.some((line) => /^shutting down/.test(String(line.msg))),
    'the shutdown is logged',
  )
  assert.equal(
    fs.existsSync(path.join(database.env.DATA_DIR, 'gatehouse.pid')),
    false,
    'the data-folder lock is released',
  )

  // Nothing was lost: the next process finds all twenty users.
  const again = await startServer({ ...database.env, AUTH_RATE_LIMIT: '1000' })
  after(() => again.child.kill('SIGKILL'))
  for (const [i] of responses.entries()) {
    const browser = new Browser(again.url)
    await browser.get('/login')
    const login = await browser.post('/login', {
      email: `shutdown-${process.pid}-${i}@example.com`,
      password: PASSWORD,
    })
    assert.equal(login.location, '/profile', `user ${i} can log in after the restart`)
  }
  again.child.kill('SIGTERM')
  assert.equal(await again.exited, 0)
})
