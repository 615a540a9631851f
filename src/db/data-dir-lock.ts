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

/** Lock files this process holds: a file with our own pid is only stale when it is not one of these. */
const heldByThisProcess = new Set<string>()

/**
 * Takes `<dataDir>/gatehouse.pid`, or throws DataDirLockedError naming the holder.
 * A file left by a killed process (its pid no longer runs) is taken over, so a crash never locks us out.
 * Returns the release function.
 */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true })
  const lockFile = path.resolve(dataDir, 'gatehouse.pid')
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(lockFile, `${process.pid}\n`, { flag: 'wx' })
      heldByThisProcess.add(lockFile)
      let released = false
      return () => {
        if (released) return
        released = true
        heldByThisProcess.delete(lockFile)
        fs.rmSync(lockFile, { force: true })
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    let holder: number
    try {
      holder = Number.parseInt(fs.readFileSync(lockFile, 'utf8'), 10)
    } catch (error) {
      // Released between our attempt and this read: try again.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw error
    }
    const heldHere = holder === process.pid && heldByThisProcess.has(lockFile)
    // Our own pid in a file we do not hold: left by an earlier process that had the same pid (a container restart).
    if (heldHere || (Number.isInteger(holder) && holder !== process.pid && isRunning(holder))) {
      throw new DataDirLockedError(
        `The embedded database in ${dataDir} is in use by ${heldHere ? 'this process already' : `another gatehouse process (pid ${holder})`}; stop it first, or set DATABASE_URL to use a PostgreSQL server.`,
      )
    }
    fs.rmSync(lockFile, { force: true })
  }
  throw new DataDirLockedError(`Could not lock ${lockFile}; another process keeps taking it.`)
}
