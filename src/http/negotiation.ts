import type { FastifyRequest } from 'fastify'

/** True when the Accept header prefers JSON to HTML; browsers (and no header at all) get HTML. */
export function prefersJson(request: FastifyRequest): boolean {
  return request.accepts().type(['html', 'json']) === 'json'
}
