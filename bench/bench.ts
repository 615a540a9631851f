// npm run bench: gatehouse beside three yardsticks in one run, on this machine's PostgreSQL, over loopback: the
// Express recipe the tutorials teach, Better Auth as its documentation sets it up, and a bare Fastify route doing
// one SELECT (all in bench/yardsticks, run as they are), plus the raw argon2id bound and gatehouse's embedded
// (PGlite) face. Every figure is a median over rounds that alternate the apps; every ratio is the median of the
// ratios taken within each round. Issue #22 sets the targets checked at the end.
//
//   npm run bench      BENCH_ROUNDS (default 5), BENCH_SECONDS (each measurement, default 10, at most 10),
//                      BENCH_FACES (gatehouse's faces, default "postgres,pglite"; the yardsticks and the
//                      targets come with "postgres"), BENCH_GROUPS (which measurements, default
//                      "profile,anonymous,login,storm"; a target whose rows were not measured is left out),
//                      BENCH_POSTGRES_URL (a server we may create databases on, default
//                      postgres://postgres@127.0.0.1:5432/postgres)
//
// gatehouse runs from dist/ (the npm script builds first) with NODE_ENV=production, COOKIE_SECURE=false,
// LOG_LEVEL=warn, throttles raised out of reach and load shedding off (OVERLOAD_MAX_EVENT_LOOP_DELAY_MS=0), on a
// fresh database; so does each yardstick with users. Figures and ratios go to standard output as markdown and to
// bench/results/latest.json. Exits 1 when a measurement was not valid (an answer that was not what its step
// expects, a connection error, a server error in a log); missed targets are reported, not an exit code.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import {
  BETTER_AUTH_FLOW,
  type BenchApp,
  benchEmails,
  CONNECTIONS,
  EXPRESS_FLOW,
  ensureYardsticksInstalled,
  GATEHOUSE_ENV,
  GATEHOUSE_FLOW,
  loginSteps,
  pageSteps,
  profileSteps,
  startYardstick,
  USERS,
  usersWithSessions,
} from './apps.js'
import { HASH_BOUND_CONCURRENCY, HASH_BOUND_PARAMETERS, measureHashBound } from './hash-bound.js'
import { type LoadResult, runLoad } from './http-load.js'
import {
  type BenchDatabase,
  freshPgliteDatabase,
  freshPostgresDatabase,
  logLinesAtLeast,
  MAX_SECONDS,
  numberFromEnv,
  POSTGRES_URL,
  peakRssOf,
  ROOT,
  rssOf,
  secondsFromEnv,
  startServer,
} from './lib.js'

// ---------------------------------------------------------------------------------------------- settings

const ROUNDS = numberFromEnv('BENCH_ROUNDS', 5, (n) => Number.isInteger(n) && n >= 1, 'a whole number, 1 or more')
const SECONDS = secondsFromEnv(MAX_SECONDS)
const FACES = (process.env.BENCH_FACES || 'postgres,pglite').split(',').map((face) => face.trim())
for (const face of FACES) {
  if (face !== 'postgres' && face !== 'pglite')
    throw new Error(`BENCH_FACES: unknown face "${face}" (postgres, pglite)`)
}
const GROUP_NAMES = ['profile', 'anonymous', 'login', 'storm'] as const
type GroupName = (typeof GROUP_NAMES)[number]
const GROUPS = (process.env.BENCH_GROUPS || GROUP_NAMES.join(',')).split(',').map((name) => name.trim())
for (const name of GROUPS) {
  if (!(GROUP_NAMES as readonly string[]).includes(name))
    throw new Error(`BENCH_GROUPS: unknown group "${name}" (${GROUP_NAMES.join(', ')})`)
}
const RESULTS_FILE = fileURLToPath(new URL('bench/results/latest.json', ROOT))

/** Profile views beside the log-in storm. */
const STORM_VIEW_CONNECTIONS = 2
/** Between two measurements: in-flight log-ins finish, the next measurement starts on a quiet machine. */
const SETTLE_MS = 500
const WARMUP_SECONDS = Math.min(2, SECONDS)
const HASH_SECONDS = SECONDS / 2
const RSS_SAMPLE_MS = 100

// ------------------------------------------------------------------------------------------------- apps

