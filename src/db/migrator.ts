// Kysely's migrator over migrations/: the source .ts files under tsx, the compiled .js files under dist/.
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { FileMigrationProvider, type Kysely, type MigrationResultSet, Migrator } from 'kysely'
import type { Database } from './schema.js'

// src/db/ -> migrations/, and dist/src/db/ -> dist/migrations/.
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../migrations/', import.meta.url))

export function createMigrator(db: Kysely<Database>): Migrator {
  return new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_FOLDER }),
  })
}

/** Throws the migration's own error when one fails, after Kysely has rolled the batch back. */
export function assertMigrated({ error, results }: MigrationResultSet): void {
  if (error === undefined) return
  const failed = results?.find((result) => result.status === 'Error')
  const cause = error instanceof Error ? error : new Error(String(error))
  throw new Error(`Migration ${failed?.migrationName ?? '(unknown)'} failed: ${cause.message}`, { cause })
}

export async function migrateToLatest(db: Kysely<Database>): Promise<MigrationResultSet> {
  const result = await createMigrator(db).migrateToLatest()
  assertMigrated(result)
  return result
}
