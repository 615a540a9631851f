// The service's configuration: every environment variable of the contract in one schema, grouped by
// concern, parsed and checked once. Each plugin takes its group as its options.
import { isIP } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { z } from 'zod'
import { DEFAULT_HASH_THREAD_NICE, OWASP_ARGON2 } from './users/passwords.js'

const MIN_SECRET_LENGTH = 32

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** Fastify's `trustProxy` forms: a boolean, a hop count, or addresses and CIDR ranges. */
export type TrustProxy = boolean | number | string[]

function integerIn(min: number, max: number) {
  return z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max}`)
}

function positiveNumber() {
  return z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, 'must be a positive number')
    .transform(Number)
    .refine((n) => n > 0, 'must be greater than 0')
}

function isAddressOrCidr(entry: string): boolean {
  const [address = '', prefix, ...rest] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return false
  if (prefix === undefined) return true
  if (!/^\d+$/.test(prefix)) return false
  return Number(prefix) <= (family === 4 ? 32 : 128)
}

const TrustProxySchema = z
  .string()
  .trim()
  .transform((value, ctx): TrustProxy => {
    const lower = value.toLowerCase()
    if (lower === 'true') return true
    if (lower === 'false' || value === '') return false
    if (/^\d+$/.test(value)) return Number(value)
    const entries = value.split(',').map((entry) => entry.trim())
    const bad = entries.find((entry) => !isAddressOrCidr(entry))
    if (bad !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `must be true, false, a hop count, or a comma-separated list of addresses and CIDR ranges ("${bad}" is none of these)`,
      })
      return z.NEVER
    }
    return entries
  })

/** A URL of one of `protocols` (with their colon) that names a host; the refusal never echoes the value,
 * which may hold a password. */
function urlOf(protocols: readonly string[], message: string) {
  return z
    .string()
    .trim()
    .refine((value) => {
      try {
        const url = new URL(value)
        return protocols.includes(url.protocol) && url.hostname !== ''
      } catch {
        return false
      }
    }, message)
}

const DatabaseUrlSchema = urlOf(
  ['postgres:', 'postgresql:'],
  'must be a URL of the form postgres://user:password@host:5432/database',
)

// Read by several groups: production changes the defaults of secrets and cookies.
const NodeEnvSchema = z.enum(['development', 'production', 'test']).default('development')
// Expired sessions and expired throttling counters are pruned on one schedule.
const PruneSecondsSchema = positiveNumber().default(600)

const ServerSchema = z
  .object({
    NODE_ENV: NodeEnvSchema,
    PORT: integerIn(0, 65535).default(3000),
    HOST: z.string().trim().min(1, 'must not be empty').default('127.0.0.1'),
    TRUST_PROXY: TrustProxySchema.default(false),
    LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  })
  .transform((v) => ({ env: v.NODE_ENV, port: v.PORT, host: v.HOST, trustProxy: v.TRUST_PROXY, logLevel: v.LOG_LEVEL }))

const DatabaseSchema = z
  .object({
    DATABASE_URL: DatabaseUrlSchema.optional(),
    DATA_DIR: z.string().trim().min(1, 'must not be empty').default('./data'),
  })
  // Set: a PostgreSQL server through `pg`. Unset: embedded PGlite in `dataDir`.
  .transform((v) => ({ url: v.DATABASE_URL ?? null, dataDir: path.resolve(v.DATA_DIR) }))

const SessionSchema = z
  .object({
    NODE_ENV: NodeEnvSchema,
    SESSION_SECRET: z.string().optional(),
    SESSION_IDLE_HOURS: positiveNumber().default(168),
    SESSION_MAX_DAYS: positiveNumber().default(30),
    SESSION_PRUNE_SECONDS: PruneSecondsSchema,
  })
  .transform((v, ctx) => {
    // The first signs cookies, every one verifies. Null: development makes one (see dev-secret.ts).
    const secrets = v.SESSION_SECRET?.split(',').map((secret) => secret.trim()) ?? null
    if (secrets?.some((secret) => secret.length < MIN_SECRET_LENGTH)) {
      ctx.addIssue({
        code: 'custom',
        path: ['SESSION_SECRET'],
        message: `must be at least ${MIN_SECRET_LENGTH} characters (each one, in a comma-separated list)`,
      })
    } else if (secrets === null && v.NODE_ENV === 'production') {
      ctx.addIssue({
        code: 'custom',
        path: ['SESSION_SECRET'],
        message: `must be set in production (at least ${MIN_SECRET_LENGTH} random characters)`,
      })
    }
    return {
      secrets,
      idleMs: v.SESSION_IDLE_HOURS * 3_600_000,
      maxMs: v.SESSION_MAX_DAYS * 86_400_000,
      pruneIntervalMs: v.SESSION_PRUNE_SECONDS * 1000,
    }
  })

const CookiesSchema = z
  .object({ NODE_ENV: NodeEnvSchema, COOKIE_SECURE: z.enum(['true', 'false', 'auto']).default('auto') })
  .transform((v) => ({
    secure: v.COOKIE_SECURE === 'auto' ? v.NODE_ENV === 'production' : v.COOKIE_SECURE === 'true',
  }))

/** On one core a normal-priority hashing thread would share it with the event loop: none there. */
const DEFAULT_NORMAL_PRIORITY_HASH_THREADS = os.availableParallelism() > 1 ? 1 : 0

const HashingSchema = z
  .object({
    // Never below OWASP's argon2id minimum; stronger values upgrade stored hashes at the next log-in.
    ARGON2_MEMORY_KIB: integerIn(OWASP_ARGON2.memoryCost, 4_194_304).default(OWASP_ARGON2.memoryCost),
    ARGON2_TIME_COST: integerIn(OWASP_ARGON2.timeCost, 100).default(OWASP_ARGON2.timeCost),
    ARGON2_PARALLELISM: integerIn(OWASP_ARGON2.parallelism, 64).default(OWASP_ARGON2.parallelism),
    // One thread per core keeps every core busy in a log-in storm; more only share the same cores and
    // take 19 MiB each while they hash.
    ARGON2_MAX_CONCURRENT: integerIn(1, 1024).default(os.availableParallelism()),
    // Threads that keep the normal priority, so a log-in storm always gets a share of the CPU.
    ARGON2_NORMAL_PRIORITY_THREADS: integerIn(0, 1024).optional(),
    // The other threads' nice value: 19 lets page views take a core at once; 0 shares it evenly.
    ARGON2_THREAD_NICE: integerIn(0, 19).default(DEFAULT_HASH_THREAD_NICE),
    // Hashes that may wait for a thread; beyond, log-ins and sign-ups get 503 at once. About two seconds
    // of waiting at this machine's rate, and room for a burst of a hundred sign-ups.
    ARGON2_MAX_QUEUE: integerIn(0, 1_000_000).default(256),
  })
  .transform((v, ctx) => {
    const normalPriorityThreads =
      v.ARGON2_NORMAL_PRIORITY_THREADS ?? Math.min(DEFAULT_NORMAL_PRIORITY_HASH_THREADS, v.ARGON2_MAX_CONCURRENT)
    if (normalPriorityThreads > v.ARGON2_MAX_CONCURRENT) {
      ctx.addIssue({
        code: 'custom',
        path: ['ARGON2_NORMAL_PRIORITY_THREADS'],
        message: `must be at most ARGON2_MAX_CONCURRENT (${v.ARGON2_MAX_CONCURRENT})`,
      })
    }
    return {
      argon2: { memoryCost: v.ARGON2_MEMORY_KIB, timeCost: v.ARGON2_TIME_COST, parallelism: v.ARGON2_PARALLELISM },
      maxConcurrent: v.ARGON2_MAX_CONCURRENT,
      threadNice: v.ARGON2_THREAD_NICE,
      normalPriorityThreads,
      maxQueue: v.ARGON2_MAX_QUEUE,
    }
  })

const ThrottlingSchema = z
  .object({
    LOGIN_MAX_FAILURES: integerIn(1, 1_000_000).default(5),
    LOGIN_LOCK_MINUTES: positiveNumber().default(15),
    AUTH_RATE_LIMIT: integerIn(1, 1_000_000).default(30),
    SESSION_PRUNE_SECONDS: PruneSecondsSchema,
  })
  .transform((v) => ({
    loginMaxFailures: v.LOGIN_MAX_FAILURES,
    loginLockMs: v.LOGIN_LOCK_MINUTES * 60_000,
    authRateLimit: v.AUTH_RATE_LIMIT,
    pruneIntervalMs: v.SESSION_PRUNE_SECONDS * 1000,
  }))

const OverloadSchema = z
  .object({
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: integerIn(0, 60_000).default(1000),
    OVERLOAD_MAX_HEAP_MB: integerIn(0, 1_000_000).default(0),
  })
  // Load-shedding thresholds; 0 turns a check off.
  .transform((v) => ({ maxEventLoopDelayMs: v.OVERLOAD_MAX_EVENT_LOOP_DELAY_MS, maxHeapMb: v.OVERLOAD_MAX_HEAP_MB }))

const SmtpUrlSchema = urlOf(
  ['smtp:', 'smtps:'],
  'must be a URL of the form smtp://user:password@host:587 or smtps://user:password@host:465',
)

/** PUBLIC_URL: an origin (scheme, host, port), to which every link in a message is relative. */
const PublicUrlSchema = z
  .string()
  .trim()
  .transform((value, ctx) => {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      url = new URL('invalid:')
    }
    const isOrigin =
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      url.hostname !== '' &&
      url.username === '' &&
      url.password === '' &&
      (url.pathname === '/' || url.pathname === '') &&
      url.search === '' &&
      url.hash === ''
    if (!isOrigin) {
      ctx.addIssue({ code: 'custom', message: 'must be an origin like https://auth.example.com (no path)' })
      return z.NEVER
    }
    return url.origin
  })

const BooleanSchema = z
  .enum(['true', 'false'], { message: 'must be true or false' })
  .transform((value) => value === 'true')

/** Where messages go: an SMTP server, the log (development's mailbox), or nowhere (production without SMTP). */
export type MailMode = 'smtp' | 'log' | 'off'

const MailSchema = z
  .object({
    NODE_ENV: NodeEnvSchema,
    PORT: integerIn(0, 65535).default(3000),
    PUBLIC_URL: PublicUrlSchema.optional(),
    SMTP_URL: SmtpUrlSchema.optional(),
    MAIL_FROM: z.string().trim().min(1).optional(),
    REQUIRE_EMAIL_CONFIRMATION: BooleanSchema.default(false),
    // How often each instance looks for messages due (its own requests wake it at once), and the first
    // retry's delay, which doubles with each failure up to an hour.
    MAIL_POLL_SECONDS: positiveNumber().default(5),
    MAIL_RETRY_SECONDS: positiveNumber().default(15),
  })
  .transform((v, ctx) => {
    const production = v.NODE_ENV === 'production'
    const mode: MailMode = v.SMTP_URL ? 'smtp' : production ? 'off' : 'log'
    if (production && mode === 'smtp' && !v.PUBLIC_URL?.startsWith('https://')) {
      ctx.addIssue({
        code: 'custom',
        path: ['PUBLIC_URL'],
        message:
          'must be set to the https:// origin of the service in production when SMTP_URL is set (links in messages start with it)',
      })
    }
    if (mode === 'off' && v.REQUIRE_EMAIL_CONFIRMATION) {
      ctx.addIssue({
        code: 'custom',
        path: ['REQUIRE_EMAIL_CONFIRMATION'],
        message: 'cannot be true while mail is off (set SMTP_URL): nobody could confirm an address',
      })
    }
    const publicUrl = v.PUBLIC_URL ?? `http://localhost:${v.PORT}`
    return {
      mode,
      smtpUrl: v.SMTP_URL ?? null,
      publicUrl,
      from: v.MAIL_FROM ?? `gatehouse <no-reply@${new URL(publicUrl).hostname}>`,
      requireConfirmation: v.REQUIRE_EMAIL_CONFIRMATION,
      pollIntervalMs: v.MAIL_POLL_SECONDS * 1000,
      retryBaseMs: v.MAIL_RETRY_SECONDS * 1000,
    }
  })

