// The pages in a real browser: Debian's chromium, driven by playwright-core (which never downloads one),
// against the app listening on loopback. Every page visited is checked for Content-Security-Policy
// violations (the console and the securitypolicyviolation event), for axe-core findings and, at phone
// width, for sideways scrolling; the page tour saves the screenshots in docs/screenshots/. Mail is on (a real
// SMTP server in the test process, test/helpers/mailbox.ts), so the password reset and confirmation pages are in.
// Run with `npm run test:e2e`; `npm test` runs it when chromium is installed (scripts/test-e2e.sh).
import assert from 'node:assert/strict'
import { existsSync, mkdirSync } from 'node:fs'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import axe from 'axe-core'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import { setUserRole } from '../../src/users/repository.js'
import { countRows, createTestUser, PASSWORD, signUp, startTestApp, type TestApp, uniqueEmail } from '../helpers/app.js'
import { pathOf as linkPathOf, type ReceivedMessage, TestMailbox } from '../helpers/mailbox.js'
import { startThrowawayPostgres, throwawayPostgresUnavailable } from '../helpers/postgres-server.js'

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const SCREENSHOTS = fileURLToPath(new URL('../../docs/screenshots/', import.meta.url))

interface Width {
  name: string
  viewport: { width: number; height: number }
  colorScheme?: 'light' | 'dark'
}
const PHONE: Width = { name: 'phone', viewport: { width: 360, height: 740 } }
const DESKTOP: Width = { name: 'desktop', viewport: { width: 1280, height: 800 } }
const DESKTOP_DARK: Width = { ...DESKTOP, name: 'desktop, dark scheme', colorScheme: 'dark' }

if (!existsSync(CHROMIUM)) {
  throw new Error(`chromium not found at ${CHROMIUM}: install it with apt-get install chromium (or set CHROMIUM_PATH)`)
}

// Links in messages start with PUBLIC_URL; the browser opens their paths on the app it is pointed at.
const PUBLIC_URL = 'https://gatehouse.example'
const RESET_SUBJECT = /^Reset your gatehouse password$/
const RESET_REQUESTED = 'If that email has an account, we have sent it a link to reset the password.'
const PASSWORD_CHANGED = 'Your password has been changed. Please log in.'
const INVALID_LINK = 'That link is invalid or has expired.'
// The account's pages (issue #25), CONTRACT.md "Fixed flash texts (added)".
const ACCOUNT_PASSWORD_CHANGED = 'Your password has been changed.'
const WRONG_CURRENT_PASSWORD = 'Your current password is incorrect.'
const SESSION_ENDED = 'That session has been logged out.'
// A second browser of the same user, told apart on the sessions page by what its User-Agent names.
const FIREFOX_ON_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0'

const mailbox = await TestMailbox.start()
const testApp = await startTestApp({ SMTP_URL: mailbox.url, PUBLIC_URL, MAIL_POLL_SECONDS: '0.2' })
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Without the background-networking flags chromium keeps dialling Google's hosts on a closed network.
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
})
after(() => browser.close())

/** What went wrong in a browser context, collected as it happens. */
interface Watch {
  cspViolations: string[]
  scriptErrors: string[]
  failedAssets: string[]
}

/** A fresh browser profile (no cookies) at one width, watching for CSP violations and broken assets;
 * pointed at the suite's app unless told another app's address, with chromium's own User-Agent unless told another. */
async function openBrowser(
  width: Width = DESKTOP,
  baseURL: string = testApp.url,
  userAgent?: string,
): Promise<{ context: BrowserContext; page: Page; watch: Watch }> {
  const context = await browser.newContext({
    baseURL,
    viewport: width.viewport,
    colorScheme: width.colorScheme ?? 'light',
    ...(userAgent ? { userAgent } : {}),
  })
  const watch: Watch = { cspViolations: [], scriptErrors: [], failedAssets: [] }
  // Two witnesses: the event a page sees, and chromium's own console report.
  await context.exposeBinding('reportCspViolation', (_source, text: unknown) => {
    watch.cspViolations.push(String(text))
  })
  await context.addInitScript(`
    window.cspViolationCount = 0
    document.addEventListener('securitypolicyviolation', (event) => {
      reportCspViolation(event.violatedDirective + ' blocked ' + (event.blockedURI || 'inline') + ' on ' + location.pathname)
      window.cspViolationCount += 1
    })`)
  const page = await context.newPage()
  page.on('console', (message) => {
    if (/content security policy/i.test(message.text())) watch.cspViolations.push(message.text())
  })
  page.on('pageerror', (error) => watch.scriptErrors.push(error.message))
  page.on('response', (response) => {
    if (new URL(response.url()).pathname.startsWith('/assets/') && response.status() >= 400) {
      watch.failedAssets.push(`${response.status()} ${response.url()}`)
    }
  })
  return { context, page, watch }
}

