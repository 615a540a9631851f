import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'
import pg from 'pg'
import { MIGRATIONS_FOLDER } from '../src/db/migrator.js'
import { Browser } from '../support/browser.js'
import { createTestDatabase, TEST_DATABASE_URL } from '../support/test-database.js'
import { PASSWORD, uniqueEmail } from './helpers/app.js'
import {
  startThrowawayPostgres,
  type ThrowawayPostgres,
  throwawayPostgresUnavailable,
} from './helpers/postgres-server.js'
import { type ServerProcess, spawnServer, startServer } from './helpers/server-process.js'
import { tempDir } from './helpers/temp-dir.js'

const MIGRATIONS = fs
  .readdirSync(MIGRATIONS_FOLDER)
  .filter((file) => file.endsWith('.ts'))
  .map((file) => path.basename(file, '.ts'))
  .sort()

// The PostgreSQL tests need a server: TEST_DATABASE_URL's, or a throwaway one of our own.
const noPostgres = TEST_DATABASE_URL ? null : throwawayPostgresUnavailable()
if (noPostgres) console.log(`# PostgreSQL instance tests skipped: ${noPostgres}`)

let throwaway: Promise<ThrowawayPostgres> | undefined
after(async () => {
  if (throwaway) await (await throwaway).remove()
})

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(text)).rows
  } finally {
    await client.end()
  }
}

/** The PostgreSQL server to make databases on: TEST_DATABASE_URL's, or a throwaway one started once. */
async function postgresServerUrl(): Promise<string> {
  if (TEST_DATABASE_URL) return TEST_DATABASE_URL
  if (!throwaway) throwaway = startThrowawayPostgres()
  return (await throwaway).url
}

/** A new, empty PostgreSQL database (no tables at all), dropped after the file. */
async function createEmptyDatabase(): Promise<string> {
  const adminUrl = await postgresServerUrl()
  const name = `gatehouse_instances_${process.pid}_${randomBytes(4).toString('hex')}`
  await query(adminUrl, `create database ${name}`)
  after(() => query(adminUrl, `drop database if exists ${name} with (force)`))
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

function stopAfterwards(...servers: ServerProcess[]): void {
  after(() => {
    for (const server of servers) server.child.kill('SIGKILL')
  })
}

test('a session from one instance works on another, and a log-out through either ends it on both', {
  skip: noPostgres ?? false,
}, async () => {
  const env = {
    DATABASE_URL: await createEmptyDatabase(),
    DATA_DIR: tempDir('gatehouse-instances'),
    AUTH_RATE_LIMIT: '100000',
  }
  const a = await startServer(env)
  stopAfterwards(a)
  const b = await startServer(env)
  stopAfterwards(b)

  const email = uniqueEmail('instances')
  const signUp = new Browser(a.url)
  await signUp.get('/signup')
  assert.equal((await signUp.post('/signup', { email, password: PASSWORD })).location, '/profile')

  const onA = new Browser(a.url)
  await onA.get('/login')
  const login = await onA.post('/login', { email, password: PASSWORD })
  assert.equal(login.location, '/profile', 'logged in on A')
  assert.equal((await onA.get('/profile')).status, 200)

  const onB = new Browser(b.url)
  for (const [name, value] of onA.cookies) onB.cookies.set(name, value)
  const profileOnB = await onB.get('/profile')
  assert.equal(profileOnB.status, 200, "B accepts A's session cookie")
  assert.ok(profileOnB.html.includes(email), "B shows the user's profile")

  const logout = await onB.post('/logout', {})
  assert.equal(logout.status, 303)
  assert.equal(logout.location, '/')

  const refused = await onA.get('/profile')
  assert.equal(refused.status >= 300 && refused.status < 400, true, `A answers ${refused.status}`)
  assert.equal(refused.location, '/login?next=%2Fprofile', 'A no longer accepts the cookie logged out on B')

  a.child.kill('SIGTERM')
  b.child.kill('SIGTERM')
  assert.deepEqual(await Promise.all([a.exited, b.exited]), [0, 0])
})

test('two instances starting together on an empty database apply each migration once and both serve', {
  skip: noPostgres ?? false,
}, async (t) => {
  const databaseUrl = await createEmptyDatabase()
  const tables = await query(
    databaseUrl,
    "select table_name from information_schema.tables where table_schema = 'public'",
  )
  assert.deepEqual(tables, [], 'the database starts with no tables at all')

  const env = { DATABASE_URL: databaseUrl, DATA_DIR: tempDir('gatehouse-instances'), AUTH_RATE_LIMIT: '100000' }
  const servers = [spawnServer(env), spawnServer(env)]
  stopAfterwards(...servers)
  const urls = await Promise.all(servers.map((server) => server.listening))
  for (const url of urls) assert.equal((await new Browser(url).get('/healthz')).status, 200, `${url} serves`)

  const rows = await query<{ name: string }>(databaseUrl, 'select name from kysely_migration order by name')
  assert.deepEqual(
    rows.map((row) => row.name),
    MIGRATIONS,
    'one row per migration file',
  )
  const applied = servers.map((server) =>
    server.lines.filter((line) => line.msg === 'migration applied').map((line) => String(line.migration)),
  )
  t.diagnostic(`migrations applied per process: ${applied.map((names) => names.length).join(' and ')}`)
  assert.deepEqual(applied.flat().sort(), MIGRATIONS, 'each migration is applied by exactly one of the two')

  for (const server of servers) server.child.kill('SIGTERM')
  assert.deepEqual(await Promise.all(servers.map((server) => server.exited)), [0, 0])
})

test('a second process on the same embedded data folder refuses to start with one clear line', async () => {
  // The embedded face on either run: a PGlite copy on the pglite face, a new embedded folder on the postgres one.
  const database = await createTestDatabase()
  after(() => database.drop())
  const env = { DATABASE_URL: '', DATA_DIR: database.env.DATA_DIR }
  const first = await startServer(env)
  stopAfterwards(first)

  const second = spawnServer(env)
  stopAfterwards(second)
  assert.equal(await second.exited, 1)
  const lines = second.stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one line on stderr, got:\n${second.stderr}`)
  assert.match(lines[0] ?? '', /in use/)
  assert.match(lines[0] ?? '', new RegExp(`pid ${first.child.pid}\\b`), 'the line names the process holding the folder')
  assert.equal(
    second.lines.some((line) => /Server listening/.test(String(line.msg))),
    false,
    'the second process never listened',
  )

  assert.equal((await new Browser(first.url).get('/healthz')).status, 200, 'the first process keeps serving')
  first.child.kill('SIGTERM')
  assert.equal(await first.exited, 0)
})
