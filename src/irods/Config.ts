/**
 * iRODS connection settings the way iRODS users already have them: `~/.irods/irods_environment.json` (host,
 * port, zone, user) and the obfuscated `~/.irods/.irodsA` password, each overridable by a
 * `MESA_DUCKLAKE_IRODS_*` variable. The password stays `Redacted` until the login digest needs it.
 */
import { Config, ConfigError, Either, Option, Redacted } from "effect"
import { readFileSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, join } from "node:path"
import { decodeIrodsA } from "./Obfuscation.js"

export interface IrodsConnectionConfig {
  readonly host: string
  readonly port: number
  readonly zone: string
  readonly user: string
  readonly password: Redacted.Redacted<string>
  /** Application name sent in the StartupPack `option` field. */
  readonly applicationName?: string | undefined
}

/** What `irods_environment.json` provides (all optional: a partial file is completed by env vars). */
export interface IrodsEnvironmentFile {
  readonly irods_host?: string
  readonly irods_port?: number
  readonly irods_zone_name?: string
  readonly irods_user_name?: string
  readonly irods_authentication_file?: string
}

const readJson = (path: string): IrodsEnvironmentFile | undefined => {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as IrodsEnvironmentFile
  } catch {
    return undefined
  }
}

const readIrodsA = (path: string): string | undefined => {
  try {
    return decodeIrodsA(readFileSync(path, "latin1"), process.getuid?.() ?? 0)
  } catch {
    return undefined
  }
}

const missing = (name: string, envVar: string) =>
  ConfigError.MissingData([envVar], `iRODS ${name} not set: put it in irods_environment.json or set ${envVar}`)

/**
 * Reads the connection config. Order: `MESA_DUCKLAKE_IRODS_*` env vars, then the environment file
 * (`MESA_DUCKLAKE_IRODS_ENV_FILE`, default `~/.irods/irods_environment.json`) and its `.irodsA` (the file named by
 * `irods_authentication_file`, else `.irodsA` beside the environment file). Port defaults to 1247.
 */
export const irodsConfig: Config.Config<IrodsConnectionConfig> = Config.all({
  envFile: Config.string("MESA_DUCKLAKE_IRODS_ENV_FILE").pipe(
    Config.withDefault(join(homedir(), ".irods", "irods_environment.json"))
  ),
  host: Config.option(Config.string("MESA_DUCKLAKE_IRODS_HOST")),
  port: Config.option(Config.port("MESA_DUCKLAKE_IRODS_PORT")),
  zone: Config.option(Config.string("MESA_DUCKLAKE_IRODS_ZONE")),
  user: Config.option(Config.string("MESA_DUCKLAKE_IRODS_USER")),
  password: Config.option(Config.redacted("MESA_DUCKLAKE_IRODS_PASSWORD"))
}).pipe(
  Config.mapOrFail((c) => {
    const env = readJson(c.envFile) ?? {}
    const host = Option.getOrUndefined(c.host) ?? env.irods_host
    const zone = Option.getOrUndefined(c.zone) ?? env.irods_zone_name
    const user = Option.getOrUndefined(c.user) ?? env.irods_user_name
    const port = Option.getOrUndefined(c.port) ?? env.irods_port ?? 1247
    if (host === undefined) return Either.left(missing("host", "MESA_DUCKLAKE_IRODS_HOST"))
    if (zone === undefined) return Either.left(missing("zone", "MESA_DUCKLAKE_IRODS_ZONE"))
    if (user === undefined) return Either.left(missing("user", "MESA_DUCKLAKE_IRODS_USER"))
    const password = Option.getOrUndefined(c.password) ?? (() => {
      const authFile = env.irods_authentication_file ?? join(dirname(c.envFile), ".irodsA")
      const pw = readIrodsA(authFile)
      return pw === undefined ? undefined : Redacted.make(pw)
    })()
    if (password === undefined) return Either.left(missing("password", "MESA_DUCKLAKE_IRODS_PASSWORD"))
    return Either.right({ host, port, zone, user, password })
  })
)
