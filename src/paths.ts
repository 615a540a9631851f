import { fileURLToPath } from 'node:url'

// src/ -> the project root; dist/src/ -> dist/, which has no templates, so step out of dist/ too.
const here = fileURLToPath(new URL('.', import.meta.url))
export const PROJECT_ROOT = fileURLToPath(
  new URL(/[\\/]dist[\\/]src[\\/]?$/.test(here) ? '../../' : '../', import.meta.url),
)
export const TEMPLATES_DIR = `${PROJECT_ROOT}templates`
