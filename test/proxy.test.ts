// The production shape, for real: nginx terminating TLS with the shipped deploy/nginx/gatehouse.conf, in
// front of two gatehouse processes on one PostgreSQL database, with NODE_ENV=production and TRUST_PROXY
// naming the proxy. nginx connects to the instances from 127.0.0.2 (proxy_bind), the only trusted
// address; each test "client" connects from an address of its own (127.0.0.x), so the client address
// the proxy passes on is never the proxy's, and a direct request from anywhere else is untrusted.
// (docker-compose.yml gets the same separation from the proxy's fixed address on its network.)
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, test } from 'node:test'
import pg from 'pg'
import { TEST_DATABASE_URL } from '../support/test-database.js'
import { PASSWORD, uniqueEmail } from './helpers/app.js'
import { nginxUnavailable, type RunningNginx, startNginx, TlsBrowser } from './helpers/nginx.js'
import {
  startThrowawayPostgres,
  type ThrowawayPostgres,
  throwawayPostgresUnavailable,
} from './helpers/postgres-server.js'
import { type ServerProcess, spawnServer } from './helpers/server-process.js'

/** The proxy's own address: nginx connects to the instances from here, and TRUST_PROXY names only it. */
const PROXY_ADDRESS = '127.0.0.2'
const AUTH_RATE_LIMIT = 5

const noNginx = nginxUnavailable()
const noPostgres = TEST_DATABASE_URL ? null : throwawayPostgresUnavailable()
// In CI (.ci/run installs nginx) a missing nginx is a failure, not a skip.
const skip = (process.env.CI === 'true' ? noPostgres : (noNginx ?? noPostgres)) ?? false
if (skip) console.log(`# proxy tests skipped: ${skip}`)

interface Deployment {
  proxy: RunningNginx
  instances: ServerProcess[]
  instanceUrls: string[]
  databaseUrl: string
}

let throwaway: Promise<ThrowawayPostgres> | undefined
let database: Promise<string> | undefined
const deployments = new Map<string, Promise<Deployment>>()
const cleanups: (() => Promise<unknown> | unknown)[] = []
after(async () => {
  // Last in, first out: nginx, then the instances, then the database and its server.
  for (const cleanup of cleanups.reverse()) await cleanup()
})

async function query<T extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(text, values)).rows
  } finally {
    await client.end()
  }
}

/** One empty database for the file, on TEST_DATABASE_URL's server or on a throwaway server of our own. */
function createDatabase(): Promise<string> {
  database ??= (async () => {
    let adminUrl = TEST_DATABASE_URL
    if (!adminUrl) {
      throwaway = startThrowawayPostgres()
      cleanups.push(async () => (await throwaway)?.remove())
      adminUrl = (await throwaway).url
    }
    const name = `gatehouse_proxy_${process.pid}_${randomBytes(4).toString('hex')}`
    await query(adminUrl, `create database ${name}`)
    cleanups.push(() => query(adminUrl, `drop database if exists ${name} with (force)`))
    const url = new URL(adminUrl)
    url.pathname = `/${name}`
    return url.toString()
  })()
  return database
}

/** Two instances on the file's database and nginx in front, started once per `trustProxy` setting. */
function deploy(trustProxy: string): Promise<Deployment> {
  let deployment = deployments.get(trustProxy)
  if (deployment) return deployment
  deployment = (async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-proxy-'))
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }))
    const env = {
      NODE_ENV: 'production',
      DATABASE_URL: await createDatabase(),
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      // Empty means unset.
      TRUST_PROXY: trustProxy,
      AUTH_RATE_LIMIT: String(AUTH_RATE_LIMIT),
      LOG_LEVEL: 'info',
    }
    const instances = [spawnServer(env), spawnServer(env)]
    cleanups.push(async () => {
      for (const instance of instances) instance.child.kill('SIGTERM')
      await Promise.all(instances.map((instance) => instance.exited))
    })
    const instanceUrls = await Promise.all(instances.map((instance) => instance.listening))
    const proxy = await startNginx({
      upstreams: instanceUrls.map((url) => new URL(url).host),
      proxyBind: PROXY_ADDRESS,
    })
    cleanups.push(() => proxy.stop())
    return { proxy, instances, instanceUrls, databaseUrl: env.DATABASE_URL }
  })()
  deployments.set(trustProxy, deployment)
  return deployment
}

interface RequestLog {
  instance: number
  method: string
  url: string
  /** The client address the instance believed (Fastify's request.ip). */
  remoteAddress: string
}

function requestLogs(instances: ServerProcess[]): RequestLog[] {
  return instances.flatMap((instance, index) =>
    instance.lines
      .filter((line) => line.msg === 'incoming request')
      .map((line) => {
        const req = line.req as { method: string; url: string; remoteAddress: string }
        return { instance: index, method: req.method, url: req.url, remoteAddress: req.remoteAddress }
      }),
  )
}

