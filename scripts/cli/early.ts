/**
 * SIGINT/SIGTERM during start-up. `runMain` installs its handlers only once every module of the CLI has loaded
 * (a second or more on a busy machine); a signal before that would kill node with the default action (no exit
 * 130). The entry (`scripts/cli.ts`) calls `catchEarlySignals` first thing; `main.ts` exits 130 if one came, else
 * starts `runMain` and only then removes these listeners (a signal always has a listener: see `main.ts`).
 */
let received: NodeJS.Signals | undefined

const onSignal = (signal: NodeJS.Signals) => {
  received = signal
}

export const catchEarlySignals = () => {
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
}

export const signalledEarly = () => received !== undefined

export const stopEarlySignals = () => {
  process.off("SIGINT", onSignal)
  process.off("SIGTERM", onSignal)
}
