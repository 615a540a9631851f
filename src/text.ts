// Text checks shared by the input rules and the redirect guard.

// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const ALL_CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/g

/** C0 controls and DEL: never part of an email, and "/\t/evil" is "//evil" to a browser. */
export function hasControlCharacters(value: string): boolean {
  return CONTROL_CHARACTERS.test(value)
}

export function withoutControlCharacters(value: string): string {
  return value.replace(ALL_CONTROL_CHARACTERS, '')
}
