// `next` values: only paths on this site, so a log-in link can never send the user elsewhere (open redirect).
import { hasControlCharacters } from '../text.js'

const ORIGIN = 'http://gatehouse.invalid'

/** The value as a local path (path, query, fragment), or null when it is anything else. */
export function safeLocalPath(value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return null
  // "//host" and "/\host" are protocol-relative to a browser; backslashes count as slashes.
  if (!value.startsWith('/') || value.startsWith('//') || value.includes('\\')) return null
  // Browsers drop tabs and newlines, so "/\t/evil" becomes "//evil".
  if (hasControlCharacters(value)) return null
  let url: URL
  try {
    url = new URL(value, ORIGIN)
  } catch {
    return null
  }
  if (url.origin !== ORIGIN) return null
  return `${url.pathname}${url.search}${url.hash}`
}

/** `/login`, carrying `next` along when it is safe. */
export function loginPath(next: string | null): string {
  return next ? `/login?next=${encodeURIComponent(next)}` : '/login'
}
