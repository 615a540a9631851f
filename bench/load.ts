// Sustained load: 100 cookie-jar clients against the real server process on loopback for a bounded time,
// each signing up, then looping profile views → log-out → log-in (next=/profile) → profile views (2 to 8 a
// cycle, the first of them two requests at once on the same session).
// Passes when no answer is a 5xx and no session is lost: every profile view of a client that believes it is
// logged in shows its own email, and every client's last action is such a view.
//
//   node --import tsx bench/load.ts           LOAD_SECONDS (default 30, at most 60), LOAD_CLIENTS (default 100),
//                                             DATABASE_URL (PostgreSQL; else a fresh database, see benchDatabase)
// The server runs with its defaults except AUTH_RATE_LIMIT and LOGIN_MAX_FAILURES (one address, many log-ins);
// other variables of this environment reach it too (OVERLOAD_MAX_EVENT_LOOP_DELAY_MS=0, say, to see the load
// without load shedding).
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Browser, type Page } from '../support/browser.js'
import { benchDatabase, logLinesAtLeast, percentile, rssOf, startServer, table, thousands } from './lib.js'

const MAX_SECONDS = 60
const requestedSeconds = Number(process.env.LOAD_SECONDS || 30)
if (!Number.isFinite(requestedSeconds) || requestedSeconds <= 0)
  throw new Error('LOAD_SECONDS must be a positive number')
