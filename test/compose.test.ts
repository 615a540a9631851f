import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { parse } from 'yaml'
import {
  checkNginxConfig,
  mainConfig,
  makeCertificate,
  nginxUnavailable,
  SHIPPED_SITE_CONFIG,
  siteConfigFor,
} from './helpers/nginx.js'

const root = fileURLToPath(new URL('..', import.meta.url))

interface Service {
  image?: unknown
  build?: unknown
  command?: unknown
  environment?: unknown
  depends_on?: unknown
  healthcheck?: { test?: unknown }
  deploy?: { replicas?: unknown }
  ports?: unknown
  volumes?: unknown
  networks?: unknown
  stop_grace_period?: unknown
}

interface ComposeFile {
  services: Record<string, Service>
  networks?: unknown
}

/** What a deployment would set in its environment or .env, for reading the file as compose would. */
const DEPLOY_VARIABLES = {
  SESSION_SECRET: 'a-session-secret-of-at-least-32-characters',
  POSTGRES_PASSWORD: 'd0c5a1b2c3d4e5f6',
}

/**
 * Compose's interpolation: `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`
 * and `$$`; a missing required variable throws its error, as `docker compose up` refuses to start.
 */
function interpolate(text: string, variables: Record<string, string>): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g,
    (match, name, colon, kind, rest) => {
      if (match === '$$') return '$'
      const value = variables[name as string]
      const missing = value === undefined || (colon === ':' && value === '')
      if (!missing) return value
      if (kind === '?') throw new Error(`${name}: ${rest}`)
      return kind === '-' ? (rest as string) : ''
    },
  )
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function loadCompose(): ComposeFile {
  const doc: unknown = parse(interpolate(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), DEPLOY_VARIABLES))
  assert.ok(isRecord(doc) && isRecord(doc.services), 'docker-compose.yml has a services map')
  return doc as unknown as ComposeFile
}

function service(name: string): Service {
  const svc = loadCompose().services[name]
  assert.ok(isRecord(svc), `service "${name}" is defined`)
  return svc
}

/** Compose accepts environment as a map or as a list of KEY=value strings. */
function env(svc: Service): Record<string, string> {
  const raw = svc.environment
  const out: Record<string, string> = {}
  if (Array.isArray(raw)) {
    for (const entry of raw) {
      assert.equal(typeof entry, 'string')
      const text = String(entry)
      const eq = text.indexOf('=')
      if (eq === -1) out[text] = ''
      else out[text.slice(0, eq)] = text.slice(eq + 1)
    }
  } else if (isRecord(raw)) {
    for (const [key, value] of Object.entries(raw)) out[key] = String(value ?? '')
  } else {
    assert.fail('environment is a map or a list')
  }
  return out
}

test('compose file runs PostgreSQL 16 with a health check', () => {
  const db = service('db')
  assert.equal(typeof db.image, 'string')
  assert.ok(String(db.image).startsWith('postgres:16'), `db image is postgres:16, got ${String(db.image)}`)
  const check = db.healthcheck?.test
  const text = Array.isArray(check) ? check.join(' ') : String(check ?? '')
  assert.match(text, /pg_isready/)
})

test('the app waits for a healthy database', () => {
  const dependsOn = service('app').depends_on
  assert.ok(isRecord(dependsOn) && isRecord(dependsOn.db), 'app.depends_on.db is a map')
  assert.equal(dependsOn.db.condition, 'service_healthy')
})

test('the app is built from the Dockerfile and wired to the database', () => {
  const app = service('app')
  const context = isRecord(app.build) ? app.build.context : app.build
  assert.equal(context, '.')

  const appEnv = env(app)
  const dbEnv = env(service('db'))
  const url = new URL(appEnv.DATABASE_URL ?? '')
  assert.equal(url.protocol, 'postgres:')
  assert.equal(url.hostname, 'db')
  assert.equal(decodeURIComponent(url.username), dbEnv.POSTGRES_USER)
  assert.equal(decodeURIComponent(url.password), dbEnv.POSTGRES_PASSWORD)
  assert.equal(url.pathname.slice(1), dbEnv.POSTGRES_DB)

  assert.equal(appEnv.SESSION_SECRET, DEPLOY_VARIABLES.SESSION_SECRET, 'SESSION_SECRET comes from the deployment')
  assert.equal(appEnv.NODE_ENV, 'production')
  assert.equal(appEnv.HOST, '0.0.0.0')
  assert.equal(appEnv.COOKIE_SECURE, undefined, 'session cookies stay Secure (the default in production)')
})

