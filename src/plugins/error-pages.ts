// Error and 404 answers. For pages: the error page in the layout (JSON for clients that prefer it), and a
// throttled form shown again with its 429. For assets and /healthz, which have no templates or session: a
// short plain answer (plainErrorHandler). For a URL the router cannot decode, answered before any plugin
// runs: the same error page, with the headers the plugins would have set (answerFrameworkError).
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isDatabaseUnavailable } from '../db/availability.js'
import { TOO_MANY_ATTEMPTS, TooManyAttemptsError } from '../http/errors.js'
import { refuseThrottled } from '../http/forms.js'
import { withoutLinkTokens } from '../http/log-redaction.js'
import { prefersJson } from '../http/negotiation.js'
import { RETRY_AFTER_SECONDS } from './load-shedding.js'

interface ErrorPage {
  title: string
  message: string
}

const ERROR_PAGES: Record<number, ErrorPage> = {
  400: { title: 'Bad request', message: 'That request could not be understood.' },
  403: {
    title: 'Form expired',
    message: 'This form has expired or did not come from this site. Go back, reload the page and try again.',
  },
  404: { title: 'Page not found', message: 'There is no page at this address.' },
  413: { title: 'Too large', message: 'That request is larger than this site accepts.' },
  415: { title: 'Unsupported request', message: 'That kind of request body is not accepted here.' },
  429: { title: 'Too many requests', message: TOO_MANY_ATTEMPTS },
  500: { title: 'Something went wrong', message: 'Something went wrong on our side. Please try again.' },
  503: {
    title: 'Temporarily unavailable',
    message: 'gatehouse cannot reach its database right now. Please try again in a few seconds.',
  },
}

const OVERLOADED_PAGE: ErrorPage = {
  title: 'Temporarily unavailable',
  message: 'gatehouse is very busy right now. Please try again in a few seconds.',
}

/** Our own 4xx errors speak to the user as they are; others get the page for their status. */
function errorPage(status: number, error: FastifyError): ErrorPage {
  const page = ERROR_PAGES[status] ?? ERROR_PAGES[status >= 500 ? 500 : 400] ?? { title: 'Error', message: '' }
  return error.code?.startsWith('GH_') ? { ...page, message: error.message } : page
}

function statusOf(error: FastifyError): number {
  return error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
}

/** For the assets and /healthz: a shed request or a file that cannot be read gets a short answer. */
export async function plainErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const status = statusOf(error)
  if (status >= 500 && error.code !== 'FST_UNDER_PRESSURE') request.log.error({ err: error }, 'request failed')
  reply.code(status)
  if (prefersJson(request)) return reply.send({ error: error.message })
  return reply.type('text/plain; charset=utf-8').send(status >= 500 ? 'Temporarily unavailable' : error.message)
}

/**
 * Fastify's `frameworkErrors`: a URL the router cannot decode (FST_ERR_BAD_URL: `/%`, `/%zz`) gets the 400
 * page rather than Fastify's JSON, which echoes the path. Its request and reply are bare (no hook ran, no
 * decorator), so the security headers and the page come from the root `app` here.
 */
export async function answerFrameworkError(
  app: FastifyInstance,
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const status = statusOf(error)
  if (status >= 500) request.log.error({ err: error }, 'request failed')
  else request.log.info({ code: error.code, status }, withoutLinkTokens(error.message))
  const page = errorPage(status, error)
  reply.code(status).headers(app.securityHeaders).header('cache-control', 'no-store')
  if (prefersJson(request)) {
    reply.send({ error: page.message })
    return
  }
  try {
    // No session is read before routing: the layout can say nothing about who is logged in.
    const layout = { user: null, flashes: [], kept: {}, fieldErrors: {}, csrfToken: '' }
    const html = await app.renderPage('error', { ...page, sessionUnknown: true }, layout)
    reply.type('text/html; charset=utf-8').send(html)
  } catch (renderError) {
    request.log.error({ err: renderError }, 'error page failed to render')
    reply.type('text/plain; charset=utf-8').send(`${page.title}: ${page.message}`)
  }
}

export default fp(
  async function errorPagesPlugin(app) {
    app.setNotFoundHandler(async (request, reply) => {
      reply.code(404)
      if (prefersJson(request)) return reply.send({ error: 'Not found' })
      return reply.render('error', { ...ERROR_PAGES[404] })
    })

    app.setErrorHandler(async (error: FastifyError, request, reply) => {
      // A form's POST over its limit: the form again, with the message, rather than an error page.
      const form = request.routeOptions.config.form
      if (error instanceof TooManyAttemptsError && form) return refuseThrottled(request, reply, form)
      const unavailable = isDatabaseUnavailable(error)
      const status = unavailable ? 503 : statusOf(error)
      // Shed by load-shedding (503 and Retry-After already set): logging each one would add to the load.
      const overloaded = error.code === 'FST_UNDER_PRESSURE'
      // The hashing queue logs once per episode itself (see PasswordHasher), load shedding by its own rules.
      const hashQueueFull = error.code === 'GH_HASH_QUEUE_FULL'
      if (unavailable || hashQueueFull) reply.header('retry-after', String(RETRY_AFTER_SECONDS))
      if (unavailable) {
        // One log line per outage, not one per request.
        app.dbAvailability.reportUnavailable(error)
        // A session changed before the failure (a form's CSRF secret) would be saved again as this page
        // leaves, fail again, and end in Fastify's bare fallback answer: let this page go without it.
        Reflect.set(request, 'session', null)
      } else if (!hashQueueFull && !overloaded) {
        if (status >= 500) request.log.error({ err: error }, 'request failed')
        else request.log.info({ code: error.code, status }, withoutLinkTokens(error.message))
      }
      const page = overloaded ? OVERLOADED_PAGE : errorPage(status, error)
      reply.code(status)
      if (prefersJson(request)) return reply.send({ error: page.message })
      try {
        // Without its session the page cannot know who is logged in: say nothing rather than "Not logged in".
        return await reply.render('error', { ...page, sessionUnknown: unavailable })
      } catch (renderError) {
        request.log.error({ err: renderError }, 'error page failed to render')
        return reply.type('text/plain; charset=utf-8').send(`${page.title}: ${page.message}`)
      }
    })
  },
  { name: 'error-pages', dependencies: ['db', 'view'] },
)
