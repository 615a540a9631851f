import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

const root = fileURLToPath(new URL('..', import.meta.url))

interface Service {
  image?: unknown
  build?: unknown
  environment?: unknown
  depends_on?: unknown
  healthcheck?: { test?: unknown }
}

interface ComposeFile {
  services: Record<string, Service>
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function loadCompose(): ComposeFile {
  const doc: unknown = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'))
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

  assert.match(appEnv.SESSION_SECRET ?? '', /^\$\{SESSION_SECRET:\?/)
  assert.equal(appEnv.NODE_ENV, 'production')
  assert.equal(appEnv.HOST, '0.0.0.0')
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
