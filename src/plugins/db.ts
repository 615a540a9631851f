// The database: opens the configured face, applies pending migrations, closes with the app.
import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import type { Config } from '../config.js'
import { DatabaseAvailability } from '../db/availability.js'
import { type Commits, type DatabaseFace, openDatabase } from '../db/database.js'
import { migrateToLatest } from '../db/migrator.js'
import type { Database } from '../db/schema.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
    /** For writes a database crash may lose without harm (see DatabaseHandle.asyncCommitDb). */
    asyncCommitDb: Kysely<Database>
    dbFace: DatabaseFace
    dbAvailability: DatabaseAvailability
  }
}

export type DbPluginOptions = Config['database'] & {
  /** Called with each statement's SQL and which instance ran it (tests count round trips). */
  onQuery?: (sql: string, commits: Commits) => void
}

export default fp<DbPluginOptions>(
  async function dbPlugin(app, options) {
    let availability: DatabaseAvailability | undefined
    const handle = await openDatabase({
      databaseUrl: options.url,
      dataDir: options.dataDir,
      onQuery: options.onQuery,
      // An idle connection dropped by the server: the start of an outage, or a restart of the server.
      onPoolError: (error) => availability?.reportUnavailable(error),
    })
    availability = new DatabaseAvailability(handle.db, app.log)
    try {
      const { results = [] } = await migrateToLatest(handle.db)
      for (const migration of results) app.log.info({ migration: migration.migrationName }, 'migration applied')
    } catch (error) {
      await handle.close()
      throw error
    }
    app.log.info({ face: handle.face, location: handle.location }, 'database ready')
    app.decorate('db', handle.db)
    app.decorate('asyncCommitDb', handle.asyncCommitDb)
    app.decorate('dbFace', handle.face)
    app.decorate('dbAvailability', availability)
    app.addHook('onClose', async () => {
      availability.stop()
      await handle.close()
    })
  },
  { name: 'db' },
)
