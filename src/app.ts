// buildApp(config): the whole service, used alike by the server, the tests and the benchmarks.
import fastifyAccepts from '@fastify/accepts'
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import { isDatabaseUnavailable } from './db/availability.js'
import type { Commits } from './db/database.js'
import { prefersJson } from './http/negotiation.js'
import authPlugin from './plugins/auth.js'
import dbPlugin from './plugins/db.js'
import formsPlugin from './plugins/forms.js'
import loadSheddingPlugin, { RETRY_AFTER_SECONDS } from './plugins/load-shedding.js'
import securityHeadersPlugin from './plugins/security-headers.js'
import sessionPlugin from './plugins/session.js'
import staticPlugin from './plugins/static.js'
import throttlingPlugin from './plugins/throttling.js'
import viewPlugin from './plugins/view.js'
import adminRoutes from './routes/admin.js'
import authRoutes from './routes/auth/index.js'
import healthRoutes from './routes/health.js'
import homeRoutes from './routes/home.js'
import profileRoutes from './routes/profile.js'

/** A form post is a few hundred bytes; anything near this is not a person filling in a form. */
export const BODY_LIMIT_BYTES = 16 * 1024

export type AppConfig = Config & { sessionSecrets: string[] }

export interface BuildAppOptions {
  /** Where log lines go (tests capture them); stdout by default. */
  logStream?: NodeJS.WritableStream
  /** Called with each SQL statement the app runs, and whether its commit was durable (tests count round trips). */
  onQuery?: (sql: string, commits: Commits) => void
}

const ERROR_PAGES: Record<number, { title: string; message: string }> = {
  400: { title: 'Bad request', message: 'That request could not be understood.' },
  403: {
    title: 'Form expired',
    message: 'This form has expired or did not come from this site. Go back, reload the page and try again.',
  },
  404: { title: 'Page not found', message: 'There is no page at this address.' },
  413: { title: 'Too large', message: 'That request is larger than this site accepts.' },
  415: { title: 'Unsupported request', message: 'That kind of request body is not accepted here.' },
  429: { title: 'Too many requests', message: 'Too many attempts. Try again later.' },
  500: { title: 'Something went wrong', message: 'Something went wrong on our side. Please try again.' },
  503: {
    title: 'Temporarily unavailable',
    message: 'gatehouse cannot reach its database right now. Please try again in a few seconds.',
  },
}

const OVERLOADED_PAGE = {
  title: 'Temporarily unavailable',
  message: 'gatehouse is very busy right now. Please try again in a few seconds.',
}

function loggerOptions(config: AppConfig, options: BuildAppOptions): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    ...(options.logStream ? { stream: options.logStream } : {}),
    redact: {
      paths: [
        'req.headers.cookie',
        'req.headers.authorization',
        'req.headers["x-csrf-token"]',
        'res.headers["set-cookie"]',
        'body.password',
        'body._csrf',
      ],
      censor: '[redacted]',
    },
  }
}

/** Our own 4xx errors speak to the user as they are; others get the page for their status. */
function errorPage(status: number, error: FastifyError): { title: string; message: string } {
  const page = ERROR_PAGES[status] ?? ERROR_PAGES[status >= 500 ? 500 : 400] ?? { title: 'Error', message: '' }
  return error.code?.startsWith('GH_') ? { ...page, message: error.message } : page
}

function warnAboutConfig(app: FastifyInstance, config: AppConfig): void {
  if (config.cookieSecure && config.trustProxy === false) {
    app.log.warn(
      "Session cookies are Secure but TRUST_PROXY is not set: behind a TLS-terminating proxy every request looks like plain HTTP, so no session cookie is ever sent, every form answers 'This form has expired' and nobody stays logged in. Set TRUST_PROXY to the proxy's address (for example TRUST_PROXY=10.0.0.2); for local plain HTTP without a proxy set COOKIE_SECURE=false.",
    )
  }
  if (config.env === 'production' && config.databaseUrl === null) {
    app.log.warn(
      'Production is running on the embedded database (DATABASE_URL is unset): one process, one connection. Set DATABASE_URL to a PostgreSQL server for real traffic.',
    )
  }
}

/**
 * Everything that reads a session: the session itself, forms, templates, throttling, log-in, and the
 * pages. An encapsulated context of its own, so its hooks (a database read for each cookie) never run
 * for the assets and /healthz registered beside it.
 */
