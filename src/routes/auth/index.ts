// The auth forms: sign-up, log-in, log-out.
import type { FastifyInstance } from 'fastify'
import loginRoutes from './login.js'
import logoutRoutes from './logout.js'
import signupRoutes from './signup.js'

export default async function authRoutes(app: FastifyInstance) {
  await app.register(signupRoutes)
  await app.register(loginRoutes)
  await app.register(logoutRoutes)
}