const SECONDS = Math.min(requestedSeconds, MAX_SECONDS)
const CLIENTS = Number(process.env.LOAD_CLIENTS || 100)
/** After the deadline, clients finish their cycle (a log-in waits for argon2) but no longer than this. */
const TAIL_MS = 60_000
const PASSWORD = 'load-test password 1234'
const RUN = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`

type Action = 'GET /signup' | 'POST /signup' | 'GET /profile' | 'POST /logout' | 'GET /login' | 'POST /login'
const ACTIONS: Action[] = ['GET /signup', 'POST /signup', 'GET /profile', 'POST /logout', 'GET /login', 'POST /login']

interface ActionStats {
  latencies: number[]
  byClass: Record<string, number>
}

const stats = new Map<Action, ActionStats>(ACTIONS.map((action) => [action, { latencies: [], byClass: {} }]))
const serverErrors: string[] = []
const networkErrors: string[] = []
/** Answers a step should not get (other than 5xx): a refused log-in, a form that expired, a 429. */
const unexpected: string[] = []
/** Profile views, while the client believed it was logged in, that did not show its own email. */
const lostSessions: string[] = []
/** Of those, views that showed another client's email: a crossed session, the worst case. */
const foreignViews: string[] = []

const database = await benchDatabase()
const server = await startServer({
  ...database.env,
  AUTH_RATE_LIMIT: '1000000',
  LOGIN_MAX_FAILURES: '1000000',
})
const rssAtStart = rssOf(server.pid)

let startedAt = 0
/** performance.now() when the load began. */
let loadStartedAt = 0
/** Every answered request: what, when (ms into the load), how long. */
const timings: { action: Action; client: number; status: number; at: number; took: number }[] = []
let deadline = 0
let hardStop = 0

/** One request, timed and counted; null when it did not get an answer at all. */
async function timed(action: Action, client: number, send: () => Promise<Page>): Promise<Page | null> {
  const before = performance.now()
  let page: Page
  try {
    page = await send()
  } catch (error) {
    networkErrors.push(`client ${client} ${action}: ${(error as Error).message}`)
    return null
  }
  const entry = stats.get(action)
  const took = performance.now() - before
  timings.push({ action, client, status: page.status, at: before - loadStartedAt, took })
  if (entry) {
    entry.latencies.push(took)
    const statusClass = `${Math.floor(page.status / 100)}xx`
    entry.byClass[statusClass] = (entry.byClass[statusClass] ?? 0) + 1
  }
  if (page.status >= 500) {
    const title = /<title>([^<]*)<\/title>/.exec(page.html)?.[1] ?? page.html.slice(0, 80)
    serverErrors.push(`${new Date().toISOString()} client ${client} ${action}: ${page.status} "${title}"`)
  }
  return page
}

function expectRedirect(client: number, action: Action, page: Page | null, to: string): boolean {
  if (!page) return false
  if (page.status === 303 && page.location === to) return true
  if (page.status < 500)
    unexpected.push(`client ${client} ${action}: ${page.status} → ${page.location ?? '(no location)'}`)
  return false
}

async function runClient(client: number): Promise<{ finished: boolean; lastViewOk: boolean }> {
  const email = `load-${RUN}-${client}@example.com`
  const foreign = new RegExp(`load-${RUN}-(\\d+)@example\\.com`, 'g')
  let browser = new Browser(server.url)
  let registered = false
  let lastViewOk = false
  /** After a 5xx the client waits as its Retry-After asks (at most 5 s), as a person would, before trying again. */
  let backOffMs = 0

  function noteFailure(page: Page | null): void {
    const retryAfter = Number(page?.headers.get('retry-after'))
    backOffMs = Math.max(backOffMs, Math.min(5_000, Number.isFinite(retryAfter) ? retryAfter * 1000 : 1_000))
  }

  /** A form page; true when it came (200) with its token. */
  async function formPage(action: 'GET /signup' | 'GET /login', path: string): Promise<boolean> {
    const page = await timed(action, client, () => browser.get(path))
    if (page?.status === 200) return true
    if (page && page.status < 500) unexpected.push(`client ${client} ${action}: ${page.status}`)
    noteFailure(page)
    return false
  }

  async function signUp(): Promise<boolean> {
    browser = new Browser(server.url)
    if (!(await formPage('GET /signup', '/signup'))) return false
    const page = await timed('POST /signup', client, () => browser.post('/signup', { email, password: PASSWORD }))
    // A sign-up answered after the user was created (a retry): the email is taken, log in instead.
    if (page?.status === 303 && page.location === '/signup') registered = true
    const ok = expectRedirect(client, 'POST /signup', page, '/profile')
    if (ok) registered = true
    else noteFailure(page)
    return ok
  }

  async function logIn(): Promise<boolean> {
    if (!(await formPage('GET /login', '/login?next=%2Fprofile'))) return false
    const page = await timed('POST /login', client, () =>
      browser.post('/login?next=%2Fprofile', { email, password: PASSWORD }),
    )
    const ok = expectRedirect(client, 'POST /login', page, '/profile')
    if (!ok) noteFailure(page)
    return ok
  }

  async function logOut(): Promise<boolean> {
    const page = await timed('POST /logout', client, () => browser.post('/logout', {}))
    const ok = expectRedirect(client, 'POST /logout', page, '/')
    if (!ok) noteFailure(page)
    return ok
  }

  /** True when the page is this client's own profile. */
  async function viewProfile(): Promise<boolean> {
    const page = await timed('GET /profile', client, () => browser.get('/profile'))
    if (!page) return false
    const ok = page.status === 200 && page.html.includes(email)
    if (!ok) noteFailure(page)
    if (!ok && page.status < 500) {
      const others = [...page.html.matchAll(foreign)].map((match) => match[0]).filter((other) => other !== email)
      const detail = `client ${client} GET /profile: ${page.status} → ${page.location ?? '(no location)'}`
      lostSessions.push(others.length > 0 ? `${detail}, showing ${others[0]}` : detail)
      if (others.length > 0) foreignViews.push(detail)
    }
    return ok
  }

  let loggedIn = await signUp()
  for (;;) {
    if (Date.now() >= hardStop) return { finished: false, lastViewOk }
    if (!loggedIn) {
      await sleep(backOffMs)
      backOffMs = 0
      // Start over with a fresh cookie jar: sign up if that never went through, else log in.
      browser = new Browser(server.url)
      loggedIn = registered ? await logIn() : await signUp()
      continue
    }
    const views = 2 + Math.floor(Math.random() * 7)
    for (let view = 0; view < views; view++) {
      // The first view of each cycle is two requests at once on the same session, like two tabs.
      lastViewOk = view === 0 ? (await Promise.all([viewProfile(), viewProfile()])).every(Boolean) : await viewProfile()
      if (!lastViewOk || Date.now() >= deadline) break
    }
    if (!lastViewOk) {
      loggedIn = false
      continue
    }
    if (Date.now() >= deadline) return { finished: true, lastViewOk }
    loggedIn = (await logOut()) && (await logIn())
  }
}

console.log(
  `gatehouse load: ${CLIENTS} clients for ${SECONDS} s${requestedSeconds > MAX_SECONDS ? ` (LOAD_SECONDS=${requestedSeconds} capped at ${MAX_SECONDS})` : ''} on ${database.face}, server pid ${server.pid} at ${server.url}`,
)
startedAt = Date.now()
loadStartedAt = performance.now()
deadline = startedAt + SECONDS * 1000
hardStop = deadline + TAIL_MS
const outcomes = await Promise.all(Array.from({ length: CLIENTS }, (_, client) => runClient(client)))
const elapsedMs = Date.now() - startedAt
const rssAtEnd = server.hasExited() ? Number.NaN : rssOf(server.pid)
const exitCode = await server.stop()
await database.drop()

const all = ACTIONS.flatMap((action) => stats.get(action)?.latencies ?? []).sort((a, b) => a - b)
const requests = all.length
const classTotals: Record<string, number> = {}
const rows = [['action', 'requests', '2xx', '3xx', '4xx', '5xx', 'p50 ms', 'p99 ms']]
for (const action of ACTIONS) {
  const entry = stats.get(action)
  if (!entry) continue
  const sorted = [...entry.latencies].sort((a, b) => a - b)
  for (const [statusClass, count] of Object.entries(entry.byClass)) {
    classTotals[statusClass] = (classTotals[statusClass] ?? 0) + count
  }
  rows.push([
    action,
    thousands(sorted.length),
    thousands(entry.byClass['2xx'] ?? 0),
    thousands(entry.byClass['3xx'] ?? 0),
    thousands(entry.byClass['4xx'] ?? 0),
    thousands(entry.byClass['5xx'] ?? 0),
    percentile(sorted, 50).toFixed(1),
    percentile(sorted, 99).toFixed(1),
  ])
}
rows.push([
  'all',
  thousands(requests),
  thousands(classTotals['2xx'] ?? 0),
  thousands(classTotals['3xx'] ?? 0),
  thousands(classTotals['4xx'] ?? 0),
  thousands(classTotals['5xx'] ?? 0),
  percentile(all, 50).toFixed(1),
  percentile(all, 99).toFixed(1),
])

const finished = outcomes.filter((outcome) => outcome.finished).length
const lastViewsOk = outcomes.filter((outcome) => outcome.finished && outcome.lastViewOk).length
const serverLogErrors = logLinesAtLeast(server, 50)
const serverWarnings = logLinesAtLeast(server, 40).filter((line) => (line.level ?? 0) < 50)

console.log(table(rows))
console.log(`
database                       ${database.face}
duration                       ${(elapsedMs / 1000).toFixed(1)} s (${SECONDS} s of load, then each client's cycle finishes)
requests                       ${thousands(requests)} (${thousands(requests / (elapsedMs / 1000))} req/s)
latency, all requests          p50 ${percentile(all, 50).toFixed(1)} ms, p99 ${percentile(all, 99).toFixed(1)} ms
5xx answers                    ${serverErrors.length}
lost sessions                  ${lostSessions.length} (of them showing another client's email: ${foreignViews.length})
unexpected answers (not 5xx)   ${unexpected.length}
requests without an answer     ${networkErrors.length}
clients ending on own profile  ${lastViewsOk} / ${CLIENTS} (${CLIENTS - finished} did not finish in time)
server RSS                     ${(rssAtStart / 1048576).toFixed(1)} MiB at start, ${(rssAtEnd / 1048576).toFixed(1)} MiB at the end
server log                     ${serverLogErrors.length} lines at error or above, ${serverWarnings.length} warnings
server exit after SIGTERM      ${exitCode}`)

const show = (title: string, lines: string[]) => {
  if (lines.length === 0) return
  console.log(`\n${title} (${lines.length}, first 20):`)
  for (const line of lines.slice(0, 20)) console.log(`  ${line}`)
}
show('5xx answers', serverErrors)
show('lost sessions', lostSessions)
show('unexpected answers', unexpected)
show('requests without an answer', networkErrors)
show(
  'server log lines at error or above',
  serverLogErrors.map((line) => JSON.stringify(line)),
)
show(
  'server log warnings',
  serverWarnings.map((line) => JSON.stringify(line)),
)
console.log('\nslowest requests:')
for (const timing of [...timings].sort((a, b) => b.took - a.took).slice(0, 8)) {
  console.log(
    `  ${timing.action} by client ${timing.client}: ${timing.status} in ${thousands(timing.took)} ms, sent ${(timing.at / 1000).toFixed(1)} s into the load`,
  )
}
show('server output that was not a log line', server.otherOutput)

const failures = [
  serverErrors.length > 0 && '5xx answers',
  lostSessions.length > 0 && 'lost sessions',
  unexpected.length > 0 && 'unexpected answers',
  networkErrors.length > 0 && 'requests without an answer',
  lastViewsOk < CLIENTS && 'clients that did not end on their own profile',
  serverLogErrors.length > 0 && 'server errors in the log',
  exitCode !== 0 && 'a server that did not exit 0 on SIGTERM',
].filter((failure): failure is string => typeof failure === 'string')
console.log(failures.length === 0 ? '\nPASS' : `\nFAIL: ${failures.join(', ')}`)
process.exitCode = failures.length === 0 ? 0 : 1
