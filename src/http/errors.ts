// Errors our routes raise on purpose; the error handler shows their message as it is.
import createError from '@fastify/error'

export const FormFieldError = createError<[string]>(
  'GH_FORM_FIELD',
  'The form field "%s" must be a single text value.',
  400,
)

export const TooManyAttemptsError = createError('GH_TOO_MANY_ATTEMPTS', 'Too many attempts. Try again later.', 429)
