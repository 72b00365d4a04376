/**
 * Optional OpenTelemetry export of the library's spans (every public `DuckLakeClient` method, the write steps,
 * the iRODS client's operations, discovery and drift).
 *
 * Switched on by configuration: with `MESA_DUCKLAKE_OTEL_ENDPOINT` unset or blank the layer is empty and nothing
 * is exported. With it set (an OTLP/HTTP base URL such as `http://127.0.0.1:4318`, or the full `/v1/traces` URL),
 * spans are batched to that collector and flushed when the layer's scope closes.
 *
 *   MESA_DUCKLAKE_OTEL_ENDPOINT       OTLP/HTTP collector (traces)
 *   MESA_DUCKLAKE_OTEL_SERVICE_NAME   service.name resource attribute (default `mesa-ducklake`)
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Config, Effect, Layer, Option } from "effect"

export interface TelemetryOptions {
  /** OTLP/HTTP endpoint; `/v1/traces` is appended unless the URL already ends with it. */
  readonly endpoint: string
  readonly serviceName?: string
  readonly serviceVersion?: string
}

/** The traces URL for an OTLP/HTTP endpoint given as a base URL or as the full traces URL. */
export const tracesUrl = (endpoint: string): string => {
  const trimmed = endpoint.trim().replace(/\/+$/, "")
  return trimmed.endsWith("/v1/traces") ? trimmed : `${trimmed}/v1/traces`
}

/** An exporter layer with explicit options. */
export const layer = (options: TelemetryOptions): Layer.Layer<never> =>
  Layer.discard(NodeSdk.layer(() => ({
    resource: {
      serviceName: options.serviceName ?? "mesa-ducklake",
      serviceVersion: options.serviceVersion ?? "0.1.0"
    },
    spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(options.endpoint) })),
    shutdownTimeout: "5 seconds"
  })))

/** `MESA_DUCKLAKE_OTEL_ENDPOINT` (optional) and `MESA_DUCKLAKE_OTEL_SERVICE_NAME`. */
export const TelemetryConfig = Config.all({
  endpoint: Config.option(Config.string("MESA_DUCKLAKE_OTEL_ENDPOINT")),
  serviceName: Config.string("MESA_DUCKLAKE_OTEL_SERVICE_NAME").pipe(Config.withDefault("mesa-ducklake"))
})

/**
 * The exporter when `MESA_DUCKLAKE_OTEL_ENDPOINT` is set, otherwise nothing. Provide it once at the root of a
 * program (the CLI does), around everything whose spans should be exported.
 */
export const layerConfig: Layer.Layer<never, import("effect/ConfigError").ConfigError> = Layer.unwrapEffect(
  Effect.map(TelemetryConfig, ({ endpoint, serviceName }) =>
    Option.match(Option.filter(endpoint, (e) => e.trim() !== ""), {
      onNone: () => Layer.empty,
      onSome: (url) => layer({ endpoint: url, serviceName })
    }))
)
