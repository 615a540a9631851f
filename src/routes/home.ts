import type { FastifyInstance } from 'fastify'

export default async function homeRoutes(app: FastifyInstance) {
  app.get('/', async (_request, reply) => reply.render('home', { title: 'Home' }))
}
