// Preloaded into the server by bench/session-memory.ts only (with node's --expose-gc): SIGUSR2 runs a full
// garbage collection, so the memory check compares what the process retains, not where V8's collector
// happened to be when the sample was taken.
process.on('SIGUSR2', () => globalThis.gc?.())
