import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'
import { sql } from 'kysely'
import { type DatabaseHandle, openDatabase } from '../src/db/database.js'
import { MIGRATIONS_FOLDER } from '../src/db/migrator.js'
import { canonicalEmail } from '../src/users/email.js'
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

/** Every table and its columns, and every index: what a migration may change. */
async function schema(): Promise<string[]> {
  return withDatabase(async ({ db }) => {
    const columns = (await db.introspection.getTables())
      .filter((table) => !table.name.startsWith('kysely_'))
      .flatMap((table) => table.columns.map((column) => `${table.name}.${column.name}`))
    const indexes = await sql<{ indexname: string }>`
      select indexname from pg_indexes where schemaname = current_schema() and tablename not like 'kysely_%'`.execute(
      db,
    )
    return [...columns, ...indexes.rows.map((row) => `index ${row.indexname}`)].sort()
  })
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
  const schemaBefore = await schema()
  const down = await migrate('down')
  assert.equal(down.code, 0, down.stderr)
  assert.match(down.stdout, new RegExp(latest))
  assert.deepEqual(await status(), { ...all('applied'), [latest]: 'pending' })
  assert.notDeepEqual(await schema(), schemaBefore, 'the latest migration undid its change')

  const up = await migrate('up')
  assert.equal(up.code, 0, up.stderr)
  assert.match(up.stdout, new RegExp(latest))
  assert.deepEqual(await status(), all('applied'))
  assert.deepEqual(await schema(), schemaBefore)
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

test('emails are unique whatever their case or look-alike spelling (their canonical form is)', async () => {
  await withDatabase(async ({ db }) => {
    const user = (email: string) => ({ email, email_canonical: canonicalEmail(email), password_hash: 'hash' })
    await db.insertInto('users').values(user('a@x.io')).execute()
    for (const spelling of ['A@x.io', ' a@X.IO', '\uFF41@x.io', '\u24D0@x.io']) {
      const duplicate = db.insertInto('users').values(user(spelling)).execute()
      await assert.rejects(duplicate, (error) => errorCode(error) === '23505', spelling)
    }
  })
})

test('users made before the canonical-email migration get their canonical form', async () => {
  const migration = MIGRATIONS.find((name) => name.endsWith('_add_users_email_canonical')) ?? ''
  const later = MIGRATIONS.slice(MIGRATIONS.indexOf(migration))
  for (const _ of later) assert.equal((await migrate('down')).code, 0)
  await withDatabase(async ({ db }) => {
    await sql`insert into users (email, password_hash) values (${' \uFF22ob@X.io'}, 'hash')`.execute(db)
  })
  assert.equal((await migrate('up')).code, 0)
  const row = await withDatabase(({ db }) =>
    db.selectFrom('users').select('email_canonical').where('email', '=', ' \uFF22ob@X.io').executeTakeFirst(),
  )
  assert.equal(row?.email_canonical, 'bob@x.io')
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
      .values({ email: 'role-default@x.io', email_canonical: 'role-default@x.io', password_hash: 'hash' })
      .returning('role')
      .executeTakeFirstOrThrow()
    assert.equal(user.role, 'user')
    const root =
      sql`insert into users (email, email_canonical, password_hash, role) values ('role-root@x.io', 'role-root@x.io', 'hash', 'root')`.execute(
        db,
      )
    await assert.rejects(root, (error) => errorCode(error) === '23514')
  })
})
