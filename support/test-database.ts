// A fresh database for each test file (and for a bench run without DATABASE_URL): a copy of a migrated
// PGlite template by default, or a new database on the PostgreSQL server named by TEST_DATABASE_URL.
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { openDatabase, pgliteDir } from '../src/db/database.js'
import { MIGRATIONS_FOLDER, migrateToLatest } from '../src/db/migrator.js'

export interface TestDatabase {
  /** Environment variables that point the app at this database. */
  env: { DATABASE_URL?: string; DATA_DIR: string }
  face: 'postgres' | 'pglite'
  drop(): Promise<void>
}

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || null

/** The template is keyed by the migrations' contents, so a changed migration makes a new one. */
function templateKey(): string {
  const hash = createHash('sha256')
  for (const file of fs.readdirSync(MIGRATIONS_FOLDER).sort()) {
    hash.update(file).update(fs.readFileSync(path.join(MIGRATIONS_FOLDER, file)))
  }
  return hash.digest('hex').slice(0, 16)
}

async function pgliteTemplate(): Promise<string> {
  const template = path.join(os.tmpdir(), `gatehouse-test-template-${templateKey()}`)
  if (fs.existsSync(path.join(template, 'pglite'))) return template
  const building = `${template}.${process.pid}.${randomBytes(4).toString('hex')}`
  const handle = await openDatabase({ databaseUrl: null, dataDir: building })
  await migrateToLatest(handle.db)
  await handle.close()
  try {
    fs.renameSync(building, template)
  } catch {
    // Another test file built it first; theirs is as good as ours.
    fs.rmSync(building, { recursive: true, force: true })
  }
  return template
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-test-'))
  const removeDataDir = async () => fs.rmSync(dataDir, { recursive: true, force: true })

  if (TEST_DATABASE_URL) {
    const name = `gatehouse_test_${process.pid}_${randomBytes(4).toString('hex')}`
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await admin.connect()
    await admin.query(`create database ${name}`)
    await admin.end()
    const url = new URL(TEST_DATABASE_URL)
    url.pathname = `/${name}`
    return {
      env: { DATABASE_URL: url.toString(), DATA_DIR: dataDir },
      face: 'postgres',
      async drop() {
        const client = new pg.Client({ connectionString: TEST_DATABASE_URL })
        await client.connect()
        await client.query(`drop database if exists ${name} with (force)`)
        await client.end()
        await removeDataDir()
      },
    }
  }

  fs.cpSync(path.join(await pgliteTemplate(), 'pglite'), pgliteDir(dataDir), { recursive: true })
  return { env: { DATA_DIR: dataDir }, face: 'pglite', drop: removeDataDir }
}
