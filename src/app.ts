// buildApp(config): the whole service, used alike by the server, the tests and the benchmarks.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { AppConfig } from './config.js'
import type { Commits } from './db/database.js'
import { serializeRequest } from './http/log-redaction.js'
import accountsPlugin from './plugins/accounts.js'
import authPlugin from './plugins/auth.js'
import dbPlugin from './plugins/db.js'
import errorPagesPlugin, { answerFrameworkError, plainErrorHandler } from './plugins/error-pages.js'
import eventsPlugin from './plugins/events.js'
import flashPlugin from './plugins/flash.js'
import formsPlugin from './plugins/forms.js'
import loadSheddingPlugin from './plugins/load-shedding.js'
import mailPlugin from './plugins/mail.js'
import pageGuardsPlugin from './plugins/page-guards.js'
import securityHeadersPlugin from './plugins/security-headers.js'
import sessionPlugin from './plugins/session.js'
import staticPlugin from './plugins/static.js'
import throttlingPlugin from './plugins/throttling.js'
import viewPlugin, { templatesPlugin } from './plugins/view.js'
import accountRoutes from './routes/account/index.js'
import adminRoutes from './routes/admin.js'
import authRoutes from './routes/auth/index.js'
import emailConfirmationRoutes from './routes/email-confirmation.js'
import healthRoutes from './routes/health.js'
import homeRoutes from './routes/home.js'
import passwordResetRoutes from './routes/password-reset.js'
import profileRoutes from './routes/profile.js'

export type { AppConfig } from './config.js'

/** A form post is a few hundred bytes; anything near this is not a person filling in a form. */
export const BODY_LIMIT_BYTES = 16 * 1024

export interface BuildAppOptions {
  /** Where log lines go (tests capture them); stdout by default. */
  logStream?: NodeJS.WritableStream
  /** Called with each SQL statement the app runs, and whether its commit was durable (tests count round trips). */
  onQuery?: (sql: string, commits: Commits) => void
}

/**
 * In development on a terminal, log lines are pretty-printed (a logged message reads as a message); anywhere
 * else, and always in production, they stay one JSON object a line. pino-pretty is a development
 * dependency: where it is not installed, the lines stay JSON.
 */
function prettyTransport(config: AppConfig, options: BuildAppOptions) {
  if (options.logStream || config.server.env === 'production' || !process.stdout.isTTY) return {}
  try {
    import.meta.resolve('pino-pretty')
  } catch {
    return {}
  }
  return {
    transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss Z', ignore: 'pid,hostname' } },
  }
}

function loggerOptions(config: AppConfig, options: BuildAppOptions): FastifyServerOptions['logger'] {
  return {
    level: config.server.logLevel,
    ...(options.logStream ? { stream: options.logStream } : {}),
    ...prettyTransport(config, options),
    // A mailed link's token never reaches the request lines (see log-redaction.ts).
    serializers: { req: serializeRequest },
    redact: {
      paths: [
        'req.headers.cookie',
        'req.headers.authorization',
        'req.headers["x-csrf-token"]',
        'res.headers["set-cookie"]',
        'body.password',
        'body._csrf',
        'body.token',
      ],
      censor: '[redacted]',
    },
  }
}

function warnAboutConfig(app: FastifyInstance, config: AppConfig): void {
  if (config.cookies.secure && config.server.trustProxy === false) {
    app.log.warn(
      "Session cookies are Secure but TRUST_PROXY is not set: behind a TLS-terminating proxy every request looks like plain HTTP, so no session cookie is ever sent, every form answers 'This form has expired' and nobody stays logged in. Set TRUST_PROXY to the proxy's address (for example TRUST_PROXY=10.0.0.2); for local plain HTTP without a proxy set COOKIE_SECURE=false.",
    )
  }
  if (config.server.env === 'production' && config.database.url === null) {
    app.log.warn(
      'Production is running on the embedded database (DATABASE_URL is unset): one process, one connection. Set DATABASE_URL to a PostgreSQL server for real traffic.',
    )
  }
}

