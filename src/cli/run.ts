// What the CLI commands share: configuration, the database, and one clear line on failure.
import { type Config, loadConfig, loadDotEnv } from '../config.js'
import { type DatabaseHandle, openDatabase } from '../db/database.js'
import { exitWithError } from '../fatal.js'

/** The same configuration as the server's: .env in development, then the environment. */
export function loadCliConfig(): Config {
  loadDotEnv()
  return loadConfig(process.env)
}

export async function withDatabase<T>(config: Config, work: (handle: DatabaseHandle) => Promise<T>): Promise<T> {
  const handle = await openDatabase({ databaseUrl: config.database.url, dataDir: config.database.dataDir })
  try {
    return await work(handle)
  } finally {
    await handle.close()
  }
}

export function runCli(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => exitWithError(error, 'unexpected error'),
  )
}
