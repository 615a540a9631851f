// What the CLI commands share: configuration, the database, and one clear line on failure.
import { ConfigError, loadConfig, loadDotEnv } from '../config.js'
import { DataDirLockedError } from '../db/data-dir-lock.js'
import { type DatabaseHandle, openDatabase } from '../db/database.js'

/** A refusal the user can fix: printed as one line, exit code 1. */
export class CliError extends Error {
  override name = 'CliError'
}

export async function withDatabase<T>(work: (handle: DatabaseHandle) => Promise<T>): Promise<T> {
  loadDotEnv()
  const config = loadConfig(process.env)
  const handle = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir })
  try {
    return await work(handle)
  } finally {
    await handle.close()
  }
}

export function runCli(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      if (error instanceof CliError || error instanceof ConfigError || error instanceof DataDirLockedError) {
        console.error(`gatehouse: ${error.message}`)
      } else {
        console.error('gatehouse: unexpected error:', error)
      }
      process.exit(1)
    },
  )
}
