// What the bench scripts share: the real server process on a database of its own, its memory, and figures.
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createTestDatabase } from '../test/helpers/database.js'
import { freePort } from '../test/helpers/postgres-server.js'

const ROOT = new URL('..', import.meta.url)

export const BENCH_SECRET = 'bench-secret-that-is-at-least-32-characters-long'

export interface BenchDatabase {
  /** Environment variables that point the server at it. */
  env: { DATABASE_URL?: string; DATA_DIR: string }
  face: 'postgres' | 'pglite'
  /** Removes what this script created (never a database named by DATABASE_URL). */
  drop(): Promise<void>
}

/**
 * DATABASE_URL set: that PostgreSQL database, as it is (the server migrates it). Unset: a fresh database
 * made like the tests' (a PGlite copy, or a new database on TEST_DATABASE_URL's server), removed at the end.
 */
export async function benchDatabase(): Promise<BenchDatabase> {
  const url = process.env.DATABASE_URL
  if (url) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-'))
    return {
      env: { DATABASE_URL: url, DATA_DIR: dataDir },
      face: 'postgres',
      drop: async () => fs.rmSync(dataDir, { recursive: true, force: true }),
    }
  }
  return createTestDatabase()
}

export interface LogLine {
  level?: number
  msg?: string
  [key: string]: unknown
}

export interface ServerProcess {
  child: ChildProcess
  pid: number
  url: string
  /** Every JSON log line the server wrote (at LOG_LEVEL=warn: warnings and errors only). */
  logs: LogLine[]
  /** Whatever it wrote that was not a JSON log line (stderr, stray output). */
  otherOutput: string[]
  /** Resolves with the exit code (or the signal's name) once the process has gone. */
  exited: Promise<number | string | null>
  hasExited(): boolean
  /** SIGTERM, then SIGKILL after 15 s; resolves with the exit code. */
  stop(): Promise<number | string | null>
}

/** The real server process (src/server.ts through tsx) on loopback; resolves once /healthz answers 200. */
export async function startServer(env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: '',
      NODE_ENV: 'production',
      COOKIE_SECURE: 'false',
      SESSION_SECRET: BENCH_SECRET,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const logs: LogLine[] = []
  const otherOutput: string[] = []
  let buffered = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk
    const complete = buffered.split('\n')
    buffered = complete.pop() ?? ''
    for (const line of complete.filter(Boolean)) {
      try {
        logs.push(JSON.parse(line) as LogLine)
      } catch {
        otherOutput.push(line)
      }
    }
  })
  child.stderr?.on('data', (chunk: Buffer) => otherOutput.push(String(chunk).trimEnd()))
  let gone = false
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => {
      gone = true
      resolve(code ?? signal)
    }),
  )
  // Never leave a server behind, whatever happens to this script (a signal ends it without 'exit').
  process.once('exit', () => child.kill('SIGKILL'))
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      child.kill('SIGKILL')
      process.exit(signal === 'SIGINT' ? 130 : 143)
    })
  }

  const url = `http://127.0.0.1:${port}`
  const startedAt = Date.now()
  for (;;) {
    if (gone) throw new Error(`the server exited before it answered:\n${otherOutput.join('\n')}`)
    if (Date.now() - startedAt > 120_000) {
      child.kill('SIGKILL')
      throw new Error('the server did not answer /healthz within 120 s')
    }
    try {
      const response = await fetch(`${url}/healthz`)
      await response.arrayBuffer()
      if (response.status === 200) break
    } catch {
      // Not listening yet.
    }
    await sleep(100)
  }
  const pid = child.pid
  if (pid === undefined) throw new Error('the server process has no pid')

  return {
    child,
    pid,
    url,
    logs,
    otherOutput,
    exited,
    hasExited: () => gone,
    async stop() {
      if (!gone) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      const code = await exited
      clearTimeout(timer)
      return code
    },
  }
}

/** Resident set size of a process, in bytes (VmRSS in /proc/<pid>/status). */
export function rssOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]
  if (kib === undefined) throw new Error(`no VmRSS for process ${pid}`)
  return Number(kib) * 1024
}

/** Nearest-rank percentile of numbers already sorted ascending. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

export function thousands(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}

/** A plain-text table: the first row is the header; columns after the first are right-aligned. */
export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? []
  const line = (row: string[]) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)))
      .join('  ')
  const [header = [], ...body] = rows
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...body.map(line)].join('\n')
}

/** The server's log lines at `level` or above (pino: 40 warn, 50 error, 60 fatal), for the report. */
export function logLinesAtLeast(server: ServerProcess, level: number): LogLine[] {
  return server.logs.filter((line) => (line.level ?? 0) >= level)
}
