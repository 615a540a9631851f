// How the server and the CLI commands end on an error they cannot go on from.
import { ConfigError } from './config.js'
import { DataDirLockedError } from './db/data-dir-lock.js'

/** A refusal a person can fix (a CLI command's usage, say): printed as one line. */
export class RefusalError extends Error {
  override name = 'RefusalError'
}

/** Configuration, lock and other refusals are one clear line; anything else keeps its stack. Exits 1. */
export function exitWithError(error: unknown, unexpected: string): never {
  if (error instanceof ConfigError || error instanceof DataDirLockedError || error instanceof RefusalError) {
    console.error(`gatehouse: ${error.message}`)
  } else {
    console.error(`gatehouse: ${unexpected}:`, error)
  }
  process.exit(1)
}
