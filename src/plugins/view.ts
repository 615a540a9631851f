// Pages: @fastify/view with Eta (escaping on), one layout, and reply.render(), which hands every page
// the user, the flash messages and, where a form needs it, a CSRF token.
// Every template is compiled once at start and kept by name ("@profile.eta"): Eta then finds a page, its
// layout and its partials without resolving a file path on each render (in development they are compiled
// again for each page, so an edited template shows at once).
// @see https://github.com/fastify/point-of-view#eta
// @see https://eta.js.org/docs/4.x.x/api/overview (named templates: a leading @)
import fs from 'node:fs'
import path from 'node:path'
import fastifyView from '@fastify/view'
import { Eta } from 'eta'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { TEMPLATES_DIR } from '../paths.js'
import type { CredentialField } from '../users/credentials.js'

export type FlashType = 'success' | 'error' | 'info'
export const FLASH_TYPES: readonly FlashType[] = ['success', 'error', 'info']
/** Every page is rendered inside this layout. */
const LAYOUT_TEMPLATE = '@layouts/main.eta'
/** A flash entry that is not shown: the email a refused form gives back to its input. */
export const KEPT_EMAIL_FLASH = 'keptEmail'
/** A flash entry that is not shown: the field a refusal is about, so the form repeats the error beside it. */
export const ERROR_FIELD_FLASH = 'errorField'

/** The error text to show beside a field, by field. */
export type FieldErrors = Partial<Record<CredentialField, string>>

function isFormField(value: string | undefined): value is CredentialField {
  return value === 'email' || value === 'password'
}

export interface FlashMessage {
  type: FlashType
  message: string
}

export interface RenderOptions {
  /** The page has a form, so it needs a CSRF token even for an anonymous visitor. */
  form?: boolean
}

declare module 'fastify' {
  interface FastifyReply {
    /** Renders `templates/<template>.eta` inside the layout (templates/layouts/main.eta) and sends it. */
    render(template: string, data?: Record<string, unknown>, options?: RenderOptions): Promise<FastifyReply>
  }
}

function hasSession(request: FastifyRequest): boolean {
  return typeof request.session?.get === 'function'
}

interface TakenFlashes {
  flashes: FlashMessage[]
  keptEmail: string
  fieldErrors: FieldErrors
}

/** The messages waiting in the session, removed as they are read. Reads nothing from an empty flash,
 * because touching it would create a session for a visitor who has none. */
function takeFlashes(request: FastifyRequest, reply: FastifyReply): TakenFlashes {
  const waiting = hasSession(request)
    ? (request.session.get('flash') as Record<string, string[]> | undefined)
    : undefined
  if (!waiting || Object.keys(waiting).length === 0) return { flashes: [], keptEmail: '', fieldErrors: {} }
  const all = reply.flash() as Record<string, string[] | undefined>
  const flashes = FLASH_TYPES.flatMap((type) => (all[type] ?? []).map((message) => ({ type, message })))
  // reply.flash() empties every entry at once, so the field marker must be read here or it is lost.
  const field = all[ERROR_FIELD_FLASH]?.at(-1)
  const error = all.error?.at(-1)
  const fieldErrors: FieldErrors = isFormField(field) && error ? { [field]: error } : {}
  return { flashes, keptEmail: all[KEPT_EMAIL_FLASH]?.at(-1) ?? '', fieldErrors }
}

/** Compiles every `.eta` file under `dir` into `eta`, named `@` and its path: `@partials/csrf.eta`. */
function loadTemplates(eta: Eta, dir: string): void {
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.eta')) continue
    const file = path.join(entry.parentPath, entry.name)
    const name = `@${path.relative(dir, file).split(path.sep).join('/')}`
    eta.loadTemplate(name, fs.readFileSync(file, 'utf8'))
  }
}

export default fp(
  async function viewPlugin(app, options: { cacheTemplates: boolean }) {
    const eta = new Eta({ views: TEMPLATES_DIR })
    loadTemplates(eta, TEMPLATES_DIR)
    // One render per page: the layout, which includes the page by name (`include(it.pageTemplate)`). Not Eta's
    // own `layout()`: its compiled code builds the layout's data as `{ ...it, body, ... }`, which Node 20's V8
    // runs on a slow path that also leaves garbage behind for the old generation (5 µs a render, measured).
    await app.register(fastifyView, {
      engine: { eta },
      root: TEMPLATES_DIR,
      production: options.cacheTemplates,
    })

    app.decorateReply(
      'render',
      async function render(
        this: FastifyReply,
        template: string,
        data: Record<string, unknown> = {},
        renderOptions: RenderOptions = {},
      ) {
        const request = this.request
        const user = request.user ?? null
        const { flashes, keptEmail, fieldErrors } = takeFlashes(request, this)
        // Logged-in pages carry the log-out form; anonymous ones only need a token where they show a form.
        const csrfToken = hasSession(request) && (user || renderOptions.form) ? this.generateCsrf() : ''
        // Pages carry the user's data, CSRF tokens and flashes: never to be kept by a browser or a proxy.
        this.header('cache-control', 'no-store')
        if (!options.cacheTemplates) loadTemplates(eta, TEMPLATES_DIR)
        // Object.assign, not `{ title, ...data, user }`: Node 20's V8 takes a slow path for properties after a spread.
        const page = Object.assign({ title: 'gatehouse' }, data, {
          user,
          flashes,
          keptEmail,
          fieldErrors,
          csrfToken,
          pageTemplate: `@${template}.eta`,
        })
        const html = await this.viewAsync(LAYOUT_TEMPLATE, page)
        return this.send(html)
      },
    )
  },
  { name: 'view', dependencies: ['session', 'forms'] },
)
