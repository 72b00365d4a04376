/** Shared helpers for the iRODS tests: a fake server plus a client bound to it, in one scope. */
import { Effect, Redacted } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type IrodsClientOptions, make } from "../../src/irods/IrodsClient.js"
import { fakeIrodsScoped, type FakeIrodsOptions } from "../fake-irods/FakeIrods.js"

export const tempDir = (prefix = "irods-test-") => mkdtempSync(join(tmpdir(), prefix))

/** Where a fake server is. */
type FakeAddress = { readonly host: string; readonly port: number; readonly zone: string }

/** The client options for a fake server, logged in as rods/rods; `options` adds to or overrides them. */
export const fakeLogin = (server: FakeAddress, options: Partial<IrodsClientOptions> = {}): IrodsClientOptions => ({
  host: server.host,
  port: server.port,
  zone: server.zone,
  user: "rods",
  password: Redacted.make("rods"),
  ...options
})

/** A fake server and a client of it (user rods/rods unless told otherwise). Fast retries, short timeouts. */
export const fakeAndClient = (
  fake: FakeIrodsOptions = {},
  client: Partial<IrodsClientOptions> & { readonly passwordText?: string } = {}
) =>
  Effect.gen(function*() {
    const server = yield* fakeIrodsScoped(fake)
    const { passwordText, ...rest } = client
    const irods = yield* make(fakeLogin(server, {
      password: Redacted.make(passwordText ?? "rods"),
      retryBase: "10 millis",
      requestTimeout: "5 seconds",
      ...rest
    }))
    const home = `/${server.zone}/home/rods`
    return { server, client: irods, home }
  })

/** A client of an already running fake, logged in as another user. */
export const clientAs = (server: FakeAddress, user: string, password: string, client: Partial<IrodsClientOptions> = {}) =>
  make(fakeLogin(server, { user, password: Redacted.make(password), retryBase: "10 millis", requestTimeout: "5 seconds", ...client }))
