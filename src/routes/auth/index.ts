// The auth forms: sign-up, log-in, log-out. Their 429 answers show the form again instead of an error page.
import type { FastifyError, FastifyInstance } from 'fastify'
import { TooManyAttemptsError } from '../../http/errors.js'
import { refuseThrottled } from './form.js'
import loginRoutes from './login.js'
import logoutRoutes from './logout.js'
import signupRoutes from './signup.js'

export default async function authRoutes(app: FastifyInstance) {
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const renderForm = request.routeOptions.config.renderForm
    // Anything else goes on to the app's error handler.
    if (!(error instanceof TooManyAttemptsError) || !renderForm) throw error
    return refuseThrottled(request, reply, renderForm)
  })

  await app.register(signupRoutes)
  await app.register(loginRoutes)
  await app.register(logoutRoutes)
}
