// @fastify/session's store on Kysely: rows keyed by a hash of the session id, expiry decided here.
// A session and its user are read in one query; a restored session is saved as a patch of the keys this
// request changed, so parallel requests on one session do not undo each other or revive a deleted row.
// The cookie is not stored: its only moving part is the expiry, which the row's `expires_at` holds. A session
// restored without one gets a fresh cookie from the plugin's options, which @fastify/session restores faster
// (no stored cookie to merge, no dates to parse).
import { createHash, hash } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import type { SessionStore } from '@fastify/session'
import type { Session } from 'fastify'
import { type Kysely, type QueryCreator, sql } from 'kysely'
import { prepareStatement } from '../db/prepared.js'
import type { Database, SessionData } from '../db/schema.js'
import { deleteCounter, incrementStatement } from '../throttling/counters.js'
import type { AuthUser } from '../users/auth-user.js'
import { AUTH_USER_COLUMNS, authUserFromJoin } from '../users/repository.js'

/** A session that carries no user (a CSRF secret, a flash) never lives longer than this. */
export const ANONYMOUS_SESSION_MS = 60 * 60 * 1000

export interface SessionLifetimes {
  /** Sliding: a session unused this long expires. */
  idleMs: number
  /** Absolute: no session outlives this, counted from log-in (`authAt`). */
  maxMs: number
}

/** The keys our code puts in a session, beside the ones @fastify/session and its friends own. */
export interface SessionKeys {
  /** The serialized user id, written by @fastify/passport. */
  passport?: number
  /** Epoch ms of the log-in that made this session. */
  authAt?: number
  /** Epoch ms the sliding expiry was last written: the session's last activity, to the minute. */
  touchedAt?: number
  /** The client address and User-Agent of the log-in, for the account's sessions page. */
  loginIp?: string
  loginUserAgent?: string
  /** The session's user as read with the session (null: none, or deleted). Never written back. */
  sessionUser?: AuthUser | null
}

const SESSION_USER_KEY = 'sessionUser'
/** Keys of a session that are never stored: the user `get` adds, and the cookie (see the top of this file). */
const UNSTORED_KEYS = new Set([SESSION_USER_KEY, 'cookie'])

/**
 * The session as stored: what its JSON form would hold (own enumerable keys; no functions, no undefined;
 * numbers that JSON cannot hold as null), without the user that `get` adds and without the cookie. Copied
 * key by key, not through a JSON round trip of the whole session, which would also serialize the cookie
 * only to drop it (nearly every value is a number or a string). Objects (a flash) are copied deep, as they
 * may change in place before the save.
 */
function storedData(session: object): SessionData {
  const data: SessionData = {}
  const fields = session as Record<string, unknown>
  for (const key of Object.keys(fields)) {
    const value = fields[key]
    if (UNSTORED_KEYS.has(key) || value === undefined || typeof value === 'function') continue
    if (typeof value === 'object' && value !== null) data[key] = JSON.parse(JSON.stringify(value))
    else data[key] = typeof value === 'number' && !Number.isFinite(value) ? null : value
  }
  return data
}

/** The cookie's expiry, which @fastify/session keeps on the session object (a Date, or a string when a
 * test hands over plain JSON). */
function cookieExpiry(session: object): number {
  const cookie = (session as { cookie?: { expires?: string | Date | null } }).cookie
  return cookie?.expires ? new Date(cookie.expires).getTime() : Number.NaN
}

export function hashSessionId(sessionId: string): string {
  return hash('sha256', sessionId)
}

/**
 * What the account's sessions page names a session by: derived from the stored id (itself a hash of the
 * session id), so it opens nothing, whatever page or log it reaches. 128 bits, base64url.
 */
export function sessionHandle(storedId: string): string {
  return createHash('sha256').update(`gatehouse session handle:${storedId}`).digest('base64url').slice(0, 22)
}

