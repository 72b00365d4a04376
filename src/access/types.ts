/**
 * The shapes of the caller's view of the client: the agent a service acts as, the inputs a caller gives, and
 * `CallerView` itself, whose errors are the client's plus the two of access control (`Denied`).
 */
import type { Effect } from "effect"
import type {
  AsOfOptions,
  Avu,
  ChangeRow,
  HistoryFilter,
  NotRecorded,
  PathDiff,
  Project,
  RecordResult,
  Snapshot
} from "../core/domain.js"
import type { DuckLakeClientService, IngestReport, RecordError } from "../client/DuckLakeClient.js"
import type { AccessCheckFailed, PermissionDenied } from "../core/errors.js"
import type { Caller } from "./Permissions.js"

/** The error channel of a client method (or effect). */
export type Err<F> = F extends (...args: any) => Effect.Effect<any, infer E, any> ? E : F extends Effect.Effect<any, infer E, any> ? E
  : never
/** What access control adds to a method's errors. */
export type Denied = PermissionDenied | AccessCheckFailed

/** A service acting for the caller (mesa-mcp's service account, a rule engine). */
export interface Agent {
  /** The service's own iRODS identity, `user#zone`: recorded as the actor. */
  readonly identity: string
  /** The tool or agent name, recorded as each change's `source`. */
  readonly tool?: string
}

export interface CallerRecordInput {
  readonly projectId: string
  readonly changes: ReadonlyArray<unknown>
  readonly note?: string
  readonly idempotencyKey?: string
}

export interface CallerRenameInput {
  readonly projectId: string
  readonly from: string
  readonly to: string
  readonly targetType?: "data_object" | "collection"
  readonly ts?: unknown
  readonly objectId?: number
  readonly note?: string
  readonly idempotencyKey?: string
}

/** The client as one caller sees it. */
export interface CallerView {
  readonly caller: Caller
  readonly registerProject: (input: { readonly irodsPath: string; readonly zone?: string }) => Effect.Effect<
    Project,
    Err<DuckLakeClientService["registerProject"]> | Denied
  >
  readonly getProject: (projectId: string) => Effect.Effect<Project, Err<DuckLakeClientService["getProject"]> | Denied>
  readonly findProjectByPath: (
    irodsPath: string
  ) => Effect.Effect<Project, Err<DuckLakeClientService["findProjectByPath"]> | Denied>
  readonly listProjects: Effect.Effect<ReadonlyArray<Project>, Err<DuckLakeClientService["listProjects"]> | Denied>
  readonly recordChanges: (input: CallerRecordInput) => Effect.Effect<RecordResult | NotRecorded, RecordError | Denied>
  readonly ingestChanges: (
    input: Omit<CallerRecordInput, "changes"> & {
      readonly changes: Iterable<unknown> | AsyncIterable<unknown>
      readonly snapshotSize?: number
    }
  ) => Effect.Effect<IngestReport | NotRecorded, RecordError | Denied>
  readonly recordRename: (input: CallerRenameInput) => Effect.Effect<RecordResult | NotRecorded, RecordError | Denied>
  readonly getAvus: (
    projectId: string,
    irodsPath: string
  ) => Effect.Effect<ReadonlyArray<Avu>, Err<DuckLakeClientService["getAvus"]> | Denied>
  readonly getAvusAsOf: (
    projectId: string,
    irodsPath: string,
    at: unknown,
    options?: AsOfOptions
  ) => Effect.Effect<ReadonlyArray<Avu>, Err<DuckLakeClientService["getAvusAsOf"]> | Denied>
  readonly getHistory: (
    projectId: string,
    filter?: HistoryFilter
  ) => Effect.Effect<ReadonlyArray<ChangeRow>, Err<DuckLakeClientService["getHistory"]> | Denied>
  readonly listSnapshots: (
    projectId: string,
    options?: { readonly limit?: number }
  ) => Effect.Effect<ReadonlyArray<Snapshot>, Err<DuckLakeClientService["listSnapshots"]> | Denied>
  readonly diff: (
    projectId: string,
    fromSnapshot: number,
    toSnapshot: number
  ) => Effect.Effect<ReadonlyArray<PathDiff>, Err<DuckLakeClientService["diff"]> | Denied>
  readonly getSnapshotChanges: (
    projectId: string,
    snapshotId: number
  ) => Effect.Effect<ReadonlyArray<ChangeRow>, Err<DuckLakeClientService["getSnapshotChanges"]> | Denied>
}
