import type { FastifyInstance } from 'fastify'

export default async function profileRoutes(app: FastifyInstance) {
  app.get('/profile', { preHandler: app.requireUser }, async (_request, reply) =>
    reply.render('profile', { title: 'Your profile', mailEnabled: app.mail.enabled }),
  )
}