export const SESSION_HANDLE_SHAPE = /^[A-Za-z0-9_-]{22}$/

function userIdOf(data: SessionData): number | null {
  return typeof data.passport === 'number' ? data.passport : null
}

/** The earliest of: the cookie's sliding expiry (epoch ms, NaN for none), the absolute cap from log-in, the
 * anonymous cap. */
export function sessionExpiry(
  data: SessionData,
  cookieExpires: number,
  lifetimes: SessionLifetimes,
  now = Date.now(),
): Date {
  let expires = Number.isNaN(cookieExpires) ? now + lifetimes.idleMs : cookieExpires
  if (userIdOf(data) === null) expires = Math.min(expires, now + ANONYMOUS_SESSION_MS)
  if (typeof data.authAt === 'number') expires = Math.min(expires, data.authAt + lifetimes.maxMs)
  return new Date(expires)
}

type Done = (error?: unknown) => void

/** What a caller asks of the first write of the session that replaces this one (see deferToNewSession). */
export interface DeferredWork {
  replaceRow: boolean
  counterKey?: string
}

/** That work as the new session's insert runs it: the hashed id of the row to delete, the counter to clear. */
interface FirstWriteWork {
  replacedId: string | null
  counterKey: string | null
}

/** A session with its user, in one query: the read on every request that carries a cookie. */
const readSession = prepareStatement((db, p: { id: string }) =>
  db
    .selectFrom('sessions')
    .leftJoin('users', 'users.id', 'sessions.user_id')
    .select(['sessions.data', ...AUTH_USER_COLUMNS])
    .where('sessions.id', '=', p.id)
    // Expired rows wait for the pruner, but they never come back.
    .where('sessions.expires_at', '>', sql<Date>`now()`),
)

/** What a save writes: `data` is the session's JSON, or for a patch the changed keys' JSON. */
interface SaveParameters {
  id: string
  userId: number | null
  data: string
  expiresAt: Date
}

/** A session without a user never outlives its first hour, however often it is saved. */
function savedExpiry(anonymous: boolean, expiresAt: Date) {
  return anonymous ? sql<Date>`least(sessions.expires_at, ${expiresAt})` : expiresAt
}

/** A restored session's save: only this request's changes (`data`), and the keys it removed (`removed`). */
function patchStatement(anonymous: boolean) {
  return prepareStatement((db, p: SaveParameters & { removed: string[] }) =>
    db
      .updateTable('sessions')
      // A flash or a key another request wrote meanwhile stays.
      .set({
        data: sql`(data - ${p.removed}::text[]) || ${p.data}::jsonb`,
        user_id: p.userId,
        expires_at: savedExpiry(anonymous, p.expiresAt),
      })
      // No row any more (logged out or expired meanwhile): nothing is written, nothing revived.
      .where('id', '=', p.id),
  )
}

/** A new session's first save. `replacing`: the statement also deletes the row `replacedId`; `clearing`: also
 * the throttle counter `counterKey` (see KyselySessionStore.deferToNewSession). The insert never reads those
 * CTEs, so it keeps the plain database's types. */
function insertStatement(anonymous: boolean, replacing: boolean, clearing: boolean) {
  return prepareStatement((db, p: SaveParameters & { replacedId?: string; counterKey?: string }) => {
    let creator: QueryCreator<Database> = db
    if (replacing) {
      creator = creator.with('replaced', (cte) =>
        deleteRow(cte, p.replacedId ?? ''),
      ) as unknown as QueryCreator<Database>
    }
    if (clearing) {
      creator = creator.with('cleared', (cte) =>
        deleteCounter(cte, p.counterKey ?? ''),
      ) as unknown as QueryCreator<Database>
    }
    return creator
      .insertInto('sessions')
      .values({ id: p.id, user_id: p.userId, data: p.data, expires_at: p.expiresAt })
      .onConflict((oc) =>
        oc
          .column('id')
          .doUpdateSet({ user_id: p.userId, data: p.data, expires_at: savedExpiry(anonymous, p.expiresAt) }),
      )
  })
}

