// Log-out: the server-side session is destroyed (a new, empty id carries the flash).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { recordAuthEvent } from '../../http/auth-log.js'

export const LOGGED_OUT_FLASH = 'You have been logged out.'

// Nothing to end for an anonymous visitor, so no token is asked of them either.
async function skipAnonymous(request: FastifyRequest, reply: FastifyReply) {
  if (!request.user) return reply.redirect('/', 303)
  return undefined
}

export default async function logoutRoutes(app: FastifyInstance) {
  app.post('/logout', { preHandler: [skipAnonymous, app.csrfProtection] }, async (request, reply) => {
    const userId = request.user?.id
    await request.endSession()
    if (userId !== undefined) await recordAuthEvent(request, 'logout', { userId })
    // After the log-out: its new session carries the message.
    request.flash('success', LOGGED_OUT_FLASH)
    return reply.redirect('/', 303)
  })
}
