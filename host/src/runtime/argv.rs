//! What any process's argv and environment can hold: no NUL byte, and no
//! environment entry a process could not receive.

/// Whether a string carries a NUL byte, which no argv or environment can.
pub fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Whether an environment has an entry no process could receive: an empty
/// name, a name with `=`, or a NUL byte (Node's `ERR_INVALID_ARG_VALUE`).
pub fn invalid_env<'a>(mut env: impl Iterator<Item = &'a (String, String)>) -> bool {
    env.any(|(k, v)| k.is_empty() || k.contains('=') || has_nul(k) || has_nul(v))
}