/** Every variant of a save, prepared once: patches by [anonymous], inserts by [anonymous][replacing][clearing]. */
const patchSession = [patchStatement(false), patchStatement(true)] as const
const insertSession = [false, true].map((anonymous) =>
  [false, true].map((replacing) => [false, true].map((clearing) => insertStatement(anonymous, replacing, clearing))),
)
const deleteSession = prepareStatement((db, p: { id: string }) => deleteRow(db, p.id))

/** A new visitor's first session, within its address's budget: the statement counts the session against the
 * address and writes the row only while the count is within `budget` (see noteNewVisitor). */
const insertVisitorSession = prepareStatement(
  (db, p: SaveParameters & { counterKey: string; budget: number; windowSeconds: number }) =>
    db
      .with('counted', (cte) => incrementStatement(cte, p.counterKey, p.windowSeconds))
      .insertInto('sessions')
      .columns(['id', 'user_id', 'data', 'expires_at'])
      .expression((eb) =>
        eb
          .selectFrom('counted')
          .select([
            sql<string>`${p.id}::text`.as('id'),
            sql<number | null>`${p.userId}::integer`.as('user_id'),
            sql<string>`${p.data}::jsonb`.as('data'),
            sql<Date>`${p.expiresAt}::timestamptz`.as('expires_at'),
          ])
          .where('counted.count', '<=', p.budget),
      ),
)

/** How many new visitors' sessions one address may begin per window (see noteNewVisitor). */
export interface NewSessionBudget {
  perWindow: number
  windowMs: number
}

export class KyselySessionStore implements SessionStore {
  constructor(
    private readonly db: Kysely<Database>,
    /** Where sessions are written (inserts and updates): their commits do not wait for the disk. Losing such
     * a write in a crash of the database server can only end a session early, never open one (see
     * DatabaseHandle.asyncCommitDb). Deletes, which end access, go through `db` and are durable. */
    private readonly asyncCommitDb: Kysely<Database>,
    private readonly lifetimes: SessionLifetimes,
    /** Where a throw from @fastify/session's own callback goes, instead of an unhandled rejection. */
    private readonly onCallbackError: (error: unknown) => void,
    /** Null: new visitors' sessions are not counted. */
    private readonly newSessionBudget: NewSessionBudget | null = null,
  ) {}

  /** New visitors' sessions, with how to name their client address's budget (see noteNewVisitor). */
  private readonly newVisitors = new WeakMap<object, () => string>()

  /** True while a destroy's callback runs: a set from inside it is regenerate()'s (see set). */
  private insideDestroyCallback = false

  /** Sessions about to be regenerated, by id: what the first write of the session replacing them also does. */
  private readonly deferred = new Map<string, DeferredWork>()
  /** While a deferred destroy's callback runs: that work, for regenerate()'s new session to take over. */
  private workForNextSession: FirstWriteWork | null = null
  /** What each regenerated session's first write also does. */
  private readonly firstWriteWork = new WeakMap<object, FirstWriteWork>()

  /** What each restored session looked like when its request loaded it (see markLoaded). */
  private readonly loaded = new WeakMap<object, SessionData>()

  get(sessionId: string, callback: (error: unknown, session?: Session | null) => void): void {
    this.settle(
      readSession(this.db, { id: hashSessionId(sessionId) }).then((result) => result.rows[0]),
      (row) => {
        if (!row) return callback(null, null)
        const sessionUser: AuthUser | null = authUserFromJoin(row)
        // The row's data is a fresh object: the user is added to it, not to a copy (`{ ...data, key }` is also
        // a slow path in Node 20's V8).
        const session = row.data
        session[SESSION_USER_KEY] = sessionUser
        callback(null, session as Session)
      },
      callback,
    )
  }