interface AxeFinding {
  id: string
  impact: string | null
  help: string
  targets: string[]
}

/** axe-core run inside the page. Evaluated through the DevTools protocol, so the CSP is not relaxed for it. */
async function axeFindings(page: Page): Promise<AxeFinding[]> {
  await page.evaluate(axe.source)
  return page.evaluate<AxeFinding[]>(`axe.run(document).then((result) => result.violations.map((violation) => ({
    id: violation.id,
    impact: violation.impact ?? null,
    help: violation.help,
    targets: violation.nodes.map((node) => node.target.join(' ')),
  })))`)
}

function pathOf(page: Page): string {
  const url = new URL(page.url())
  return `${url.pathname}${url.search}`
}

/** Everything every page must hold: the stylesheet applied, no CSP violation, no serious or critical
 * axe finding, and nothing wider than the screen. */
async function checkPage(page: Page, watch: Watch, width: Width = DESKTOP): Promise<void> {
  const where = `${pathOf(page)} at ${width.name} width`
  await page.waitForLoadState('load')
  assert.ok(await page.evaluate<boolean>('document.styleSheets.length === 1'), `${where}: the stylesheet is loaded`)
  const findings = await axeFindings(page)
  const serious = findings.filter((finding) => finding.impact === 'serious' || finding.impact === 'critical')
  assert.deepEqual(serious, [], `${where}: axe findings`)
  const scrollWidth = await page.evaluate<number>('document.documentElement.scrollWidth')
  assert.ok(scrollWidth <= width.viewport.width, `${where}: ${scrollWidth} px wide`)
  assert.deepEqual(watch.cspViolations, [], `${where}: CSP violations`)
  assert.deepEqual(watch.scriptErrors, [], `${where}: script errors`)
  assert.deepEqual(watch.failedAssets, [], `${where}: assets that did not load`)
}

async function flashes(page: Page): Promise<{ type: string | null; message: string }[]> {
  const elements = await page.locator('[data-flash]').all()
  return Promise.all(
    elements.map(async (element) => ({
      type: await element.getAttribute('data-flash'),
      message: (await element.textContent())?.trim() ?? '',
    })),
  )
}

async function fillCredentials(page: Page, email: string, password: string): Promise<void> {
  await page.getByLabel('Email', { exact: true }).fill(email)
  await page.getByLabel('Password', { exact: true }).fill(password)
}

async function submitAndWait(page: Page, button: string, path: string): Promise<void> {
  await page.getByRole('button', { name: button }).click()
  await page.waitForURL((url) => `${url.pathname}${url.search}` === path)
}

/** Submits a form whose answer comes back to the same address (a refusal): waits for the new document. */
async function submitAndWaitForReload(page: Page, button: string, path: string): Promise<void> {
  const loaded = page.waitForEvent('load')
  await page.getByRole('button', { name: button }).click()
  await loaded
  assert.equal(pathOf(page), path)
}

/** The link of the `index`-th (from 0) reset message to `email`, as a path to open on the test app. */
async function resetLinkPath(email: string, index = 0): Promise<{ path: string; message: ReceivedMessage }> {
  const message = await mailbox.nth(email, RESET_SUBJECT, index)
  assert.equal(message.links.length, 1, 'one link in the message')
  const link = message.links[0] ?? ''
  assert.ok(link.startsWith(`${PUBLIC_URL}/password/reset/`), link)
  return { path: linkPathOf(link), message }
}

/** Asks for a reset link through the forgot-password form (the page is already open) and lands on /login. */
async function askForResetLink(page: Page, email: string): Promise<void> {
  await page.getByLabel('Email', { exact: true }).fill(email)
  await submitAndWait(page, 'Send me a link', '/login')
  assert.deepEqual(await flashes(page), [{ type: 'info', message: RESET_REQUESTED }])
}

/** Logs `email` in through the log-in form of a browser of its own (its own cookies), as another device would. */
async function logInElsewhere(email: string, password: string, width: Width = DESKTOP) {
  const other = await openBrowser(width, testApp.url, FIREFOX_ON_WINDOWS)
  await other.page.goto('/login')
  await fillCredentials(other.page, email, password)
  await submitAndWait(other.page, 'Log in', '/profile')
  return other
}

/** Follows a link of the page by its accessible name, to `path`. */
async function followLink(page: Page, name: string, path: string): Promise<void> {
  await page.getByRole('link', { name, exact: true }).click()
  await page.waitForURL((url) => `${url.pathname}${url.search}` === path)
}

