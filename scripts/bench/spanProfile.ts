/**
 * A tracer that keeps the duration of every finished span by name, so the benchmark can print where a write's
 * time goes (the profile the issue asks for when a target is missed). In-process, no exporter.
 */
import { Layer, Option, Tracer } from "effect"

export interface SpanProfile {
  readonly durations: Map<string, Array<number>>
  /** Starts keeping durations afresh (nothing is kept until then, so the profile never weighs on what is measured). */
  readonly start: () => void
  readonly stop: () => void
  readonly recording: () => boolean
}

export const makeProfile = (): SpanProfile => {
  const durations = new Map<string, Array<number>>()
  let on = false
  return {
    durations,
    start: () => {
      durations.clear()
      on = true
    },
    stop: () => {
      on = false
    },
    recording: () => on
  }
}

export const tracerLayer = (profile: SpanProfile) =>
  Layer.setTracer(Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      let status: Tracer.SpanStatus = { _tag: "Started", startTime }
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: Math.random().toString(16).slice(2),
        traceId: Option.match(parent, { onNone: () => Math.random().toString(16).slice(2), onSome: (p) => p.traceId }),
        parent,
        context,
        get status() {
          return status
        },
        attributes,
        links,
        sampled: true,
        kind,
        attribute: (k, v) => void attributes.set(k, v),
        event: () => {},
        addLinks: () => {},
        end: (endTime, exit) => {
          status = { _tag: "Ended", startTime, endTime, exit }
          if (!profile.recording()) return
          const ms = Number(endTime - startTime) / 1e6
          const list = profile.durations.get(name) ?? []
          list.push(ms)
          profile.durations.set(name, list)
        }
      }
      return span
    },
    context: (f) => f()
  }))