  /**
   * Called for the new session of a request that brought no valid session cookie (a new visitor), with its
   * client address's key. Should the request put anything in it (a CSRF secret for a form, a flash), its first
   * save counts against that address's budget, and past the budget writes no row: a flood of cookieless
   * requests cannot fill the table. Such a visitor's form then expires (403) until the window ends.
   * `addressKey` is called only then: most new visitors' sessions are never saved.
   */
  noteNewVisitor(session: object, addressKey: () => string): void {
    if (this.newSessionBudget) this.newVisitors.set(session, addressKey)
  }

  /** Called for a session its request restored from a row: saves then patch that row, never re-create it. */
  markLoaded(session: object): void {
    this.loaded.set(session, storedData(session))
  }

  set(sessionId: string, session: Session, callback: Done): void {
    const data = storedData(session)
    // regenerate() (log-in, log-out) writes the new, anonymous session right after deleting the old one,
    // before the request has put anything in it. That row is never needed: no cookie names the new id
    // until the session is saved at the response (@fastify/session sends it only then), and that save
    // writes the row with what the request put in it. Skipping it saves a write per log-in and log-out.
    if (this.insideDestroyCallback && !this.loaded.has(session) && userIdOf(data) === null) {
      // One set per destroy: whatever regenerate's callback goes on to do synchronously writes as usual.
      this.insideDestroyCallback = false
      if (this.workForNextSession !== null) {
        this.firstWriteWork.set(session, this.workForNextSession)
        this.workForNextSession = null
      }
      callback()
      return
    }
    const id = hashSessionId(sessionId)
    const userId = userIdOf(data)
    const anonymous = userId === null ? 1 : 0
    const expiresAt = sessionExpiry(data, cookieExpiry(session), this.lifetimes)
    const before = this.loaded.get(session)

    if (before) {
      const changed = Object.fromEntries(
        Object.entries(data).filter(([key, value]) => !isDeepStrictEqual(value, before[key])),
      )
      // A row written before the cookie was left out of storage loses it at its first save.
      const removed = [...Object.keys(before).filter((key) => !(key in data)), 'cookie']
      // Log-outs delete the row; an update that took the user off it would end access too, and must not be lost.
      const writer = userIdOf(before) !== null && userId === null ? this.db : this.asyncCommitDb
      this.settle(
        patchSession[anonymous](writer, { id, userId, data: JSON.stringify(changed), expiresAt, removed }),
        () => {
          this.loaded.set(session, data)
          callback()
        },
        callback,
      )
      return
    }

    // A new visitor's first session counts against its address's budget in the statement that writes it.
    const visitorAddress = this.newVisitors.get(session)
    if (visitorAddress !== undefined && this.newSessionBudget && anonymous === 1) {
      const { perWindow, windowMs } = this.newSessionBudget
      const parameters = { id, userId, data: JSON.stringify(data), expiresAt }
      this.settle(
        insertVisitorSession(this.asyncCommitDb, {
          ...parameters,
          counterKey: `rate:${visitorAddress()}new-sessions`,
          budget: perWindow,
          windowSeconds: windowMs / 1000,
        }),
        () => {
          // Later saves of this session (with a row or without) count no more.
          this.newVisitors.delete(session)
          callback()
        },
        callback,
      )
      return
    }
    // The row this session replaces and the counter it clears (see deferToNewSession) go in the same
    // statement. That row never has a user, so should a crash lose this commit, what comes back is a visitor's
    // form session, and an attempt still counted, which errs on the safe side.
    const work = this.firstWriteWork.get(session)
    const replacedId = work?.replacedId ?? undefined
    const counterKey = work?.counterKey ?? undefined
    const insert = insertSession[anonymous]?.[replacedId === undefined ? 0 : 1]?.[counterKey === undefined ? 0 : 1]
    if (!insert) {
      callback(new Error('no prepared session insert for this variant'))
      return
    }
    this.settle(
      insert(this.asyncCommitDb, { id, userId, data: JSON.stringify(data), expiresAt, replacedId, counterKey }),
      () => {
        this.firstWriteWork.delete(session)
        callback()
      },
      callback,
    )
  }