type AppKey = 'gatehouse' | 'express' | 'better-auth' | 'fastify-limit' | 'gatehouse-pglite'
/** What is measured; Better Auth's JSON routes stand in for the profile page and the log-in form. */
type Kind = 'profile' | 'get-session' | 'anonymous' | 'hello' | 'one-query' | 'login' | 'sign-in' | 'storm'

type App = BenchApp<AppKey>

const ROW_NAMES: Record<Kind | 'storm-views' | 'hash', string> = {
  profile: 'GET /profile, logged in',
  'get-session': 'GET /api/auth/get-session, logged in',
  anonymous: 'GET /, anonymous',
  hello: 'GET /hello, static',
  'one-query': 'GET /one-query',
  login: 'POST /login (each after its GET /login)',
  'sign-in': 'POST /api/auth/sign-in/email (JSON)',
  storm: 'storm: POST /login, 10 connections',
  'storm-views': 'storm: GET /profile, 2 more connections',
  hash: `argon2id verify, raw, @node-rs/argon2 (${HASH_BOUND_CONCURRENCY} at once)`,
}

function say(line: string): void {
  console.log(line)
}

// ---------------------------------------------------------------------------------------------- figures

interface Figure {
  round: number
  /** Answers as expected per second (verifications per second for the hash bound). */
  rate: number
  p50: number | null
  p99: number | null
  /** Highest VmRSS sampled during the measurement, bytes (storm rows only). */
  peakRss: number | null
  /** Every answer by status code, and the ones that were not what their step expects (HTTP rows only). */
  statuses?: Record<string, number>
  unexpected?: number
  connectionErrors?: number
}

function figureOf(round: number, result: LoadResult, peakRss: number | null = null): Figure {
  return {
    round,
    rate: result.rate,
    p50: result.p50,
    p99: result.p99,
    peakRss,
    statuses: result.statuses,
    unexpected: result.badCount,
    connectionErrors: result.errors,
  }
}

interface Measured {
  app: AppKey | 'argon2id'
  row: keyof typeof ROW_NAMES
  figures: Figure[]
}

const measured = new Map<string, Measured>()
const problems: string[] = []

function record(app: Measured['app'], row: Measured['row'], figure: Figure): void {
  const id = `${app}|${row}`
  let entry = measured.get(id)
  if (!entry) {
    entry = { app, row, figures: [] }
    measured.set(id, entry)
  }
  entry.figures.push(figure)
}

function figuresOf(app: Measured['app'], row: Measured['row']): Figure[] {
  return measured.get(`${app}|${row}`)?.figures ?? []
}

