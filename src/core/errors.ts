/**
 * Every failure a caller of mesa-ducklake can see, as tagged errors.
 *
 * The split that matters most: `CatalogUnavailable` (we could not reach the catalog at all, or no catalog is
 * configured) is a different tag from the write failures (`LakeWriteError`, `ChecksumMismatch`, `StorageError`),
 * so a caller can decide "retry later" versus "this write failed" by tag alone.
 *
 * Messages never contain a password: connection details are reduced to host/port/database before they land here.
 */
import { Schema } from "effect"

const Cause = Schema.optional(Schema.Defect)

/** A change, batch or argument was refused before anything was written. */
export class InvalidChange extends Schema.TaggedError<InvalidChange>()("InvalidChange", {
  /** Which field was wrong (`irodsPath`, `attribute`, `changes`, `timestamp`, ...). */
  field: Schema.String,
  reason: Schema.String,
  /** Index of the offending change in its batch, when the error is about one change. */
  index: Schema.optional(Schema.Number)
}) {
  override get message() {
    const where = this.index === undefined ? "" : ` (change #${this.index})`
    return `invalid ${this.field}${where}: ${this.reason}`
  }
}

/** No such project (or, with access control, none the caller may see). */
export class ProjectNotFound extends Schema.TaggedError<ProjectNotFound>()("ProjectNotFound", {
  projectId: Schema.optional(Schema.String),
  irodsPath: Schema.optional(Schema.String)
}) {
  override get message() {
    return this.projectId !== undefined
      ? `project ${this.projectId} not found`
      : `no registered project contains ${this.irodsPath ?? "that path"}`
  }
}

/** Registering a root that equals, contains or lies inside another project's root. */
export class ProjectConflict extends Schema.TaggedError<ProjectConflict>()("ProjectConflict", {
  irodsPath: Schema.String,
  existingProjectId: Schema.String,
  existingRoot: Schema.String,
  relation: Schema.Literal("duplicate", "nested-inside", "contains")
}) {
  override get message() {
    const how = this.relation === "duplicate"
      ? "is already registered"
      : this.relation === "nested-inside"
      ? "lies inside"
      : "contains"
    return `project root ${this.irodsPath} ${how} project ${this.existingProjectId} (${this.existingRoot})`
  }
}

/** The project is archived: its history can be read but not extended. */
export class ProjectArchived extends Schema.TaggedError<ProjectArchived>()("ProjectArchived", {
  projectId: Schema.String
}) {
  override get message() {
    return `project ${this.projectId} is archived and refuses writes`
  }
}

/** The requested snapshot does not exist (or is not committed) in that project. */
export class SnapshotNotFound extends Schema.TaggedError<SnapshotNotFound>()("SnapshotNotFound", {
  projectId: Schema.String,
  snapshotId: Schema.Number
}) {
  override get message() {
    return `snapshot ${this.snapshotId} not found in project ${this.projectId}`
  }
}

/**
 * The catalog cannot be used, or none is configured (modes B and C). Nothing was written to it. `reason` tells which:
 * `not-configured` (no DSN), `unreachable` (refused, host not found, connection lost), `timeout` (no answer in time),
 * `authentication-failed` (PostgreSQL refused the login: SQLSTATE 28P01/28000, a wrong user or password) or
 * `database-missing` (3D000: the DSN names a database that does not exist). The first two are worth a retry later;
 * the last two need the DSN fixed.
 */
export class CatalogUnavailable extends Schema.TaggedError<CatalogUnavailable>()("CatalogUnavailable", {
  reason: Schema.Literal("not-configured", "unreachable", "timeout", "authentication-failed", "database-missing"),
  /** host:port/database, never the password. */
  target: Schema.optional(Schema.String),
  /** The login PostgreSQL refused (`authentication-failed`). */
  user: Schema.optional(Schema.String),
  /** What the network said (`connection refused`, `host not found`, ...), when known. */
  detail: Schema.optional(Schema.String),
  cause: Cause
}) {
  override get message() {
    const target = this.target ?? ""
    const detail = this.detail === undefined ? "" : ` (${this.detail})`
    switch (this.reason) {
      case "not-configured":
        return "no catalog is configured (MESA_DUCKLAKE_DSN is blank): history is not recorded in this mode"
      case "timeout":
        return `catalog ${target} is not answering (timeout${this.detail === undefined ? "" : `: ${this.detail}`})`
      case "authentication-failed":
        return `catalog ${target} refused the login${this.user === undefined ? "" : ` of user "${this.user}"`}: ` +
          `authentication failed (check the user and password of the catalog DSN)`
      case "database-missing":
        return `catalog ${target}: that database does not exist on the server (check the database name of the catalog DSN)`
      case "unreachable":
        return `catalog ${target} is unreachable${detail}`
    }
  }
}

/**
 * The catalog DSN cannot be used as written: neither a `postgresql://` URL nor libpq `key=value` pairs, a key libpq
 * does not know, a bad port. Nothing was attempted. The message names no part of the DSN but a key's name.
 */
export class InvalidDsn extends Schema.TaggedError<InvalidDsn>()("InvalidDsn", {
  reason: Schema.String
}) {
  override get message() {
    return `invalid catalog DSN (MESA_DUCKLAKE_DSN): ${this.reason}`
  }
}

