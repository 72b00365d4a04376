/**
 * Shim: the errors of backup, restore and rebuild now live in `backup/errors.ts`. Kept so that no importer has to
 * change yet; to be removed when imports are rewritten.
 */
export * from "./backup/errors.js"
