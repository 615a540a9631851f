// `next` values: only paths on this site, so a log-in link can never send the user elsewhere (open redirect).
import { hasControlCharacters } from '../text.js'

const ORIGIN = 'http://gatehouse.invalid'

/** A path a browser reads as on this site: one leading slash, no second one or backslash after it. */
function isLocalPathShape(value: string): boolean {
  // "//host" and "/\host" are protocol-relative to a browser; backslashes count as slashes.
  if (!value.startsWith('/') || value.startsWith('//') || value.includes('\\')) return false
  // Browsers drop tabs and newlines, so "/\t/evil" becomes "//evil".
  return !hasControlCharacters(value)
}

/** The value as a local path (path, query, fragment), or null when it is anything else. */
export function safeLocalPath(value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return null
  if (!isLocalPathShape(value)) return null
  let url: URL
  try {
    url = new URL(value, ORIGIN)
  } catch {
    return null
  }
  if (url.origin !== ORIGIN) return null
  const path = `${url.pathname}${url.search}${url.hash}`
  // The URL parser resolves dot segments, so "/.//evil" or "/%2e//evil" comes out as "//evil": the result
  // must pass the same checks, or a caller that runs this once would send the browser to another host.
  return isLocalPathShape(path) ? path : null
}

/** `/login`, carrying `next` along when it is safe. */
export function loginPath(next: string | null): string {
  return next ? `/login?next=${encodeURIComponent(next)}` : '/login'
}
