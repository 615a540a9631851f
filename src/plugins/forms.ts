// HTML forms: urlencoded bodies, and a CSRF token on every form, kept in the session.
// @see https://github.com/fastify/csrf-protection
import fastifyCsrf from '@fastify/csrf-protection'
import fastifyFormbody from '@fastify/formbody'
import fp from 'fastify-plugin'

export default fp(
  async function formsPlugin(app) {
    await app.register(fastifyFormbody)
    await app.register(fastifyCsrf, { sessionPlugin: '@fastify/session', logLevel: 'info' })
  },
  { name: 'forms', dependencies: ['session'] },
)
