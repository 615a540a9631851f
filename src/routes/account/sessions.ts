// /account/sessions: the user's live sessions, each named by a handle that opens nothing (sessionHandle);
// any but this one can be logged out, or all the others at once.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { describeUserAgent } from '../../events/user-agent.js'
import { recordAuthEvent } from '../../http/auth-log.js'
import { readFields } from '../../http/forms.js'
import { requiredUser } from '../../plugins/page-guards.js'
import {
  deleteSessionOfUser,
  deleteSessionsOfUser,
  hashSessionId,
  listSessionsOfUser,
  SESSION_HANDLE_SHAPE,
  sessionHandle,
} from '../../sessions/store.js'

export const SESSION_ENDED_FLASH = 'That session has been logged out.'
export const OTHER_SESSIONS_ENDED_FLASH = 'Your other sessions have been logged out.'
export const SESSION_GONE_FLASH = 'That session is no longer active.'
export const THIS_SESSION_FLASH = 'That is the session you are using: log out to end it.'

export interface SessionView {
  handle: string
  browser: string
  system: string
  address: string | null
  /** ISO times: when the log-in made it, when it was last active (to the minute the expiry is written). */
  startedAt: string | null
  lastActiveAt: string | null
  current: boolean
}

function isoOrNull(epochMs: unknown): string | null {
  return typeof epochMs === 'number' && Number.isFinite(epochMs) ? new Date(epochMs).toISOString() : null
}

/** The user's live sessions, this one first, then the most recently active. */
export async function sessionViews(request: FastifyRequest, userId: number): Promise<SessionView[]> {
  const currentId = hashSessionId(request.session.sessionId)
  const rows = await listSessionsOfUser(request.server.db, userId)
  const views = rows.map((row) => {
    const data = row.data as Record<string, unknown>
    const ua = typeof data.loginUserAgent === 'string' ? data.loginUserAgent : null
    const current = row.id === currentId
    return {
      handle: sessionHandle(row.id),
      ...describeUserAgent(ua),
      address: typeof data.loginIp === 'string' ? data.loginIp : null,
      startedAt: isoOrNull(data.authAt),
      // This session's row still holds the stamp from before this request; the one this view writes (when a
      // minute has passed) is the session's own.
      lastActiveAt: isoOrNull(current ? (request.session.get('touchedAt') ?? data.touchedAt) : data.touchedAt),
      current,
    }
  })
  return views.sort(
    (a, b) => Number(b.current) - Number(a.current) || (b.lastActiveAt ?? '').localeCompare(a.lastActiveAt ?? ''),
  )
}

function back(request: FastifyRequest, reply: FastifyReply, type: 'success' | 'error', message: string) {
  request.flash(type, message)
  return reply.redirect('/account/sessions', 303)
}

export default async function accountSessionsRoutes(app: FastifyInstance) {
  const guarded = { preHandler: [app.requireUser, app.csrfProtection] }

  app.get('/account/sessions', { preHandler: app.requireUser }, async (request, reply) => {
    const user = requiredUser(request)
    return reply.render('account-sessions', { title: 'Your sessions', sessions: await sessionViews(request, user.id) })
  })

  app.post('/account/sessions/end', guarded, async (request, reply) => {
    const user = requiredUser(request)
    const { session: handle } = readFields(request.body, ['session'])
    if (!SESSION_HANDLE_SHAPE.test(handle)) return back(request, reply, 'error', SESSION_GONE_FLASH)
    const currentId = hashSessionId(request.session.sessionId)
    if (sessionHandle(currentId) === handle) return back(request, reply, 'error', THIS_SESSION_FLASH)
    // Handles are looked up among this user's own sessions only: another user's handle matches nothing.
    const target = (await listSessionsOfUser(app.db, user.id)).find((row) => sessionHandle(row.id) === handle)
    if (!target || !(await deleteSessionOfUser(app.db, user.id, target.id))) {
      return back(request, reply, 'error', SESSION_GONE_FLASH)
    }
    await recordAuthEvent(request, 'session_ended', { userId: user.id }, { sessions: 1 })
    return back(request, reply, 'success', SESSION_ENDED_FLASH)
  })

  app.post('/account/sessions/end-others', guarded, async (request, reply) => {
    const user = requiredUser(request)
    const ended = await deleteSessionsOfUser(app.db, user.id, { except: hashSessionId(request.session.sessionId) })
    if (ended > 0) await recordAuthEvent(request, 'session_ended', { userId: user.id }, { sessions: ended })
    return back(request, reply, 'success', OTHER_SESSIONS_ENDED_FLASH)
  })
}
