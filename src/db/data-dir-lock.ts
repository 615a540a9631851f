// One process per embedded data folder: PGlite has no lock of its own, and two writers silently lose data.
import fs from 'node:fs'
import path from 'node:path'

export class DataDirLockedError extends Error {
  override name = 'DataDirLockedError'
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Takes `<dataDir>/gatehouse.pid`, or throws DataDirLockedError naming the holder.
 * A file left by a killed process (its pid no longer runs) is taken over, so a crash never locks us out.
 * Returns the release function.
 */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true })
  const lockFile = path.join(dataDir, 'gatehouse.pid')
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(lockFile, `${process.pid}\n`, { flag: 'wx' })
      let released = false
      return () => {
        if (released) return
        released = true
        fs.rmSync(lockFile, { force: true })
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const holder = Number.parseInt(fs.readFileSync(lockFile, 'utf8'), 10)
    if (Number.isInteger(holder) && holder !== process.pid && isRunning(holder)) {
      throw new DataDirLockedError(
        `The embedded database in ${dataDir} is in use by another gatehouse process (pid ${holder}); stop it first, or set DATABASE_URL to use a PostgreSQL server.`,
      )
    }
    fs.rmSync(lockFile, { force: true })
  }
  throw new DataDirLockedError(`Could not lock ${lockFile}; another process keeps taking it.`)
}
