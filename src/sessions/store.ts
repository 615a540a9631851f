// @fastify/session's store on Kysely: rows keyed by a hash of the session id, expiry decided here.
// A session and its user are read in one query; a restored session is saved as a patch of the keys this
// request changed, so parallel requests on one session do not undo each other or revive a deleted row.
// The cookie is not stored: its only moving part is the expiry, which the row's `expires_at` holds. A session
// restored without one gets a fresh cookie from the plugin's options, which @fastify/session restores faster
// (no stored cookie to merge, no dates to parse).
import { hash } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import type { SessionStore } from '@fastify/session'
import type { Session } from 'fastify'
import { type Kysely, type QueryCreator, sql } from 'kysely'
import { prepareStatement } from '../db/prepared.js'
import type { Database, SessionData } from '../db/schema.js'
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
  /** Epoch ms the sliding expiry was last written. */
  touchedAt?: number
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

/** A new session's first save; `replacing`: the statement also deletes the row `replacedId` (see
 * KyselySessionStore.deferDeleteUntilReplaced). The insert never reads that CTE, so it keeps the plain
 * database's types. */
function insertStatement(anonymous: boolean, replacing: boolean) {
  return prepareStatement((db, p: SaveParameters & { replacedId?: string }) => {
    const creator = replacing
      ? (db.with('replaced', (cte) => deleteRow(cte, p.replacedId ?? '')) as unknown as QueryCreator<Database>)
      : db
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

/** Every variant of a save, prepared once: indexed by [anonymous][replacing]. */
const patchSession = [patchStatement(false), patchStatement(true)] as const
const insertSession = [
  [insertStatement(false, false), insertStatement(false, true)],
  [insertStatement(true, false), insertStatement(true, true)],
] as const
const deleteSession = prepareStatement((db, p: { id: string }) => deleteRow(db, p.id))

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
  ) {}

  /** True while a destroy's callback runs: a set from inside it is regenerate()'s (see set). */
  private insideDestroyCallback = false

  /** Anonymous sessions, by id, whose row goes with the first write of the session that replaces them. */
  private readonly deleteWithReplacement = new Set<string>()
  /** While a deferred destroy's callback runs: the row (hashed id) that regenerate()'s new session replaces. */
  private rowToReplace: string | null = null
  /** The row each regenerated session replaces, deleted by the statement that first writes that session. */
  private readonly replacedRows = new WeakMap<object, string>()

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
      if (this.rowToReplace !== null) {
        this.replacedRows.set(session, this.rowToReplace)
        this.rowToReplace = null
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

    // The row this session replaces (see deferDeleteUntilReplaced) goes in the same statement. That row
    // never has a user, so should a crash lose this commit, what comes back is a visitor's form session.
    const replacedId = this.replacedRows.get(session)
    const insert = insertSession[anonymous][replacedId === undefined ? 0 : 1]
    this.settle(
      insert(this.asyncCommitDb, { id, userId, data: JSON.stringify(data), expiresAt, replacedId }),
      () => {
        this.replacedRows.delete(session)
        callback()
      },
      callback,
    )
  }

  /**
   * For a log-in or sign-up from an anonymous session (a visitor's form session): its row is deleted by the
   * statement that first writes the new session, instead of by a DELETE of its own when regenerate() destroys
   * it. One round trip and one commit fewer per log-in, and the swap is atomic. Only for a session without a
   * user: should the new session never be written (the request failed after regenerate), the old row lives
   * on until its anonymous expiry, and it opens nothing. Call right before regenerating; the returned
   * function withdraws the request if regenerate did not reach the store.
   */
  deferDeleteUntilReplaced(sessionId: string): () => void {
    this.deleteWithReplacement.add(sessionId)
    return () => this.deleteWithReplacement.delete(sessionId)
  }

  destroy(sessionId: string, callback: Done): void {
    const id = hashSessionId(sessionId)
    const deferred = this.deleteWithReplacement.delete(sessionId)
    const done = (error?: unknown) => {
      // @fastify/session's regenerate() saves its new session from inside this callback (see set).
      this.insideDestroyCallback = true
      this.rowToReplace = deferred ? id : null
      try {
        callback(error)
      } finally {
        this.insideDestroyCallback = false
        // No new session took the row over (not regenerate after all): it is deleted on its own, as usual.
        if (this.rowToReplace !== null) {
          this.rowToReplace = null
          deleteSession(this.db, { id }).catch(this.onCallbackError)
        }
      }
    }
    this.settle(deferred ? Promise.resolve() : deleteSession(this.db, { id }).then(() => undefined), () => done(), done)
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