async function pagesContext(app: FastifyInstance, config: AppConfig): Promise<void> {
  await app.register(sessionPlugin, {
    secrets: config.sessionSecrets,
    cookieSecure: config.cookieSecure,
    idleMs: config.sessionIdleMs,
    maxMs: config.sessionMaxMs,
    pruneIntervalMs: config.sessionPruneIntervalMs,
  })
  await app.register(formsPlugin)
  await app.register(viewPlugin, { cacheTemplates: config.env !== 'development' })
  await app.register(throttlingPlugin, {
    loginMaxFailures: config.loginMaxFailures,
    loginLockMs: config.loginLockMs,
    authRateLimit: config.authRateLimit,
    pruneIntervalMs: config.sessionPruneIntervalMs,
  })
  await app.register(authPlugin, {
    argon2: config.argon2,
    maxConcurrentHashes: config.argon2MaxConcurrent,
    hashThreadNice: config.argon2ThreadNice,
    normalPriorityHashThreads: config.argon2NormalPriorityThreads,
  })

  // Before the routes: each route keeps the error handler in force when it is registered.
  app.setNotFoundHandler(async (request, reply) => {
    reply.code(404)
    if (prefersJson(request)) return reply.send({ error: 'Not found' })
    return reply.render('error', ERROR_PAGES[404])
  })

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const unavailable = isDatabaseUnavailable(error)
    const status = unavailable
      ? 503
      : error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600
        ? error.statusCode
        : 500
    // Shed by load-shedding (503 and Retry-After already set): logging each one would add to the load.
    const overloaded = error.code === 'FST_UNDER_PRESSURE'
    if (unavailable) {
      // One log line per outage, not one per request.
      app.dbAvailability.reportUnavailable(error)
      reply.header('retry-after', String(RETRY_AFTER_SECONDS))
      // A session changed before the failure (a form's CSRF secret) would be saved again as this page
      // leaves, fail again, and end in Fastify's bare fallback answer: let this page go without it.
      Reflect.set(request, 'session', null)
    } else if (status >= 500 && !overloaded) request.log.error({ err: error }, 'request failed')
    else if (!overloaded) request.log.info({ code: error.code, status }, error.message)
    const page = overloaded ? OVERLOADED_PAGE : errorPage(status, error)
    reply.code(status)
    if (prefersJson(request)) return reply.send({ error: page.message })
    try {
      // Without its session the page cannot know who is logged in: say nothing rather than "Not logged in".
      return await reply.render('error', { ...page, sessionUnknown: unavailable })
    } catch (renderError) {
      request.log.error({ err: renderError }, 'error page failed to render')
      return reply.type('text/plain; charset=utf-8').send(`${page.title}: ${page.message}`)
    }
  })

  await app.register(homeRoutes)
  await app.register(authRoutes)
  await app.register(profileRoutes)
  await app.register(adminRoutes)
}

export async function buildApp(config: AppConfig, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config, options),
    // A hop count is one of Fastify's documented trustProxy forms; its type definitions omit numbers.
    trustProxy: config.trustProxy as boolean | string | string[],
    bodyLimit: BODY_LIMIT_BYTES,
    // The embedded database's first start runs initdb: several seconds, tens on a busy machine,
    // well past Fastify's 10 s default for a plugin to load.
    pluginTimeout: 120_000,
    // A request already on an open connection when shutdown starts is in flight: serve it (with
    // Connection: close, below) rather than 503. New connections are refused once close() begins.
    return503OnClosing: false,
  })
  warnAboutConfig(app, config)

  // While closing, each answer ends its keep-alive connection, so the process need not wait for idle
  // timeouts; sockets idle when close() begins are closed by Fastify.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  // Callback hooks, not async ones: they run on every answer, and a promise each would cost more than the check.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })
  // An answer already past onSend when closing began goes out without that header and leaves its
  // connection idle after Fastify has closed the idle ones: close() would then wait out the keep-alive
  // timeout (the 10 s grace, in practice). End such a connection once its answer is sent.
  app.addHook('onResponse', (request, _reply, done) => {
    if (closing) request.raw.socket?.end()
    done()
  })

  try {
    await app.register(dbPlugin, { databaseUrl: config.databaseUrl, dataDir: config.dataDir, onQuery: options.onQuery })
    // After the database opens (PGlite's start blocks the event loop for seconds, which is not overload),
    // before the session plugin (whose hooks read the database): a shed request costs no database work.
    await app.register(loadSheddingPlugin, {
      maxEventLoopDelayMs: config.overloadMaxEventLoopDelayMs,
      maxHeapUsedMb: config.overloadMaxHeapMb,
    })
    await app.register(fastifyAccepts)
    await app.register(securityHeadersPlugin, { https: config.cookieSecure })

    // Assets and /healthz sit outside the pages' context: they never read, create or touch a session,
    // so the stylesheet still loads on the 503 page while the database is away. Their few errors
    // (a shed request, a file that cannot be read) get a short answer without templates.
    app.setErrorHandler(async (error: FastifyError, request, reply) => {
      const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500
      if (status >= 500 && error.code !== 'FST_UNDER_PRESSURE') request.log.error({ err: error }, 'request failed')
      reply.code(status)
      if (prefersJson(request)) return reply.send({ error: error.message })
      return reply.type('text/plain; charset=utf-8').send(status >= 500 ? 'Temporarily unavailable' : error.message)
    })
    await app.register(staticPlugin)
    await app.register(healthRoutes)
    await app.register(pagesContext, config)
    await app.ready()
  } catch (error) {
    await app.close()
    throw error
  }
  return app
}