async function screenshot(page: Page, name: string, width: Width): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: `${SCREENSHOTS}${name}-${width.name}.png` })
}

// First, so the page contents (and so the screenshots) do not depend on what other tests created.
test('every page passes the checks at phone and desktop width, and is photographed', async () => {
  const admin = await createTestUser(testApp, { email: 'ada@example.com', role: 'admin' })
  const user = await createTestUser(testApp, { email: 'grace@example.com' })
  // Signed up through the form with mail on: the address is not confirmed, and the profile says so.
  const unconfirmed = await signUp(testApp, 'margaret@example.com')
  assert.equal(unconfirmed.response.location, '/profile')
  let resetLinksAsked = 0
  for (const width of [PHONE, DESKTOP]) {
    const { context, page, watch } = await openBrowser(width)

    await page.goto('/')
    await checkPage(page, watch, width)
    await screenshot(page, 'home', width)

    await page.goto('/signup')
    await checkPage(page, watch, width)
    await fillCredentials(page, user.email, PASSWORD)
    await submitAndWait(page, 'Create account', '/signup')
    assert.deepEqual(await flashes(page), [{ type: 'error', message: 'That email is already taken.' }])
    await checkPage(page, watch, width)
    await screenshot(page, 'signup-refused', width)

    await page.goto('/profile')
    await page.waitForURL((url) => url.pathname === '/login')
    await checkPage(page, watch, width)
    await screenshot(page, 'login', width)

    await fillCredentials(page, user.email, PASSWORD)
    await submitAndWait(page, 'Log in', '/profile')
    await checkPage(page, watch, width)
    await screenshot(page, 'profile', width)

    await followLink(page, 'Your account', '/account')
    await checkPage(page, watch, width)
    await screenshot(page, 'account', width)

    // A second session of the same user, in another browser, so the sessions page lists two.
    const other = await logInElsewhere(user.email, PASSWORD, width)
    await followLink(page, 'Sessions', '/account/sessions')
    assert.equal(await page.locator('[data-session]').count(), 2)
    assert.equal(await page.locator('[data-session][data-current]').count(), 1)
    await checkPage(page, watch, width)
    await screenshot(page, 'account-sessions', width)
    // Logged out again, so the next width's page lists two as well.
    await submitAndWait(other.page, 'Log out', '/')
    await other.context.close()

    await followLink(page, 'Activity', '/account/activity')
    assert.ok((await page.locator('[data-event]').count()) > 0, 'the activity page lists events')
    await checkPage(page, watch, width)
    await screenshot(page, 'account-activity', width)

    const forbidden = await page.goto('/admin')
    assert.equal(forbidden?.status(), 403)
    await checkPage(page, watch, width)
    await screenshot(page, 'forbidden', width)

    await submitAndWait(page, 'Log out', '/')
    await page.goto('/login')
    await fillCredentials(page, admin.email, PASSWORD)
    await submitAndWait(page, 'Log in', '/profile')
    await page.goto('/admin')
    await checkPage(page, watch, width)
    await screenshot(page, 'admin', width)

    const missing = await page.goto('/no-such-page')
    assert.equal(missing?.status(), 404)
    await checkPage(page, watch, width)

    await page.goto('/profile')
    await submitAndWait(page, 'Log out', '/')
    await page.goto('/password/forgot')
    await checkPage(page, watch, width)
    await screenshot(page, 'password-forgot', width)
    await askForResetLink(page, user.email)
    const { path: linkPath } = await resetLinkPath(user.email, resetLinksAsked++)
    await page.goto(linkPath)
    assert.equal(pathOf(page), linkPath)
    await checkPage(page, watch, width)
    await screenshot(page, 'password-reset', width)

    await page.goto('/login')
    await fillCredentials(page, unconfirmed.email, PASSWORD)
    await submitAndWait(page, 'Log in', '/profile')
    assert.equal(await page.locator('[data-email-confirmed]').textContent(), 'Not confirmed yet')
    assert.equal(await page.getByRole('button', { name: 'Send the link again' }).count(), 1)
    await checkPage(page, watch, width)
    await screenshot(page, 'profile-unconfirmed', width)

    await context.close()
  }
})

// The 503 page needs a database that goes away: an app of its own on a throwaway PostgreSQL server.
const postgresUnavailable = throwawayPostgresUnavailable()
if (postgresUnavailable) console.log(`# 503 page test skipped: ${postgresUnavailable}`)

