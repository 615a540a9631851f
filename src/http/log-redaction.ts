// What request logs must never hold: the token of a mailed link (it is a password for an hour). Its URL is
// logged with the token replaced, by the request serializer below.
import type { FastifyRequest } from 'fastify'

// The token segment after the link paths (src/accounts/*: RESET_LINK_PATH, CONFIRMATION_LINK_PATH,
// EMAIL_CHANGE_LINK_PATH), anywhere
// in the URL, however the rest of the path is spelt; `resend` is a route of its own, not a token.
const LINK_TOKEN = /(\/(?:password\/reset|email\/confirm|email\/change)\/)(?!resend(?:[/?#]|$))[^/?#]+/gi

export function withoutLinkTokens(url: string): string {
  return url.replace(LINK_TOKEN, '$1[redacted]')
}

/** Fastify's own request serializer (lib/logger-pino.js), with the URL's link token replaced. */
export function serializeRequest(request: FastifyRequest) {
  return {
    method: request.method,
    url: withoutLinkTokens(request.url),
    version: request.headers?.['accept-version']?.toString(),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket ? request.socket.remotePort : undefined,
  }
}
