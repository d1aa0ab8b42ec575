/** Settings for who may call the hooks and who may publish or play, merged into ConfigSchema. */
export const AuthSettings = {}