test('the secrets are required: without them compose refuses to start, naming each one', () => {
  const raw = readFileSync(join(root, 'docker-compose.yml'), 'utf8')
  for (const name of Object.keys(DEPLOY_VARIABLES)) {
    const without = Object.fromEntries(Object.entries(DEPLOY_VARIABLES).filter(([key]) => key !== name))
    assert.throws(() => interpolate(raw, without), new RegExp(`^Error: ${name}: set ${name}`), `${name} is required`)
  }
})

test('migrations run once, in their own container, before any replica starts', () => {
  const migrate = service('migrate')
  assert.deepEqual(migrate.command, ['node', 'dist/src/cli/migrate.js', 'up'])
  assert.equal(isRecord(migrate.build) ? migrate.build.context : migrate.build, '.')
  assert.deepEqual(env(migrate), env(service('app')), 'the same database and settings as the app')
  const dependsOn = service('app').depends_on
  assert.ok(isRecord(dependsOn) && isRecord(dependsOn.migrate))
  assert.equal(dependsOn.migrate.condition, 'service_completed_successfully')
})

test('two app replicas, reachable only through the proxy', () => {
  const app = service('app')
  assert.equal(app.deploy?.replicas, 2)
  assert.equal(app.ports, undefined, 'the replicas publish no port')
  // src/server.ts gives requests in flight 10 s after SIGTERM; Docker must wait longer before SIGKILL.
  assert.match(String(app.stop_grace_period), /^\d+s$/)
  assert.ok(Number.parseInt(String(app.stop_grace_period), 10) > 10, 'stop_grace_period outlasts the 10 s drain')
  const dependsOn = service('proxy').depends_on
  assert.ok(isRecord(dependsOn) && isRecord(dependsOn.app))
  assert.equal(dependsOn.app.condition, 'service_healthy', 'the proxy starts once the replicas answer /healthz')
})

/** IPv4 address as a number, for subnet arithmetic. */
function ipv4(address: string): number {
  return address.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0)
}

function inCidr(address: string, cidr: string): boolean {
  const [base = '', bits = '32'] = cidr.split('/')
  const size = 2 ** (32 - Number(bits))
  return Math.floor(ipv4(address) / size) === Math.floor(ipv4(base) / size)
}

test('the proxy terminates TLS with the shipped config, and TRUST_PROXY names its fixed address', () => {
  const proxy = service('proxy')
  assert.match(String(proxy.image), /^nginx:\d/)
  assert.deepEqual(proxy.ports, ['443:443', '80:80'])
  const volumes = (Array.isArray(proxy.volumes) ? proxy.volumes : []).map(String)
  assert.ok(volumes.includes('./deploy/nginx/gatehouse.conf:/etc/nginx/conf.d/default.conf:ro'), 'the shipped config')
  assert.ok(volumes.includes('./deploy/certs:/etc/nginx/certs:ro'), 'certificates mounted, read-only')
  for (const source of volumes.map((volume) => volume.split(':')[0] ?? '')) {
    assert.ok(existsSync(join(root, source)), `${source} exists in the repository`)
  }
  const site = readFileSync(SHIPPED_SITE_CONFIG, 'utf8')
  assert.match(site, /ssl_certificate\s+\/etc\/nginx\/certs\/fullchain\.pem;/)
  assert.match(site, /ssl_certificate_key\s+\/etc\/nginx\/certs\/privkey\.pem;/)
  assert.equal(existsSync(join(root, 'deploy/certs/privkey.pem')), false, 'no private key is committed')
  assert.match(readFileSync(join(root, 'deploy/certs/.gitignore'), 'utf8'), /^\*$/m, 'and git ignores any put there')

  const networks = proxy.networks
  assert.ok(isRecord(networks) && isRecord(networks.default), 'the proxy sits on the default network')
  const proxyAddress = String(networks.default.ipv4_address)
  assert.equal(isIP(proxyAddress), 4)
  assert.equal(env(service('app')).TRUST_PROXY, proxyAddress, 'the app trusts the proxy and nothing else')

  const doc = loadCompose()
  const ipam = isRecord(doc.networks) && isRecord(doc.networks.default) ? doc.networks.default.ipam : undefined
  const pool = isRecord(ipam) && Array.isArray(ipam.config) && isRecord(ipam.config[0]) ? ipam.config[0] : {}
  assert.ok(inCidr(proxyAddress, String(pool.subnet)), `${proxyAddress} lies in the subnet ${String(pool.subnet)}`)
  assert.equal(
    inCidr(proxyAddress, String(pool.ip_range)),
    false,
    'and outside the range Docker hands out, so no other container can be given it',
  )
})

