// What the bench scripts drive: the yardstick apps beside gatehouse, the users each app gets (signed up and
// logged in through the forms), and the steps a load connection repeats against them.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Browser, type Page } from '../test/helpers/browser.js'
import { freePort } from '../test/helpers/postgres-server.js'
import { type Answer, location, type Step, setCookiePair } from './http-load.js'
import { BENCH_SECRET, ROOT, type ServerProcess, startProcess } from './lib.js'

const SHARED_BENCH = fileURLToPath(new URL('../shared/bench/', ROOT))

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

export const GATEHOUSE_FLOW: LoginFlow = { cookieName: 'sid', csrf: true, successStatus: 303 }
export const EXPRESS_FLOW: LoginFlow = { cookieName: 'connect.sid', csrf: false, successStatus: 302 }

export interface LoginFlow {
  /** The pre-session cookie GET /login sets (gatehouse needs it back for its CSRF check). */
  cookieName: string
  csrf: boolean
  successStatus: number
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

export function ensureInstalled(folder: string): void {
  if (fs.existsSync(path.join(folder, 'node_modules'))) return
  console.log(`installing ${path.basename(folder)} (npm ci in ${folder})`)
  const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: folder, stdio: 'inherit' })
  if (result.status !== 0) throw new Error(`npm ci failed in ${folder}`)
}

export async function startYardstick(name: 'express-baseline' | 'fastify-limit', databaseUrl: string) {
  const folder = path.join(SHARED_BENCH, name)
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
    },
  })
}

export function benchEmails(key: string): string[] {
  return Array.from({ length: USERS }, (_, index) => `bench-${key}-${index}@example.com`)
}

/** Signs each user up through the forms, then logs them in as a browser would (GET /login, POST /login);
 * the log-in's session, checked on /profile, is the one the profile measurements reuse. */
export async function usersWithSessions(
  server: ServerProcess,
  flow: LoginFlow,
  emails: string[],
): Promise<BenchApp['sessions']> {
  const sessions: BenchApp['sessions'] = []
  const expectRedirectToProfile = (what: string, page: Page) => {
    if (page.status !== flow.successStatus || page.location !== '/profile') {
      throw new Error(`${what}: ${page.status} → ${page.location}\n${page.html.slice(0, 400)}`)
    }
  }
  for (const email of emails) {
    const newcomer = new Browser(server.url)
    await newcomer.get('/signup')
    expectRedirectToProfile(`sign-up of ${email}`, await newcomer.post('/signup', { email, password: PASSWORD }))
    const browser = new Browser(server.url)
    await browser.get('/login')
    expectRedirectToProfile(`log-in of ${email}`, await browser.post('/login', { email, password: PASSWORD }))
    const cookie = `${flow.cookieName}=${browser.cookies.get(flow.cookieName)}`
    await expectProfile(server, cookie, email)
    sessions.push({ cookie, email })
  }
  return sessions
}

export async function expectProfile(server: ServerProcess, cookie: string, email: string): Promise<void> {
  const response = await fetch(`${server.url}/profile`, {
    headers: { cookie, accept: 'text/html' },
    redirect: 'manual',
  })
  const html = await response.text()
  if (response.status !== 200 || !html.includes(email)) {
    throw new Error(
      `GET /profile on ${server.url} as ${email}: ${response.status}, email ${html.includes(email) ? 'shown' : 'missing'}`,
    )
  }
}

// ------------------------------------------------------------------------------------------------ steps

export const HTML = { accept: 'text/html' }

export function expectStatus(status: number, also?: (answer: Answer) => string | null) {
  return (answer: Answer) => (answer.status === status ? (also ? also(answer) : null) : `status ${answer.status}`)
}

export function profileSteps(app: BenchApp) {
  return (index: number): Step[] => {
    const session = app.sessions[index % app.sessions.length]
    if (!session) throw new Error(`${app.key} has no sessions`)
    return [
      {
        method: 'GET',
        path: '/profile',
        headers: { ...HTML, cookie: session.cookie },
        measured: true,
        check: expectStatus(200, (answer) =>
          answer.body.includes(session.email) ? null : 'not the user’s own profile',
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

/** GET /login as a new visitor (no cookie), then POST /login with its pre-session and token: one log-in. */
export function loginSteps(app: BenchApp) {
  const flow = app.loginFlow
  if (!flow) throw new Error(`${app.key} has no log-in`)
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
          answer.status === flow.successStatus && location(answer) === '/profile'
            ? null
            : `status ${answer.status} → ${location(answer) ?? '(no location)'}`,
      },
    ]
  }
}
