// Errors our routes raise on purpose; the error pages show their message as it is.
import createError from '@fastify/error'

/** The one text for every throttled answer: the 429 page, the form's flash, the error's message. */
export const TOO_MANY_ATTEMPTS = 'Too many attempts. Try again later.'

export const FormFieldError = createError<[string]>(
  'GH_FORM_FIELD',
  'The form field "%s" must be a single text value.',
  400,
)

export const TooManyAttemptsError = createError('GH_TOO_MANY_ATTEMPTS', TOO_MANY_ATTEMPTS, 429)
