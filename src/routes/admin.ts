import type { FastifyInstance } from 'fastify'
import { countUsers } from '../users/repository.js'

export default async function adminRoutes(app: FastifyInstance) {
  app.get('/admin', { preHandler: [app.requireUser, app.requireRole('admin')] }, async (_request, reply) =>
    reply.render('admin', { title: 'Administration', userCount: await countUsers(app.db) }),
  )
}
