// The real server process (src/server.ts under tsx), for tests about signals, crashes and many instances.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { TEST_SECRET } from './app.js'

const ROOT = new URL('../..', import.meta.url)

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams
  /** Every JSON log line written to stdout so far, parsed (a line that is not JSON is kept as `{ raw }`). */
  lines: Record<string, unknown>[]
  /** Everything written to stderr so far. */
  stderr: string
  /** The address once the server listens; rejects if the process exits first. */
  listening: Promise<string>
  /** The exit code (null when killed by a signal). */
  exited: Promise<number | null>
}

/** Spawns the server without waiting for it: for processes expected to refuse to start, or started together. */
export function spawnServer(env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: '', PORT: '0', SESSION_SECRET: TEST_SECRET, NODE_ENV: 'test', ...env },
  })
  const lines: Record<string, unknown>[] = []
  let buffered = ''
  const server: ServerProcess = {
    child,
    lines,
    stderr: '',
    listening: new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk
        const complete = buffered.split('\n')
        buffered = complete.pop() ?? ''
        for (const line of complete.filter(Boolean)) {
          let entry: Record<string, unknown>
          try {
            entry = JSON.parse(line) as Record<string, unknown>
          } catch {
            entry = { raw: line }
          }
          lines.push(entry)
          const address = /Server listening at (http:\/\/[^\s]+)/.exec(String(entry.msg))?.[1]
          if (address) resolve(address)
        }
      })
      child.once('exit', (code) =>
        reject(new Error(`server exited with ${code} before listening: ${server.stderr.trim()}`)),
      )
    }),
    exited: new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))),
  }
  child.stderr.on('data', (chunk: Buffer) => {
    server.stderr += chunk
  })
  // A process that never listens is an expected outcome for some tests: they await `exited` instead.
  server.listening.catch(() => undefined)
  return server
}

/** The real server process; resolves with its address once it listens. */
export async function startServer(env: Record<string, string>): Promise<ServerProcess & { url: string }> {
  const server = spawnServer(env)
  // The same object, not a copy: `stderr` keeps growing on it.
  return Object.assign(server, { url: await server.listening })
}
