// A cookie-jar client over real HTTP, for the tests and the bench: replays Set-Cookie like a browser and reads
// pages the way they need.
export interface FlashMessage {
  type: string
  message: string
}

export interface RequestOptions {
  headers?: Record<string, string>
  /** A raw body, sent as it is (set content-type yourself). */
  body?: string | Buffer
}

export class Page {
  constructor(
    readonly status: number,
    readonly headers: Headers,
    readonly html: string,
  ) {}

  get location(): string | null {
    return this.headers.get('location')
  }

  get setCookies(): string[] {
    return this.headers.getSetCookie()
  }

  /** The Set-Cookie header for `name`, if this response sent one. */
  cookie(name: string): string | undefined {
    return this.setCookies.find((header) => header.startsWith(`${name}=`))
  }

  get flashes(): FlashMessage[] {
    return [...this.html.matchAll(/data-flash="([^"]*)"[^>]*>([^<]*)</g)].map((match) => ({
      type: decodeEntities(match[1] ?? ''),
      message: decodeEntities(match[2] ?? '').trim(),
    }))
  }

  get csrfToken(): string {
    const token = /name="_csrf" value="([^"]*)"/.exec(this.html)?.[1]
    if (!token) throw new Error(`no CSRF token in the page (status ${this.status})`)
    return token
  }

  /** The value of the email input, as the form shows it again. */
  get emailValue(): string | undefined {
    const input = /<input[^>]*name="email"[^>]*>/.exec(this.html)?.[0]
    const value = input && /value="([^"]*)"/.exec(input)?.[1]
    return value === undefined || value === null ? undefined : decodeEntities(value)
  }

  json(): unknown {
    return JSON.parse(this.html)
  }
}

function decodeEntities(text: string): string {
  return text
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&')
}

export class Browser {
  /** name -> value, as a browser would send them back. */
  readonly cookies = new Map<string, string>()
  /** The CSRF token of the last page that had one. */
  lastCsrfToken: string | undefined

  constructor(readonly baseUrl: string) {}

  async request(method: string, path: string, options: RequestOptions = {}): Promise<Page> {
    const headers: Record<string, string> = { accept: 'text/html', ...options.headers }
    if (this.cookies.size > 0 && !('cookie' in headers)) {
      headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ')
    }
    const response = await fetch(new URL(path, this.baseUrl), {
      method,
      headers,
      body: options.body,
      redirect: 'manual',
    })
    const page = new Page(response.status, response.headers, await response.text())
    this.storeCookies(page.setCookies)
    const token = /name="_csrf" value="([^"]*)"/.exec(page.html)?.[1]
    if (token) this.lastCsrfToken = token
    return page
  }

  get(path: string, headers?: Record<string, string>): Promise<Page> {
    return this.request('GET', path, { headers })
  }

  /** A form post. `_csrf` is filled from the last page with a token unless the form names its own (or null for none). */
  post(path: string, form: Record<string, string | string[] | null>, headers?: Record<string, string>): Promise<Page> {
    const body = new URLSearchParams()
    const fields = { _csrf: this.lastCsrfToken ?? null, ...form }
    for (const [name, value] of Object.entries(fields)) {
      if (value === null) continue
      for (const item of Array.isArray(value) ? value : [value]) body.append(name, item)
    }
    return this.request('POST', path, {
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: body.toString(),
    })
  }

  /** Follows redirects (GET) until a page that is not one. */
  async follow(page: Page, limit = 10): Promise<Page> {
    let current = page
    for (let hops = 0; current.location && current.status >= 300 && current.status < 400; hops++) {
      if (hops >= limit) throw new Error('too many redirects')
      current = await this.get(current.location)
    }
    return current
  }

  get sid(): string | undefined {
    return this.cookies.get('sid')
  }

  private storeCookies(headers: string[]): void {
    for (const header of headers) this.storeCookie(header)
  }

  /** Keeps one Set-Cookie, or forgets the cookie when it is cleared or expired, as a browser does. */
  protected storeCookie(header: string): void {
    const [pair = '', ...attributes] = header.split(';')
    const separator = pair.indexOf('=')
    const name = pair.slice(0, separator).trim()
    const value = pair.slice(separator + 1).trim()
    const expired = attributes.some((attribute) => {
      const [key = '', attributeValue = ''] = attribute.split('=').map((part) => part.trim())
      if (key.toLowerCase() === 'max-age') return Number(attributeValue) <= 0
      if (key.toLowerCase() === 'expires') return new Date(attributeValue).getTime() <= Date.now()
      return false
    })
    if (expired || value === '') this.cookies.delete(name)
    else this.cookies.set(name, value)
  }
}
