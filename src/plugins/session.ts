// Sessions: @fastify/cookie + @fastify/session on our PostgreSQL store, with sliding expiry and pruning.
// @see https://github.com/fastify/session#options
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { sql } from 'kysely'
import type { AppConfig, Config } from '../config.js'
import { addressBudgetKey } from '../http/client-address.js'
import { repeatWhileRunning } from '../periodic.js'
import { SessionCookieSigner } from '../sessions/signer.js'
import { KyselySessionStore, pruneExpiredSessions, type SessionKeys } from '../sessions/store.js'

declare module 'fastify' {
  interface Session extends SessionKeys {}
  interface FastifyInstance {
    /** The sessions' PostgreSQL store (log-in asks it to swap an anonymous session's row in one statement). */
    sessionStore: KyselySessionStore
  }
}

export const SESSION_COOKIE = 'sid'
/** A logged-in session's expiry slides forward at most this often, so reading pages does not write every time. */
export const TOUCH_INTERVAL_MS = 60_000

export type SessionPluginOptions = AppConfig['session'] & {
  cookies: Config['cookies']
  /** New visitors' sessions one client address may begin per minute. */
  newSessionsPerMinute: number
}

export default fp<SessionPluginOptions>(
  async function sessionPlugin(app, options) {
    await app.register(fastifyCookie)
    const store = new KyselySessionStore(
      app.db,
      app.asyncCommitDb,
      { idleMs: options.idleMs, maxMs: options.maxMs },
      (error) => app.log.error({ err: error }, 'session store callback failed'),
      { perWindow: options.newSessionsPerMinute, windowMs: 60_000 },
    )
    app.decorate('sessionStore', store)
    // One signer for the session plugin and the re-sign check below: the first secret signs, all verify.
    const signer = new SessionCookieSigner(options.secrets)
    await app.register(fastifySession, {
      secret: signer,
      cookieName: SESSION_COOKIE,
      store,
      // No row and no cookie until something is worth keeping (a CSRF secret, a flash, a log-in).
      saveUninitialized: false,
      // Write only when the session changed; the touch below makes the expiry slide once a minute.
      rolling: false,
      cookie: {
        path: '/',
        httpOnly: true,
        // @fastify/session would otherwise send no SameSite at all.
        sameSite: 'lax',
        secure: options.cookies.secure,
        maxAge: options.idleMs,
      },
    })

    /** A session restored from its row: what it looked like, and whether its expiry or signature is due. A
     * new one: its first save counts against the client address's budget (see noteNewVisitor). */
    function noteSession(request: FastifyRequest): void {
      const session = request.session
      if (typeof session?.get !== 'function') return
      const cookie = request.cookies[SESSION_COOKIE]
      // Restored from its row (with the current secret, or an older one of SESSION_SECRET)?
      const signedWithCurrent = cookie === session.encryptedSessionId
      if (cookie === undefined || (!signedWithCurrent && signer.unsign(cookie).value !== session.sessionId)) {
        store.noteNewVisitor(session, () => addressBudgetKey(request.ip))
        return
      }
      store.markLoaded(session)

      const now = Date.now()
      // Changing touchedAt marks the session modified, so it is saved (with a fresh sliding expiry) and its
      // cookie sent again: for a logged-in session at most once a minute, so reading pages does not write;
      // and at once for a cookie signed with an older secret, which is then re-signed with the first one
      // (left alone, @fastify/session would take it for a new, unsaved session and clear it).
      const touchDue =
        session.get('passport') !== undefined && now - (session.get('touchedAt') ?? 0) >= TOUCH_INTERVAL_MS
      if (touchDue || !signedWithCurrent) session.set('touchedAt', now)
    }
    // A callback hook, not an async one: it runs on every request, and a promise each costs more than its work.
    app.addHook('onRequest', (request, _reply, done) => {
      noteSession(request)
      done()
    })

    if (options.cookies.secure) {
      // @fastify/session silently drops Secure cookies on plain HTTP; say so once instead of failing quietly.
      let warned = false
      app.addHook('onRequest', async (request) => {
        if (warned || request.protocol === 'https') return
        warned = true
        request.log.warn(
          "A request arrived over plain HTTP but session cookies are Secure: no session cookie is sent over plain HTTP, so forms expire and log-ins do not stick. Serve over HTTPS, set TRUST_PROXY to your TLS proxy's address, or set COOKIE_SECURE=false for local HTTP.",
        )
      })
    }

    repeatWhileRunning(app, {
      name: 'pruning expired sessions',
      intervalMs: options.pruneIntervalMs,
      runAtReady: true,
      run: async () => {
        const count = await pruneExpiredSessions(app.db)
        if (count === 0) return
        app.log.info({ count }, 'expired sessions pruned')
        // Embedded PostgreSQL has no autovacuum worker: without this, deleted rows pile up in the table
        // and its indexes, and every session read and write slows down as the months go by.
        if (app.dbFace === 'pglite') await sql`vacuum sessions`.execute(app.db)
      },
    })
  },
  { name: 'session', dependencies: ['db'] },
)
