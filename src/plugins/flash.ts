// Flash messages: @fastify/flash keeps them in the session until the next page reads them (post/redirect/get).
// @see https://github.com/fastify/fastify-flash
import fastifyFlash from '@fastify/flash'
import fp from 'fastify-plugin'

export default fp(
  async function flashPlugin(app) {
    await app.register(fastifyFlash)
  },
  { name: 'flash', dependencies: ['session'] },
)
