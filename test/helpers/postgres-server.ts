// A throwaway PostgreSQL server of our own (initdb into a temp folder, a free loopback port), from the
// machine's PostgreSQL binaries, so a test can stop and start it freely.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { freePort } from '../../support/free-port.js'

const run = promisify(execFile)

export interface ThrowawayPostgres {
  url: string
  start(): Promise<void>
  stop(): Promise<void>
  remove(): Promise<void>
}

/** The folder holding initdb, pg_ctl and postgres, or null where PostgreSQL is not installed. */
function findBinaries(): string | null {
  const root = '/usr/lib/postgresql'
  if (!fs.existsSync(root)) return null
  for (const version of fs.readdirSync(root).sort().reverse()) {
    const bin = path.join(root, version, 'bin')
    if (['initdb', 'pg_ctl', 'postgres'].every((name) => fs.existsSync(path.join(bin, name)))) return bin
  }
  return null
}

/** Why the throwaway server cannot run here, or null when it can. */
export function throwawayPostgresUnavailable(): string | null {
  if (!findBinaries()) return 'no PostgreSQL binaries under /usr/lib/postgresql/*/bin'
  if (process.getuid?.() === 0 && !fs.existsSync('/usr/sbin/runuser')) return 'running as root without runuser'
  return null
}

export async function startThrowawayPostgres(): Promise<ThrowawayPostgres> {
  const bin = findBinaries()
  if (!bin) throw new Error('no PostgreSQL binaries')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-pg-'))
  const dataDir = path.join(dir, 'data')
  // PostgreSQL refuses to run as root: run its programs as the postgres user, in a folder it owns.
  const asRoot = process.getuid?.() === 0
  if (asRoot) await run('chown', ['postgres:', dir])
  const exec = (program: string, args: string[]) =>
    asRoot
      ? run('/usr/sbin/runuser', ['-u', 'postgres', '--', path.join(bin, program), ...args])
      : run(path.join(bin, program), args)

  await exec('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'])
  const port = await freePort()
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`
  const server: ThrowawayPostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start: async () => {
      await exec('pg_ctl', ['-D', dataDir, '-o', options, '-l', path.join(dir, 'server.log'), '-w', 'start'])
    },
    // "fast": connections are cut at once, the way a crash or a restart of the server looks to the app.
    stop: async () => {
      await exec('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop'])
    },
    remove: async () => {
      await exec('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined)
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
  await server.start()
  return server
}