test('the 503 page of a database outage passes the checks at phone and desktop width, and is photographed', {
  skip: postgresUnavailable ?? false,
}, async () => {
  const server = await startThrowawayPostgres()
  const opened: BrowserContext[] = []
  let outageApp: TestApp | undefined
  try {
    outageApp = await startTestApp({ DATABASE_URL: server.url })
    // Signed up while the database answers, so each browser has a session the outage cannot load.
    const browsers: { width: Width; context: BrowserContext; page: Page; watch: Watch }[] = []
    for (const width of [PHONE, DESKTOP]) {
      const opening = await openBrowser(width, outageApp.url)
      opened.push(opening.context)
      await opening.page.goto('/signup')
      await fillCredentials(opening.page, uniqueEmail('e2e-outage'), PASSWORD)
      await submitAndWait(opening.page, 'Create account', '/profile')
      // Nothing in flight when the server stops: this test is about the page, not a request cut midway.
      await opening.page.waitForLoadState('networkidle')
      browsers.push({ width, ...opening })
    }

    await server.stop()

    for (const { width, context, page, watch } of browsers) {
      // Without its cache, the browser fetches the stylesheet and the icon during the outage, as a
      // visitor's browser revalidating them (maxAge 0) does, instead of reusing the ones from sign-up.
      await (await context.newCDPSession(page)).send('Network.setCacheDisabled', { cacheDisabled: true })
      const unavailable = await page.goto('/profile')
      assert.equal(unavailable?.status(), 503)
      assert.match((await page.locator('main').textContent()) ?? '', /Temporarily unavailable/)
      assert.doesNotMatch((await page.locator('header').textContent()) ?? '', /Not logged in/)
      await checkPage(page, watch, width)
      // A stylesheet that failed to load still counts in document.styleSheets, empty.
      assert.ok(
        await page.evaluate<boolean>('[...document.styleSheets].every((sheet) => sheet.cssRules.length > 0)'),
        `/profile at ${width.name} width during the outage: the stylesheet has rules`,
      )
      await screenshot(page, 'unavailable', width)
    }

    await server.start()
  } finally {
    for (const context of opened) await context.close()
    await outageApp?.close()
    await server.remove()
  }
})

test('sign-up, profile, log-out, a protected page, log-in: the flashes are seen and the user is back', async () => {
  const { context, page, watch } = await openBrowser()
  const email = uniqueEmail('e2e')

  await page.goto('/')
  await page.getByRole('link', { name: 'Sign up' }).first().click()
  await page.waitForURL((url) => url.pathname === '/signup')
  await fillCredentials(page, email, PASSWORD)
  await submitAndWait(page, 'Create account', '/profile')
  assert.equal(await page.locator('[data-user-email]').textContent(), email)
  assert.match((await page.locator('header').textContent()) ?? '', new RegExp(`Logged in as\\s+${email}`))
  await checkPage(page, watch)

  await submitAndWait(page, 'Log out', '/')
  assert.deepEqual(await flashes(page), [{ type: 'success', message: 'You have been logged out.' }])
  assert.equal(await page.locator('[aria-live="polite"] > [data-flash]').count(), 1, 'the flash is in a live region')
  await checkPage(page, watch)

  await page.goto('/profile')
  await page.waitForURL((url) => `${url.pathname}${url.search}` === '/login?next=%2Fprofile')
  assert.deepEqual(await flashes(page), [{ type: 'info', message: 'Please log in to continue.' }])
  await fillCredentials(page, email, PASSWORD)
  await submitAndWait(page, 'Log in', '/profile')
  assert.equal(await page.locator('[data-user-email]').textContent(), email)
  await checkPage(page, watch)
  await context.close()
})