const run = promisify(execFile)

/** The compose CLI here: Docker's plugin (`docker compose`), or the older standalone `docker-compose`. */
const composeCommand = await run('docker', ['compose', 'version']).then(
  () => ['docker', 'compose'],
  () =>
    run('docker-compose', ['version']).then(
      () => ['docker-compose'],
      () => null,
    ),
)
const noCompose = composeCommand ? null : 'neither docker compose nor docker-compose is installed'

test('the compose CLI accepts the file, and refuses to run it without the secrets', {
  skip: noCompose ?? false,
}, async () => {
  const [program = '', ...args] = composeCommand ?? []
  const composeFile = join(root, 'docker-compose.yml')
  const config = (variables: Record<string, string>) =>
    run(program, [...args, '-f', composeFile, 'config', '--quiet'], { env: { ...process.env, ...variables } })
  await config(DEPLOY_VARIABLES)
  await assert.rejects(
    config({ SESSION_SECRET: DEPLOY_VARIABLES.SESSION_SECRET, POSTGRES_PASSWORD: '' }),
    /set POSTGRES_PASSWORD/,
  )
})

const noNginx = nginxUnavailable()
if (noNginx) console.log(`# nginx -t of deploy/nginx/gatehouse.conf skipped: ${noNginx}`)

test('nginx accepts the shipped site config (nginx -t), and refuses a broken one', {
  skip: noNginx ?? false,
}, async () => {
  const prefix = mkdtempSync(join(tmpdir(), 'gatehouse-nginx-t-'))
  after(() => rmSync(prefix, { recursive: true, force: true }))
  // Only what cannot exist outside the containers is replaced: the replicas' name, the ports, the certificate paths.
  const site = siteConfigFor({
    upstreams: ['127.0.0.1:3000', '127.0.0.1:3001'],
    httpsPort: 8443,
    httpPort: 8080,
    certificate: await makeCertificate(prefix),
  })
  const siteFile = join(prefix, 'gatehouse.conf')
  writeFileSync(siteFile, site)
  const configFile = join(prefix, 'nginx.conf')
  writeFileSync(configFile, mainConfig(prefix, { siteFile }))
  const checked = await checkNginxConfig(prefix, configFile)
  assert.ok(checked.ok, checked.output)
  assert.match(checked.output, /syntax is ok/)
  assert.match(checked.output, /test is successful/)

  writeFileSync(siteFile, site.replace('proxy_pass http://gatehouse;', 'proxy_pass http://gatehouse'))
  const broken = await checkNginxConfig(prefix, configFile)
  assert.equal(broken.ok, false, 'a missing semicolon fails the check')
})

test('the Dockerfile builds with npm ci and runs the compiled server', () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')
  assert.match(dockerfile, /^RUN npm ci\b/m)
  assert.match(dockerfile, /npm run build/)
  assert.match(dockerfile, /^USER node\s*$/m)
  assert.match(dockerfile, /^CMD \[\s*"node",\s*"dist\/src\/server\.js"\s*\]/m)

  // Every source of a COPY from the build context (not --from=<stage>) must exist.
  const sources = dockerfile
    .split('\n')
    .filter((line) => /^COPY\s/.test(line) && !/--from=/.test(line))
    .flatMap((line) => line.trim().split(/\s+/).slice(1, -1))
    .filter((arg) => !arg.startsWith('--'))
  assert.ok(sources.length > 0, 'Dockerfile copies files from the build context')
  const missing = sources.filter((src) => !existsSync(join(root, src)))
  assert.deepEqual(missing, [], `COPY sources missing from the repo: ${missing.join(', ')}`)
})
