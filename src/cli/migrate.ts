// npm run migrate -- up | down | status
import type { MigrationResult } from 'kysely'
import { assertMigrated, createMigrator } from '../db/migrator.js'
import { RefusalError } from '../fatal.js'
import { loadCliConfig, runCli, withDatabase } from './run.js'

const USAGE = 'usage: npm run migrate -- up | down | status'

function report(results: MigrationResult[] | undefined, verb: string): void {
  if (!results?.length) {
    console.log(`Nothing to ${verb}.`)
    return
  }
  for (const result of results)
    console.log(`${result.status === 'Success' ? verb : result.status}: ${result.migrationName}`)
}

runCli(async () => {
  const command = process.argv[2]
  if (command !== 'up' && command !== 'down' && command !== 'status') throw new RefusalError(USAGE)
  await withDatabase(loadCliConfig(), async ({ db }) => {
    const migrator = createMigrator(db)
    if (command === 'up') {
      const result = await migrator.migrateToLatest()
      report(result.results, 'applied')
      assertMigrated(result)
    } else if (command === 'down') {
      const result = await migrator.migrateDown()
      report(result.results, 'reverted')
      assertMigrated(result)
    } else {
      for (const migration of await migrator.getMigrations()) {
        console.log(`${migration.executedAt ? 'applied' : 'pending'}  ${migration.name}`)
      }
    }
  })
})