test('forgot password, the link in the mail, a refusal, a new password: it works and the old one and the link do not', async () => {
  const user = await createTestUser(testApp)
  const newPassword = 'a brand new passphrase 8812'
  const { context, page, watch } = await openBrowser()

  await page.goto('/login')
  await page.getByRole('link', { name: 'Forgot your password?' }).click()
  await page.waitForURL((url) => url.pathname === '/password/forgot')
  await checkPage(page, watch)
  await askForResetLink(page, user.email)
  assert.equal(await page.locator('[aria-live="polite"] > [data-flash]').count(), 1, 'the flash is in a live region')
  await checkPage(page, watch)

  const { path: linkPath } = await resetLinkPath(user.email)
  await page.goto(linkPath)
  assert.equal(pathOf(page), linkPath)
  assert.equal(await page.locator('h1').textContent(), 'Choose a new password')
  await checkPage(page, watch)

  // Too short: the browser's own check (minlength) stops the form, and says why.
  const password = page.getByLabel('New password', { exact: true })
  await password.fill('short')
  assert.equal(
    await page.evaluate<boolean>("document.getElementById('password').validity.tooShort"),
    true,
    'the browser sees it too short',
  )
  assert.notEqual(await page.evaluate<string>("document.getElementById('password').validationMessage"), '')
  await page.getByRole('button', { name: 'Set the new password' }).click()
  assert.equal(pathOf(page), linkPath, 'the browser did not submit')
  // Past the browser's check, the service refuses it: the rule beside the field, the link still good.
  await page.evaluate('document.querySelector(\'form[action="/password/reset"]\').noValidate = true')
  await submitAndWaitForReload(page, 'Set the new password', linkPath)
  assert.deepEqual(await flashes(page), [{ type: 'error', message: 'Passwords are at least 8 characters.' }])
  assert.equal(await password.getAttribute('aria-invalid'), 'true')
  assert.match((await password.getAttribute('aria-describedby')) ?? '', /\bpassword-error\b/)
  assert.equal(await page.locator('#password-error').textContent(), 'Passwords are at least 8 characters.')
  assert.equal(await page.evaluate<string>('document.activeElement.id'), 'password', 'the refused field has the focus')
  assert.equal(await password.inputValue(), '', 'the refused password is not shown again')
  await checkPage(page, watch)

  await password.fill(newPassword)
  assert.equal(await page.evaluate<boolean>("document.getElementById('password').validity.valid"), true)
  await submitAndWait(page, 'Set the new password', '/login')
  assert.deepEqual(await flashes(page), [{ type: 'success', message: PASSWORD_CHANGED }])
  await checkPage(page, watch)

  await fillCredentials(page, user.email, newPassword)
  await submitAndWait(page, 'Log in', '/profile')
  assert.equal(await page.locator('[data-user-email]').textContent(), user.email)
  await submitAndWait(page, 'Log out', '/')

  await page.goto('/login')
  await fillCredentials(page, user.email, PASSWORD)
  await submitAndWait(page, 'Log in', '/login')
  assert.deepEqual(await flashes(page), [{ type: 'error', message: 'Invalid email or password.' }])

  await page.goto(linkPath)
  await page.waitForURL((url) => url.pathname === '/password/forgot')
  assert.deepEqual(await flashes(page), [{ type: 'error', message: INVALID_LINK }])
  await checkPage(page, watch)
  await context.close()
})

