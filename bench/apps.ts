// What the bench scripts drive: the yardstick apps beside gatehouse, the users each app gets (signed up and
// logged in through its own routes), and the steps a load connection repeats against them.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Browser, type Page } from '../support/browser.js'
import { freePort } from '../support/free-port.js'
import { type Answer, location, type Step, setCookiePair } from './http-load.js'
import { BENCH_SECRET, type ServerProcess, startProcess } from './lib.js'

/** The yardstick apps, kept in the repository and run as they are (see bench/yardsticks/README.md). */
const YARDSTICKS = fileURLToPath(new URL('./yardsticks/', import.meta.url))
export type YardstickName = 'express-baseline' | 'fastify-limit' | 'better-auth-baseline'

/** Connections of every measurement; each app gets one user per connection, so no two share a session row. */
export const CONNECTIONS = 10
export const USERS = CONNECTIONS
export const PASSWORD = 'bench password 1234'

/** The variables gatehouse runs with besides its database; stated in the output. */
export const GATEHOUSE_ENV = {
  AUTH_RATE_LIMIT: '1000000',
  LOGIN_MAX_FAILURES: '1000000',
  OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
}

export const GATEHOUSE_FLOW: LoginFlow = {
  kind: 'form',
  cookieName: 'sid',
  csrf: true,
  successStatus: 303,
  profilePath: '/profile',
}
export const EXPRESS_FLOW: LoginFlow = {
  kind: 'form',
  cookieName: 'connect.sid',
  csrf: false,
  successStatus: 302,
  profilePath: '/profile',
}
/** Better Auth speaks JSON: its "profile" is get-session, which names the session's user. */
export const BETTER_AUTH_FLOW: LoginFlow = {
  kind: 'json',
  cookieName: 'better-auth.session_token',
  signUpPath: '/api/auth/sign-up/email',
  signInPath: '/api/auth/sign-in/email',
  profilePath: '/api/auth/get-session',
}

/** How an app signs users up, logs them in and shows who is logged in. */
export type LoginFlow = FormLoginFlow | JsonLoginFlow

/** HTML forms: GET /login, then POST /login redirecting to the profile page. */
export interface FormLoginFlow {
  kind: 'form'
  /** The pre-session cookie GET /login sets (gatehouse needs it back for its CSRF check), then the session's. */
  cookieName: string
  csrf: boolean
  successStatus: number
  profilePath: string
}

/** JSON POSTs, each answered 200 with the session cookie. */
export interface JsonLoginFlow {
  kind: 'json'
  cookieName: string
  signUpPath: string
  signInPath: string
  profilePath: string
}

/** An app under load: its server, its users and their logged-in sessions. */
export interface BenchApp<Key extends string = string> {
  key: Key
  server: ServerProcess
  emails: string[]
  /** One logged-in session per user, as a Cookie header. */
  sessions: { cookie: string; email: string }[]
  loginFlow: LoginFlow | null
}

/** node_modules/.package-lock.json is written at the end of every install: it dates the folder's contents. */
function installedAt(folder: string): number | null {
  try {
    return fs.statSync(path.join(folder, 'node_modules', '.package-lock.json')).mtimeMs
  } catch {
    return null
  }
}

/**
 * Installs a yardstick's locked dependencies when its node_modules is missing or older than its lock file.
 * npm fetches from the registry only; a native addon that must be compiled (argon2 when its bundled prebuild
 * does not load) gets the running node's own headers where they sit beside it, so node-gyp downloads none.
 */
export function ensureInstalled(folder: string): void {
  const installed = installedAt(folder)
  if (installed !== null && installed >= fs.statSync(path.join(folder, 'package-lock.json')).mtimeMs) return
  const name = path.basename(folder)
  console.log(`installing ${name}: ${installed === null ? 'no' : 'outdated'} node_modules (npm ci in ${folder})`)
  const env = { ...process.env }
  const nodePrefix = path.resolve(path.dirname(process.execPath), '..')
  if (!env.npm_config_nodedir && fs.existsSync(path.join(nodePrefix, 'include', 'node', 'common.gypi'))) {
    env.npm_config_nodedir = nodePrefix
  }
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: folder, env, stdio: 'inherit' })
  if (result.status !== 0) throw new Error(`npm ci failed in ${folder}`)
}

/** Installs every yardstick that needs it, before anything starts. */
export function ensureYardsticksInstalled(names: YardstickName[]): void {
  for (const name of names) ensureInstalled(path.join(YARDSTICKS, name))
}

