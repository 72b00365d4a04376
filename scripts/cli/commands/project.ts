/**
 * `project register|list|show|find|grant-reader`: the registry, and read-only catalog roles for analysts;
 * `attach-sql`: the DuckDB statements that open a project's history. `find --discover` finds the project the way
 * mesa-mcp does — the `mesa.enabled` marker on the path or a parent collection, in iRODS — and registers it when
 * new. Handlers: `../run/project.ts`, loaded when run.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { actor, json, lazy, pathArg, projectArg } from "../options.js"

const run = () => import("../run/project.js")

export const registerConfig = {
  actor,
  zone: Options.text("zone").pipe(Options.withDescription("iRODS zone (default: the path's first segment)"), Options.optional),
  json,
  path: pathArg
}

const register = Command.make("register", registerConfig, lazy(run, (m) => m.register)).pipe(
  Command.withDescription("register a project root (a collection); nested or duplicate roots are refused")
)

const list = Command.make("list", { json }, lazy(run, (m) => m.list)).pipe(Command.withDescription("list registered projects"))

export const showConfig = { json, project: projectArg }

const show = Command.make("show", showConfig, lazy(run, (m) => m.show)).pipe(
  Command.withDescription("show a project (by id, or by any path inside it)")
)

export const findConfig = {
  discover: Options.boolean("discover").pipe(
    Options.withDescription("find the root by the mesa.enabled marker in iRODS (path and parents) and register it if new")
  ),
  actor,
  json,
  path: pathArg
}

const find = Command.make("find", findConfig, lazy(run, (m) => m.find)).pipe(
  Command.withDescription("the registered project containing a path (--discover: as mesa-mcp finds it)")
)

/** Where the reader sees the zone: shared by `attach-sql` and `project grant-reader`. */
export const mountOptions = {
  mount: Options.text("mount").pipe(
    Options.withDescription(
      "where the reader's machine mounts the zone (the directory holding --mount-prefix); default $MESA_DUCKLAKE_MOUNT_ROOT"
    ),
    Options.optional
  ),
  mountPrefix: Options.text("mount-prefix").pipe(
    Options.withDescription("the iRODS path the mount stands for (default $MESA_DUCKLAKE_MOUNT_PREFIX, else /)"),
    Options.optional
  )
}

export const grantReaderConfig = {
  role: Options.text("role").pipe(
    Options.withDescription("PostgreSQL role to create for this project only (a-z, 0-9, _); an existing role is refused")
  ),
  password: Options.redacted("password").pipe(
    Options.withDescription("its password (12+ characters); default: MESA_DUCKLAKE_READER_PASSWORD"),
    Options.optional
  ),
  rotate: Options.boolean("rotate").pipe(
    Options.withDescription("change the password of this project's existing reader role (one this command created)")
  ),
  ...mountOptions,
  json,
  project: projectArg
}

const grantReader = Command.make("grant-reader", grantReaderConfig, lazy(run, (m) => m.grantReader)).pipe(
  Command.withDescription(
    "a read-only PostgreSQL role for one project's lake schema; prints the DuckDB ATTACH for it (see attach-sql); " +
      "--rotate changes its password"
  )
)

export const project = Command.make("project").pipe(
  Command.withDescription("register, list, show and find projects, and grant read-only catalog roles"),
  Command.withSubcommands([register, list, show, find, grantReader])
)

export const attachSqlConfig = {
  ...mountOptions,
  role: Options.text("role").pipe(
    Options.withDescription("the catalog user in the ATTACH (a reader role from project grant-reader); default the DSN's user"),
    Options.optional
  ),
  python: Options.text("python").pipe(
    Options.withDescription(
      "a Python with the duckdb-extension-ducklake and -postgres-scanner wheels, for the offline LOAD lines " +
        "(default $MESA_DUCKLAKE_PYTHON, else python3; without them the lines INSTALL online)"
    ),
    Options.optional
  ),
  json,
  project: projectArg
}

export const attachSql = Command.make("attach-sql", attachSqlConfig, lazy(run, (m) => m.attachSql)).pipe(
  Command.withDescription(
    "print the DuckDB statements that open a project's history read-only: the extensions' LOAD lines (offline, from " +
      "the PyPI wheels) and the ATTACH with METADATA_SCHEMA, DATA_PATH on your mount and OVERRIDE_DATA_PATH; " +
      "run it as printed (the password from PGPASSWORD or ~/.pgpass)"
  )
)
