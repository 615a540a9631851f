// npm run bench:cpu: where the CPU of one operation goes, per process and thread, for the figures `npm run bench`
// compares: gatehouse's GET /profile beside fastify-limit's GET /one-query, and a log-in split into its GET
// /login and the rest, beside the raw argon2id bound at 1, 2 and 4 verifications at once. It says what bounds
// each ratio on this machine, whose cores gatehouse's event loop, its hashing threads, PostgreSQL and the load
// generator all share.
//
//   npm run bench:cpu   BENCH_SECONDS (each measurement, default 8, at most 10), BENCH_POSTGRES_URL (as for bench)
//
// Per-thread CPU comes from /proc (Linux only), in clock ticks: each figure is the CPU used during the
// measurement divided by the operations it completed; "kernel" is the part of it in system time. PostgreSQL is
// every process named `postgres`, so other work on the same server counts too: run it on a quiet machine.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import {
  type BenchApp,
  benchEmails,
  CONNECTIONS,
  GATEHOUSE_ENV,
  GATEHOUSE_FLOW,
  loginSteps,
  pageSteps,
  profileSteps,
  startYardstick,
  usersWithSessions,
} from './apps.js'
import { measureHashBound } from './hash-bound.js'
import { runLoad, type Step } from './http-load.js'
import {
  freshPostgresDatabase,
  POSTGRES_URL,
  type ServerProcess,
  secondsFromEnv,
  startServer,
  table,
  thousands,
} from './lib.js'

const SECONDS = secondsFromEnv(8)
const WARMUP_SECONDS = 2
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

/** CPU seconds used so far: a process's main thread (its event loop) and all its other threads; `kernel` is
 * the part of both spent in the kernel (system time). */
interface ProcessCpu {
  main: number
  others: number
  kernel: number
}

interface ThreadCpu {
  user: number
  system: number
}

function threadCpu(pid: number, tid: string): ThreadCpu {
  const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
  // Fields after the command name, which may hold spaces: utime and stime are the 14th and 15th of the line.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { user: Number(fields[11]) / TICKS_PER_SECOND, system: Number(fields[12]) / TICKS_PER_SECOND }
}

function processCpu(pid: number): ProcessCpu {
  const cpu: ProcessCpu = { main: 0, others: 0, kernel: 0 }
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const { user, system } = threadCpu(pid, tid)
      if (tid === String(pid)) cpu.main += user + system
      else cpu.others += user + system
      cpu.kernel += system
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return cpu
}

interface Cpu {
  all: number
  kernel: number
}

/** CPU seconds so far of each process named `postgres`, by pid. */
function postgresCpu(): Map<number, Cpu> {
  const byPid = new Map<number, Cpu>()
  const pids = execFileSync('pgrep', ['-x', 'postgres'], { encoding: 'utf8' }).trim().split('\n')
  for (const pid of pids.map(Number)) {
    try {
      const { main, kernel } = processCpu(pid)
      byPid.set(pid, { all: main, kernel })
    } catch {
      // A backend that ended meanwhile.
    }
  }
  return byPid
}

/** What PostgreSQL used between two samples: backends come and go with the pools' connections, so each one
 * counts from its first sample (or from nothing, when it started meanwhile); one that ended meanwhile is lost. */
function postgresDelta(before: Map<number, Cpu>, after: Map<number, Cpu>): Cpu {
  const total: Cpu = { all: 0, kernel: 0 }
  for (const [pid, cpu] of after) {
    total.all += cpu.all - (before.get(pid)?.all ?? 0)
    total.kernel += cpu.kernel - (before.get(pid)?.kernel ?? 0)
  }
  return total
}

function ownCpu(): Cpu {
  const usage = process.cpuUsage()
  return { all: (usage.user + usage.system) / 1e6, kernel: usage.system / 1e6 }
}

interface Sample {
  server: ProcessCpu
  postgres: Map<number, Cpu>
  loadGenerator: Cpu
}

function sample(server: ServerProcess | null): Sample {
  return {
    server: server ? processCpu(server.pid) : { main: 0, others: 0, kernel: 0 },
    postgres: postgresCpu(),
    loadGenerator: ownCpu(),
  }
}

interface Row {
  label: string
  rate: number
  /** CPU per operation, ms. */
  eventLoop: number | null
  otherThreads: number | null
  postgres: number | null
  loadGenerator: number
  /** Of all of it, the part spent in the kernel. */
  kernel: number
}