test('the account pages: a password change, another session logged out, the activity that tells of both', async () => {
  const user = await createTestUser(testApp)
  const newPassword = 'a changed passphrase 5307'
  const { context, page, watch } = await openBrowser()
  const opened: BrowserContext[] = [context]
  try {
    await page.goto('/login')
    await fillCredentials(page, user.email, PASSWORD)
    await submitAndWait(page, 'Log in', '/profile')
    await followLink(page, 'Your account', '/account')
    assert.equal(await page.locator('h1').textContent(), 'Your account')
    assert.equal(await page.locator('[data-user-email]').textContent(), user.email)
    assert.equal(await page.locator('nav[aria-label="Your account"] a[aria-current="page"]').textContent(), 'Settings')
    await checkPage(page, watch)

    // A wrong current password: refused, still logged in, the password unchanged.
    const passwordForm = page.locator('form[data-form="change-password"]')
    await passwordForm.getByLabel('Current password', { exact: true }).fill('not the password at all')
    await passwordForm.getByLabel('New password', { exact: true }).fill(newPassword)
    await submitAndWaitForReload(page, 'Change password', '/account')
    assert.deepEqual(await flashes(page), [{ type: 'error', message: WRONG_CURRENT_PASSWORD }])
    assert.equal(await page.locator('[aria-live="polite"] > [data-flash]').count(), 1, 'the flash is in a live region')
    assert.equal(await passwordForm.getByLabel('Current password', { exact: true }).inputValue(), '')
    assert.equal(await passwordForm.getByLabel('New password', { exact: true }).inputValue(), '')
    assert.equal(await page.locator('[data-user-email]').textContent(), user.email)
    await checkPage(page, watch)

    // The right one: changed, and this browser is still logged in.
    await passwordForm.getByLabel('Current password', { exact: true }).fill(PASSWORD)
    await passwordForm.getByLabel('New password', { exact: true }).fill(newPassword)
    await submitAndWaitForReload(page, 'Change password', '/account')
    assert.deepEqual(await flashes(page), [{ type: 'success', message: ACCOUNT_PASSWORD_CHANGED }])
    assert.match((await page.locator('header').textContent()) ?? '', new RegExp(`Logged in as\\s+${user.email}`))
    await checkPage(page, watch)
    await page.goto('/profile')
    assert.equal(pathOf(page), '/profile', 'still logged in after the change')

    // A second browser logs in with the new password; the first one sees both sessions and ends the other.
    const other = await logInElsewhere(user.email, newPassword)
    opened.push(other.context)
    await page.goto('/account')
    await followLink(page, 'Sessions', '/account/sessions')
    const sessions = page.locator('[data-session]')
    assert.equal(await sessions.count(), 2)
    const current = page.locator('[data-session][data-current]')
    assert.equal(await current.count(), 1)
    assert.equal(await current.getByRole('button').count(), 0, 'the current session has no log-out form of its own')
    const otherSession = page.locator('[data-session]:not([data-current])')
    assert.match((await otherSession.textContent()) ?? '', /Firefox on Windows/)
    assert.ok((await otherSession.locator('time[datetime]').count()) > 0, 'the other session says when')
    assert.equal(await page.getByRole('button', { name: 'Log out all other sessions' }).count(), 1)
    // Its button says which session it ends (its description), not only "this session".
    const endOther = otherSession.getByRole('button', { name: 'Log out this session' })
    const describedBy = (await endOther.getAttribute('aria-describedby')) ?? ''
    assert.ok(describedBy, 'the button has a description')
    assert.match((await page.locator(`[id="${describedBy}"]`).textContent()) ?? '', /Firefox on Windows/)
    await checkPage(page, watch)

    const loaded = page.waitForEvent('load')
    await endOther.click()
    await loaded
    assert.equal(pathOf(page), '/account/sessions')
    assert.deepEqual(await flashes(page), [{ type: 'success', message: SESSION_ENDED }])
    assert.equal(await sessions.count(), 1)
    assert.equal(await current.count(), 1)
    assert.equal(await page.getByRole('button', { name: 'Log out all other sessions' }).count(), 0)
    await checkPage(page, watch)

    // The other browser is logged out: its profile sends it to the log-in page.
    await other.page.goto('/profile')
    await other.page.waitForURL((url) => url.pathname === '/login')
    assert.match((await other.page.locator('header').textContent()) ?? '', /Not logged in/)
    await checkPage(other.page, other.watch)

    await followLink(page, 'Activity', '/account/activity')
    const events = page.locator('[data-event]')
    const types = await events.evaluateAll((elements) => elements.map((element) => element.getAttribute('data-event')))
    for (const type of ['login', 'login_failed', 'password_changed', 'session_ended']) {
      assert.ok(types.includes(type), `the activity lists ${type}: ${types.join(', ')}`)
    }
    assert.equal(types[0], 'session_ended', 'newest first')
    assert.equal(await page.getByRole('navigation', { name: 'Pages' }).count(), 0, 'one page of events: no pager')
    const times = await events.evaluateAll((elements) =>
      elements.map((element) => element.querySelector('time')?.getAttribute('datetime') ?? null),
    )
    for (const datetime of times) {
      assert.ok(datetime && !Number.isNaN(Date.parse(datetime)), `each event has a <time datetime>: ${datetime}`)
    }
    await checkPage(page, watch)
  } finally {
    for (const opening of opened) await opening.close()
  }
})

test('every input has a label and the autocomplete that password managers need', async () => {
  const { context, page } = await openBrowser()
  const user = await createTestUser(testApp)
  await page.goto('/password/forgot')
  await askForResetLink(page, user.email)
  const { path: resetPath } = await resetLinkPath(user.email)
  for (const [path, emailAutocomplete, passwordLabel, passwordAutocomplete] of [
    ['/signup', 'email', 'Password', 'new-password'],
    ['/login', 'email', 'Password', 'current-password'],
    ['/password/forgot', 'email', null, null],
    [resetPath, null, 'New password', 'new-password'],
  ] as const) {
    await page.goto(path)
    assert.equal(pathOf(page), path)
    // getByLabel finds an input only through its label.
    if (emailAutocomplete) {
      assert.equal(
        await page.getByLabel('Email', { exact: true }).getAttribute('autocomplete'),
        emailAutocomplete,
        path,
      )
    }
    if (passwordLabel) {
      assert.equal(
        await page.getByLabel(passwordLabel, { exact: true }).getAttribute('autocomplete'),
        passwordAutocomplete,
        path,
      )
    }
    const unlabelled = await page.evaluate<number>(
      "[...document.querySelectorAll('input:not([type=hidden])')].filter((input) => input.labels.length === 0).length",
    )
    assert.equal(unlabelled, 0, `${path}: inputs without a label`)
  }

  // The account's forms, each with its own "Current password".
  await page.goto('/login')
  await fillCredentials(page, user.email, PASSWORD)
  await submitAndWait(page, 'Log in', '/profile')
  await page.goto('/account')
  for (const [form, label, autocomplete] of [
    ['change-password', 'Current password', 'current-password'],
    ['change-password', 'New password', 'new-password'],
    ['change-email', 'New email', 'email'],
    ['change-email', 'Current password', 'current-password'],
    ['delete-account', 'Current password', 'current-password'],
  ] as const) {
    const input = page.locator(`form[data-form="${form}"]`).getByLabel(label, { exact: true })
    assert.equal(await input.getAttribute('autocomplete'), autocomplete, `/account ${form}: ${label}`)
  }
  for (const path of ['/account', '/account/sessions', '/account/activity']) {
    await page.goto(path)
    assert.equal(pathOf(page), path)
    const unlabelled = await page.evaluate<number>(
      "[...document.querySelectorAll('input:not([type=hidden])')].filter((input) => input.labels.length === 0).length",
    )
    assert.equal(unlabelled, 0, `${path}: inputs without a label`)
  }
  await context.close()
})

