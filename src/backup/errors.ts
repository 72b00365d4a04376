/**
 * Errors of backup, restore and rebuild (everything under `src/backup/`). Like every error of the library they never
 * carry the catalog password: commands are described by their argv (which holds none) and stderr is scrubbed.
 */
import { Schema } from "effect"

const Cause = Schema.optional(Schema.Defect)

/** `pg_dump` / `pg_restore` could not be run. `hint` says what to install or configure. */
export class BackupToolMissing extends Schema.TaggedError<BackupToolMissing>()("BackupToolMissing", {
  tool: Schema.String,
  /** The path or name we tried. */
  tried: Schema.String,
  hint: Schema.String,
  cause: Cause
}) {
  override get message() {
    return `${this.tool} not found (tried ${this.tried}): ${this.hint}`
  }
}

/** The tool is older than the catalog server: pg_dump cannot dump a newer server. */
export class BackupToolTooOld extends Schema.TaggedError<BackupToolTooOld>()("BackupToolTooOld", {
  tool: Schema.String,
  found: Schema.String,
  server: Schema.String,
  hint: Schema.String
}) {
  override get message() {
    return `${this.tool} ${this.found} is older than the catalog server (PostgreSQL ${this.server}): ${this.hint}`
  }
}

/** The tool ran and failed (non-zero exit). `stderr` is the tail of its output, password scrubbed. */
export class BackupToolFailed extends Schema.TaggedError<BackupToolFailed>()("BackupToolFailed", {
  tool: Schema.String,
  exitCode: Schema.Number,
  stderr: Schema.String
}) {
  override get message() {
    return `${this.tool} exited with ${this.exitCode}: ${this.stderr.trim().split("\n").slice(-3).join(" | ")}`
  }
}

/** A dump that fails verification: unreadable archive, wrong content, or a checksum that does not match. */
export class BackupCorrupt extends Schema.TaggedError<BackupCorrupt>()("BackupCorrupt", {
  path: Schema.String,
  reason: Schema.String,
  cause: Cause
}) {
  override get message() {
    return `backup ${this.path} is not usable: ${this.reason}`
  }
}

/** No usable backup of that project in its `backups/` collection (or not the one asked for). */
export class BackupNotFound extends Schema.TaggedError<BackupNotFound>()("BackupNotFound", {
  collection: Schema.String,
  name: Schema.optional(Schema.String),
  /** Backups that were found but failed verification, newest first. */
  rejected: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
}) {
  override get message() {
    const which = this.name === undefined ? "no usable backup" : `backup ${this.name} not found`
    const rejected = this.rejected.length === 0 ? "" : ` (rejected: ${this.rejected.join(", ")})`
    return `${which} in ${this.collection}${rejected}`
  }
}

/**
 * Restore or rebuild would overwrite an existing catalog (pass `force` to replace it), or the project's root is
 * registered to another project.
 */
export class CatalogNotEmpty extends Schema.TaggedError<CatalogNotEmpty>()("CatalogNotEmpty", {
  projectId: Schema.String,
  schema: Schema.String,
  reason: Schema.Literal("schema-exists", "root-registered-to-another-project"),
  detail: Schema.optional(Schema.String)
}) {
  override get message() {
    return this.reason === "schema-exists"
      ? `the catalog of project ${this.projectId} (schema ${this.schema}) exists and is not empty; pass force to replace it`
      : `cannot recreate project ${this.projectId}: ${this.detail ?? "its root is registered to another project"}`
  }
}

/** Rebuild found nothing it can trust to name the project (no marker, no readable file of ours). */
export class RebuildError extends Schema.TaggedError<RebuildError>()("RebuildError", {
  root: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot rebuild the catalog of ${this.root}: ${this.reason}`
  }
}
