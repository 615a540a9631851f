// /account/activity: the account's events, newest first, a page at a time.

import type { FastifyInstance } from 'fastify'
import { listEventsOfUser } from '../../events/repository.js'
import { requiredUser } from '../../plugins/page-guards.js'

export const EVENTS_PER_PAGE = 50
const MAX_PAGE = 10_000

/** `?page=N`: a whole number from 1; anything else reads as the first page. */
export function pageNumber(query: unknown): number {
  const raw = (query as { page?: unknown } | undefined)?.page
  const page = typeof raw === 'string' && /^\d{1,5}$/.test(raw) ? Number(raw) : 1
  return Math.min(Math.max(page, 1), MAX_PAGE)
}

export default async function accountActivityRoutes(app: FastifyInstance) {
  app.get('/account/activity', { preHandler: app.requireUser }, async (request, reply) => {
    const user = requiredUser(request)
    const page = pageNumber(request.query)
    // One more than a page: whether there is a next one.
    const events = await listEventsOfUser(app.db, user.id, EVENTS_PER_PAGE + 1, (page - 1) * EVENTS_PER_PAGE)
    return reply.render('account-activity', {
      title: 'Account activity',
      events: events.slice(0, EVENTS_PER_PAGE),
      page,
      hasNext: events.length > EVENTS_PER_PAGE,
    })
  })
}
