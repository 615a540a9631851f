// Pages: @fastify/view with Eta (escaping on), one layout, and reply.render(), which hands every page the
// user, the flash messages and, where a form needs it, a CSRF token.
// Every template is compiled once at start and kept by name ("@profile.eta"): Eta then finds a page, its
// layout and its partials without resolving a file path on each render (in development they are compiled
// again for each page, so an edited template shows at once).
// @see https://github.com/fastify/point-of-view#eta
// @see https://eta.js.org/docs/4.x.x/api/overview (named templates: a leading @)
import fs from 'node:fs'
import path from 'node:path'
import fastifyView from '@fastify/view'
import { Eta } from 'eta'
import type { FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import { type FormState, hasSession, takeFormState } from '../http/forms.js'
import { MAIL_TEMPLATES_DIR } from '../mail/templates.js'
import { TEMPLATES_DIR } from '../paths.js'
import type { AuthUser } from '../users/auth-user.js'

/** Every page is rendered inside this layout. */
const LAYOUT_TEMPLATE = '@layouts/main.eta'

export interface RenderOptions {
  /** The page has a form, so it needs a CSRF token even for an anonymous visitor. */
  form?: boolean
}

/** What the layout needs besides the page's own data. */
export interface LayoutState extends FormState {
  user: AuthUser | null
  csrfToken: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The HTML of `templates/<template>.eta` inside the layout (templates/layouts/main.eta). */
    renderPage(template: string, data: Record<string, unknown>, layout: LayoutState): Promise<string>
  }
  interface FastifyReply {
    /** Renders `templates/<template>.eta` inside the layout and sends it, with this request's layout state. */
    render(template: string, data?: Record<string, unknown>, options?: RenderOptions): Promise<FastifyReply>
  }
}

/** Compiles every `.eta` file under `dir` into `eta`, named `@` and its path: `@partials/csrf.eta`. The
 * messages' plain-text templates (templates/mail/) are not pages: src/mail/templates.ts has them. */
function loadTemplates(eta: Eta, dir: string): void {
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.eta')) continue
    const file = path.join(entry.parentPath, entry.name)
    if (file.startsWith(MAIL_TEMPLATES_DIR + path.sep)) continue
    const name = `@${path.relative(dir, file).split(path.sep).join('/')}`
    eta.loadTemplate(name, fs.readFileSync(file, 'utf8'))
  }
}

/** The templates and app.renderPage, at the root: a page needs no session to be rendered, and the answer to
 * a URL the router cannot decode (error-pages.ts) is rendered before any context is entered. */
export const templatesPlugin = fp(
  async function templatesPlugin(app, options: { cacheTemplates: boolean }) {
    const eta = new Eta({ views: TEMPLATES_DIR })
    loadTemplates(eta, TEMPLATES_DIR)
    // Our pages get their data from render(), never from reply.locals: declared here, @fastify/view adds no
    // onRequest hook to fill it on every request (assets and /healthz included, at the root).
    app.decorateReply('locals', null)
    await app.register(fastifyView, { engine: { eta }, root: TEMPLATES_DIR, production: options.cacheTemplates })
    app.decorate('renderPage', async (template: string, data: Record<string, unknown>, layout: LayoutState) => {
      if (!options.cacheTemplates) loadTemplates(eta, TEMPLATES_DIR)
      // Object.assign, not `{ title, ...data, user }`: Node 20's V8 takes a slow path for properties after a spread.
      const page = Object.assign({ title: 'gatehouse' }, data, layout, { pageTemplate: `@${template}.eta` })
      // One render per page: the layout, which includes the page by name (`include(it.pageTemplate)`). Not Eta's
      // own `layout()`, whose object spread is a slow path in Node 20's V8 (docs/performance.md).
      return app.view(LAYOUT_TEMPLATE, page)
    })
  },
  { name: 'templates' },
)

export default fp(
  async function viewPlugin(app) {
    const renderPage = app.renderPage
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
        const { flashes, kept, fieldErrors } = takeFormState(request, this)
        // Logged-in pages carry the log-out form; anonymous ones only need a token where they show a form.
        const csrfToken = hasSession(request) && (user || renderOptions.form) ? this.generateCsrf() : ''
        // Pages carry the user's data, CSRF tokens and flashes: never to be kept by a browser or a proxy.
        this.header('cache-control', 'no-store')
        const html = await renderPage(template, data, { user, flashes, kept, fieldErrors, csrfToken })
        return this.type('text/html; charset=utf-8').send(html)
      },
    )
  },
  { name: 'view', dependencies: ['templates', 'session', 'flash', 'forms'] },
)
