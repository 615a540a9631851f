// Errors our routes raise on purpose; the error handler shows their message as it is.
import createError from '@fastify/error'

export const FormFieldError = createError<[string]>(
  'GH_FORM_FIELD',
  'The form field "%s" must be a single text value.',
  400,
)
