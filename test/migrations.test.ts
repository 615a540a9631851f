import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'
import { sql } from 'kysely'
import { type DatabaseHandle, openDatabase } from '../src/db/database.js'
import { MIGRATIONS_FOLDER } from '../src/db/migrator.js'
import { createTestDatabase } from '../support/test-database.js'
import { type CliResult, runCli } from './helpers/cli.js'

const database = await createTestDatabase()
after(() => database.drop())

const MIGRATIONS = fs
  .readdirSync(MIGRATIONS_FOLDER)
  .filter((file) => file.endsWith('.ts'))
  .map((file) => path.basename(file, '.ts'))
  .sort()
const [USERS_MIGRATION = '', SESSIONS_MIGRATION = ''] = MIGRATIONS

/** `npm run migrate -- …` from source, against this file's database. */
function migrate(...args: string[]): Promise<CliResult> {
  return runCli('migrate', database, args)
}

/** name -> 'applied' | 'pending', as `status` prints it. */
async function status(): Promise<Record<string, string>> {
  const result = await migrate('status')
  assert.equal(result.code, 0, result.stderr)
  return Object.fromEntries(
    result.stdout
      .trim()
      .split('\n')
      .map((line) => {
        const [state = '', name = ''] = line.trim().split(/\s+/)
        return [name, state]
      }),
  )
}

async function withDatabase<T>(work: (handle: DatabaseHandle) => Promise<T>): Promise<T> {
  const handle = await openDatabase({ databaseUrl: database.env.DATABASE_URL ?? null, dataDir: database.env.DATA_DIR })
  try {
    return await work(handle)
  } finally {
    await handle.close()
  }
}

function errorCode(error: unknown): unknown {
  return (error as { code?: unknown }).code
}

/** Every migration in the folder with the same state. */
function all(state: 'applied' | 'pending'): Record<string, string> {
  return Object.fromEntries(MIGRATIONS.map((name) => [name, state]))
}

/** The tables a migration left behind, without Kysely's own bookkeeping. */
async function tables(): Promise<string[]> {
  return withDatabase(async ({ db }) =>
    (await db.introspection.getTables()).map((table) => table.name).filter((name) => !name.startsWith('kysely_')),
  )
}

test('the migrations run in date order and begin with users, then sessions', () => {
  assert.ok(MIGRATIONS.length >= 2, `migrations: ${MIGRATIONS}`)
  assert.deepEqual([...MIGRATIONS].sort(), MIGRATIONS)
  assert.match(USERS_MIGRATION, /users$/)
  assert.match(SESSIONS_MIGRATION, /sessions$/)
  for (const name of MIGRATIONS) assert.match(name, /^\d{4}_\d{2}_\d{2}_\d{6}_[a-z]+_[a-z_]+$/)
})

test('migrate up brings a fresh database to the latest and status lists every migration as applied', async () => {
  const result = await migrate('up')
  assert.equal(result.code, 0, result.stderr)
  assert.deepEqual(await status(), all('applied'))
})

test('migrate down reverts only the latest migration and up re-applies it', async () => {
  const latest = MIGRATIONS.at(-1) ?? ''
  const tablesBefore = await tables()
  const down = await migrate('down')
  assert.equal(down.code, 0, down.stderr)
  assert.match(down.stdout, new RegExp(latest))
  assert.deepEqual(await status(), { ...all('applied'), [latest]: 'pending' })
  assert.equal((await tables()).length, tablesBefore.length - 1, 'the latest migration dropped its table')

  const up = await migrate('up')
  assert.equal(up.code, 0, up.stderr)
  assert.match(up.stdout, new RegExp(latest))
  assert.deepEqual(await status(), all('applied'))
  assert.deepEqual((await tables()).sort(), tablesBefore.sort())
})

test('migrate down as many times as there are migrations empties the database and up rebuilds it', async () => {
  for (const _ of MIGRATIONS) assert.equal((await migrate('down')).code, 0)
  assert.deepEqual(await status(), all('pending'))
  assert.deepEqual(await tables(), [])
  const up = await migrate('up')
  assert.equal(up.code, 0, up.stderr)
  assert.deepEqual(await status(), all('applied'))
})

test('migrate with an unknown command or none exits non-zero with the usage', async () => {
  for (const args of [['sideways'], []]) {
    const result = await migrate(...args)
    assert.notEqual(result.code, 0, `migrate ${args.join(' ')}`)
    assert.match(result.stderr, /usage:.*up.*down.*status/)
  }
})

test('emails are unique whatever their case', async () => {
  await withDatabase(async ({ db }) => {
    await db.insertInto('users').values({ email: 'a@x.io', password_hash: 'hash' }).execute()
    const duplicate = db.insertInto('users').values({ email: 'A@x.io', password_hash: 'hash' }).execute()
    await assert.rejects(duplicate, (error) => errorCode(error) === '23505')
  })
})

test('sessions are indexed on expires_at, for pruning', async () => {
  const indexes = await withDatabase(async ({ db }) => {
    const result = await sql<{ indexdef: string }>`
      select indexdef from pg_indexes where schemaname = current_schema() and tablename = 'sessions'`.execute(db)
    return result.rows.map((row) => row.indexdef)
  })
  assert.ok(
    indexes.some((definition) => /\(expires_at\)/.test(definition)),
    `an index on expires_at among: ${indexes.join('; ')}`,
  )
})

test('a role defaults to user and must be user or admin', async () => {
  await withDatabase(async ({ db }) => {
    const user = await db
      .insertInto('users')
      .values({ email: 'role-default@x.io', password_hash: 'hash' })
      .returning('role')
      .executeTakeFirstOrThrow()
    assert.equal(user.role, 'user')
    const root = sql`insert into users (email, password_hash, role) values ('role-root@x.io', 'hash', 'root')`.execute(
      db,
    )
    await assert.rejects(root, (error) => errorCode(error) === '23514')
  })
})