test('the dark colour scheme passes the same checks', async () => {
  const user = await createTestUser(testApp)
  const { context, page, watch } = await openBrowser(DESKTOP_DARK)
  await page.goto('/signup')
  await fillCredentials(page, user.email, PASSWORD)
  await submitAndWait(page, 'Create account', '/signup')
  await checkPage(page, watch, DESKTOP_DARK)
  await page.goto('/profile')
  await page.waitForURL((url) => url.pathname === '/login')
  await checkPage(page, watch, DESKTOP_DARK)
  await fillCredentials(page, user.email, PASSWORD)
  await submitAndWait(page, 'Log in', '/profile')
  await checkPage(page, watch, DESKTOP_DARK)
  await submitAndWait(page, 'Log out', '/')
  assert.equal(await page.locator('[data-flash="success"]').count(), 1)
  await checkPage(page, watch, DESKTOP_DARK)

  await page.goto('/password/forgot')
  await checkPage(page, watch, DESKTOP_DARK)
  await askForResetLink(page, user.email)
  await checkPage(page, watch, DESKTOP_DARK)
  await page.goto((await resetLinkPath(user.email)).path)
  await checkPage(page, watch, DESKTOP_DARK)

  await page.goto('/signup')
  await fillCredentials(page, uniqueEmail('e2e-dark'), PASSWORD)
  await submitAndWait(page, 'Create account', '/profile')
  assert.equal(await page.locator('[data-email-confirmed]').textContent(), 'Not confirmed yet')
  await checkPage(page, watch, DESKTOP_DARK)

  // The account's pages, one with an error flash and the danger card.
  await followLink(page, 'Your account', '/account')
  await checkPage(page, watch, DESKTOP_DARK)
  await page.locator('form[data-form="delete-account"]').getByLabel('Current password', { exact: true }).fill('wrong')
  await submitAndWaitForReload(page, 'Delete my account', '/account')
  assert.deepEqual(await flashes(page), [{ type: 'error', message: WRONG_CURRENT_PASSWORD }])
  await checkPage(page, watch, DESKTOP_DARK)
  await followLink(page, 'Sessions', '/account/sessions')
  await checkPage(page, watch, DESKTOP_DARK)
  await followLink(page, 'Activity', '/account/activity')
  await checkPage(page, watch, DESKTOP_DARK)
  await context.close()
})

test("the browser's cookie store keeps sid HttpOnly and SameSite=Lax, out of the page's reach", async () => {
  const { context, page } = await openBrowser()
  await page.goto('/')
  assert.deepEqual(await context.cookies(), [], 'reading the home page and its assets sets no cookie')
  await page.goto('/signup')
  await fillCredentials(page, uniqueEmail('e2e'), PASSWORD)
  await submitAndWait(page, 'Create account', '/profile')
  const sid = (await context.cookies()).find((cookie) => cookie.name === 'sid')
  assert.ok(sid, 'the browser keeps a sid cookie')
  assert.equal(sid.httpOnly, true)
  assert.equal(sid.sameSite, 'Lax')
  assert.equal(sid.path, '/')
  assert.doesNotMatch(await page.evaluate<string>('document.cookie'), /sid=/)
  await context.close()
})

