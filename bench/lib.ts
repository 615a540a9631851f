// What the bench scripts share: the real server process on a database of its own, its memory, and figures.
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { freePort } from '../support/free-port.js'
import { createTestDatabase } from '../support/test-database.js'

export const ROOT = new URL('..', import.meta.url)

export const BENCH_SECRET = 'bench-secret-that-is-at-least-32-characters-long'

/** The PostgreSQL server the speed benches create their databases on (BENCH_POSTGRES_URL). */
export const POSTGRES_URL = process.env.BENCH_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres'

/** The longest a speed measurement may last (the speed issue's rule). */
export const MAX_SECONDS = 10

/** A number from the environment, `fallback` when unset; anything `check` refuses stops the script. */
export function numberFromEnv(name: string, fallback: number, check: (n: number) => boolean, rule: string): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!check(value)) throw new Error(`${name} must be ${rule} (got "${raw}")`)
  return value
}

/** BENCH_SECONDS: each measurement's length, more than 0 and at most MAX_SECONDS. */
export function secondsFromEnv(fallback: number): number {
  return numberFromEnv(
    'BENCH_SECONDS',
    fallback,
    (n) => n > 0 && n <= MAX_SECONDS,
    `a number of seconds, more than 0 and at most ${MAX_SECONDS}`,
  )
}

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

/** A new, empty PostgreSQL database on the server of `serverUrl` (the server migrates it), dropped at the end. */
export async function freshPostgresDatabase(
  serverUrl: string,
  prefix = 'gatehouse_bench',
): Promise<BenchDatabase & { env: { DATABASE_URL: string } }> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}`
  const url = await recreatePostgresDatabase(serverUrl, name)
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-'))
  return {
    env: { DATABASE_URL: url, DATA_DIR: dataDir },
    face: 'postgres',
    async drop() {
      await dropPostgresDatabase(serverUrl, name)
      fs.rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** A new, empty embedded database (the server creates and migrates it in DATA_DIR), removed at the end. */
export function freshPgliteDatabase(): BenchDatabase {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-pglite-'))
  return {
    env: { DATA_DIR: dataDir },
    face: 'pglite',
    drop: async () => fs.rmSync(dataDir, { recursive: true, force: true }),
  }
}

async function onServer(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

function assertIdentifier(name: string): void {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`)
}

/** Drops `name` on the server of `serverUrl` if it exists, creates it empty, and returns its URL. */
export async function recreatePostgresDatabase(serverUrl: string, name: string): Promise<string> {
  assertIdentifier(name)
  await onServer(serverUrl, `drop database if exists ${name} with (force)`)
  await onServer(serverUrl, `create database ${name}`)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

export async function dropPostgresDatabase(serverUrl: string, name: string): Promise<void> {
  assertIdentifier(name)
  await onServer(serverUrl, `drop database if exists ${name} with (force)`)
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

export interface StartServerOptions {
  /** `source` (default): src/server.ts through tsx. `dist`: the built dist/src/server.js (run `npm run build` first). */
  from?: 'source' | 'dist'
  /** Options for node itself, before the entry point (for example `--expose-gc`). */
  nodeArgs?: string[]
}

/** The real server process on loopback; resolves once /healthz answers 200. */
export async function startServer(
  env: Record<string, string>,
  options: StartServerOptions = {},
): Promise<ServerProcess> {
  const port = await freePort()
  const entry = [
    ...(options.nodeArgs ?? []),
    ...(options.from === 'dist' ? ['dist/src/server.js'] : ['--import', 'tsx', 'src/server.ts']),
  ]
  if (options.from === 'dist' && !fs.existsSync(new URL('dist/src/server.js', ROOT))) {
    throw new Error('dist/src/server.js is missing: run `npm run build` first')
  }
  return startProcess({
    name: 'gatehouse',
    command: process.execPath,
    args: entry,
    cwd: ROOT,
    port,
    readyPath: '/healthz',
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
  })
}

export interface ProcessOptions {
  /** For messages. */
  name: string
  command: string
  args: string[]
  cwd: string | URL
  /** The whole environment of the process. */
  env: NodeJS.ProcessEnv
  /** The loopback port it listens on. */
  port: number
  /** Answered with 200 once the process is ready. */
  readyPath: string
}

/** Any HTTP server process on loopback; resolves once `readyPath` answers 200. Killed when this script ends. */
export async function startProcess(options: ProcessOptions): Promise<ServerProcess> {
  const child = spawn(options.command, options.args, {
    cwd: options.cwd,
    env: options.env,
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

  const url = `http://127.0.0.1:${options.port}`
  const startedAt = Date.now()
  for (;;) {
    if (gone) throw new Error(`${options.name} exited before it answered:\n${otherOutput.join('\n')}`)
    if (Date.now() - startedAt > 120_000) {
      child.kill('SIGKILL')
      throw new Error(`${options.name} did not answer ${options.readyPath} within 120 s`)
    }
    try {
      const response = await fetch(`${url}${options.readyPath}`)
      await response.arrayBuffer()
      if (response.status === 200) break
    } catch {
      // Not listening yet.
    }
    await sleep(100)
  }
  const pid = child.pid
  if (pid === undefined) throw new Error(`${options.name} has no pid`)

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
  return procStatusBytes(pid, 'VmRSS')
}

/** The highest resident set size a process has had since it started, in bytes (VmHWM). */
export function peakRssOf(pid: number): number {
  return procStatusBytes(pid, 'VmHWM')
}

function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1]
  if (kib === undefined) throw new Error(`no ${field} for process ${pid}`)
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