  /**
   * For a log-in or sign-up, right before regenerate(): work for the statement that first writes the new
   * session, instead of statements of their own. `replaceRow` (only for a session without a user, a visitor's
   * form session): its row is deleted there rather than by regenerate()'s own DELETE; should the new session
   * never be written (the request failed after regenerate), the old row lives on until its anonymous expiry,
   * and it opens nothing. `counterKey`: the log-in's attempt counter, cleared there. One round trip and one
   * commit each fewer per log-in, and atomic with the new session. The returned function withdraws the work
   * if regenerate did not reach the store.
   */
  deferToNewSession(sessionId: string, work: DeferredWork): () => void {
    this.deferred.set(sessionId, work)
    return () => this.deferred.delete(sessionId)
  }

  destroy(sessionId: string, callback: Done): void {
    const id = hashSessionId(sessionId)
    const work = this.deferred.get(sessionId)
    this.deferred.delete(sessionId)
    const keepRow = work?.replaceRow === true
    const done = (error?: unknown) => {
      // @fastify/session's regenerate() saves its new session from inside this callback (see set).
      this.insideDestroyCallback = true
      this.workForNextSession = work ? { replacedId: keepRow ? id : null, counterKey: work.counterKey ?? null } : null
      try {
        callback(error)
      } finally {
        this.insideDestroyCallback = false
        // No new session took the work over (not regenerate after all): the row is deleted on its own, as usual.
        const untaken = this.workForNextSession
        this.workForNextSession = null
        if (untaken?.replacedId) deleteSession(this.db, { id: untaken.replacedId }).catch(this.onCallbackError)
      }
    }
    this.settle(keepRow ? Promise.resolve() : deleteSession(this.db, { id }).then(() => undefined), () => done(), done)
  }

  /** The callback runs once, only after the database has answered; never `.then(cb).catch(cb)`, which can call it twice. */
  private settle<T>(work: Promise<T>, onValue: (value: T) => void, onError: Done): void {
    work.then(onValue, onError).catch(this.onCallbackError)
  }
}

function deleteRow(db: QueryCreator<Database>, id: string) {
  return db.deleteFrom('sessions').where('id', '=', id)
}

/** Deletes expired rows; returns how many. */
export async function pruneExpiredSessions(db: Kysely<Database>, now = new Date()): Promise<number> {
  const result = await db.deleteFrom('sessions').where('expires_at', '<=', now).executeTakeFirst()
  return Number(result.numDeletedRows)
}

/** Ends every session of a user (a new password), but `except` (a stored id): their cookies open nothing
 * from the next request on. */
export async function deleteSessionsOfUser(
  db: Kysely<Database>,
  userId: number,
  options: { except?: string } = {},
): Promise<number> {
  let query = db.deleteFrom('sessions').where('user_id', '=', userId)
  if (options.except !== undefined) query = query.where('id', '!=', options.except)
  const result = await query.executeTakeFirst()
  return Number(result.numDeletedRows)
}

/** Ends one session of a user by its stored id; false when it is not theirs or already gone. */
export async function deleteSessionOfUser(db: Kysely<Database>, userId: number, storedId: string): Promise<boolean> {
  const result = await db
    .deleteFrom('sessions')
    .where('user_id', '=', userId)
    .where('id', '=', storedId)
    .executeTakeFirst()
  return result.numDeletedRows > 0n
}

/** A user's live sessions: stored id, data (log-in time, last activity, address, User-Agent), expiry. */
export async function listSessionsOfUser(db: Kysely<Database>, userId: number) {
  return db
    .selectFrom('sessions')
    .select(['id', 'data', 'expires_at'])
    .where('user_id', '=', userId)
    .where('expires_at', '>', sql<Date>`now()`)
    .execute()
}
