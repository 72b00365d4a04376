/**
 * mesa-ducklake: the full history of iRODS AVU metadata, as a DuckLake 1.0 catalog in PostgreSQL with Parquet
 * files stored inside each iRODS project.
 *
 * Effect users: provide a layer from `mesa-ducklake/layers/*` and use the `DuckLakeClient` service.
 * Everyone else: `await openDuckLake(options)`.
 */
export * from "./domain.js"
export * from "./errors.js"
export {
  DuckLakeClient,
  type DuckLakeClientService,
  type IngestInput,
  type IngestReport,
  type RecordInput,
  type RecordError
} from "./DuckLakeClient.js"
export { type Agent, type CallerView, DuckLakeAccess, type DuckLakeAccessService } from "./DuckLakeAccess.js"
export * as DuckLakeAccessLayers from "./DuckLakeAccess.js"
export { type Caller, Permissions, type PermissionsService } from "./Permissions.js"
export * as PermissionsLayers from "./Permissions.js"
export * as DuckLakeClientLayers from "./DuckLakeClient.js"
export { Catalog, type CatalogConfig } from "./Catalog.js"
export { LakeStorage, type LakeStorageService, type Checksum, parseIrodsChecksum, formatIrodsChecksum } from "./LakeStorage.js"
export { type VerifyProblem, type VerifyProblemKind, type VerifyReport } from "./verify.js"
export * as MountedStorage from "./storage/MountedStorage.js"
export { DuckDb } from "./DuckDb.js"
export { LocalCache } from "./LocalCache.js"
export { EmbeddedPostgres } from "./EmbeddedPostgres.js"
export { openDuckLake, type DuckLake, type OpenOptions } from "./facade.js"
export { exportProject, type ExportReport } from "./export.js"
export { ProjectDiscovery, NotMesaEnabled, MARKER_ATTRIBUTE, type ProjectDiscoveryService } from "./discovery.js"
export * as Discovery from "./discovery.js"
export { detectDrift, recordDrift, DRIFT_SOURCE, type DriftReport, type PathDrift } from "./drift.js"
export * as Telemetry from "./telemetry.js"
export { Backup } from "./Backup.js"
export * as BackupErrors from "./backupErrors.js"
