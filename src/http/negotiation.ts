import type { IncomingMessage } from 'node:http'
import accepts from 'accepts'

/** True when the Accept header prefers JSON to HTML; browsers (and no header at all) get HTML. Reads the raw
 * request, so it also serves the one answer Fastify gives before any decorator exists (a bad URL). */
export function prefersJson(request: { raw: IncomingMessage }): boolean {
  return accepts(request.raw).type(['html', 'json']) === 'json'
}
