// Liveness and readiness in one: 200 while the database answers, 503 otherwise.
import type { FastifyInstance } from 'fastify'
import { isDatabaseUnavailable } from '../db/availability.js'
import { RETRY_AFTER_SECONDS } from '../plugins/load-shedding.js'

const UNAVAILABLE = { status: 'unavailable' }

export default async function healthRoutes(app: FastifyInstance) {
  // A cookie makes @fastify/session read the database before the handler runs: answer that failure here too.
  app.setErrorHandler(async (error, _request, reply) => {
    if (!isDatabaseUnavailable(error)) throw error
    app.dbAvailability.reportUnavailable(error)
    return reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send(UNAVAILABLE)
  })

  app.get('/healthz', async (_request, reply) => {
    if (await app.dbAvailability.check()) return { status: 'ok' }
    return reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send(UNAVAILABLE)
  })
}
