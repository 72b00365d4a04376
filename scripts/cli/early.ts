/**
 * SIGINT/SIGTERM, noted from the CLI's first line to its exit. `runMain` installs its handlers only once every module
 * of the CLI has loaded (a second or more on a busy machine); a signal before that would kill node with the default
 * action (no exit 130). The entry (`scripts/cli.ts`) calls `catchSignals` first thing; `main.ts` exits 130 if one
 * came while it loaded, else starts `runMain`, whose handlers interrupt the command. These listeners stay: a signal
 * that lands while the command's scope is closing finds its body already done and would let it exit 0, so the exit
 * code is 130 whenever a signal came (`signalled`). (Removing them, the last listeners of a signal, and adding
 * runMain's in the same tick also lost signals that came afterwards: 1 in 12 trials.)
 */
let received: NodeJS.Signals | undefined

const onSignal = (signal: NodeJS.Signals) => {
  received = signal
}

export const catchSignals = () => {
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
}

export const signalled = () => received !== undefined
