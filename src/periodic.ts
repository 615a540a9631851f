// A task the app repeats while it runs (pruning expired rows): started when the app is ready, stopped
// when it closes, its failures logged and never thrown.
import type { FastifyInstance } from 'fastify'

export interface PeriodicTask {
  /** For the log line when it fails: "pruning expired sessions". */
  name: string
  intervalMs: number
  /** Also run once as the app becomes ready (before it listens). */
  runAtReady?: boolean
  run(): Promise<unknown>
}

export function repeatWhileRunning(app: FastifyInstance, task: PeriodicTask): void {
  const run = () =>
    task.run().then(
      () => undefined,
      (error: unknown) => app.log.error({ err: error }, `${task.name} failed`),
    )
  let timer: NodeJS.Timeout | undefined
  app.addHook('onReady', async () => {
    if (task.runAtReady) await run()
    timer = setInterval(run, task.intervalMs)
    // A timer alone never keeps the process up.
    timer.unref()
  })
  app.addHook('onClose', async () => clearInterval(timer))
}
