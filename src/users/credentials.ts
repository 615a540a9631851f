// The contract's rules for emails and passwords, applied the same way by the forms and the CLI.
import { hasControlCharacters } from '../text.js'

export const EMAIL_MAX_LENGTH = 254
export const PASSWORD_MIN_LENGTH = 8
export const PASSWORD_MAX_LENGTH = 256

// One @, something on each side, a dot in the domain; no spaces. Deliverability is not ours to judge.
const EMAIL_SHAPE = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/

/** The form field a refusal is about, so the form can show the message beside it. */
export type CredentialField = 'email' | 'password'

export type CredentialsCheck =
  | { ok: true; email: string; password: string }
  | { ok: false; message: string; field: CredentialField }

export type FieldCheck<T> = { ok: true; value: T } | { ok: false; message: string; field: CredentialField }

/** Trims the email; says what is wrong in words a person can act on. */
export function checkEmail(rawEmail: string): FieldCheck<string> {
  const email = rawEmail.trim()
  if (email === '') return { ok: false, message: 'Please enter your email address.', field: 'email' }
  if (email.length > EMAIL_MAX_LENGTH) {
    return { ok: false, message: `Email addresses are at most ${EMAIL_MAX_LENGTH} characters.`, field: 'email' }
  }
  if (hasControlCharacters(email) || !EMAIL_SHAPE.test(email)) {
    return { ok: false, message: 'Please enter a valid email address, like name@example.com.', field: 'email' }
  }
  return { ok: true, value: email }
}

/** A new or typed password: its length, counted in characters. */
export function checkPassword(password: string): FieldCheck<string> {
  const passwordLength = [...password].length
  if (passwordLength < PASSWORD_MIN_LENGTH) {
    return { ok: false, message: `Passwords are at least ${PASSWORD_MIN_LENGTH} characters.`, field: 'password' }
  }
  if (passwordLength > PASSWORD_MAX_LENGTH) {
    return { ok: false, message: `Passwords are at most ${PASSWORD_MAX_LENGTH} characters.`, field: 'password' }
  }
  return { ok: true, value: password }
}

/** Both rules, the email's first. */
export function checkCredentials(rawEmail: string, password: string): CredentialsCheck {
  const email = checkEmail(rawEmail)
  if (!email.ok) return email
  const checked = checkPassword(password)
  if (!checked.ok) return checked
  return { ok: true, email: email.value, password }
}
