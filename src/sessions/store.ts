// @fastify/session's store on Kysely: rows keyed by a hash of the session id, expiry decided here.
import { createHash } from 'node:crypto'
import type { SessionStore } from '@fastify/session'
import type { Session } from 'fastify'
import { type Kysely, sql } from 'kysely'
import type { Database, SessionData } from '../db/schema.js'

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
}

export function hashSessionId(sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('hex')
}

function userIdOf(data: SessionData): number | null {
  return typeof data.passport === 'number' ? data.passport : null
}

/** The earliest of: the cookie's sliding expiry, the absolute cap from log-in, the anonymous cap. */
export function sessionExpiry(data: SessionData, lifetimes: SessionLifetimes, now = Date.now()): Date {
  const cookie = data.cookie as { expires?: string | Date | null } | undefined
  const cookieExpires = cookie?.expires ? new Date(cookie.expires).getTime() : Number.NaN
  let expires = Number.isNaN(cookieExpires) ? now + lifetimes.idleMs : cookieExpires
  if (userIdOf(data) === null) expires = Math.min(expires, now + ANONYMOUS_SESSION_MS)
  if (typeof data.authAt === 'number') expires = Math.min(expires, data.authAt + lifetimes.maxMs)
  return new Date(expires)
}

type Done = (error?: unknown) => void

export class KyselySessionStore implements SessionStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly lifetimes: SessionLifetimes,
    /** Where a throw from @fastify/session's own callback goes, instead of an unhandled rejection. */
    private readonly onCallbackError: (error: unknown) => void,
  ) {}

  get(sessionId: string, callback: (error: unknown, session?: Session | null) => void): void {
    this.settle(
      this.db
        .selectFrom('sessions')
        .select('data')
        .where('id', '=', hashSessionId(sessionId))
        // Expired rows wait for the pruner, but they never come back.
        .where('expires_at', '>', new Date())
        .executeTakeFirst(),
      (row) => callback(null, (row?.data as Session | undefined) ?? null),
      callback,
    )
  }

  set(sessionId: string, session: Session, callback: Done): void {
    const data = JSON.parse(JSON.stringify(session)) as SessionData
    const row = {
      id: hashSessionId(sessionId),
      user_id: userIdOf(data),
      data: JSON.stringify(data),
      expires_at: sessionExpiry(data, this.lifetimes),
    }
    this.settle(
      this.db
        .insertInto('sessions')
        .values(row)
        .onConflict((oc) =>
          oc.column('id').doUpdateSet({
            user_id: row.user_id,
            data: row.data,
            // A session without a user never outlives its first hour, however often it is saved.
            expires_at:
              row.user_id === null ? sql<Date>`least(sessions.expires_at, ${row.expires_at})` : row.expires_at,
          }),
        )
        .execute(),
      () => callback(),
      callback,
    )
  }

  destroy(sessionId: string, callback: Done): void {
    this.settle(
      this.db.deleteFrom('sessions').where('id', '=', hashSessionId(sessionId)).execute(),
      () => callback(),
      callback,
    )
  }

  /** The callback runs once, only after the database has answered; never `.then(cb).catch(cb)`, which can call it twice. */
  private settle<T>(work: Promise<T>, onValue: (value: T) => void, onError: Done): void {
    work.then(onValue, onError).catch(this.onCallbackError)
  }
}

/** Deletes expired rows; returns how many. */
export async function pruneExpiredSessions(db: Kysely<Database>, now = new Date()): Promise<number> {
  const result = await db.deleteFrom('sessions').where('expires_at', '<=', now).executeTakeFirst()
  return Number(result.numDeletedRows)
}
