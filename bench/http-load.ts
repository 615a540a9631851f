// HTTP load through autocannon, in this process, on loopback: each connection runs its own sequence of steps
// (one GET, or a GET /login → POST /login chain), and every answer is checked, timed and counted here, so a
// figure is only ever made of answers that were what the step expects.
import autocannon from 'autocannon'
import { percentile } from './lib.js'

/** What one step's answer looked like; header names in lower case. */
export interface Answer {
  status: number
  body: string
  headers: Record<string, string | string[] | undefined>
}

/** What earlier steps of one chain kept for later ones (a cookie, a CSRF token); empty at each chain's start. */
export type ChainState = Record<string, string>

export interface Step {
  method: 'GET' | 'POST'
  path: string
  headers?: Record<string, string>
  /** Counted in the figures; the other steps of a chain only prepare it (a log-in form before its POST). */
  measured: boolean
  /** Headers and body from the chain so far; null when it cannot be sent (the chain then starts over). */
  prepare?: (chain: ChainState) => { headers?: Record<string, string>; body?: string } | null
  /** Null when the answer is what it should be, else a few words on what came instead. */
  check: (answer: Answer, chain: ChainState) => string | null
}

export interface LoadOptions {
  url: string
  connections: number
  seconds: number
  /** The steps of connection number `index` (0-based), repeated in order for as long as the load lasts. */
  steps: (index: number) => Step[]
}

export interface LoadResult {
  seconds: number
  /** Measured steps answered as expected, per second. */
  rate: number
  /** Latency of the measured steps answered as expected, ms. */
  p50: number
  p99: number
  good: number
  /** Answers (of any step) that were not what the step expects, by "METHOD path: what came". */
  bad: Record<string, number>
  badCount: number
  /** The first bad answer, with the start of its body, to show when a run fails. */
  firstBad: string | null
  /** Connection errors and timeouts as autocannon counts them. */
  errors: number
  timeouts: number
  /** Answers by status code, all steps. */
  statuses: Record<string, number>
}

function lowerCaseKeys(headers: Record<string, unknown> | undefined): Answer['headers'] {
  const lower: Answer['headers'] = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (typeof value === 'string' || Array.isArray(value)) lower[name.toLowerCase()] = value as string | string[]
  }
  return lower
}

/** `name=value` of the Set-Cookie for `name` in an answer, or undefined. */
export function setCookiePair(answer: Answer, name: string): string | undefined {
  const header = answer.headers['set-cookie']
  const all = Array.isArray(header) ? header : header === undefined ? [] : [header]
  return all.map((cookie) => cookie.split(';')[0]?.trim() ?? '').find((pair) => pair.startsWith(`${name}=`))
}

export function location(answer: Answer): string | undefined {
  const value = answer.headers.location
  return Array.isArray(value) ? value[0] : value
}

/** Runs the load for `seconds`; resolves once autocannon has stopped every connection. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = []
  const bad: Record<string, number> = {}
  let badCount = 0
  let firstBad: string | null = null
  let good = 0
  let connection = 0

  const setupClient = (client: autocannon.Client) => {
    const steps = options.steps(connection++)
    // One connection answers one request at a time (no pipelining): what the last onResponse saw is what
    // the 'response' event right after it times.
    let chain: ChainState = {}
    let answered: { step: Step; problem: string | null } | null = null
    const setupRequest = (step: Step, index: number) => (request: autocannon.Request) => {
      if (index === 0) chain = {}
      const parts = step.prepare ? step.prepare(chain) : {}
      if (parts === null) return null as unknown as autocannon.Request // autocannon: falsy starts the chain over
      return {
        ...request,
        headers: { ...request.headers, ...parts.headers },
        ...(parts.body === undefined ? {} : { body: parts.body }),
      }
    }
    const requests: autocannon.Request[] = steps.map((step, index) => ({
      method: step.method,
      path: step.path,
      headers: step.headers,
      // A request without setupRequest is built once and sent as it is: no cost in this process per request.
      ...(step.prepare || (index === 0 && steps.length > 1) ? { setupRequest: setupRequest(step, index) } : {}),
      onResponse: (status: number, body: string, _context: object, headers: autocannon.Request['headers']) => {
        const answer: Answer = { status, body, headers: lowerCaseKeys(headers) }
        const problem = step.check(answer, chain)
        answered = { step, problem }
        if (problem !== null) {
          const key = `${step.method} ${step.path}: ${problem}`
          bad[key] = (bad[key] ?? 0) + 1
          badCount += 1
          firstBad ??= `${key}\n${body.slice(0, 600)}`
        }
      },
    }))
    client.setRequests(requests)
    client.on('response', (_status: number, _bytes: number, milliseconds: number) => {
      if (answered?.step.measured && answered.problem === null) {
        good += 1
        latencies.push(milliseconds)
      }
      answered = null
    })
  }

  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.seconds,
        pipelining: 1,
        timeout: 10,
        setupClient,
      },
      (error, result) => {
        if (error) {
          reject(error)
          return
        }
        latencies.sort((a, b) => a - b)
        const statuses: Record<string, number> = {}
        for (const [code, entry] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = entry.count ?? 0
        resolve({
          seconds: result.duration,
          rate: good / result.duration,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          good,
          bad,
          badCount,
          firstBad,
          errors: result.errors,
          timeouts: result.timeouts,
          statuses,
        })
      },
    )
    // Without a listener autocannon's own errors would be thrown from its emitter.
    instance.on('error', reject)
  })
}
