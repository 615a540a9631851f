// Mail as a component: the outbox written in the request's transaction and sent by a worker, through a
// real SMTP server (test/helpers/mailbox.ts). Covers the development log mailbox, retries while the SMTP
// server refuses or is down (a restart included), two instances sending each message once, wiping and
// pruning, production without mail, and the log's two shapes (pretty on a terminal, JSON otherwise).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { after, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { stripVTControlCharacters } from 'node:util'
import pg from 'pg'
import { pruneOutbox } from '../src/mail/outbox.js'
import { MessageSeal } from '../src/mail/sealed-body.js'
import { Browser } from '../support/browser.js'
import { freePort } from '../support/free-port.js'
import { TEST_DATABASE_URL } from '../support/test-database.js'
import { createTestUser, signUp, startTestApp, TEST_SECRET, type TestApp, uniqueEmail } from './helpers/app.js'
import { pathOf, TestMailbox } from './helpers/mailbox.js'
import {
  startThrowawayPostgres,
  type ThrowawayPostgres,
  throwawayPostgresUnavailable,
} from './helpers/postgres-server.js'
import { tempDir } from './helpers/temp-dir.js'

const PUBLIC_URL = 'https://gatehouse.example'
const RESET_SUBJECT = /Reset your gatehouse password/
const FAST_MAIL = { PUBLIC_URL, MAIL_POLL_SECONDS: '0.2', MAIL_RETRY_SECONDS: '0.2' }

const mailbox = await TestMailbox.start()
const smtpApp = await startTestApp({ ...FAST_MAIL, SMTP_URL: mailbox.url })
const logMailboxApp = await startTestApp({ PUBLIC_URL })
const mailOffApp = await startTestApp({ NODE_ENV: 'production', COOKIE_SECURE: 'false' })

/** Asks for a reset link for `email` through the form; returns the answer. */
async function askForReset(testApp: TestApp, email: string) {
  const browser = testApp.browser()
  await browser.get('/password/forgot')
  const started = performance.now()
  const answer = await browser.post('/password/forgot', { email })
  return { answer, ms: performance.now() - started }
}

function logLines(testApp: TestApp, event: string) {
  return testApp.logs.filter((line) => line.event === event)
}

async function outboxRows(testApp: TestApp, recipient: string) {
  return testApp.db.selectFrom('mail_outbox').selectAll().where('recipient', '=', recipient).execute()
}

type OutboxRow = Awaited<ReturnType<typeof outboxRows>>[number]

async function waitForRow(testApp: TestApp, recipient: string, ready: (row: OutboxRow) => boolean) {
  const deadline = Date.now() + 10_000
  for (;;) {
    const row = (await outboxRows(testApp, recipient))[0]
    if (row && ready(row)) return row
    if (Date.now() > deadline) throw new Error(`no ready outbox row for ${recipient}`)
    await delay(50)
  }
}

test('without SMTP_URL in development each message is written whole to the log, at info', async () => {
  const { email } = await signUp(logMailboxApp)
  const deadline = Date.now() + 10_000
  let line: Record<string, unknown> | undefined
  while (!line && Date.now() < deadline) {
    line = logMailboxApp.logs.find((entry) => entry.event === 'mail_logged' && entry.to === email)
    if (!line) await delay(50)
  }
  assert.ok(line, 'a mail_logged line')
  assert.equal(line.level, 30, 'at info')
  const text = String(line.msg)
  const lines = text.split('\n')
  assert.ok(lines.includes(`To: ${email}`), 'the To header on a line of its own')
  assert.ok(lines.includes('Subject: Confirm your email address for gatehouse'))
  assert.ok(lines.includes('From: gatehouse <no-reply@gatehouse.example>'), 'MAIL_FROM defaults to PUBLIC_URL’s host')
  const links = text.match(/https?:\/\/\S+/g) ?? []
  assert.equal(links.length, 1, 'one link')
  assert.ok(links[0]?.startsWith(`${PUBLIC_URL}/email/confirm/`), 'the link starts with PUBLIC_URL')
  // A newcomer's working link: opening it confirms the address.
  const browser = logMailboxApp.browser()
  const opened = await browser.get(pathOf(links[0] ?? ''))
  assert.equal(opened.status, 303)
})

