import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../src/config.js'
import { createTestDatabase } from '../support/test-database.js'
import { tempDir } from './helpers/temp-dir.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SECRET = 'a-production-secret-of-at-least-32-chars'

/** Starts the real server process with only these variables; resolves when it exits or prints its first line. */
function startServer(env: Record<string, string>, waitFor: RegExp | 'exit' = 'exit') {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
    })
    let stdout = ''
    let stderr = ''
    let stopping = false
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`server did not finish in time; stdout: ${stdout} stderr: ${stderr}`))
    }, 60_000)
    child.stdout.on('data', (chunk) => {
      stdout += chunk
      if (waitFor !== 'exit' && !stopping && waitFor.test(stdout)) {
        stopping = true
        child.kill('SIGTERM')
      }
    })
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? (signal ? 128 : null), stdout, stderr })
    })
  })
}

test('defaults follow the contract', () => {
  const config = loadConfig({})
  assert.equal(config.server.port, 3000)
  assert.equal(config.server.host, '127.0.0.1')
  assert.equal(config.database.url, null)
  assert.equal(config.database.dataDir, path.resolve('./data'))
  assert.equal(config.server.env, 'development')
  assert.equal(config.cookies.secure, false)
  assert.equal(config.server.trustProxy, false)
  assert.equal(config.server.logLevel, 'info')
  assert.equal(config.session.idleMs, 168 * 3_600_000)
  assert.equal(config.session.maxMs, 30 * 86_400_000)
  assert.equal(config.session.secrets, null)
  assert.equal(config.audit.retentionDays, 90)
})

test('mail: development writes to the log, production without SMTP_URL is off, SMTP_URL sends', () => {
  const development = loadConfig({}).mail
  assert.equal(development.mode, 'log')
  assert.equal(development.publicUrl, 'http://localhost:3000')
  assert.equal(development.from, 'gatehouse <no-reply@localhost>')
  assert.equal(development.requireConfirmation, false)
  assert.equal(loadConfig({ PORT: '8080' }).mail.publicUrl, 'http://localhost:8080')
  assert.equal(loadConfig({ NODE_ENV: 'production', SESSION_SECRET: SECRET }).mail.mode, 'off')
  const smtp = loadConfig({
    NODE_ENV: 'production',
    SESSION_SECRET: SECRET,
    SMTP_URL: 'smtps://user:pass@mail.example.com:465',
    PUBLIC_URL: 'https://auth.example.com:8443/',
    REQUIRE_EMAIL_CONFIRMATION: 'true',
  }).mail
  assert.equal(smtp.mode, 'smtp')
  assert.equal(smtp.publicUrl, 'https://auth.example.com:8443', 'an origin, without its trailing slash')
  assert.equal(smtp.from, 'gatehouse <no-reply@auth.example.com>', 'the host of PUBLIC_URL, without the port')
  assert.equal(smtp.requireConfirmation, true)
  assert.equal(loadConfig({ MAIL_FROM: 'Support <help@example.com>' }).mail.from, 'Support <help@example.com>')
})

test('production makes cookies Secure unless COOKIE_SECURE says otherwise', () => {
  assert.equal(loadConfig({ NODE_ENV: 'production', SESSION_SECRET: SECRET }).cookies.secure, true)
  assert.equal(
    loadConfig({ NODE_ENV: 'production', SESSION_SECRET: SECRET, COOKIE_SECURE: 'false' }).cookies.secure,
    false,
  )
  assert.equal(loadConfig({ COOKIE_SECURE: 'true' }).cookies.secure, true)
})

test('a comma-separated SESSION_SECRET lists secrets, the first one signing', () => {
  const other = 'another-secret-that-is-32-characters-or-more'
  assert.deepEqual(loadConfig({ SESSION_SECRET: `${SECRET},${other}` }).session.secrets, [SECRET, other])
})

test('TRUST_PROXY takes booleans, hop counts, and lists of addresses and CIDR ranges', () => {
  assert.equal(loadConfig({ TRUST_PROXY: 'true' }).server.trustProxy, true)
  assert.equal(loadConfig({ TRUST_PROXY: 'false' }).server.trustProxy, false)
  assert.equal(loadConfig({ TRUST_PROXY: '2' }).server.trustProxy, 2)
  assert.deepEqual(loadConfig({ TRUST_PROXY: '10.0.0.1, 192.168.0.0/16,::1' }).server.trustProxy, [
    '10.0.0.1',
    '192.168.0.0/16',
    '::1',
  ])
})