export async function startYardstick(name: YardstickName, databaseUrl: string) {
  const folder = path.join(YARDSTICKS, name)
  ensureInstalled(folder)
  const port = await freePort()
  return startProcess({
    name,
    command: process.execPath,
    args: ['app.js'],
    cwd: folder,
    port,
    readyPath: '/hello',
    // The environment gatehouse gets too (production); nothing of the app itself is tuned.
    env: {
      ...process.env,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      SESSION_SECRET: BENCH_SECRET,
      BETTER_AUTH_SECRET: BENCH_SECRET,
    },
  })
}

export function benchEmails(key: string): string[] {
  return Array.from({ length: USERS }, (_, index) => `bench-${key}-${index}@example.com`)
}

/** Signs each user up, then logs them in as a client of the app would; the log-in's session, checked on the
 * app's profile route, is the one the profile measurements reuse. */
export async function usersWithSessions(
  server: ServerProcess,
  flow: LoginFlow,
  emails: string[],
): Promise<BenchApp['sessions']> {
  const sessions: BenchApp['sessions'] = []
  for (const email of emails) {
    const cookie = flow.kind === 'form' ? await formLogIn(server, flow, email) : await jsonLogIn(server, flow, email)
    await expectProfile(server, flow, cookie, email)
    sessions.push({ cookie, email })
  }
  return sessions
}

/** Through the forms, as a browser would (GET /signup, POST /signup; GET /login, POST /login). */
async function formLogIn(server: ServerProcess, flow: FormLoginFlow, email: string) {
  const expectRedirectToProfile = (what: string, page: Page) => {
    if (page.status !== flow.successStatus || page.location !== flow.profilePath) {
      throw new Error(`${what}: ${page.status} → ${page.location}\n${page.html.slice(0, 400)}`)
    }
  }
  const newcomer = new Browser(server.url)
  await newcomer.get('/signup')
  expectRedirectToProfile(`sign-up of ${email}`, await newcomer.post('/signup', { email, password: PASSWORD }))
  const browser = new Browser(server.url)
  await browser.get('/login')
  expectRedirectToProfile(`log-in of ${email}`, await browser.post('/login', { email, password: PASSWORD }))
  return `${flow.cookieName}=${browser.cookies.get(flow.cookieName)}`
}

/** JSON POSTs with the Origin a browser on the app's own page sends (Better Auth refuses a POST without it). */
export function jsonHeaders(server: ServerProcess): Record<string, string> {
  return { 'content-type': 'application/json', accept: 'application/json', origin: server.url }
}

async function jsonLogIn(server: ServerProcess, flow: JsonLoginFlow, email: string) {
  const post = async (what: string, route: string, body: object) => {
    const response = await fetch(`${server.url}${route}`, {
      method: 'POST',
      headers: jsonHeaders(server),
      body: JSON.stringify(body),
      redirect: 'manual',
    })
    const text = await response.text()
    const pair = response.headers
      .getSetCookie()
      .map((cookie) => cookie.split(';')[0]?.trim() ?? '')
      .find((cookie) => cookie.startsWith(`${flow.cookieName}=`))
    if (response.status !== 200 || !pair) {
      throw new Error(
        `${what}: ${response.status}, ${pair ? 'a' : 'no'} ${flow.cookieName} cookie\n${text.slice(0, 400)}`,
      )
    }
    return pair
  }
  await post(`sign-up of ${email}`, flow.signUpPath, { name: email, email, password: PASSWORD })
  return post(`log-in of ${email}`, flow.signInPath, { email, password: PASSWORD })
}

/** What a profile answer must hold: the page shows the email; get-session's JSON names it as the user's. */
function profileShows(flow: LoginFlow, body: string, email: string): boolean {
  return body.includes(flow.kind === 'json' ? `"email":"${email}"` : email)
}

function profileHeaders(flow: LoginFlow): Record<string, string> {
  return flow.kind === 'json' ? { accept: 'application/json' } : HTML
}

export async function expectProfile(
  server: ServerProcess,
  flow: LoginFlow,
  cookie: string,
  email: string,
): Promise<void> {
  const response = await fetch(`${server.url}${flow.profilePath}`, {
    headers: { ...profileHeaders(flow), cookie },
    redirect: 'manual',
  })
  const body = await response.text()
  if (response.status !== 200 || !profileShows(flow, body, email)) {
    throw new Error(
      `GET ${flow.profilePath} on ${server.url} as ${email}: ${response.status}, email ${profileShows(flow, body, email) ? 'shown' : 'missing'}`,
    )
  }
}