const AuditSchema = z
  .object({ AUDIT_RETENTION_DAYS: positiveNumber().default(90) })
  // Account events older than this are deleted by the service.
  .transform((v) => ({ retentionDays: v.AUDIT_RETENTION_DAYS }))

/** Each group reads the whole environment and keeps its own variables. */
const ConfigSchema = z.object({
  server: ServerSchema,
  database: DatabaseSchema,
  session: SessionSchema,
  cookies: CookiesSchema,
  hashing: HashingSchema,
  throttling: ThrottlingSchema,
  overload: OverloadSchema,
  mail: MailSchema,
  audit: AuditSchema,
})

export type Config = z.output<typeof ConfigSchema>

/** What buildApp runs with: the session secrets decided (a development secret made where none was set). */
export type AppConfig = Config & { session: { secrets: string[] } }

export function withSessionSecrets(config: Config, secrets: string[]): AppConfig {
  return { ...config, session: { ...config.session, secrets } }
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Environment = Record<string, string | undefined>

/** Empty strings count as unset, so `PORT=` in a .env file means the default. */
function withoutEmpty(env: Environment): Environment {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''))
}

/** Throws a ConfigError whose message is one line naming the variable, as the contract says. */
export function loadConfig(env: Environment = process.env): Config {
  const vars = withoutEmpty(env)
  const groups = Object.fromEntries(Object.keys(ConfigSchema.shape).map((group) => [group, vars]))
  const parsed = ConfigSchema.safeParse(groups)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    // The path is [group, variable].
    const variable = String(issue?.path[1] ?? 'environment')
    throw new ConfigError(`${variable} ${issue?.message ?? 'is invalid'}`)
  }
  return parsed.data
}

/** Reads `.env` in development when it exists; real environment variables win. */
export function loadDotEnv(file = '.env'): void {
  if (process.env.NODE_ENV === 'production') return
  try {
    process.loadEnvFile(file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
}