for (const [name, env, variable] of [
  ['a port that is not a number', { PORT: 'eighty' }, 'PORT'],
  ['a port out of range', { PORT: '70000' }, 'PORT'],
  ['a malformed DATABASE_URL', { DATABASE_URL: 'not a url' }, 'DATABASE_URL'],
  ['a DATABASE_URL for another database', { DATABASE_URL: 'mysql://root@localhost/db' }, 'DATABASE_URL'],
  ['a short secret', { SESSION_SECRET: 'too-short' }, 'SESSION_SECRET'],
  ['a short secret in a rotation list', { SESSION_SECRET: `${SECRET},short` }, 'SESSION_SECRET'],
  ['a missing secret in production', { NODE_ENV: 'production' }, 'SESSION_SECRET'],
  ['an unknown COOKIE_SECURE', { COOKIE_SECURE: 'maybe' }, 'COOKIE_SECURE'],
  ['a bad TRUST_PROXY entry', { TRUST_PROXY: '10.0.0.1,proxy.local' }, 'TRUST_PROXY'],
  ['an unknown LOG_LEVEL', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  ['a zero SESSION_IDLE_HOURS', { SESSION_IDLE_HOURS: '0' }, 'SESSION_IDLE_HOURS'],
  ['an unknown NODE_ENV', { NODE_ENV: 'staging' }, 'NODE_ENV'],
  ['a PUBLIC_URL that is not a URL', { PUBLIC_URL: 'gatehouse.example' }, 'PUBLIC_URL'],
  ['a PUBLIC_URL with a path', { PUBLIC_URL: 'https://example.com/auth' }, 'PUBLIC_URL'],
  ['a PUBLIC_URL of another scheme', { PUBLIC_URL: 'ftp://example.com' }, 'PUBLIC_URL'],
  ['an SMTP_URL of another scheme', { SMTP_URL: 'http://mail.example.com' }, 'SMTP_URL'],
  ['an SMTP_URL without a host', { SMTP_URL: 'smtp://' }, 'SMTP_URL'],
  [
    'mail in production with an http PUBLIC_URL',
    { NODE_ENV: 'production', SESSION_SECRET: SECRET, SMTP_URL: 'smtp://mail:25', PUBLIC_URL: 'http://a.example' },
    'PUBLIC_URL',
  ],
  [
    'mail in production without PUBLIC_URL',
    { NODE_ENV: 'production', SESSION_SECRET: SECRET, SMTP_URL: 'smtp://mail:25' },
    'PUBLIC_URL',
  ],
  [
    'required confirmation with mail off',
    { NODE_ENV: 'production', SESSION_SECRET: SECRET, REQUIRE_EMAIL_CONFIRMATION: 'true' },
    'REQUIRE_EMAIL_CONFIRMATION',
  ],
  ['an unknown REQUIRE_EMAIL_CONFIRMATION', { REQUIRE_EMAIL_CONFIRMATION: 'yes' }, 'REQUIRE_EMAIL_CONFIRMATION'],
  ['a zero AUDIT_RETENTION_DAYS', { AUDIT_RETENTION_DAYS: '0' }, 'AUDIT_RETENTION_DAYS'],
  ['a word for AUDIT_RETENTION_DAYS', { AUDIT_RETENTION_DAYS: 'forever' }, 'AUDIT_RETENTION_DAYS'],
] as const) {
  test(`configuration refuses ${name}, naming ${variable}`, () => {
    assert.throws(
      () => loadConfig(env),
      (error: Error) => error.name === 'ConfigError' && error.message.startsWith(`${variable} `),
    )
  })
}

for (const [name, env, variable] of [
  ['a port that is not a number', { PORT: 'abc' }, 'PORT'],
  ['a short secret in production', { NODE_ENV: 'production', SESSION_SECRET: 'short' }, 'SESSION_SECRET'],
  ['a missing secret in production', { NODE_ENV: 'production' }, 'SESSION_SECRET'],
  ['a malformed DATABASE_URL', { DATABASE_URL: 'postgres//nohost' }, 'DATABASE_URL'],
  [
    'mail in production with an http PUBLIC_URL',
    {
      NODE_ENV: 'production',
      SESSION_SECRET: SECRET,
      SMTP_URL: 'smtp://127.0.0.1:2525',
      PUBLIC_URL: 'http://x.example',
    },
    'PUBLIC_URL',
  ],
] as const) {
  test(`the server refuses to start with ${name}: exit 1 and one line naming ${variable}`, async () => {
    const result = await startServer({ ...env, DATA_DIR: tempDir('gatehouse-config') })
    assert.equal(result.code, 1)
    const lines = result.stderr.trim().split('\n')
    assert.equal(lines.length, 1, `expected one line, got: ${result.stderr}`)
    assert.match(lines[0] ?? '', new RegExp(`^gatehouse: ${variable} `))
  })
}

test('development without SESSION_SECRET generates one secret, keeps it in DATA_DIR, and reuses it', async () => {
  // A migrated copy of the embedded database: what is tested here is the secret, not initdb.
  const database = await createTestDatabase()
  const dataDir = database.env.DATA_DIR
  const env = { ...database.env, PORT: '0', LOG_LEVEL: 'info' }
  const first = await startServer(env, /Server listening/)
  assert.equal(first.code, 0, first.stderr)
  const secretFile = path.join(dataDir, 'session-secret')
  const secret = fs.readFileSync(secretFile, 'utf8').trim()
  assert.ok(secret.length >= 32)
  assert.equal(fs.statSync(secretFile).mode & 0o077, 0, 'the secret file is readable by its owner only')
  const second = await startServer(env, /Server listening/)
  assert.equal(second.code, 0, second.stderr)
  assert.equal(fs.readFileSync(secretFile, 'utf8').trim(), secret)
  await database.drop()
})

test('Secure cookies without a trusted proxy are warned about at start, naming TRUST_PROXY', async () => {
  const database = await createTestDatabase()
  const result = await startServer(
    { NODE_ENV: 'production', SESSION_SECRET: SECRET, ...database.env, PORT: '0' },
    /Server listening/,
  )
  assert.equal(result.code, 0, result.stderr)
  const warnings = result.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { level: number; msg: string })
    .filter((line) => line.level === 40)
  assert.ok(
    warnings.some((line) => /TRUST_PROXY/.test(line.msg) && /Secure/.test(line.msg)),
    `no warning about Secure cookies and TRUST_PROXY in: ${result.stdout}`,
  )
  await database.drop()
})
