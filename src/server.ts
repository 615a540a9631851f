// Reads the configuration, builds the app, listens; closes cleanly on SIGTERM and SIGINT.
import { buildApp } from './app.js'
import { type Config, loadConfig, loadDotEnv, withSessionSecrets } from './config.js'
import { developmentSessionSecret } from './dev-secret.js'
import { exitWithError } from './fatal.js'

/** In-flight requests get this long to finish after SIGTERM/SIGINT; then their connections are cut. */
const SHUTDOWN_GRACE_MS = 10_000

async function sessionSecrets(config: Config): Promise<string[]> {
  return config.session.secrets ?? [await developmentSessionSecret(config.database.dataDir)]
}

async function main(): Promise<void> {
  loadDotEnv()
  const config = loadConfig(process.env)
  const app = await buildApp(withSessionSecrets(config, await sessionSecrets(config)))

  let closing = false
  const close = (signal: NodeJS.Signals) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down: no new connections, waiting for requests in flight')
    // app.close() stops listening, waits for requests in flight, then runs onClose: the prune timers stop
    // and the pool or the embedded database (and its lock) is closed.
    const grace = setTimeout(() => {
      app.log.warn(`requests still in flight after ${SHUTDOWN_GRACE_MS / 1000} s: closing their connections`)
      app.server.closeAllConnections()
    }, SHUTDOWN_GRACE_MS)
    grace.unref()
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  // `on`, not `once`: a second signal while closing must not kill the process half-way.
  process.on('SIGTERM', close)
  process.on('SIGINT', close)

  await app.listen({ host: config.server.host, port: config.server.port })
}

main().catch((error: unknown) => exitWithError(error, 'failed to start'))
