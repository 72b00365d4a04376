/**
 * The DuckDB statements that open one project's history read-only: the offline `LOAD` lines (the extension files
 * the PyPI wheels carry) or the online `INSTALL`/`LOAD`, and the `ATTACH` with `METADATA_SCHEMA`, `DATA_PATH`
 * (the project's `.mesa/ducklake/` as it appears on the reader's mount), `OVERRIDE_DATA_PATH true` (the catalog's
 * stored data path is the iRODS one: without the override DuckDB refuses a different DATA_PATH) and `READ_ONLY`.
 * Without `DATA_PATH` counts still answer from statistics but reading rows fails, so every ATTACH the CLI prints
 * (`attach-sql`, `project grant-reader`) comes from here.
 *
 * The password is never part of it: libpq takes it from `PGPASSWORD` or `~/.pgpass`.
 */

/** A libpq keyword value, quoted when it must be. */
const conninfoValue = (v: string) => (v === "" || /[\s'\\]/.test(v) ? `'${v.replace(/[\\']/g, (c) => `\\${c}`)}'` : v)

const KV = /([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)/g

/**
 * The catalog's connection parameters from a DSN (`postgresql://…` or libpq `key=value`), without the password, as
 * a libpq conninfo for `ATTACH 'ducklake:postgres:<conninfo>'`; `user` replaces the DSN's user when given.
 */
export const catalogConninfo = (dsn: string, user?: string): string => {
  const pairs: Array<readonly [string, string]> = []
  if (/^postgres(ql)?:\/\//i.test(dsn.trim())) {
    const u = new URL(dsn.trim())
    const host = decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, "$1")
    if (host !== "") pairs.push(["host", host])
    if (u.port !== "") pairs.push(["port", u.port])
    const db = decodeURIComponent(u.pathname.replace(/^\//, ""))
    if (db !== "") pairs.push(["dbname", db])
    if (u.username !== "") pairs.push(["user", decodeURIComponent(u.username)])
    for (const [k, v] of u.searchParams) pairs.push([k, v])
  } else {
    for (const m of dsn.matchAll(KV)) {
      const raw = m[2] ?? ""
      pairs.push([m[1]!, raw.startsWith("'") ? raw.slice(1, -1).replace(/\\(.)/g, "$1") : raw])
    }
  }
  const kept = pairs.filter(([k]) => k !== "password" && !(user !== undefined && k === "user"))
  if (user !== undefined) kept.push(["user", user])
  return kept.map(([k, v]) => `${k}=${conninfoValue(v)}`).join(" ")
}

/** An SQL string literal. */
export const sqlText = (s: string) => `'${s.replace(/'/g, "''")}'`

/** The extension files of the `duckdb-extension-postgres-scanner` and `duckdb-extension-ducklake` wheels. */
export interface WheelExtensions {
  readonly duckdb: string
  readonly postgresScanner: string
  readonly ducklake: string
}

export interface AttachInput {
  readonly conninfo: string
  readonly metadataSchema: string
  /** The project's `.mesa/ducklake/` on the reader's machine (a trailing `/` is added). */
  readonly dataPath: string
  readonly alias?: string
}

/** `ATTACH 'ducklake:postgres:…' AS lake (METADATA_SCHEMA …, DATA_PATH …, OVERRIDE_DATA_PATH true, READ_ONLY);` */
export const attachStatement = (a: AttachInput): string =>
  `ATTACH ${sqlText(`ducklake:postgres:${a.conninfo}`)} AS ${a.alias ?? "lake"}\n` +
  `  (METADATA_SCHEMA ${sqlText(a.metadataSchema)}, DATA_PATH ${sqlText(a.dataPath.replace(/\/*$/, "/"))},\n` +
  `   OVERRIDE_DATA_PATH true, READ_ONLY);`

/** The lines that make the extensions available: the wheels' files when found (offline), else INSTALL + LOAD. */
export const loadLines = (wheels: WheelExtensions | undefined): ReadonlyArray<string> =>
  wheels === undefined
    ? [
      "-- online: DuckDB downloads the extensions (offline: pip install duckdb-extension-ducklake and",
      "-- duckdb-extension-postgres-scanner of your DuckDB's version, then pass --python to find their files)",
      "INSTALL postgres; INSTALL ducklake;",
      "LOAD postgres; LOAD ducklake;"
    ]
    : [
      `-- offline: the extension files of the PyPI wheels, for DuckDB ${wheels.duckdb}`,
      `LOAD ${sqlText(wheels.postgresScanner)};`,
      `LOAD ${sqlText(wheels.ducklake)};`
    ]

/**
 * The data path on a mount: `mountRoot` holds the zone's logical `prefix` (as `MESA_DUCKLAKE_MOUNT_ROOT` and
 * `MESA_DUCKLAKE_MOUNT_PREFIX`); undefined when the lake path is not under the prefix.
 */
export const dataPathOnMount = (ducklakePath: string, mountRoot: string, prefix: string): string | undefined => {
  const p = prefix.replace(/\/+$/, "")
  if (p !== "" && ducklakePath !== p && !ducklakePath.startsWith(`${p}/`)) return undefined
  return `${mountRoot.replace(/\/+$/, "")}${ducklakePath.slice(p.length)}/`
}

/** The whole script: a comment naming the project, the extension lines, the ATTACH. */
export const attachScript = (input: AttachInput & {
  readonly projectId: string
  readonly root: string
  readonly wheels: WheelExtensions | undefined
}): string =>
  [
    `-- mesa-ducklake: the history of project ${input.projectId} (${input.root}), read-only`,
    "-- the password comes from PGPASSWORD or ~/.pgpass, never from this text",
    ...loadLines(input.wheels),
    attachStatement(input),
    "-- then: SELECT * FROM lake.avu_changes LIMIT 10;   FROM lake.snapshots();"
  ].join("\n")

/** Python code printing the wheels' extension files (for the DuckDB version installed beside them) as JSON. */
export const FIND_WHEELS_PY = `
import importlib.util, json, pathlib, sys
import duckdb
out = {"duckdb": duckdb.__version__}
for key, package, name in (("postgresScanner", "duckdb_extension_postgres_scanner", "postgres_scanner"),
                           ("ducklake", "duckdb_extension_ducklake", "ducklake")):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{package} is not installed")
    f = pathlib.Path(list(spec.submodule_search_locations)[0]) / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not f.is_file():
        sys.exit(f"{package} has no extension for duckdb {duckdb.__version__}")
    out[key] = str(f)
print(json.dumps(out))
`
