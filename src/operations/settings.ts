/** Settings for recordings, the operator API and diagnostics, merged into ConfigSchema. */
export const OperationsSettings = {}