test('an SMTP server that refuses delays the message; it is retried with a doubling delay and sent once', async () => {
  const user = await createTestUser(smtpApp)
  mailbox.refuseNext(3)
  const refusedBefore = mailbox.refused
  const { answer, ms } = await askForReset(smtpApp, user.email)
  assert.equal(answer.status, 303, 'the page answers as usual')
  assert.ok(ms < 2000, `the page did not wait for mail (${ms.toFixed(0)} ms)`)

  const message = await mailbox.nth(user.email, RESET_SUBJECT)
  assert.equal(mailbox.refused - refusedBefore, 3, 'three refusals before it went through')
  assert.equal(mailbox.matching(user.email, RESET_SUBJECT).length, 1, 'sent once')
  assert.ok(message.links[0]?.startsWith(PUBLIC_URL))

  // The server has the message a moment before the worker records it as sent.
  const row = await waitForRow(smtpApp, user.email, (candidate) => candidate.sent_at !== null)
  assert.equal(row.attempts, 4)
  assert.notEqual(row.sent_at, null)
  assert.equal(row.body, null, 'the content is wiped once sent')
  const retries = logLines(smtpApp, 'mail_failed').filter((line) => line.outboxId === row.id)
  assert.deepEqual(
    retries.map((line) => line.retryInMs),
    [200, 400, 800],
    'each failure logged, the delay doubling',
  )
  assert.equal(logLines(smtpApp, 'mail_sent').filter((line) => line.outboxId === row.id).length, 1)
})

test('a message queued while the SMTP server is down is sent after a restart, once the server is back', async () => {
  const port = await freePort()
  const downApp = await startTestApp({ ...FAST_MAIL, SMTP_URL: `smtp://127.0.0.1:${port}` })
  const user = await createTestUser(downApp)
  const { answer } = await askForReset(downApp, user.email)
  assert.equal(answer.status, 303, 'the page answers while SMTP is down')
  const [queued] = await outboxRows(downApp, user.email)
  assert.ok(queued, 'the message is in the outbox')
  assert.ok(queued.body?.startsWith('v1.'), 'sealed while it waits')
  assert.ok(!queued.body?.includes('password/reset'), 'the link is not readable in the database')
  const deadline = Date.now() + 10_000
  while (!logLines(downApp, 'mail_failed').length && Date.now() < deadline) await delay(50)
  assert.ok(logLines(downApp, 'mail_failed').length > 0, 'the failure is logged')

  await downApp.close()
  const back = await TestMailbox.start(port)
  const restarted = await downApp.restart()
  try {
    const message = await back.nth(user.email, RESET_SUBJECT)
    assert.ok(message.links[0]?.startsWith(`${PUBLIC_URL}/password/reset/`))
    await delay(500)
    assert.equal(back.matching(user.email, RESET_SUBJECT).length, 1, 'sent once')
  } finally {
    await restarted.close()
  }
})

// Two instances need a database two processes can share: PostgreSQL, on either face of the suite (the
// embedded database is one process's). TEST_DATABASE_URL's server, or a throwaway one.
const noPostgres = TEST_DATABASE_URL ? null : throwawayPostgresUnavailable()
if (noPostgres) console.log(`# two-instance mail test skipped: ${noPostgres}`)
let throwaway: Promise<ThrowawayPostgres> | undefined
after(async () => {
  if (throwaway) await (await throwaway).remove()
})

