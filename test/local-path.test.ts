import assert from 'node:assert/strict'
import { test } from 'node:test'
import { safeLocalPath } from '../src/http/local-path.js'
import { createTestUser, logIn, startTestApp } from './helpers/app.js'

// Paths whose dot segments or encoded dots the URL parser resolves into a protocol-relative "//evil.com".
const NORMALISED_TO_ANOTHER_HOST = ['/.//evil.com', '/x/..//evil.com', '/%2e//evil.com', '/a/b/../..//evil.com']

test('safeLocalPath refuses paths that normalise to another host, on a single call', () => {
  for (const value of NORMALISED_TO_ANOTHER_HOST) assert.equal(safeLocalPath(value), null, value)
})

test('safeLocalPath still accepts local paths with dot segments, normalised', () => {
  assert.equal(safeLocalPath('/a/../profile?x=1#top'), '/profile?x=1#top')
  assert.equal(safeLocalPath('/./admin'), '/admin')
})

test('a log-in with such a next goes to the profile, never to another host', async () => {
  const testApp = await startTestApp()
  const user = await createTestUser(testApp)
  for (const next of NORMALISED_TO_ANOTHER_HOST) {
    const { response } = await logIn(testApp, user.email, undefined, next)
    assert.equal(response.status, 303, next)
    assert.equal(response.location, '/profile', next)
  }
})
