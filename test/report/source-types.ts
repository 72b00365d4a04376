/**
 * Checked by `tsc` (not run): `renderReport` takes the client itself and a caller's `DuckLakeAccess` view, and its
 * error type is the client's read errors plus `ReportError` (a view's adds its access errors).
 */
import type { Effect } from "effect"
import type { CallerView } from "../../src/access/DuckLakeAccess.js"
import type { DuckLakeClientService } from "../../src/client/DuckLakeClient.js"
import type { ReadError } from "../../src/client/context.js"
import { renderReport, type ReportError } from "../../src/report/Report.js"

declare const client: DuckLakeClientService
declare const view: CallerView

export const fromClient: Effect.Effect<unknown, ReadError | ReportError> = renderReport(client, "/zone/p/x")
export const fromView: Effect.Effect<unknown, { readonly _tag: string }> = renderReport(view, "/zone/p/x")