async function emptyPostgresDatabase(): Promise<string> {
  if (!TEST_DATABASE_URL && !throwaway) {
    throwaway = startThrowawayPostgres()
  }
  const serverUrl = TEST_DATABASE_URL ?? (await (throwaway as Promise<ThrowawayPostgres>)).url
  const name = `gatehouse_mail_${process.pid}_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  await admin.query(`create database ${name}`)
  await admin.end()
  after(async () => {
    const client = new pg.Client({ connectionString: serverUrl })
    await client.connect()
    await client.query(`drop database if exists ${name} with (force)`)
    await client.end()
  })
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

test('two instances on one database send each message once', { skip: noPostgres ?? false }, async () => {
  const own = await TestMailbox.start()
  const env = {
    ...FAST_MAIL,
    MAIL_POLL_SECONDS: '0.05',
    SMTP_URL: own.url,
    DATABASE_URL: await emptyPostgresDatabase(),
  }
  const a = await startTestApp(env)
  const b = await a.restart()
  after(() => b.close())

  // A backlog both workers find at once (as after an outage), queued as the app queues: sealed.
  const seal = new MessageSeal([TEST_SECRET])
  const count = 120
  const recipients = Array.from({ length: count }, (_, i) => `bulk-${i}-${process.pid}@example.com`)
  await a.db
    .insertInto('mail_outbox')
    .values(
      recipients.map((recipient) => ({
        kind: 'password_changed' as const,
        recipient,
        body: seal.seal({ subject: `Bulk ${recipient}`, text: 'A notice.' }),
      })),
    )
    .execute()

  await own.waitFor(() => own.messages.length >= count, 30_000)
  await delay(1000)
  assert.equal(own.messages.length, count, 'no message sent twice')
  assert.deepEqual(own.messages.map((message) => message.to).sort(), [...recipients].sort(), 'each recipient got one')
  assert.equal(new Set(own.messages.map((message) => message.messageId)).size, count)
  const sentByA = logLines(a, 'mail_sent').length
  const sentByB = logLines(b, 'mail_sent').length
  assert.equal(sentByA + sentByB, count)
  assert.ok(sentByA > 0 && sentByB > 0, `both instances sent (${sentByA} and ${sentByB})`)
})

test('sent messages are wiped at once and pruned after a day; given-up ones after a week; waiting ones stay', async () => {
  const user = await createTestUser(smtpApp)
  await askForReset(smtpApp, user.email)
  await waitForRow(smtpApp, user.email, (row) => row.sent_at !== null)
  const seal = new MessageSeal([TEST_SECRET])
  const waiting = uniqueEmail('waiting')
  await smtpApp.db
    .insertInto('mail_outbox')
    .values({
      kind: 'password_changed',
      recipient: waiting,
      body: seal.seal({ subject: 'later', text: 'x' }),
      next_attempt_at: new Date(Date.now() + 3_600_000),
    })
    .execute()
  const failed = uniqueEmail('failed')
  await smtpApp.db
    .insertInto('mail_outbox')
    .values({ kind: 'password_changed', recipient: failed, body: null })
    .execute()
  await smtpApp.db
    .updateTable('mail_outbox')
    .set({ failed_at: new Date(Date.now() - 8 * 86_400_000) })
    .where('recipient', '=', failed)
    .execute()
  await smtpApp.db
    .updateTable('mail_outbox')
    .set({ sent_at: new Date(Date.now() - 2 * 86_400_000) })
    .where('recipient', '=', user.email)
    .execute()

  assert.ok((await pruneOutbox(smtpApp.db)) >= 2)
  assert.equal((await outboxRows(smtpApp, user.email)).length, 0, 'the sent row is gone')
  assert.equal((await outboxRows(smtpApp, failed)).length, 0, 'the given-up row is gone')
  assert.equal((await outboxRows(smtpApp, waiting)).length, 1, 'the waiting row stays')
})

test('production without SMTP_URL: mail is off, its pages answer 404, none links to them, and the log says so once', async () => {
  const browser = mailOffApp.browser()
  const login = await browser.get('/login')
  assert.equal(login.status, 200)
  assert.ok(!login.html.includes('/password/forgot'), 'the log-in page does not offer a reset')
  const token = 'A'.repeat(43)
  for (const [method, path] of [
    ['GET', '/password/forgot'],
    ['POST', '/password/forgot'],
    ['GET', `/password/reset/${token}`],
    ['POST', '/password/reset'],
    ['GET', `/email/confirm/${token}`],
    ['POST', '/email/confirm/resend'],
  ] as const) {
    const page =
      method === 'GET' ? await browser.get(path) : await browser.post(path, { email: 'someone@example.com', token })
    assert.equal(page.status, 404, `${method} ${path}`)
  }
  const { browser: member, page: profile } = await signUp(mailOffApp)
  assert.equal(profile.status, 200, 'sign-up works without mail')
  assert.ok(!profile.html.includes('data-email-confirmed'), 'no confirmation state without mail')
  assert.ok(!profile.html.includes('/email/confirm'), 'no link to confirmation')
  assert.equal((await member.get('/profile')).status, 200)
  const off = logLines(mailOffApp, 'mail_off')
  assert.equal(off.length, 1, 'one line')
  assert.ok(Number(off[0]?.level) >= 30, 'at info or above')
  assert.match(String(off[0]?.msg), /mail is off/)
  assert.equal((await mailOffApp.db.selectFrom('mail_outbox').selectAll().execute()).length, 0, 'nothing queued')
})

/** Runs the real server under a pseudo-terminal (script(1)) until `until` appears in its output. */
async function serverOnTerminal(env: Record<string, string>, act: (url: string) => Promise<void>, until: RegExp) {
  const port = await freePort()
  const child = spawn('script', ['-qfec', 'node --import tsx src/server.ts', '/dev/null'], {
    cwd: new URL('..', import.meta.url),
    env: {
      ...process.env,
      DATABASE_URL: '',
      SMTP_URL: '',
      PORT: String(port),
      DATA_DIR: tempDir('gatehouse-tty'),
      SESSION_SECRET: TEST_SECRET,
      ...env,
    },
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  try {
    const deadline = Date.now() + 60_000
    while (!/listening/i.test(output) && Date.now() < deadline) await delay(100)
    assert.match(output, /listening/i, 'the server started')
    await act(`http://127.0.0.1:${port}`)
    while (!until.test(output) && Date.now() < deadline) await delay(100)
    return output
  } finally {
    child.kill('SIGTERM')
    await exited
  }
}

