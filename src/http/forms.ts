// HTML forms, for every form page: reading fields, refusing with a flash (post/redirect/get), keeping the
// typed values a refused form may show again, and marking the field a refusal is about.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { withoutControlCharacters } from '../text.js'
import { FormFieldError, TOO_MANY_ATTEMPTS } from './errors.js'

export type FlashType = 'success' | 'error' | 'info'
const FLASH_TYPES: readonly FlashType[] = ['success', 'error', 'info']
/** Flash entries that are not shown: `kept:<field>` holds a typed value, this one the field in error. */
const KEPT_PREFIX = 'kept:'
const ERROR_FIELD = 'errorField'
/** A kept value is shown in an input again: cut to an email's size at most. */
const KEPT_MAX_LENGTH = 254

/** A form page: how to render it (its GET, and the 429 answer that shows it again), which typed fields it keeps. */
export interface FormPage {
  render(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply>
  keep: readonly string[]
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on form POST routes, so a throttled POST shows its form again (see error-pages.ts). */
    form?: FormPage
  }
}

/** A missing field reads as empty (the rules then say what is missing); anything but one string is a 400. */
export function readFields<const Name extends string>(body: unknown, names: readonly Name[]): Record<Name, string> {
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
  const values = {} as Record<Name, string>
  for (const name of names) {
    const value = fields[name]
    if (value !== undefined && typeof value !== 'string') throw new FormFieldError(name)
    values[name] = value ?? ''
  }
  return values
}

export interface Refusal {
  message: string
  /** The field the refusal is about: the form repeats the message beside it. */
  field?: string
  /** Typed values the form shows again (never a password). */
  keep?: Record<string, string>
}

export function flashRefusal(request: FastifyRequest, refusal: Refusal): void {
  request.flash('error', refusal.message)
  for (const [name, raw] of Object.entries(refusal.keep ?? {})) {
    const value = withoutControlCharacters(raw).trim().slice(0, KEPT_MAX_LENGTH)
    if (value) request.flash(`${KEPT_PREFIX}${name}`, value)
  }
  if (refusal.field) request.flash(ERROR_FIELD, refusal.field)
}

/** Post/redirect/get: the refusal travels to the form page `to` as a flash. */
export function refuseForm(request: FastifyRequest, reply: FastifyReply, to: string, refusal: Refusal): FastifyReply {
  flashRefusal(request, refusal)
  return reply.redirect(to, 303)
}

/** 429 with the form shown again in the same response, so a client that does not follow redirects sees it too. */
export function refuseThrottled(request: FastifyRequest, reply: FastifyReply, form: FormPage): Promise<FastifyReply> {
  const keep: Record<string, string> = {}
  for (const name of form.keep) {
    try {
      keep[name] = readFields(request.body, [name])[name] ?? ''
    } catch {
      // A malformed field is simply not kept.
    }
  }
  flashRefusal(request, { message: TOO_MANY_ATTEMPTS, keep })
  reply.code(429)
  return form.render(request, reply)
}

export interface FlashMessage {
  type: FlashType
  message: string
}

/** What a page shows of the flash: messages, the values a refused form keeps, the error beside a field. */
export interface FormState {
  flashes: FlashMessage[]
  kept: Record<string, string>
  fieldErrors: Record<string, string>
}

/** False where no session exists (a request the session plugin does not see, or one dropped on an outage). */
export function hasSession(request: FastifyRequest): boolean {
  return typeof request.session?.get === 'function'
}

/** The flash waiting in the session, removed as it is read. Reads nothing from an empty flash, because
 * touching it would create a session for a visitor who has none. */
export function takeFormState(request: FastifyRequest, reply: FastifyReply): FormState {
  const waiting = hasSession(request)
    ? (request.session.get('flash') as Record<string, string[]> | undefined)
    : undefined
  if (!waiting || Object.keys(waiting).length === 0) return { flashes: [], kept: {}, fieldErrors: {} }
  // reply.flash() empties every entry at once, so the kept values and the field must be read from this.
  const all = reply.flash() as Record<string, string[] | undefined>
  const flashes = FLASH_TYPES.flatMap((type) => (all[type] ?? []).map((message) => ({ type, message })))
  const kept: Record<string, string> = {}
  for (const [key, values] of Object.entries(all)) {
    const value = values?.at(-1)
    if (key.startsWith(KEPT_PREFIX) && value !== undefined) kept[key.slice(KEPT_PREFIX.length)] = value
  }
  const field = all[ERROR_FIELD]?.at(-1)
  const error = all.error?.at(-1)
  return { flashes, kept, fieldErrors: field && error ? { [field]: error } : {} }
}
