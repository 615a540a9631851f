// Security headers from helmet: a CSP that allows no inline script and no framing, and a referrer that
// never leaves the site. Our headers are the same on every answer, so helmet computes them once at start
// and each request copies the finished set; @fastify/helmet would run helmet's middleware per request
// (a visible share of a page view's CPU, docs/performance.md).
// @see https://helmetjs.github.io/
import type { IncomingMessage, ServerResponse } from 'node:http'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

export interface SecurityHeadersOptions {
  /** Served over HTTPS (Secure cookies): then ask browsers to upgrade any http: subresource too. */
  https: boolean
}

export function helmetOptions(options: SecurityHeadersOptions): HelmetOptions {
  return {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        scriptSrcAttr: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
        // On plain-HTTP development this would send form posts to an https:// that is not there.
        upgradeInsecureRequests: options.https ? [] : null,
      },
    },
    referrerPolicy: { policy: 'same-origin' },
    // HSTS only means something over HTTPS; on plain HTTP development it is ignored anyway.
    strictTransportSecurity: options.https ? { maxAge: 15_552_000, includeSubDomains: true } : false,
  }
}

/** The headers helmet's middleware sets, captured from one run against a stand-in response. */
function computeHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = String(value)
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()]
    },
  }
  let failure: unknown
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (error?: unknown) => {
    failure = error
  })
  if (failure) throw failure
  return headers
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The headers every answer carries, for the one answer Fastify gives before any hook runs (a bad URL). */
    securityHeaders: Readonly<Record<string, string>>
  }
}

export default fp<SecurityHeadersOptions>(
  async function securityHeadersPlugin(app, options) {
    const headers = computeHeaders(helmetOptions(options))
    app.decorate('securityHeaders', headers)
    app.addHook('onRequest', (_request, reply, done) => {
      reply.headers(headers)
      done()
    })
  },
  { name: 'security-headers' },
)