test('on a terminal in development the log is pretty-printed and a message reads as a message', async () => {
  const email = uniqueEmail('tty')
  const output = await serverOnTerminal(
    { NODE_ENV: 'development', PUBLIC_URL },
    async (url) => {
      const browser = new Browser(url)
      await browser.get('/signup')
      assert.equal((await browser.post('/signup', { email, password: 'correct horse battery staple' })).status, 303)
    },
    /Confirm your email address for gatehouse[\s\S]*gatehouse\s*$/m,
  )
  // Pretty lines are not JSON, and the message's lines are lines, not "\n" inside a JSON string.
  assert.ok(!output.split('\n').some((line) => line.startsWith('{"level"')), 'no JSON lines')
  const plain = stripVTControlCharacters(output).replace(/\r/g, '')
  assert.match(plain, new RegExp(`^To: ${email.replace(/[.+]/g, '\\$&')}$`, 'm'))
  assert.match(plain, /^Subject: Confirm your email address for gatehouse$/m)
  assert.match(plain, new RegExp(`^${PUBLIC_URL}/email/confirm/[A-Za-z0-9_-]{43}$`, 'm'))
  assert.ok(!plain.includes('\\n'), 'no escaped newlines')
})

test('in production the log stays one JSON object a line, on a terminal too', async () => {
  const output = await serverOnTerminal(
    { NODE_ENV: 'production', COOKIE_SECURE: 'false' },
    async (url) => {
      assert.equal((await fetch(`${url}/healthz`)).status, 200)
    },
    /mail is off/,
  )
  const lines = output.replace(/\r/g, '').split('\n').filter(Boolean)
  assert.ok(lines.length > 3)
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `a JSON line: ${line.slice(0, 80)}`)
})
