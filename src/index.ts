/**
 * mesa-ducklake: the full history of iRODS AVU metadata, as a DuckLake 1.0 catalog in PostgreSQL with Parquet
 * files stored inside each iRODS project.
 *
 * Effect users: provide a layer from `mesa-ducklake/layers/*` and use the `DuckLakeClient` service.
 * Everyone else: `await openDuckLake(options)`.
 *
 * OpenTelemetry export lives in its own entry point, `mesa-ducklake/telemetry` (`src/telemetry.ts`): its SDK takes
 * longer to load than the rest of the package, so importing this module never loads it.
 */
export * from "./core/domain.js"
export * from "./core/errors.js"
export {
  DuckLakeClient,
  type DuckLakeClientService,
  type IngestInput,
  type IngestReport,
  type RecordInput,
  type RecordError
} from "./client/DuckLakeClient.js"
export { type Agent, type CallerView, DuckLakeAccess, type DuckLakeAccessService } from "./access/DuckLakeAccess.js"
export * as DuckLakeAccessLayers from "./access/DuckLakeAccess.js"
export { type Caller, Permissions, type PermissionsService } from "./access/Permissions.js"
export * as PermissionsLayers from "./access/Permissions.js"
export * as DuckLakeClientLayers from "./client/DuckLakeClient.js"
export { Catalog, type CatalogConfig } from "./catalog/Catalog.js"
export { LakeStorage, type LakeStorageService, type Checksum, parseIrodsChecksum, formatIrodsChecksum } from "./storage/LakeStorage.js"
export { type VerifyProblem, type VerifyProblemKind, type VerifyReport } from "./integrity/verify.js"
export * as MountedStorage from "./storage/MountedStorage.js"
export { DuckDb } from "./duckdb/DuckDb.js"
export { LocalCache } from "./storage/LocalCache.js"
export { EmbeddedPostgres } from "./postgres/EmbeddedPostgres.js"
export { openDuckLake, type DuckLake, type OpenOptions } from "./facade.js"
export { exportProject, type ExportReport } from "./operations/export.js"
export { ProjectDiscovery, NotMesaEnabled, MARKER_ATTRIBUTE, type ProjectDiscoveryService } from "./operations/discovery.js"
export * as Discovery from "./operations/discovery.js"
export { detectDrift, recordDrift, DRIFT_SOURCE, type DriftReport, type PathDrift } from "./operations/drift.js"
export { Backup } from "./backup/Backup.js"
export * as BackupErrors from "./backup/errors.js"
export { renderReport, renderReportAsync, ReportError, type HistoryReport, type ReportOptions } from "./report/Report.js"
