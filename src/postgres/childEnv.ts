/**
 * The environment of every child process we start: built from scratch out of an allow-list, never our own
 * environment passed on (issue 16, defect 7). Whatever secret our process holds — the DSN (`MESA_DUCKLAKE_DSN`,
 * with the catalog password), every other `MESA_DUCKLAKE_*` variable (iRODS, reader and AMQP credentials), an
 * inherited `PGPASSWORD`, and secrets under names we have never heard of (cloud keys, tokens) — stays out of a
 * child's `/proc/<pid>/environ`, without anyone having to list them.
 *
 * - `toolEnv`: PostgreSQL's client tools (`pg_dump`, `pg_restore`: Backup, and the CLI's `doctor`).
 * - `serverEnv`: the embedded PostgreSQL server (`initdb`, `postgres`, which as root run as the `postgres` user) and
 *   the system helpers EmbeddedPostgres runs (`chmod`, `id`, `groupadd`, `useradd`).
 *
 * Spawn with exactly this object (`env: ...` for node:child_process, `Command.env(env, { extendEnv: false })` for
 * @effect/platform's Command): never merged into `process.env`.
 */

/** An environment to pick from (`process.env` by default). */
export type Environment = Readonly<Record<string, string | undefined>>

/**
 * The variables of `source` that `allow` lets through, minus any whose value holds one of `secrets` (a password
 * someone put into, say, `PGOPTIONS`).
 */
export const allowListed = (
  allow: (name: string) => boolean,
  source: Environment = process.env,
  secrets: ReadonlyArray<string> = []
): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(source)) {
    if (v === undefined || !allow(k)) continue
    if (secrets.some((secret) => secret !== "" && v.includes(secret))) continue
    env[k] = v
  }
  return env
}

/**
 * Variables a client tool may take over from our environment: what it needs to start (`PATH`, `LD_LIBRARY_PATH`,
 * Debian's `PGCLUSTER`), find its home (`~/.postgresql/` certificates, `~/.pg_service.conf`, `~/.pgpass`), speak
 * the locale and time zone, and libpq's connection settings (host, port, SSL files, service, timeouts). None of them
 * carries a secret.
 *
 * An allow-list, not a strip-list: the DSN (`MESA_DUCKLAKE_DSN`) and every other `MESA_DUCKLAKE_*` variable (iRODS,
 * reader and AMQP credentials), an inherited `PGPASSWORD`, and any secret under a name we have never heard of (cloud
 * keys, tokens) stay out of the child's `/proc/<pid>/environ` without anyone having to list them.
 */
const INHERITED = new Set([
  "PATH",
  "LD_LIBRARY_PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "TMPDIR",
  "TZ",
  "LANG",
  "LANGUAGE",
  "PGCLUSTER",
  // libpq's environment variables (PostgreSQL 15-17 docs, "Environment Variables"), without PGPASSWORD and PGPASSFILE
  "PGHOST",
  "PGHOSTADDR",
  "PGPORT",
  "PGDATABASE",
  "PGUSER",
  "PGSERVICE",
  "PGSERVICEFILE",
  "PGSYSCONFDIR",
  "PGOPTIONS",
  "PGAPPNAME",
  "PGCONNECT_TIMEOUT",
  "PGCLIENTENCODING",
  "PGDATESTYLE",
  "PGTZ",
  "PGGEQO",
  "PGLOCALEDIR",
  "PGCHANNELBINDING",
  "PGREQUIREAUTH",
  "PGREQUIREPEER",
  "PGREQUIRESSL",
  "PGSSLMODE",
  "PGSSLNEGOTIATION",
  "PGSSLCOMPRESSION",
  "PGSSLCERT",
  "PGSSLCERTMODE",
  "PGSSLKEY",
  "PGSSLROOTCERT",
  "PGSSLCRL",
  "PGSSLCRLDIR",
  "PGSSLSNI",
  "PGSSLMINPROTOCOLVERSION",
  "PGSSLMAXPROTOCOLVERSION",
  "PGGSSENCMODE",
  "PGGSSLIB",
  "PGGSSDELEGATION",
  "PGKRBSRVNAME",
  "PGTARGETSESSIONATTRS",
  "PGLOADBALANCEHOSTS"
])

/** The locale categories (POSIX and glibc's). */
const LOCALE = new Set([
  "LC_ALL",
  "LC_CTYPE",
  "LC_COLLATE",
  "LC_MESSAGES",
  "LC_MONETARY",
  "LC_NUMERIC",
  "LC_TIME",
  "LC_ADDRESS",
  "LC_IDENTIFICATION",
  "LC_MEASUREMENT",
  "LC_NAME",
  "LC_PAPER",
  "LC_TELEPHONE"
])

/** A variable a client tool may inherit from our environment. */
export const inheritable = (name: string): boolean => INHERITED.has(name) || LOCALE.has(name)

/**
 * The environment of PostgreSQL's client tools (`pg_dump`, `pg_restore`), to be spawned with `extendEnv: false`:
 * the allow-listed variables of `source` (our environment), minus any whose value holds one of `secrets` (the
 * catalog password, in case someone put it into, say, `PGOPTIONS`), plus `LC_MESSAGES=C` and, when given, our
 * private password file. The password reaches the tool only through that file: never argv, never the environment.
 */
export const toolEnv = (
  passfile: string | undefined,
  source: Environment = process.env,
  secrets: ReadonlyArray<string> = []
): Record<string, string> => {
  const env = allowListed(inheritable, source, secrets)
  env.LC_MESSAGES = "C"
  if (passfile !== undefined) env.PGPASSFILE = passfile
  return env
}

/**
 * What the embedded PostgreSQL server and its helpers take over from our environment. Its binaries find their own
 * libraries (`RUNPATH $ORIGIN/../lib`) and start with an empty environment; `PATH` lets the helpers (`chmod`, `id`,
 * `useradd`) be found, `LD_LIBRARY_PATH` is kept for a system whose libc or libraries live somewhere unusual, `TZ`
 * is what `initdb` writes as the cluster's default time zone, `TMPDIR` where temporary files go. Not `HOME`, `USER`
 * or `LOGNAME` (as root the server runs as another user, whose home they are not), not libpq's `PG*` (the server is
 * not a client), and not the locale: `LC_ALL=C` sets every category.
 */
const SERVER = new Set(["PATH", "LD_LIBRARY_PATH", "TZ", "TMPDIR"])

/** The environment of `initdb`, `postgres` and EmbeddedPostgres's helpers: `SERVER`'s variables and `LC_ALL=C`. */
export const serverEnv = (source: Environment = process.env): Record<string, string> => {
  const env = allowListed((name) => SERVER.has(name), source)
  env.LC_ALL = "C"
  return env
}
