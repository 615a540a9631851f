import assert from 'node:assert/strict'
import { test } from 'node:test'
import { sql } from 'kysely'
import { countRows, createTestUser, signUp, startTestApp, uniqueEmail } from './helpers/app.js'
import { assertRedirect } from './helpers/assertions.js'

const testApp = await startTestApp()

const EMAIL_TAKEN = 'That email is already taken.'

async function usersWithEmail(email: string): Promise<number> {
  const row = await testApp.db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where(sql<string>`lower(email)`, '=', email.trim().toLowerCase())
    .executeTakeFirstOrThrow()
  return Number(row.count)
}

/** A fresh visitor who opened the sign-up form and posts it. */
async function postSignup(form: Record<string, string | null>) {
  const browser = testApp.browser()
  await browser.get('/signup')
  const response = await browser.post('/signup', form)
  return { browser, response }
}

test('an anonymous visitor gets the sign-up form with a CSRF token, email and password inputs', async () => {
  const page = await testApp.browser().get('/signup')
  assert.equal(page.status, 200)
  assert.match(page.html, /<input type="hidden" name="_csrf" value="[^"]+">/)
  assert.ok(page.csrfToken.length > 0)
  assert.match(page.html, /<input[^>]*name="email"/)
  assert.match(page.html, /<input[^>]*name="password"[^>]*type="password"/)
  assert.match(page.html, /<form method="post" action="\/signup">/)
})

test('a logged-in user asking for the sign-up form is sent to their profile', async () => {
  const { browser } = await signUp(testApp)
  assertRedirect(await browser.get('/signup'), '/profile')
})

test('sign-up creates the user, logs them in and stores only an argon2id hash', async () => {
  const email = uniqueEmail('signup')
  const password = 'a-signup-password-7731'
  const { browser, response } = await postSignup({ email, password })
  assertRedirect(response, '/profile')
  assert.ok(response.cookie('sid'), 'the sign-up answer sets the sid cookie')

  const profile = await browser.follow(response)
  assert.equal(profile.status, 200)
  assert.ok(profile.html.includes(`data-user-email>${email}<`), 'the profile shows the email')

  const user = await testApp.db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirstOrThrow()
  assert.ok(user.password_hash.startsWith('$argon2id$v=19$m=19456,t=2,p=1$'), user.password_hash)
  assert.ok(!user.password_hash.includes(password))
})

test('signing up with a registered email, in any case and with spaces, is refused once with the email kept', async () => {
  const email = uniqueEmail('taken')
  await createTestUser(testApp, { email })
  const password = 'never-shown-password-5512'

  for (const typed of [email, `  ${email.toUpperCase()}  `]) {
    const { browser, response } = await postSignup({ email: typed, password })
    assertRedirect(response, '/signup')
    const page = await browser.follow(response)
    assert.equal(page.status, 200)
    assert.deepEqual(page.flashes, [{ type: 'error', message: EMAIL_TAKEN }])
    assert.equal(page.emailValue?.trim(), typed.trim())
    assert.ok(!page.html.includes(password), 'the password is never shown again')

    const again = await browser.get('/signup')
    assert.deepEqual(again.flashes, [], 'the flash is shown only once')
  }
  assert.equal(await usersWithEmail(email), 1)
})

const refusals: { name: string; form: Record<string, string | null>; subject: RegExp }[] = [
  { name: 'a malformed email', form: { email: 'not-an-email', password: 'long-enough-password' }, subject: /email/i },
  {
    name: 'an email over 254 characters',
    form: { email: `${'a'.repeat(243)}@example.com`, password: 'long-enough-password' },
    subject: /email/i,
  },
  {
    name: 'a 7-character password',
    form: { email: uniqueEmail('short'), password: 'x'.repeat(7) },
    subject: /password|characters/i,
  },
  {
    name: 'a 257-character password',
    form: { email: uniqueEmail('long'), password: 'x'.repeat(257) },
    subject: /password|characters/i,
  },
  { name: 'a missing email field', form: { email: null, password: 'long-enough-password' }, subject: /email/i },
  {
    name: 'a missing password field',
    form: { email: uniqueEmail('nopass'), password: null },
    subject: /password|characters/i,
  },
]

for (const refusal of refusals) {
  test(`sign-up with ${refusal.name} is refused with an error flash saying what is wrong`, async () => {
    const usersBefore = await countRows(testApp.db, 'users')
    const { browser, response } = await postSignup(refusal.form)
    assertRedirect(response, '/signup')
    const page = await browser.follow(response)
    assert.equal(page.flashes.length, 1, JSON.stringify(page.flashes))
    const [flash] = page.flashes
    assert.equal(flash?.type, 'error')
    assert.ok(flash && flash.message.length > 0)
    assert.match(flash?.message ?? '', refusal.subject)
    const typed = refusal.form.email
    if (typed && typed.length <= 254) assert.equal(page.emailValue, typed, 'the typed email is kept')
    if (refusal.form.password) assert.ok(!page.html.includes(refusal.form.password), 'the password is never shown')
    assert.equal(await countRows(testApp.db, 'users'), usersBefore, 'no user row is created')
  })
}

test('passwords of exactly 8 and exactly 256 characters are accepted', async () => {
  for (const password of ['p'.repeat(8), 'p'.repeat(256)]) {
    const email = uniqueEmail('edge')
    const { response } = await postSignup({ email, password })
    assertRedirect(response, '/profile')
    assert.equal(await usersWithEmail(email), 1)
  }
})

test('20 simultaneous sign-ups with one email make exactly one user', async () => {
  const email = uniqueEmail('race')
  const browsers = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const browser = testApp.browser()
      const form = await browser.get('/signup')
      assert.equal(form.status, 200)
      return browser
    }),
  )
  const responses = await Promise.all(
    browsers.map((browser) => browser.post('/signup', { email, password: 'race-password-2024' })),
  )
  for (const response of responses) {
    assert.ok([302, 303].includes(response.status), `expected a redirect, got ${response.status}`)
  }
  const locations = responses.map((response) => response.location)
  assert.equal(locations.filter((location) => location === '/profile').length, 1, JSON.stringify(locations))
  assert.equal(locations.filter((location) => location === '/signup').length, 19, JSON.stringify(locations))
  assert.equal(await usersWithEmail(email), 1)
})