/** Which instance logged the request for `url` (unique per request: a probe query). Waits for the log line. */
async function servedBy(instances: ServerProcess[], url: string): Promise<RequestLog> {
  for (let waited = 0; waited < 3000; waited += 20) {
    const found = requestLogs(instances).filter((log) => log.url === url)
    if (found.length > 1) assert.fail(`${url} was logged ${found.length} times`)
    if (found[0]) return found[0]
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return assert.fail(`no instance logged ${url}`)
}

let probes = 0
function probe(pathname: string): string {
  probes += 1
  return `${pathname}?probe=${probes}`
}

function cookieAttributes(header: string | undefined): string[] {
  return (header ?? '')
    .split(';')
    .slice(1)
    .map((attribute) => attribute.trim().toLowerCase())
}

test('TLS is really checked: a client that does not trust the test certificate is refused', { skip }, async () => {
  const { proxy } = await deploy(PROXY_ADDRESS)
  await assert.rejects(new TlsBrowser(proxy.httpsUrl).get('/healthz'), /self[- ]signed certificate/)
  const trusting = await new TlsBrowser(proxy.httpsUrl, { ca: proxy.certificate.pem }).get('/healthz')
  assert.equal(trusting.status, 200)
  assert.match(trusting.headers.get('strict-transport-security') ?? '', /max-age=\d+/, 'HSTS over HTTPS')
})

test('over HTTPS one Secure sid cookie is served by both instances in turn; a log-out through one ends it on both', {
  skip,
}, async (t) => {
  const { proxy, instances } = await deploy(PROXY_ADDRESS)
  const clientAddress = '127.0.0.20'
  const browser = new TlsBrowser(proxy.httpsUrl, { ca: proxy.certificate.pem, localAddress: clientAddress })
  const email = uniqueEmail('proxy')

  await browser.get('/signup')
  const signUp = await browser.post('/signup', { email, password: PASSWORD })
  assert.equal(signUp.status, 303)
  assert.equal(signUp.location, '/profile', 'signed up and logged in')
  // The form token changed with the log-in: take the one the profile page carries.
  await browser.get('/profile')
  const firstLogOut = await browser.post('/logout', {})
  assert.equal(firstLogOut.status, 303)
  assert.equal(firstLogOut.location, '/')
  await browser.follow(firstLogOut)

  assert.equal((await browser.get('/login')).status, 200, 'logged out: the log-in form is shown')
  const logIn = await browser.post('/login', { email, password: PASSWORD })
  assert.equal(logIn.location, '/profile', 'logged in')
  const sidHeader = logIn.cookie('sid')
  assert.ok(sidHeader, 'the log-in answer sets sid')
  const attributes = cookieAttributes(sidHeader)
  for (const expected of ['secure', 'httponly', 'samesite=lax', 'path=/']) {
    assert.ok(attributes.includes(expected), `sid is ${expected}: ${sidHeader}`)
  }
  t.diagnostic(`log-in answer: Set-Cookie: ${sidHeader.replace(/^sid=[^;]*/, 'sid=…')}`)
  const sid = browser.sid
  assert.ok(sid)

  // Four page loads with that one cookie: round-robin puts them on both instances, and each knows the user.
  const served: RequestLog[] = []
  for (let i = 0; i < 4; i++) {
    const url = probe('/profile')
    const page = await browser.get(url)
    assert.equal(page.status, 200, `${url} answers 200`)
    assert.ok(page.html.includes(email), `${url} shows the user`)
    // The first page after log-in may send the same cookie again (its expiry slides); never another id.
    assert.equal(browser.sid, sid, `${url} keeps the one session id`)
    served.push(await servedBy(instances, url))
  }
  t.diagnostic(`/profile served by instances ${served.map((log) => log.instance).join(', ')}`)
  assert.deepEqual([...new Set(served.map((log) => log.instance))].sort(), [0, 1], 'both instances served the session')
  assert.deepEqual(
    [...new Set(served.map((log) => log.remoteAddress))],
    [clientAddress],
    "each instance saw the client's address, not the proxy's",
  )
  assert.equal(browser.sid, sid, 'still the one sid cookie')
  assert.deepEqual([...browser.cookies.keys()], ['sid'], 'and no other cookie')

  const logOutUrl = probe('/logout')
  const logOut = await browser.post(logOutUrl, {})
  assert.equal(logOut.location, '/')
  const loggedOutOn = (await servedBy(instances, logOutUrl)).instance

  // The old cookie, replayed until both instances have refused it.
  const refusedBy = new Set<number>()
  for (let i = 0; i < 4 && refusedBy.size < 2; i++) {
    const url = probe('/profile')
    const page = await new TlsBrowser(proxy.httpsUrl, { ca: proxy.certificate.pem, localAddress: clientAddress }).get(
      url,
      { cookie: `sid=${sid}` },
    )
    assert.ok([302, 303].includes(page.status), `${url} with the old cookie answers ${page.status}`)
    assert.equal(page.location, `/login?next=${encodeURIComponent(url)}`, 'back to log-in')
    refusedBy.add((await servedBy(instances, url)).instance)
  }
  t.diagnostic(`logged out through instance ${loggedOutOn}; old cookie refused by ${[...refusedBy].join(' and ')}`)
  assert.deepEqual([...refusedBy].sort(), [0, 1], 'both instances refuse the logged-out cookie')
})

test("throttling counts each client's own address from X-Forwarded-For, not the proxy's", { skip }, async () => {
  const { proxy, instances } = await deploy(PROXY_ADDRESS)
  const first = new TlsBrowser(proxy.httpsUrl, { ca: proxy.certificate.pem, localAddress: '127.0.0.30' })
  const second = new TlsBrowser(proxy.httpsUrl, { ca: proxy.certificate.pem, localAddress: '127.0.0.31' })

  // Posts without a form token: refused 403, but counted first, so they spend the address's budget.
  const statuses: number[] = []
  const urls: string[] = []
  for (let i = 0; i <= AUTH_RATE_LIMIT; i++) {
    const url = probe('/login')
    urls.push(url)
    statuses.push((await first.post(url, { email: 'someone@example.com', password: PASSWORD, _csrf: null })).status)
  }
  assert.deepEqual(
    statuses,
    [...Array(AUTH_RATE_LIMIT).fill(403), 429],
    'the first client is throttled after its budget',
  )
  const firstLogs = await Promise.all(urls.map((url) => servedBy(instances, url)))
  assert.deepEqual(
    [...new Set(firstLogs.map((log) => log.instance))].sort(),
    [0, 1],
    'its posts went to both instances, which share one count',
  )

  const other = await second.post(probe('/login'), { email: 'someone@example.com', password: PASSWORD, _csrf: null })
  assert.equal(other.status, 403, 'a second client behind the same proxy has a budget of its own')

  // The client cannot buy a fresh budget with a header of its own: nginx replaces X-Forwarded-For.
  const forged = await first.post(
    probe('/login'),
    { email: 'someone@example.com', password: PASSWORD, _csrf: null },
    { 'x-forwarded-for': '198.51.100.7' },
  )
  assert.equal(forged.status, 429, 'a forged X-Forwarded-For through the proxy changes nothing')

  // The instances' log lines come through a pipe and may trail their answers by a moment.
  const rateLimitedLines = () =>
    instances.flatMap((instance) => instance.lines.filter((line) => line.msg === 'auth rate limit exceeded'))
  for (let waited = 0; rateLimitedLines().length < 2 && waited < 3000; waited += 20) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const limited = rateLimitedLines()
  assert.ok(limited.length >= 2, `the two refused posts are logged, got ${limited.length}`)
  assert.deepEqual([...new Set(limited.map((line) => line.ip))], ['127.0.0.30'], 'only the first client was limited')
  assert.equal(
    requestLogs(instances).some((log) => log.remoteAddress === PROXY_ADDRESS),
    false,
    "no request was taken for the proxy's own",
  )
})

test('a forged X-Forwarded-For or X-Forwarded-Proto sent straight to an instance from an untrusted address is not believed', {
  skip,
}, async () => {
  const { instances, instanceUrls } = await deploy(PROXY_ADDRESS)
  const target = instanceUrls[0] ?? assert.fail('no instance')
  const untrusted = new TlsBrowser(target, { localAddress: '127.0.0.40' })
  const forgedHeaders = { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' }

  const formUrl = probe('/signup')
  const form = await untrusted.get(formUrl, forgedHeaders)
  assert.equal(form.status, 200)
  assert.equal((await servedBy(instances, formUrl)).remoteAddress, '127.0.0.40', 'the socket address, not the header')
  assert.equal(form.cookie('sid'), undefined, 'not taken for HTTPS: no Secure cookie is sent over plain HTTP')

  const statuses: number[] = []
  for (let i = 0; i <= AUTH_RATE_LIMIT; i++) {
    // A new "client" in every header: all of them are counted on the one real address.
    const headers = { 'x-forwarded-for': `203.0.113.${10 + i}` }
    statuses.push(
      (await untrusted.post(probe('/signup'), { email: 'x@example.com', password: PASSWORD, _csrf: null }, headers))
        .status,
    )
  }
  assert.deepEqual(statuses, [...Array(AUTH_RATE_LIMIT).fill(403), 429])

  // The control: the same headers from the trusted address are believed, so the checks above could fail.
  const trusted = new TlsBrowser(target, { localAddress: PROXY_ADDRESS })
  const believedUrl = probe('/signup')
  const believed = await trusted.get(believedUrl, forgedHeaders)
  assert.equal((await servedBy(instances, believedUrl)).remoteAddress, '203.0.113.9', 'believed from the proxy address')
  assert.ok(believed.cookie('sid')?.includes('Secure'), 'and taken for HTTPS: the Secure cookie is sent')
})

test('plain HTTP to the proxy is redirected to HTTPS', { skip }, async () => {
  const { proxy } = await deploy(PROXY_ADDRESS)
  const page = await new TlsBrowser(proxy.httpUrl).get('/profile')
  assert.equal(page.status, 301)
  assert.equal(page.location, 'https://127.0.0.1/profile')
})

test('without TRUST_PROXY the service warns at start, and behind the proxy no session ever sticks', {
  skip,
}, async (t) => {
  // A user who exists: signed up through the correctly configured pair, on the same database.
  const email = uniqueEmail('misconfigured')
  const good = await deploy(PROXY_ADDRESS)
  const signedUp = new TlsBrowser(good.proxy.httpsUrl, { ca: good.proxy.certificate.pem, localAddress: '127.0.0.50' })
  await signedUp.get('/signup')
  assert.equal((await signedUp.post('/signup', { email, password: PASSWORD })).location, '/profile')

  const { proxy, instances, databaseUrl } = await deploy('')
  for (const [index, instance] of instances.entries()) {
    const warning = instance.lines.find((line) => line.level === 40 && /TRUST_PROXY/.test(String(line.msg)))
    assert.ok(warning, `instance ${index} warns at start`)
    const listening = instance.lines.findIndex((line) => /Server listening/.test(String(line.msg)))
    assert.ok(instance.lines.indexOf(warning) < listening, 'before it listens')
    const text = String(warning.msg)
    assert.match(text, /Secure/, 'it names the problem: Secure cookies')
    assert.match(text, /nobody stays logged in/, 'and its symptom')
    assert.match(text, /Set TRUST_PROXY to the proxy's address/, 'and the fix behind a proxy')
  }

  // What a person with a browser sees, over HTTPS through the proxy, written down as the README shows it.
  const browser = new TlsBrowser(proxy.httpsUrl, { ca: proxy.certificate.pem, localAddress: '127.0.0.51' })
  const transcript: string[] = []
  const step = async (method: 'GET' | 'POST', url: string, form?: Record<string, string>) => {
    const page = method === 'GET' ? await browser.get(url) : await browser.post(url, form ?? {})
    const title = /<title>([^<·]*)/.exec(page.html)?.[1]?.trim()
    const parts = [`${method} ${url}`.padEnd(14), `-> ${page.status}`]
    if (page.location) parts.push(`Location: ${page.location}`)
    if (title) parts.push(`"${title}"`)
    parts.push(page.setCookies.length > 0 ? `Set-Cookie: ${page.setCookies.join(' | ')}` : '(no Set-Cookie)')
    transcript.push(parts.join('  '))
    return page
  }

  const signUpForm = await step('GET', '/signup')
  assert.equal(signUpForm.status, 200)
  const newEmail = uniqueEmail('never')
  const signUp = await step('POST', '/signup', { email: newEmail, password: PASSWORD })
  assert.equal(signUp.status, 403, 'the form token was kept in a session that never reached the browser')
  assert.match(signUp.html, /This form has expired/)
  await step('GET', '/login')
  const logIn = await step('POST', '/login', { email, password: PASSWORD })
  assert.equal(logIn.status, 403, 'the right password for an existing user does not log in either')
  const profile = await step('GET', '/profile')
  assert.ok([302, 303].includes(profile.status))
  assert.equal(profile.location, '/login?next=%2Fprofile', 'bounced back to log-in')

  assert.deepEqual(browser.offeredCookies, [], 'no cookie, Secure or not, was ever sent')
  const created = await query(databaseUrl, 'select 1 from users where lower(email) = lower($1)', [newEmail])
  assert.equal(created.length, 0, 'the refused sign-up created no user')

  const warnings = instances.flatMap((instance) =>
    instance.lines.filter((line) => line.level === 40).map((line) => `{"level":40,"msg":${JSON.stringify(line.msg)}}`),
  )
  assert.ok(
    warnings.some((line) => /A request arrived over plain HTTP/.test(line)),
    'the first plain-HTTP request is reported too',
  )
  for (const line of [...transcript, '', ...new Set(warnings)]) t.diagnostic(line)
})
