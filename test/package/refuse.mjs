// Registers refuse-hooks.mjs (see there): `node --import <this file> …`.
import { register } from "node:module"

register("./refuse-hooks.mjs", import.meta.url)
