// What a User-Agent says of the browser: its family and system ("Chrome", "Linux"), which is what the
// sessions page shows and what "a browser this account has not used before" compares. Versions are left
// out: an update is not a new browser.
// @see https://github.com/bowser-js/bowser
import Bowser from 'bowser'

export interface BrowserDescription {
  browser: string
  system: string
}

const UNKNOWN: BrowserDescription = { browser: 'Unknown browser', system: 'unknown system' }
/** A User-Agent longer than this is not a browser's; what is kept of it anywhere is cut to this. */
export const USER_AGENT_MAX_LENGTH = 512

export function describeUserAgent(userAgent: string | undefined | null): BrowserDescription {
  // Bowser throws on an empty string.
  const ua = userAgent?.slice(0, USER_AGENT_MAX_LENGTH).trim()
  if (!ua) return UNKNOWN
  try {
    const parsed = Bowser.parse(ua)
    return { browser: parsed.browser.name || UNKNOWN.browser, system: parsed.os.name || UNKNOWN.system }
  } catch {
    return UNKNOWN
  }
}
