// Assertions the test files share about answers.
import assert from 'node:assert/strict'
import type { Browser, Page } from '../../support/browser.js'

/** A redirect (303, or 302) to exactly `location`. */
export function assertRedirect(page: Page, location: string): void {
  assert.ok([302, 303].includes(page.status), `expected a redirect to ${location}, got ${page.status}`)
  assert.equal(page.location, location)
}

/** A redirect to `location` whose page shows exactly this one flash, [type, text]. */
export async function assertRedirectWithFlash(
  browser: Browser,
  page: Page,
  location: string,
  flash: [string, string],
): Promise<Page> {
  assertRedirect(page, location)
  const shown = await browser.follow(page)
  assert.equal(shown.status, 200)
  assert.deepEqual(shown.flashes, [{ type: flash[0], message: flash[1] }])
  return shown
}