function rowOf(label: string, rate: number, count: number, before: Sample, after: Sample, withServer: boolean): Row {
  const per = (seconds: number) => (seconds * 1000) / count
  const postgres = postgresDelta(before.postgres, after.postgres)
  const serverKernel = after.server.kernel - before.server.kernel
  return {
    label,
    rate,
    eventLoop: withServer ? per(after.server.main - before.server.main) : null,
    otherThreads: withServer ? per(after.server.others - before.server.others) : null,
    postgres: withServer ? per(postgres.all) : null,
    loadGenerator: per(after.loadGenerator.all - before.loadGenerator.all),
    kernel: per(
      (withServer ? serverKernel + postgres.kernel : 0) + after.loadGenerator.kernel - before.loadGenerator.kernel,
    ),
  }
}

async function measureHttp(label: string, app: BenchApp, steps: (index: number) => Step[]): Promise<Row> {
  const options = { url: app.server.url, connections: CONNECTIONS, steps }
  await runLoad({ ...options, seconds: WARMUP_SECONDS })
  const before = sample(app.server)
  const result = await runLoad({ ...options, seconds: SECONDS })
  const after = sample(app.server)
  if (result.badCount > 0 || result.errors > 0) {
    throw new Error(`${label}: ${result.badCount} unexpected answers, ${result.errors} errors; ${result.firstBad}`)
  }
  return rowOf(label, result.rate, result.good, before, after, true)
}

async function measureHash(lanes: number): Promise<Row> {
  const before = sample(null)
  const bound = await measureHashBound(SECONDS / 2, lanes)
  const after = sample(null)
  const count = Math.round(bound.rate * bound.seconds)
  // The verifications run on libuv's threads in this process: all of it is the hash.
  return rowOf(`raw argon2id verify, ${lanes} at once`, bound.rate, count, before, after, false)
}

const ms = (value: number | null) => (value === null ? '–' : value < 1 ? value.toFixed(3) : value.toFixed(2))

function print(rows: Row[]): void {
  const cores = os.availableParallelism()
  const header = [
    'operation',
    'per s',
    'event loop',
    'other threads',
    'PostgreSQL',
    'load generator',
    'all',
    'kernel',
    'CPU bound',
  ]
  const body = rows.map((row) => {
    const all = (row.eventLoop ?? 0) + (row.otherThreads ?? 0) + (row.postgres ?? 0) + row.loadGenerator
    return [
      row.label,
      thousands(row.rate),
      ms(row.eventLoop),
      ms(row.otherThreads),
      ms(row.postgres),
      ms(row.loadGenerator),
      ms(all),
      `${Math.round((100 * row.kernel) / all)}%`,
      // The rate if the cores did nothing else and nothing waited.
      thousands((cores * 1000) / all),
    ]
  })
  console.log(
    `\nCPU per operation, ms (${cores} cores; "kernel": the part of "all" in system time; "CPU bound": ${cores} cores / "all")\n`,
  )
  console.log(table([header, ...body]))
}

const database = await freshPostgresDatabase(POSTGRES_URL, 'gatehouse_cpu')
const servers: ServerProcess[] = []
try {
  const server = await startServer({ ...database.env, ...GATEHOUSE_ENV }, { from: 'dist' })
  servers.push(server)
  const emails = benchEmails('gatehouse')
  const gatehouse: BenchApp = {
    key: 'gatehouse',
    server,
    emails,
    sessions: await usersWithSessions(server, GATEHOUSE_FLOW, emails),
    loginFlow: GATEHOUSE_FLOW,
  }
  const limitServer = await startYardstick('fastify-limit', POSTGRES_URL)
  servers.push(limitServer)
  const limit: BenchApp = { key: 'fastify-limit', server: limitServer, emails: [], sessions: [], loginFlow: null }
  console.log(
    `gatehouse pid ${server.pid}, fastify-limit pid ${limitServer.pid}; ${SECONDS} s each, ${CONNECTIONS} connections`,
  )

  // The first half of each log-in on its own: what a log-in costs before any hashing.
  const loginFormOnly = (index: number): Step[] =>
    loginSteps(gatehouse)(index)
      .slice(0, 1)
      .map((step) => ({ ...step, measured: true }))

  const rows: Row[] = []
  rows.push(await measureHttp('gatehouse GET /profile, logged in', gatehouse, profileSteps(gatehouse)))
  rows.push(await measureHttp('fastify-limit GET /one-query', limit, pageSteps('/one-query', '<p>1</p>')))
  rows.push(await measureHttp('gatehouse GET /login alone', gatehouse, loginFormOnly))
  rows.push(await measureHttp('gatehouse log-in (GET, then POST /login)', gatehouse, loginSteps(gatehouse)))
  for (const lanes of [1, 2, 4]) rows.push(await measureHash(lanes))
  print(rows)
} finally {
  for (const server of servers) await server.stop()
  await database.drop()
}
