/**
 * A bulk ingest's bound on the V8 heap. V8 lets the old generation grow to about four times what survived its last
 * full collection before it collects again, when a process allocates fast; an ingest promotes every change it holds
 * across a snapshot (the decoded changes, their rows, the rows waiting for their index apply), so a 1M-change
 * ingest's heap swung between ~50 MB live and ~210 MB, most of it garbage (`--trace-gc` in the bulk-ingest
 * benchmark). Between snapshots, the ingest asks here for a full collection once the heap has grown by `headroom`
 * since the last one; with ~50 MB live such a collection takes ~35 ms, and the next is not asked for before 19 times
 * as long has passed, so collections take at most 5% of the ingest's time, whatever the host's heap.
 *
 * Node offers a full collection only as `gc`, which `--expose-gc` installs in new contexts: the flag is set for the
 * moment a private context is made (as Jest's leak detector does) and cleared again, so the host's own globals are
 * untouched. Where that fails, the budget does nothing and V8 decides, as before.
 *
 * Owns: `makeHeapBudget`, `DEFAULT_INGEST_HEAP_HEADROOM_MB`.
 */
import * as v8 from "node:v8"
import * as vm from "node:vm"

/**
 * Growth of the heap (MB) between the collections a bulk ingest asks for (`MESA_DUCKLAKE_INGEST_HEAP_HEADROOM_MB`).
 * A 1M-change ingest (bulk-ingest benchmark): 32 MB, peak RSS 173-238 MB and ~100k changes/s; 48 MB, 180-222 MB
 * and ~107k/s; 64 MB, 194-211 MB and ~109k/s; none, 356-406 MB.
 */
export const DEFAULT_INGEST_HEAP_HEADROOM_MB = 48

/** At most this share of an ingest's time goes to the collections it asks for. */
const MAX_SHARE = 0.05

let collect: (() => void) | null | undefined

/** Node's full collection (`gc`), or null where it cannot be had. */
const fullCollection = (): (() => void) | null => {
  if (collect !== undefined) return collect
  const exposed = (globalThis as { gc?: unknown }).gc
  if (typeof exposed === "function") return (collect = exposed as () => void)
  let set = false
  try {
    v8.setFlagsFromString("--expose-gc")
    set = true
    const gc: unknown = vm.runInNewContext("gc")
    collect = typeof gc === "function" ? (gc as () => void) : null
  } catch {
    collect = null
  } finally {
    if (set) v8.setFlagsFromString("--no-expose-gc")
  }
  return collect
}

const usedHeap = () => v8.getHeapStatistics().used_heap_size

export interface HeapBudget {
  /** Asks for a full collection if the heap has grown by the headroom since the last one and its turn has come. */
  readonly check: () => void
  /**
   * At the ingest's end: collects what it left behind if the heap grew by a quarter of the headroom, its turn come
   * or not (the applies still running and the reads that follow start from the live heap).
   */
  readonly end: () => void
  /** Collections asked for so far, and their total time (ms). */
  readonly collections: () => { readonly count: number; readonly ms: number }
}

/** A budget of `headroomMb` megabytes of heap growth between collections (0 or less: never asks). */
export const makeHeapBudget = (headroomMb: number): HeapBudget => {
  const headroom = headroomMb * 1024 * 1024
  let base = usedHeap()
  let notBefore = 0
  let count = 0
  let ms = 0
  const run = (start: number) => {
    const gc = fullCollection()
    if (gc === null) return
    gc()
    const took = performance.now() - start
    count++
    ms += took
    base = usedHeap()
    notBefore = start + took / MAX_SHARE
  }
  return {
    check: () => {
      if (!(headroom > 0) || usedHeap() < base + headroom) return
      const start = performance.now()
      if (start >= notBefore) run(start)
    },
    end: () => {
      if (headroom > 0 && usedHeap() >= base + headroom / 4) run(performance.now())
    },
    collections: () => ({ count, ms })
  }
}