test('a wrong password shows its flash, keeps the email and never the password', async () => {
  const user = await createTestUser(testApp)
  const { context, page, watch } = await openBrowser()
  await page.goto('/login')
  await fillCredentials(page, user.email, 'not the password at all')
  await submitAndWait(page, 'Log in', '/login')
  assert.deepEqual(await flashes(page), [{ type: 'error', message: 'Invalid email or password.' }])
  assert.equal(await page.getByLabel('Email', { exact: true }).inputValue(), user.email)
  assert.equal(await page.getByLabel('Password', { exact: true }).inputValue(), '')
  // Which of the two was wrong is not said, so no field is marked.
  assert.equal(await page.locator('[aria-invalid="true"]').count(), 0)
  await checkPage(page, watch)
  await context.close()
})

test('a refusal about one field puts focusable error text next to it, and the focus on the field', async () => {
  const user = await createTestUser(testApp)
  const { context, page, watch } = await openBrowser()
  for (const [email, message] of [
    [user.email, 'That email is already taken.'],
    // Passes the browser's own email check; the service's rule wants a dot in the domain.
    ['someone@localhost', 'Please enter a valid email address, like name@example.com.'],
  ] as const) {
    await page.goto('/signup')
    await fillCredentials(page, email, PASSWORD)
    await submitAndWait(page, 'Create account', '/signup')
    assert.deepEqual(await flashes(page), [{ type: 'error', message }])
    const input = page.getByLabel('Email', { exact: true })
    assert.equal(await input.getAttribute('aria-invalid'), 'true')
    assert.equal(await input.getAttribute('aria-describedby'), 'email-error')
    assert.equal(await page.locator('#email-error').textContent(), message)
    assert.equal(await page.evaluate<string>('document.activeElement.id'), 'email', 'the refused field has the focus')
    await page.locator('#email-error').focus()
    assert.equal(await page.evaluate<string>('document.activeElement.id'), 'email-error', 'the error text is focusable')
    await checkPage(page, watch)
  }
  await context.close()
})

test('a user reaches /admin only after being made admin, and comes back to it after logging in', async () => {
  const { context, page, watch } = await openBrowser()
  const email = uniqueEmail('e2e-admin')
  await page.goto('/signup')
  await fillCredentials(page, email, PASSWORD)
  await submitAndWait(page, 'Create account', '/profile')

  const refused = await page.goto('/admin')
  assert.equal(refused?.status(), 403)
  assert.equal(await page.locator('h1').textContent(), 'Access denied')

  await setUserRole(testApp.db, email, 'admin')
  const allowed = await page.goto('/admin')
  assert.equal(allowed?.status(), 200)
  assert.equal(await page.locator('h1').textContent(), 'Administration')
  await checkPage(page, watch)

  await submitAndWait(page, 'Log out', '/')
  await page.goto('/admin')
  await page.waitForURL((url) => `${url.pathname}${url.search}` === '/login?next=%2Fadmin')
  await fillCredentials(page, email, PASSWORD)
  await submitAndWait(page, 'Log in', '/admin')
  assert.equal(await page.locator('h1').textContent(), 'Administration')
  await context.close()
})

test('the CSP watch sees a violation when a page breaks the policy', async () => {
  const { context, page, watch } = await openBrowser()
  await page.goto('/')
  assert.deepEqual(watch.cspViolations, [])
  const consoleReport = page.waitForEvent('console', (message) => /content security policy/i.test(message.text()))
  await page.evaluate(
    "const style = document.createElement('style'); style.textContent = 'body { color: red }'; document.head.append(style)",
  )
  await consoleReport
  await page.waitForFunction('window.cspViolationCount > 0')
  const styleReports = watch.cspViolations.filter((text) => /style-src/.test(text))
  assert.equal(styleReports.length, 2, `both witnesses report it: ${watch.cspViolations.join(' | ')}`)
  await context.close()
})

test('assets are served with the security headers and never start or touch a session', async () => {
  const anonymous = testApp.browser()
  const sessionsBefore = await countRows(testApp.db, 'sessions')
  for (const [path, type] of [
    ['/assets/site.css', /^text\/css/],
    ['/assets/gatehouse.svg', /^image\/svg\+xml/],
  ] as const) {
    const asset = await anonymous.get(path)
    assert.equal(asset.status, 200, path)
    assert.match(asset.headers.get('content-type') ?? '', type)
    assert.match(asset.headers.get('content-security-policy') ?? '', /default-src 'self'/)
    assert.equal(asset.headers.get('x-content-type-options'), 'nosniff')
    assert.deepEqual(asset.setCookies, [], `${path} sends no cookie`)
  }
  assert.equal(await countRows(testApp.db, 'sessions'), sessionsBefore)
  assert.equal((await anonymous.get('/assets/no-such-file.css')).status, 404)
  assert.equal((await anonymous.get('/assets/')).status, 404)
  assert.equal((await anonymous.get('/assets/../package.json')).status, 404)
})
