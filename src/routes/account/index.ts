// Your account: settings, sessions, activity.
import type { FastifyInstance } from 'fastify'
import accountActivityRoutes from './activity.js'
import accountSessionsRoutes from './sessions.js'
import accountSettingsRoutes from './settings.js'

export default async function accountRoutes(app: FastifyInstance) {
  await app.register(accountSettingsRoutes)
  await app.register(accountSessionsRoutes)
  await app.register(accountActivityRoutes)
}
