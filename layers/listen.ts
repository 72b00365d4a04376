/**
 * The composition for `mesa-ducklake listen` (issue 20): the hosted client (`MESA_DUCKLAKE_DSN` required, as
 * `layers/hosted.ts`), the native iRODS client for UUID lookups, drift and discovery (`MESA_DUCKLAKE_IRODS_*`), and
 * project discovery (the `mesa.enabled` marker registers projects as mesa-mcp does). The listener's own settings
 * come from `ListenerConfig` (`MESA_DUCKLAKE_AMQP_*`); run it with `runListener(settings)` inside this layer.
 */
import { Layer } from "effect"
import { IrodsClient } from "../src/irods/IrodsClient.js"
import { irodsConfig } from "../src/irods/Config.js"
import * as Discovery from "../src/operations/discovery.js"
import { layer as hosted } from "./hosted.js"

export { ListenerConfig, runListener } from "../src/events/Listener.js"

const Irods = IrodsClient.layerConfig(irodsConfig)

/** Hosted client + Catalog + iRODS client + discovery, built once. */
export const layer = Discovery.layer().pipe(Layer.provideMerge(Layer.mergeAll(hosted, Irods)))
