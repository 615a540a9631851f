// The database: opens the configured face, applies pending migrations, closes with the app.
import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import { type DatabaseFace, openDatabase } from '../db/database.js'
import { migrateToLatest } from '../db/migrator.js'
import type { Database } from '../db/schema.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
    dbFace: DatabaseFace
  }
}

export interface DbPluginOptions {
  databaseUrl: string | null
  dataDir: string
}

export default fp<DbPluginOptions>(
  async function dbPlugin(app, options) {
    const handle = await openDatabase({
      ...options,
      onPoolError: (error) => app.log.error({ err: error }, 'database connection lost'),
    })
    try {
      const { results = [] } = await migrateToLatest(handle.db)
      for (const migration of results) app.log.info({ migration: migration.migrationName }, 'migration applied')
    } catch (error) {
      await handle.close()
      throw error
    }
    app.log.info({ face: handle.face, location: handle.location }, 'database ready')
    app.decorate('db', handle.db)
    app.decorate('dbFace', handle.face)
    app.addHook('onClose', () => handle.close())
  },
  { name: 'db' },
)
