// Statements built once and run many times (src/db/prepared.ts): every run binds its own parameters, values
// the builder wrote itself stay, and a builder that computes with a parameter fails at its first run.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { sql } from 'kysely'
import { openDatabase } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrator.js'
import { prepareStatement } from '../src/db/prepared.js'
import { createTestDatabase } from '../support/test-database.js'

const database = await createTestDatabase()
const handle = await openDatabase({ databaseUrl: database.env.DATABASE_URL ?? null, dataDir: database.env.DATA_DIR })
await migrateToLatest(handle.db)
after(async () => {
  await handle.close()
  await database.drop()
})

const insertCounter = prepareStatement((db, p: { key: string; seconds: number }) =>
  db
    .insertInto('auth_counters')
    // The constant 7 is the builder's own; `seconds` is bound twice.
    .values({ key: p.key, count: 7, window_ends_at: sql<Date>`now() + make_interval(secs => ${p.seconds})` })
    .returning(['key', 'count', sql<string>`extract(epoch from window_ends_at - now()) > ${p.seconds} - 5`.as('fits')]),
)

test('each run binds its own parameters; constants and a parameter used twice come out right', async () => {
  const first = await insertCounter(handle.db, { key: 'prepared:a', seconds: 60 })
  const second = await insertCounter(handle.db, { key: 'prepared:b', seconds: 3600 })
  assert.deepEqual(first.rows, [{ key: 'prepared:a', count: 7, fits: true }])
  assert.deepEqual(second.rows, [{ key: 'prepared:b', count: 7, fits: true }])
  const stored = await handle.db
    .selectFrom('auth_counters')
    .select(['key', sql<number>`round(extract(epoch from window_ends_at - now()) / 60)`.as('minutes')])
    .where('key', 'like', 'prepared:%')
    .orderBy('key')
    .execute()
  assert.deepEqual(
    stored.map((row) => [row.key, Number(row.minutes)]),
    [
      ['prepared:a', 1],
      ['prepared:b', 60],
    ],
  )
})

test('a builder that reads a parameter without binding it fails at the first run, before any SQL is sent', async () => {
  const unbound = prepareStatement((db, p: { key: string }) => {
    void p.key
    return db.selectFrom('auth_counters').select('key')
  })
  await assert.rejects(async () => unbound(handle.db, { key: 'x' }), /parameter "key" is not bound as a value/)
  const computing = prepareStatement((db, p: { key: string }) =>
    db.selectFrom('auth_counters').select('key').where('key', '=', p.key.trim()),
  )
  await assert.rejects(async () => computing(handle.db, { key: 'x' }), TypeError)
})