// ------------------------------------------------------------------------------------------------ steps

export const HTML = { accept: 'text/html' }

export function expectStatus(status: number, also?: (answer: Answer) => string | null) {
  return (answer: Answer) => (answer.status === status ? (also ? also(answer) : null) : `status ${answer.status}`)
}

export function profileSteps(app: BenchApp) {
  const flow = app.loginFlow
  if (!flow) throw new Error(`${app.key} has no users`)
  return (index: number): Step[] => {
    const session = app.sessions[index % app.sessions.length]
    if (!session) throw new Error(`${app.key} has no sessions`)
    return [
      {
        method: 'GET',
        path: flow.profilePath,
        headers: { ...profileHeaders(flow), cookie: session.cookie },
        measured: true,
        check: expectStatus(200, (answer) =>
          profileShows(flow, answer.body, session.email) ? null : 'not the user’s own profile',
        ),
      },
    ]
  }
}

export function pageSteps(pagePath: string, mustContain?: string) {
  return (): Step[] => [
    {
      method: 'GET',
      path: pagePath,
      headers: HTML,
      measured: true,
      check: expectStatus(200, (answer) =>
        mustContain === undefined || answer.body.includes(mustContain) ? null : `no "${mustContain}" in the page`,
      ),
    },
  ]
}

export const CSRF_INPUT = /name="_csrf" value="([^"]+)"/

/** One log-in: for a form, GET /login as a new visitor (no cookie), then POST /login with its pre-session and
 * token; for JSON, the sign-in POST alone. */
export function loginSteps(app: BenchApp) {
  const flow = app.loginFlow
  if (!flow) throw new Error(`${app.key} has no log-in`)
  if (flow.kind === 'json') return jsonLoginSteps(app, flow)
  return (index: number): Step[] => {
    // Each connection goes through all the users in turn, starting at its own.
    let nextUser = index
    return [
      {
        method: 'GET',
        path: '/login',
        headers: HTML,
        measured: false,
        check: (answer, chain) => {
          if (answer.status !== 200) return `status ${answer.status}`
          const cookie = setCookiePair(answer, flow.cookieName)
          if (cookie) chain.cookie = cookie
          if (!flow.csrf) return null
          if (!cookie) return `no ${flow.cookieName} cookie`
          const token = CSRF_INPUT.exec(answer.body)?.[1]
          if (!token) return 'no _csrf in the form'
          chain.csrf = token
          return null
        },
      },
      {
        method: 'POST',
        path: '/login',
        headers: { ...HTML, 'content-type': 'application/x-www-form-urlencoded' },
        measured: true,
        prepare: (chain) => {
          if (flow.csrf && !chain.csrf) return null
          const email = app.emails[nextUser++ % app.emails.length] ?? ''
          const fields = new URLSearchParams({ email, password: PASSWORD })
          if (chain.csrf) fields.set('_csrf', chain.csrf)
          const headers: Record<string, string> = chain.cookie ? { cookie: chain.cookie } : {}
          return { headers, body: fields.toString() }
        },
        check: (answer) =>
          answer.status === flow.successStatus && location(answer) === flow.profilePath
            ? null
            : `status ${answer.status} → ${location(answer) ?? '(no location)'}`,
      },
    ]
  }
}

function jsonLoginSteps(app: BenchApp, flow: JsonLoginFlow) {
  const headers = jsonHeaders(app.server)
  return (index: number): Step[] => {
    // As for the forms: each connection goes through all the users in turn, starting at its own.
    let nextUser = index
    return [
      {
        method: 'POST',
        path: flow.signInPath,
        headers,
        measured: true,
        prepare: (chain) => {
          const email = app.emails[nextUser++ % app.emails.length] ?? ''
          chain.email = email
          return { body: JSON.stringify({ email, password: PASSWORD }) }
        },
        check: (answer, chain) => {
          if (answer.status !== 200) return `status ${answer.status}`
          if (!setCookiePair(answer, flow.cookieName)) return `no ${flow.cookieName} cookie`
          return answer.body.includes(`"email":"${chain.email}"`) ? null : 'not the user’s own log-in'
        },
      },
    ]
  }
}
