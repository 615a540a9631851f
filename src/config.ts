// The service's configuration: every environment variable of the contract, parsed and checked once.
import { isIP } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { z } from 'zod'
import { type Argon2Parameters, DEFAULT_HASH_THREAD_NICE, OWASP_ARGON2 } from './users/passwords.js'

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

const DatabaseUrlSchema = z
  .string()
  .trim()
  .refine((value) => {
    try {
      const url = new URL(value)
      return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== ''
    } catch {
      return false
    }
  }, 'must be a URL of the form postgres://user:password@host:5432/database')

const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: integerIn(0, 65535).default(3000),
  HOST: z.string().trim().min(1, 'must not be empty').default('127.0.0.1'),
  DATABASE_URL: DatabaseUrlSchema.optional(),
  DATA_DIR: z.string().trim().min(1, 'must not be empty').default('./data'),
  SESSION_SECRET: z.string().optional(),
  COOKIE_SECURE: z.enum(['true', 'false', 'auto']).default('auto'),
  TRUST_PROXY: TrustProxySchema.default(false),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  SESSION_IDLE_HOURS: positiveNumber().default(168),
  SESSION_MAX_DAYS: positiveNumber().default(30),
  SESSION_PRUNE_SECONDS: positiveNumber().default(600),
  LOGIN_MAX_FAILURES: integerIn(1, 1_000_000).default(5),
  LOGIN_LOCK_MINUTES: positiveNumber().default(15),
  AUTH_RATE_LIMIT: integerIn(1, 1_000_000).default(30),
  // Never below OWASP's argon2id minimum; stronger values upgrade stored hashes at the next log-in.
  ARGON2_MEMORY_KIB: integerIn(OWASP_ARGON2.memoryCost, 4_194_304).default(OWASP_ARGON2.memoryCost),
  ARGON2_TIME_COST: integerIn(OWASP_ARGON2.timeCost, 100).default(OWASP_ARGON2.timeCost),
  ARGON2_PARALLELISM: integerIn(OWASP_ARGON2.parallelism, 64).default(OWASP_ARGON2.parallelism),
  // Hashing threads. One per core keeps every core busy in a log-in storm; more only share the same
  // cores and take 19 MiB each while they hash.
  ARGON2_MAX_CONCURRENT: integerIn(1, 1024).default(os.availableParallelism()),
  // Hashing threads that keep the normal priority, so a log-in storm always gets a share of the CPU.
  ARGON2_NORMAL_PRIORITY_THREADS: integerIn(0, 1024).optional(),
  // The other hashing threads' nice value: 19 lets page views take a core at once; 0 shares it evenly.
  ARGON2_THREAD_NICE: integerIn(0, 19).default(DEFAULT_HASH_THREAD_NICE),
  OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: integerIn(0, 60_000).default(1000),
  OVERLOAD_MAX_HEAP_MB: integerIn(0, 1_000_000).default(0),
})

export interface Config {
  env: 'development' | 'production' | 'test'
  port: number
  host: string
  /** Set: a PostgreSQL server through `pg`. Unset: embedded PGlite in `dataDir`. */
  databaseUrl: string | null
  dataDir: string
  /** The first signs cookies, every one verifies. Null means: generate one for development. */
  sessionSecrets: string[] | null
  cookieSecure: boolean
  trustProxy: TrustProxy
  logLevel: (typeof LOG_LEVELS)[number]
  sessionIdleMs: number
  sessionMaxMs: number
  sessionPruneIntervalMs: number
  loginMaxFailures: number
  loginLockMs: number
  authRateLimit: number
  argon2: Argon2Parameters
  argon2MaxConcurrent: number
  argon2ThreadNice: number
  argon2NormalPriorityThreads: number
  /** Load shedding thresholds; 0 turns a check off. */
  overloadMaxEventLoopDelayMs: number
  overloadMaxHeapMb: number
}

/** On one core a normal-priority hashing thread would share it with the event loop: none there. */
const DEFAULT_NORMAL_PRIORITY_HASH_THREADS = os.availableParallelism() > 1 ? 1 : 0

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Environment = Record<string, string | undefined>

/** Empty strings count as unset, so `PORT=` in a .env file means the default. */
function withoutEmpty(env: Environment): Environment {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''))
}

export function loadConfig(env: Environment = process.env): Config {
  const parsed = EnvSchema.safeParse(withoutEmpty(env))
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const variable = String(issue?.path[0] ?? 'environment')
    throw new ConfigError(`${variable} ${issue?.message ?? 'is invalid'}`)
  }
  const vars = parsed.data

  let sessionSecrets: string[] | null = null
  if (vars.SESSION_SECRET !== undefined) {
    sessionSecrets = vars.SESSION_SECRET.split(',').map((secret) => secret.trim())
    if (sessionSecrets.some((secret) => secret.length < MIN_SECRET_LENGTH)) {
      throw new ConfigError(
        `SESSION_SECRET must be at least ${MIN_SECRET_LENGTH} characters (each one, in a comma-separated list)`,
      )
    }
  } else if (vars.NODE_ENV === 'production') {
    throw new ConfigError(`SESSION_SECRET must be set in production (at least ${MIN_SECRET_LENGTH} random characters)`)
  }

  // One thread at normal priority when there is a core to spare for it; never more than there are threads.
  const argon2NormalPriorityThreads =
    vars.ARGON2_NORMAL_PRIORITY_THREADS ?? Math.min(DEFAULT_NORMAL_PRIORITY_HASH_THREADS, vars.ARGON2_MAX_CONCURRENT)
  if (argon2NormalPriorityThreads > vars.ARGON2_MAX_CONCURRENT) {
    throw new ConfigError(
      `ARGON2_NORMAL_PRIORITY_THREADS must be at most ARGON2_MAX_CONCURRENT (${vars.ARGON2_MAX_CONCURRENT})`,
    )
  }

  return {
    env: vars.NODE_ENV,
    port: vars.PORT,
    host: vars.HOST,
    databaseUrl: vars.DATABASE_URL ?? null,
    dataDir: path.resolve(vars.DATA_DIR),
    sessionSecrets,
    cookieSecure: vars.COOKIE_SECURE === 'auto' ? vars.NODE_ENV === 'production' : vars.COOKIE_SECURE === 'true',
    trustProxy: vars.TRUST_PROXY,
    logLevel: vars.LOG_LEVEL,
    sessionIdleMs: vars.SESSION_IDLE_HOURS * 3_600_000,
    sessionMaxMs: vars.SESSION_MAX_DAYS * 86_400_000,
    sessionPruneIntervalMs: vars.SESSION_PRUNE_SECONDS * 1000,
    loginMaxFailures: vars.LOGIN_MAX_FAILURES,
    loginLockMs: vars.LOGIN_LOCK_MINUTES * 60_000,
    authRateLimit: vars.AUTH_RATE_LIMIT,
    argon2: {
      memoryCost: vars.ARGON2_MEMORY_KIB,
      timeCost: vars.ARGON2_TIME_COST,
      parallelism: vars.ARGON2_PARALLELISM,
    },
    argon2MaxConcurrent: vars.ARGON2_MAX_CONCURRENT,
    argon2ThreadNice: vars.ARGON2_THREAD_NICE,
    argon2NormalPriorityThreads,
    overloadMaxEventLoopDelayMs: vars.OVERLOAD_MAX_EVENT_LOOP_DELAY_MS,
    overloadMaxHeapMb: vars.OVERLOAD_MAX_HEAP_MB,
  }
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