function median(values: number[]): number {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

function fixed(value: number | null, digits: number): string {
  return value === null || !Number.isFinite(value) ? '–' : value.toFixed(digits)
}

function rateText(rate: number): string {
  return rate >= 100 ? Math.round(rate).toLocaleString('en-US') : rate.toFixed(1)
}

function mibText(bytes: number | null): string {
  return bytes === null || !Number.isFinite(bytes) ? '–' : `${(bytes / 1048576).toFixed(1)} MiB`
}

/** Problems with a measurement's answers; empty when every answer was what its step expects. */
function loadProblems(result: LoadResult): string[] {
  const found = Object.entries(result.bad).map(([what, count]) => `${count}× ${what}`)
  if (result.errors > 0) found.push(`${result.errors} connection errors (${result.timeouts} of them timeouts)`)
  if (result.good === 0) found.push('no answer as expected at all')
  return found
}

function describe(result: LoadResult): string {
  const trouble = result.badCount + result.errors
  return `${rateText(result.rate)}/s, p50 ${fixed(result.p50, 1)} ms, p99 ${fixed(result.p99, 1)} ms${trouble > 0 ? ` [${result.badCount} unexpected answers, ${result.errors} connection errors]` : ''}`
}

// ---------------------------------------------------------------------------------------------- measuring

let warmingUp = false

/** Runs one measurement; a warm-up's problems end the run at once, a round's are collected for the report. */
async function measure(app: App, kind: Kind, round: number, seconds: number): Promise<void> {
  const where = `${warmingUp ? 'warm-up' : `round ${round}/${ROUNDS}`} ${app.key} ${ROW_NAMES[kind]}`
  const url = app.server.url
  const check = (result: LoadResult, label: string) => {
    const found = loadProblems(result)
    if (found.length === 0) return
    const message = `${label}: ${found.join('; ')}${result.firstBad ? `\n    first: ${result.firstBad.replaceAll('\n', '\n    ')}` : ''}`
    if (warmingUp) throw new Error(message)
    problems.push(message)
  }

  if (kind === 'storm') {
    let peakRss = rssOf(app.server.pid)
    const sampler = setInterval(() => {
      if (!app.server.hasExited()) peakRss = Math.max(peakRss, rssOf(app.server.pid))
    }, RSS_SAMPLE_MS)
    const [logins, views] = await Promise.all([
      runLoad({ url, connections: CONNECTIONS, seconds, steps: loginSteps(app) }),
      runLoad({ url, connections: STORM_VIEW_CONNECTIONS, seconds, steps: profileSteps(app) }),
    ])
    clearInterval(sampler)
    check(logins, `${where}`)
    check(views, `${where.replace(ROW_NAMES.storm, ROW_NAMES['storm-views'])}`)
    say(`  ${where}: ${describe(logins)}; views ${describe(views)}; peak RSS ${mibText(peakRss)}`)
    if (!warmingUp) {
      record(app.key, 'storm', figureOf(round, logins, peakRss))
      record(app.key, 'storm-views', figureOf(round, views))
    }
    return
  }

  const steps =
    kind === 'profile' || kind === 'get-session'
      ? profileSteps(app)
      : kind === 'login' || kind === 'sign-in'
        ? loginSteps(app)
        : kind === 'anonymous'
          ? pageSteps('/')
          : kind === 'hello'
            ? pageSteps('/hello', '<p>hello</p>')
            : pageSteps('/one-query', '<p>1</p>')
  const result = await runLoad({ url, connections: CONNECTIONS, seconds, steps })
  check(result, where)
  say(`  ${where}: ${describe(result)}`)
  if (!warmingUp) record(app.key, kind, figureOf(round, result))
}

async function measureHash(round: number, seconds: number): Promise<void> {
  const bound = await measureHashBound(seconds)
  say(
    `  ${warmingUp ? 'warm-up' : `round ${round}/${ROUNDS}`} ${ROW_NAMES.hash}: ${bound.rate.toFixed(1)} verifications/s`,
  )
  if (!warmingUp) record('argon2id', 'hash', { round, rate: bound.rate, p50: null, p99: null, peakRss: null })
}

/** Measurements of one kind for every app, close in time, so a ratio compares like with like. */
type Group = { app: AppKey | 'argon2id'; kind: Kind | 'hash' }[]

function groupsFor(apps: Map<AppKey, App>): Group[] {
  const has = (key: AppKey) => apps.has(key)
  const groups: Record<GroupName, Group> = {
    profile: [
      ...(has('gatehouse') ? [{ app: 'gatehouse' as const, kind: 'profile' as const }] : []),
      ...(has('express') ? [{ app: 'express' as const, kind: 'profile' as const }] : []),
      ...(has('better-auth') ? [{ app: 'better-auth' as const, kind: 'get-session' as const }] : []),
      ...(has('fastify-limit') ? [{ app: 'fastify-limit' as const, kind: 'one-query' as const }] : []),
      ...(has('gatehouse-pglite') ? [{ app: 'gatehouse-pglite' as const, kind: 'profile' as const }] : []),
    ],
    anonymous: [
      ...(has('gatehouse') ? [{ app: 'gatehouse' as const, kind: 'anonymous' as const }] : []),
      ...(has('fastify-limit') ? [{ app: 'fastify-limit' as const, kind: 'hello' as const }] : []),
      ...(has('gatehouse-pglite') ? [{ app: 'gatehouse-pglite' as const, kind: 'anonymous' as const }] : []),
    ],
    login: [
      ...(has('gatehouse') ? [{ app: 'gatehouse' as const, kind: 'login' as const }] : []),
      ...(has('express') ? [{ app: 'express' as const, kind: 'login' as const }] : []),
      ...(has('better-auth') ? [{ app: 'better-auth' as const, kind: 'sign-in' as const }] : []),
      { app: 'argon2id' as const, kind: 'hash' as const },
      ...(has('gatehouse-pglite') ? [{ app: 'gatehouse-pglite' as const, kind: 'login' as const }] : []),
    ],
    storm: [
      ...(has('gatehouse') ? [{ app: 'gatehouse' as const, kind: 'storm' as const }] : []),
      ...(has('express') ? [{ app: 'express' as const, kind: 'storm' as const }] : []),
    ],
  }
  return GROUP_NAMES.filter((name) => GROUPS.includes(name))
    .map((name) => groups[name])
    .filter((group) => group.length > 0)
}

async function runGroup(apps: Map<AppKey, App>, group: Group, round: number, seconds: number): Promise<void> {
  // Every other round runs each group backwards, so no app always goes first or last.
  const ordered = round % 2 === 1 ? group : [...group].reverse()
  for (const { app: key, kind } of ordered) {
    if (key === 'argon2id' || kind === 'hash') {
      await measureHash(round, warmingUp ? seconds : Math.min(seconds, HASH_SECONDS))
    } else {
      const app = apps.get(key)
      if (!app) throw new Error(`no app ${key}`)
      await measure(app, kind, round, seconds)
    }
    await sleep(SETTLE_MS)
  }
}

// ------------------------------------------------------------------------------------------------ report

interface Ratio {
  name: string
  /** Median over rounds of (numerator / denominator) taken within each round. */
  value: number
  perRound: number[]
  target: { op: '≥' | '≤'; value: number } | null
  pass: boolean | null
  unit: '×' | 'ms'
}

function perRoundRatio(
  name: string,
  numerator: Figure[],
  denominator: Figure[],
  pick: (figure: Figure) => number | null,
  target: Ratio['target'],
): Ratio | null {
  if (numerator.length === 0 || denominator.length === 0) return null
  const perRound: number[] = []
  for (const top of numerator) {
    const bottom = denominator.find((figure) => figure.round === top.round)
    const a = pick(top)
    const b = bottom ? pick(bottom) : null
    if (a !== null && b !== null && b !== 0) perRound.push(a / b)
  }
  const value = median(perRound)
  const pass = target === null ? null : target.op === '≥' ? value >= target.value : value <= target.value
  return { name, value, perRound, target, pass, unit: '×' }
}

function perRoundLimit(
  name: string,
  figures: Figure[],
  pick: (figure: Figure) => number | null,
  limit: number,
): Ratio | null {
  if (figures.length === 0) return null
  const perRound = figures.map(pick).filter((value): value is number => value !== null)
  const value = median(perRound)
  return { name, value, perRound, target: { op: '≤', value: limit }, pass: value <= limit, unit: 'ms' }
}

function ratios(): Ratio[] {
  const rate = (figure: Figure) => figure.rate
  const list = [
    perRoundRatio(
      'GET /profile logged in: gatehouse / express',
      figuresOf('gatehouse', 'profile'),
      figuresOf('express', 'profile'),
      rate,
      { op: '≥', value: 3.5 },
    ),
    perRoundRatio(
      'GET /profile logged in: gatehouse / fastify-limit GET /one-query',
      figuresOf('gatehouse', 'profile'),
      figuresOf('fastify-limit', 'one-query'),
      rate,
      { op: '≥', value: 0.45 },
    ),
    perRoundLimit(
      'storm: GET /profile p99 on 2 connections beside 10 log-in connections (gatehouse)',
      figuresOf('gatehouse', 'storm-views'),
      (figure) => figure.p99,
      12,
    ),
    perRoundRatio(
      'storm: log-ins/s, gatehouse / express',
      figuresOf('gatehouse', 'storm'),
      figuresOf('express', 'storm'),
      rate,
      { op: '≥', value: 1.15 },
    ),
    perRoundRatio(
      'POST /login alone: gatehouse log-ins/s / raw argon2id verifications/s',
      figuresOf('gatehouse', 'login'),
      figuresOf('argon2id', 'hash'),
      rate,
      { op: '≥', value: 0.75 },
    ),
    perRoundRatio(
      'storm: peak RSS, gatehouse / express',
      figuresOf('gatehouse', 'storm'),
      figuresOf('express', 'storm'),
      (figure) => figure.peakRss,
      { op: '≤', value: 1 },
    ),
    // For the reader, no target.
    perRoundRatio(
      'GET /profile logged in: gatehouse / better-auth GET /api/auth/get-session',
      figuresOf('gatehouse', 'profile'),
      figuresOf('better-auth', 'get-session'),
      rate,
      null,
    ),
    perRoundRatio(
      'POST /login alone: gatehouse / better-auth POST /api/auth/sign-in/email',
      figuresOf('gatehouse', 'login'),
      figuresOf('better-auth', 'sign-in'),
      rate,
      null,
    ),
    perRoundRatio(
      'POST /login alone: gatehouse / express',
      figuresOf('gatehouse', 'login'),
      figuresOf('express', 'login'),
      rate,
      null,
    ),
    perRoundRatio(
      'POST /login alone: express log-ins/s / raw argon2id verifications/s',
      figuresOf('express', 'login'),
      figuresOf('argon2id', 'hash'),
      rate,
      null,
    ),
    perRoundRatio(
      'GET / anonymous: gatehouse / fastify-limit GET /hello',
      figuresOf('gatehouse', 'anonymous'),
      figuresOf('fastify-limit', 'hello'),
      rate,
      null,
    ),
    perRoundRatio(
      'GET /profile logged in: gatehouse PGlite / gatehouse PostgreSQL',
      figuresOf('gatehouse-pglite', 'profile'),
      figuresOf('gatehouse', 'profile'),
      rate,
      null,
    ),
    perRoundRatio(
      'POST /login alone: gatehouse PGlite / raw argon2id verifications/s',
      figuresOf('gatehouse-pglite', 'login'),
      figuresOf('argon2id', 'hash'),
      rate,
      null,
    ),
  ]
  return list.filter((ratio): ratio is Ratio => ratio !== null)
}

const APP_LABELS: Record<Measured['app'], string> = {
  gatehouse: 'gatehouse (PostgreSQL)',
  express: 'express-baseline',
  'better-auth': 'better-auth-baseline',
  'fastify-limit': 'fastify-limit',
  'gatehouse-pglite': 'gatehouse (PGlite)',
  argon2id: 'argon2id, no HTTP',
}

function markdownTable(header: string[], rows: string[][], rightAligned: boolean[]): string {
  const align = rightAligned.map((right) => (right ? '--:' : '---'))
  return [header, align, ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n')
}

function ratioValueText(ratio: Ratio, value: number): string {
  return ratio.unit === 'ms' ? `${value.toFixed(1)} ms` : `${value.toFixed(2)}×`
}

// -------------------------------------------------------------------------------------------------- main

function gitDescription(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'templates', 'migrations'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim()
    return dirty ? `${commit} with uncommitted changes in src/, templates/ or migrations/` : commit
  } catch {
    return 'unknown'
  }
}

const apps = new Map<AppKey, App>()
const databases: BenchDatabase[] = []
const startedAt = Date.now()

async function setUpGatehouse(key: 'gatehouse' | 'gatehouse-pglite', database: BenchDatabase): Promise<void> {
  databases.push(database)
  const server = await startServer({ ...database.env, ...GATEHOUSE_ENV }, { from: 'dist' })
  const emails = benchEmails(key)
  const sessions = await usersWithSessions(server, GATEHOUSE_FLOW, emails)
  apps.set(key, { key, server, emails, sessions, loginFlow: GATEHOUSE_FLOW })
  say(`${APP_LABELS[key]}: pid ${server.pid} at ${server.url}, ${USERS} users signed up and logged in`)
}

async function setUp(): Promise<void> {
  if (FACES.includes('postgres')) {
    ensureYardsticksInstalled(['express-baseline', 'better-auth-baseline', 'fastify-limit'])
    await setUpGatehouse('gatehouse', await freshPostgresDatabase(POSTGRES_URL))

    // The Express recipe gets an empty database of its own each run, made and dropped as gatehouse's is.
    const expressDatabase = await freshPostgresDatabase(POSTGRES_URL, 'bench_express')
    databases.push(expressDatabase)
    const express = await startYardstick('express-baseline', expressDatabase.env.DATABASE_URL)
    const emails = benchEmails('express')
    const sessions = await usersWithSessions(express, EXPRESS_FLOW, emails)
    apps.set('express', { key: 'express', server: express, emails, sessions, loginFlow: EXPRESS_FLOW })
    say(`${APP_LABELS.express}: pid ${express.pid} at ${express.url}, ${USERS} users signed up and logged in`)

    // Better Auth too: its tables are made by its own migrations at start.
    const betterAuthDatabase = await freshPostgresDatabase(POSTGRES_URL, 'bench_better_auth')
    databases.push(betterAuthDatabase)
    const betterAuth = await startYardstick('better-auth-baseline', betterAuthDatabase.env.DATABASE_URL)
    const betterAuthEmails = benchEmails('better-auth')
    apps.set('better-auth', {
      key: 'better-auth',
      server: betterAuth,
      emails: betterAuthEmails,
      sessions: await usersWithSessions(betterAuth, BETTER_AUTH_FLOW, betterAuthEmails),
      loginFlow: BETTER_AUTH_FLOW,
    })
    say(
      `${APP_LABELS['better-auth']}: pid ${betterAuth.pid} at ${betterAuth.url}, ${USERS} users signed up and logged in`,
    )

    // SELECT $1::int needs no table: any database on the server does.
    const fastify = await startYardstick('fastify-limit', POSTGRES_URL)
    apps.set('fastify-limit', { key: 'fastify-limit', server: fastify, emails: [], sessions: [], loginFlow: null })
    say(`${APP_LABELS['fastify-limit']}: pid ${fastify.pid} at ${fastify.url}`)
  }
  if (FACES.includes('pglite')) await setUpGatehouse('gatehouse-pglite', freshPgliteDatabase())
}

async function tearDown(): Promise<Record<string, { peakRss: number; exit: number | string | null }>> {
  const ends: Record<string, { peakRss: number; exit: number | string | null }> = {}
  for (const app of apps.values()) {
    const peakRss = app.server.hasExited() ? Number.NaN : peakRssOf(app.server.pid)
    const errors = logLinesAtLeast(app.server, 50)
    if (errors.length > 0) {
      problems.push(
        `${app.key} logged ${errors.length} lines at error or above; first: ${JSON.stringify(errors[0]).slice(0, 400)}`,
      )
    }
    ends[app.key] = { peakRss, exit: await app.server.stop() }
  }
  for (const database of databases) await database.drop()
  return ends
}

say(
  `gatehouse bench: ${ROUNDS} rounds of ${SECONDS} s measurements, ${CONNECTIONS} connections, faces ${FACES.join(', ')}; ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'unknown cpu'}), Node ${process.version}`,
)
say(
  `gatehouse runs from dist/ with NODE_ENV=production COOKIE_SECURE=false LOG_LEVEL=warn ${Object.entries(GATEHOUSE_ENV)
    .map(([name, value]) => `${name}=${value}`)
    .join(' ')} (load shedding off)`,
)

let ends: Awaited<ReturnType<typeof tearDown>> = {}
try {
  await setUp()
  const groups = groupsFor(apps)
  const perRound = groups.flat().length
  const estimate = ((perRound * (SECONDS + SETTLE_MS / 1000) - (SECONDS - HASH_SECONDS)) * ROUNDS) / 60
  say(
    `${perRound} measurements a round in ${groups.length} groups, about ${estimate.toFixed(1)} min after a ${WARMUP_SECONDS} s warm-up of each`,
  )
  warmingUp = true
  for (const group of groups) await runGroup(apps, group, 1, WARMUP_SECONDS)
  warmingUp = false
  for (let round = 1; round <= ROUNDS; round++) {
    say(`round ${round}/${ROUNDS} (${((Date.now() - startedAt) / 60_000).toFixed(1)} min in)`)
    for (const group of groups) await runGroup(apps, group, round, SECONDS)
  }
} catch (error) {
  say(`STOPPED: ${(error as Error).message}`)
  problems.push(`the run stopped: ${(error as Error).message}`)
} finally {
  ends = await tearDown()
}

// Medians, in the order the issue lists them.
const rowOrder: Measured['row'][] = [
  'profile',
  'get-session',
  'one-query',
  'anonymous',
  'hello',
  'login',
  'sign-in',
  'storm',
  'storm-views',
  'hash',
]
const appOrder: Measured['app'][] = [
  'gatehouse',
  'express',
  'better-auth',
  'fastify-limit',
  'argon2id',
  'gatehouse-pglite',
]
const entries = [...measured.values()].sort(
  (a, b) => appOrder.indexOf(a.app) - appOrder.indexOf(b.app) || rowOrder.indexOf(a.row) - rowOrder.indexOf(b.row),
)
const medians = entries.map((entry) => ({
  app: entry.app,
  row: ROW_NAMES[entry.row],
  rounds: entry.figures.length,
  rate: median(entry.figures.map((figure) => figure.rate)),
  p50: entry.row === 'hash' ? null : median(entry.figures.map((figure) => figure.p50 ?? Number.NaN)),
  p99: entry.row === 'hash' ? null : median(entry.figures.map((figure) => figure.p99 ?? Number.NaN)),
  peakRss: entry.row === 'storm' ? median(entry.figures.map((figure) => figure.peakRss ?? Number.NaN)) : null,
  perRound: entry.figures,
}))
const ratioList = ratios()

say('\n## Medians\n')
say(
  markdownTable(
    ['app', 'row', 'req/s', 'p50 ms', 'p99 ms', 'peak RSS'],
    medians.map((entry) => [
      APP_LABELS[entry.app],
      entry.row,
      `${rateText(entry.rate)}${entry.app === 'argon2id' ? ' verif./s' : ''}`,
      fixed(entry.p50, 1),
      fixed(entry.p99, 1),
      mibText(entry.peakRss),
    ]),
    [false, false, true, true, true, true],
  ),
)
say(
  `\nMedians of ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}. Peak RSS: the highest VmRSS sampled every ${RSS_SAMPLE_MS} ms during the storm.`,
)
say('\n## Ratios (median of the ratios within each round)\n')
say(
  markdownTable(
    ['ratio', 'median', 'target', 'result', 'per round'],
    ratioList.map((ratio) => [
      ratio.name,
      ratioValueText(ratio, ratio.value),
      ratio.target ? `${ratio.target.op} ${ratioValueText(ratio, ratio.target.value)}` : '–',
      ratio.pass === null ? '' : ratio.pass ? 'pass' : '**FAIL**',
      ratio.perRound.map((value) => (ratio.unit === 'ms' ? value.toFixed(1) : value.toFixed(2))).join(', '),
    ]),
    [false, true, true, false, false],
  ),
)
say('\n## Servers\n')
say(
  markdownTable(
    ['app', 'pid', 'VmHWM at the end (whole run)', 'exit after SIGTERM'],
    [...apps.values()].map((app) => [
      APP_LABELS[app.key],
      String(app.server.pid),
      mibText(ends[app.key]?.peakRss ?? null),
      String(ends[app.key]?.exit ?? '–'),
    ]),
    [false, true, true, true],
  ),
)

const targets = ratioList.filter((ratio) => ratio.target !== null)
const met = targets.filter((ratio) => ratio.pass).length
say(`\ntargets met: ${met} of ${targets.length}`)
const minutes = (Date.now() - startedAt) / 60_000
say(`run took ${minutes.toFixed(1)} min`)

fs.mkdirSync(path.dirname(RESULTS_FILE), { recursive: true })
fs.writeFileSync(
  RESULTS_FILE,
  `${JSON.stringify(
    {
      date: new Date(startedAt).toISOString(),
      commit: gitDescription(),
      machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model ?? null, node: process.version },
      settings: {
        rounds: ROUNDS,
        seconds: SECONDS,
        hashSeconds: HASH_SECONDS,
        connections: CONNECTIONS,
        stormViewConnections: STORM_VIEW_CONNECTIONS,
        faces: FACES,
        hashBound: { concurrency: HASH_BOUND_CONCURRENCY, ...HASH_BOUND_PARAMETERS },
        gatehouseEnv: { NODE_ENV: 'production', COOKIE_SECURE: 'false', LOG_LEVEL: 'warn', ...GATEHOUSE_ENV },
      },
      medians: medians.map(({ perRound, ...entry }) => ({ ...entry, perRound })),
      ratios: ratioList,
      servers: Object.fromEntries(
        [...apps.values()].map((app) => [app.key, { pid: app.server.pid, ...ends[app.key] }]),
      ),
      targetsMet: met,
      targets: targets.length,
      problems,
      minutes,
    },
    null,
    2,
  )}\n`,
)
say(`written to ${path.relative(process.cwd(), RESULTS_FILE)}`)

if (problems.length > 0) {
  say(`\nNOT VALID: ${problems.length} problems`)
  for (const problem of problems.slice(0, 30)) say(`  ${problem}`)
  process.exitCode = 1
}
