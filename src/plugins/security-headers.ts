// Security headers with @fastify/helmet: a CSP that allows no inline script and no framing, and a
// referrer that never leaves the site.
// @see https://github.com/fastify/fastify-helmet
import fastifyHelmet from '@fastify/helmet'
import fp from 'fastify-plugin'

export interface SecurityHeadersOptions {
  /** Served over HTTPS (Secure cookies): then ask browsers to upgrade any http: subresource too. */
  https: boolean
}

export default fp<SecurityHeadersOptions>(
  async function securityHeadersPlugin(app, options) {
    await app.register(fastifyHelmet, {
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
    })
  },
  { name: 'security-headers' },
)
