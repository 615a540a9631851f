// Page guards, the preHandlers that protect pages: anonymous visitors go to the log-in page, other roles get
// a 403 page, logged-in users skip the log-in and sign-up forms. JSON clients get the contract's JSON.
// @see https://github.com/fastify/fastify-passport#protecting-routes
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Role } from '../db/schema.js'
import { loginPath, safeLocalPath } from '../http/local-path.js'
import { prefersJson } from '../http/negotiation.js'
import type { AuthUser } from '../users/auth-user.js'

type Guard = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>

declare module 'fastify' {
  interface FastifyInstance {
    /** Anonymous visitors go to the log-in page, coming back here after it (JSON clients get 401). */
    requireUser: Guard
    /** After requireUser: other roles get a 403 page (JSON clients get 403 JSON). */
    requireRole(role: Role): Guard
    /** For the log-in and sign-up forms: a logged-in user goes to their profile instead. */
    requireAnonymous: Guard
  }
}

export const LOGIN_REQUIRED_FLASH = 'Please log in to continue.'

/** The user of a request that passed requireUser. */
export function requiredUser(request: FastifyRequest): AuthUser {
  const user = request.user
  if (!user) throw new Error(`${request.routeOptions.url} runs without requireUser`)
  return user
}

export default fp(
  async function pageGuardsPlugin(app) {
    app.decorate('requireUser', async function requireUser(request: FastifyRequest, reply: FastifyReply) {
      if (request.user) return undefined
      if (prefersJson(request)) return reply.code(401).send({ error: 'You need to log in to see this.' })
      request.flash('info', LOGIN_REQUIRED_FLASH)
      // Only a page can be come back to: after a refused POST, the log-in goes to the profile.
      const comeBack = request.method === 'GET' || request.method === 'HEAD' ? safeLocalPath(request.url) : null
      return reply.redirect(loginPath(comeBack), 303)
    })

    app.decorate('requireRole', function requireRole(role: Role): Guard {
      return async function requireRoleGuard(request, reply) {
        if (request.user?.role === role) return undefined
        reply.code(403)
        if (prefersJson(request)) return reply.send({ error: 'You do not have access to this.' })
        return reply.render('error', {
          title: 'Access denied',
          message: 'Your account does not have access to this page.',
        })
      }
    })

    app.decorate('requireAnonymous', async function requireAnonymous(request: FastifyRequest, reply: FastifyReply) {
      if (request.user) return reply.redirect('/profile', 303)
      return undefined
    })
  },
  { name: 'page-guards', dependencies: ['auth', 'flash', 'view'] },
)