/** The catalog answered, but an operation on it failed (a bug or a manual change to its tables). */
export class CatalogError extends Schema.TaggedError<CatalogError>()("CatalogError", {
  operation: Schema.String,
  cause: Cause
}) {
  override get message() {
    const detail = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `catalog operation ${this.operation} failed${detail}`
  }
}

/** The schema is not a mesa-ducklake catalog, or is of a DuckLake/migration version we do not understand. */
export class CatalogSchemaMismatch extends Schema.TaggedError<CatalogSchemaMismatch>()("CatalogSchemaMismatch", {
  schema: Schema.String,
  found: Schema.String,
  expected: Schema.String
}) {
  override get message() {
    return `schema ${this.schema} is not a catalog we can use: found ${this.found}, expected ${this.expected}`
  }
}

/** Lake storage (the iRODS mount or the native client) failed. */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  operation: Schema.String,
  path: Schema.String,
  reason: Schema.Literal("NotFound", "AlreadyExists", "PermissionDenied", "Unavailable", "Timeout", "NoSpace", "Unknown"),
  /** The iRODS error name, when the native client produced the error (e.g. `USER_FILE_DOES_NOT_EXIST`). */
  irodsError: Schema.optional(Schema.String),
  cause: Cause
}) {
  override get message() {
    const irods = this.irodsError === undefined ? "" : ` [${this.irodsError}]`
    return `storage ${this.operation} ${this.path} failed: ${this.reason}${irods}`
  }
}

/** A file's checksum after upload differs from the local one, or could not be verified at all. */
export class ChecksumMismatch extends Schema.TaggedError<ChecksumMismatch>()("ChecksumMismatch", {
  path: Schema.String,
  expected: Schema.String,
  actual: Schema.String
}) {
  override get message() {
    return `checksum of ${this.path} is ${this.actual || "<none>"}, expected ${this.expected}`
  }
}

/** Writing a snapshot failed at a named step; the snapshot is not committed. */
export class LakeWriteError extends Schema.TaggedError<LakeWriteError>()("LakeWriteError", {
  projectId: Schema.String,
  snapshotId: Schema.optional(Schema.Number),
  step: Schema.Literal("reserve", "write-parquet", "push", "verify", "commit", "cleanup", "recover"),
  cause: Cause
}) {
  override get message() {
    const snap = this.snapshotId === undefined ? "" : ` snapshot ${this.snapshotId}`
    const detail = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `writing${snap} of project ${this.projectId} failed at ${this.step}${detail}`
  }
}

/** The same idempotency key was used for a different batch. */
export class IdempotencyConflict extends Schema.TaggedError<IdempotencyConflict>()("IdempotencyConflict", {
  projectId: Schema.String,
  idempotencyKey: Schema.String,
  snapshotId: Schema.Number
}) {
  override get message() {
    return `idempotency key ${this.idempotencyKey} was already used for a different batch (snapshot ${this.snapshotId})`
  }
}

/** Errors of writes: anything that means "this batch was not committed", other than the catalog being down. */
export type WriteFailure = LakeWriteError | ChecksumMismatch | StorageError | CatalogError

/** The caller may not do this in iRODS (write needs modify on the path; registering needs own on the root). */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>()("PermissionDenied", {
  caller: Schema.String,
  irodsPath: Schema.String,
  needed: Schema.Literal("read", "modify", "own")
}) {
  override get message() {
    return `${this.caller} needs ${this.needed} permission on ${this.irodsPath}`
  }
}

/** iRODS could not be asked what the caller may do; nothing is answered or written (fail closed). */
export class AccessCheckFailed extends Schema.TaggedError<AccessCheckFailed>()("AccessCheckFailed", {
  irodsPath: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message() {
    return `cannot check permissions on ${this.irodsPath} in iRODS`
  }
}

/**
 * `grantProjectReader` refused a role name: it exists and is not our reader role for this very project (another
 * project's reader, the service login, or any role we did not create), or a rotation was asked of a role that is not
 * ours. Nothing was changed.
 */
export class ReaderRoleConflict extends Schema.TaggedError<ReaderRoleConflict>()("ReaderRoleConflict", {
  role: Schema.String,
  projectId: Schema.String,
  reason: Schema.Literal("exists-not-ours", "other-project", "exists-use-rotate", "not-a-reader", "unsafe-attributes")
}) {
  override get message() {
    switch (this.reason) {
      case "exists-not-ours":
        return `role ${this.role} already exists and was not created by mesa-ducklake as a reader: refused`
      case "other-project":
        return `role ${this.role} is the reader of another project: refused`
      case "exists-use-rotate":
        return `role ${this.role} is already this project's reader: pass rotate to change its password`
      case "not-a-reader":
        return `role ${this.role} is not a reader of project ${this.projectId}: nothing to rotate`
      case "unsafe-attributes":
        return `role ${this.role} has memberships or attributes a reader never has: refused`
    }
  }
}

/** Reading a committed file failed (missing, truncated, unreadable or corrupt): nothing was answered. */
export class LakeReadError extends Schema.TaggedError<LakeReadError>()("LakeReadError", {
  projectId: Schema.String,
  /** The file, relative to the project's lake collection when known (`main/avu_changes/…`). */
  file: Schema.optional(Schema.String),
  reason: Schema.Literal("missing", "corrupt", "unreadable"),
  cause: Cause
}) {
  override get message() {
    const detail = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `reading ${this.file ?? "the lake"} of project ${this.projectId} failed (${this.reason})${detail}`
  }
}