/**
 * The HTML pages: forms and their CSRF tokens, templates, page guards, error pages, routes. Their own
 * context inside the session's, so a JSON API can sit beside them under the same session with its own
 * error format.
 */
async function pagesContext(app: FastifyInstance): Promise<void> {
  await app.register(formsPlugin)
  await app.register(viewPlugin)
  await app.register(pageGuardsPlugin)
  // Before the routes: each route keeps the error handler in force when it is registered.
  await app.register(errorPagesPlugin)

  await app.register(homeRoutes)
  await app.register(authRoutes)
  await app.register(profileRoutes)
  await app.register(accountRoutes)
  await app.register(adminRoutes)
  // Without mail (production without SMTP_URL) these pages do not exist: 404, and nothing links to them.
  if (app.mail.enabled) {
    await app.register(passwordResetRoutes)
    await app.register(emailConfirmationRoutes)
  }
}

/**
 * Everything that reads a session: the session itself, flash, throttling, accounts and the auth core. An
 * encapsulated context of its own, so its hooks (a database read for each cookie) never run for the assets
 * and /healthz registered beside it.
 */
async function sessionContext(app: FastifyInstance, config: AppConfig): Promise<void> {
  await app.register(sessionPlugin, {
    ...config.session,
    cookies: config.cookies,
    // A visitor opens a form and posts it: ten new sessions per POST an address may make leaves room for
    // tabs, reloads and many people behind one address, and still bounds what a flood of GETs can store.
    newSessionsPerMinute: 10 * config.throttling.authRateLimit,
  })
  await app.register(flashPlugin)
  // The first secret keys the email digests: see SECURITY.md for what a rotation does to them.
  await app.register(throttlingPlugin, { ...config.throttling, digestSecret: config.session.secrets[0] ?? '' })
  await app.register(eventsPlugin, config.audit)
  await app.register(mailPlugin, { ...config.mail, secrets: config.session.secrets })
  await app.register(accountsPlugin, {
    ...config.hashing,
    requireConfirmation: config.mail.requireConfirmation,
    pruneIntervalMs: config.throttling.pruneIntervalMs,
  })
  await app.register(authPlugin)
  await app.register(pagesContext)
}

export async function buildApp(config: AppConfig, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config, options),
    // A hop count is one of Fastify's documented trustProxy forms; its type definitions omit numbers.
    trustProxy: config.server.trustProxy as boolean | string | string[],
    bodyLimit: BODY_LIMIT_BYTES,
    // The embedded database's first start runs initdb: several seconds, tens on a busy machine,
    // well past Fastify's 10 s default for a plugin to load.
    pluginTimeout: 120_000,
    // A request already on an open connection when shutdown starts is in flight: serve it (with
    // Connection: close, below) rather than 503. New connections are refused once close() begins.
    return503OnClosing: false,
    // A URL the router cannot decode gets the site's 400 page, not Fastify's JSON echoing the path.
    frameworkErrors: (error, request, reply) => {
      answerFrameworkError(app, error, request, reply).catch((failure: unknown) => app.log.error({ err: failure }))
    },
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
    await app.register(dbPlugin, { ...config.database, onQuery: options.onQuery })
    // After the database opens (PGlite's start blocks the event loop for seconds, which is not overload),
    // before the session plugin (whose hooks read the database): a shed request costs no database work.
    await app.register(loadSheddingPlugin, config.overload)
    await app.register(securityHeadersPlugin, { https: config.cookies.secure })
    // At the root: pages render in their context, and a bad URL's 400 page before any context is entered.
    await app.register(templatesPlugin, { cacheTemplates: config.server.env !== 'development' })

    // Assets and /healthz sit outside the session's context: they never read, create or touch a session,
    // so the stylesheet still loads on the 503 page while the database is away.
    app.setErrorHandler(plainErrorHandler)
    await app.register(staticPlugin)
    await app.register(healthRoutes)
    await app.register(sessionContext, config)
    await app.ready()
  } catch (error) {
    await app.close()
    throw error
  }
  return app
}
