/**
 * Shim: rebuilding a catalog from storage now lives in `backup/rebuild/` (`scan.ts` reads storage, `plan.ts`
 * decides, `write.ts` writes the new lake schema). Kept so that no importer has to change yet; to be removed when
 * imports are rewritten.
 */
export {
  type PlannedCompaction,
  type PlannedSnapshot,
  type RebuildPlan,
  type RebuildProblem,
  schemaOf
} from "../backup/rebuild/plan.js"
export { type ScanOptions, scanLake } from "../backup/rebuild/scan.js"
export { conflictingProject, schemaInUse, writePlan } from "../backup/rebuild/write.js"
