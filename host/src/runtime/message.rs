//! What a message must be before it leaves its sender, and why a send fails.

use super::event::Payload;

/// The largest message `send` accepts (the WIT's `max-message-bytes`).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// What each queued message costs on top of its payload, so that a flood of
/// tiny messages is bounded too.
const PER_MESSAGE_COST: usize = 64;

/// Why a message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the channel is closed")]
    /// The channel is closed (or was never open).
    ChannelClosed,
    #[error("the message is larger than {MAX_MESSAGE_BYTES} bytes")]
    /// Larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
    #[error("the message is not one JSON value")]
    /// A JSON message that is not exactly one JSON value.
    InvalidJson,
    /// The receiver never started (a failed fork): Node reports `EPIPE`.
    #[error("the child never started")]
    NeverStarted,
}

/// What a message costs in its receiver's flow.
pub fn cost(payload: &Payload) -> usize {
    payload.len() + PER_MESSAGE_COST
}

/// Checks a message before it leaves its sender; returns its flow cost.
pub fn validate(payload: &Payload) -> Result<usize, SendError> {
    let len = payload.len();
    if len > MAX_MESSAGE_BYTES {
        return Err(SendError::TooLarge);
    }
    if let Payload::Json(text) = payload {
        // Node's JSON channel is newline-delimited, so a message must be one
        // JSON value; validate it here so a receiver never sees bad input.
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
            return Err(SendError::InvalidJson);
        }
    }
    Ok(cost(payload))
}

/// Node's `isInternal`: an object whose `cmd` is a string longer than
/// five characters that starts with `NODE_`. Such a message is Node's own
/// (cluster, handle passing): never delivered as a user's `message`.
pub fn is_internal(payload: &Payload) -> bool {
    let Payload::Json(text) = payload else {
        return false;
    };
    // Cheap first: most messages have no `NODE_` at all.
    if !text.trim_start().starts_with('{') || !text.contains("NODE_") {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        cmd: Option<serde_json::Value>,
    }
    matches!(
        serde_json::from_str::<Probe>(text),
        Ok(Probe { cmd: Some(serde_json::Value::String(cmd)) }) if is_internal_cmd(&cmd)
    )
}

/// Node's rule for a `cmd` of its own: longer than five characters and
/// starting with `NODE_`.
pub fn is_internal_cmd(cmd: &str) -> bool {
    cmd.len() > 5 && cmd.starts_with("NODE_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_messages_are_nodes_rule() {
        let json = |s: &str| Payload::Json(s.into());
        assert!(is_internal(&json(r#"{"cmd":"NODE_X","a":1}"#)));
        assert!(is_internal(&json(r#" {"a":1,"cmd":"NODE_HANDLE"}"#)));
        for ordinary in [
            r#"{"cmd":"NODE_"}"#,
            r#"{"cmd":"fooNODE_X"}"#,
            r#"{"cmd":1}"#,
            r#""NODE_X""#,
            r#"["NODE_X"]"#,
        ] {
            assert!(!is_internal(&json(ordinary)), "{ordinary}");
        }
        assert!(!is_internal(&Payload::Bytes(
            b"{\"cmd\":\"NODE_X\"}".to_vec()
        )));
    }

    #[test]
    fn validates_json_and_size() {
        let json = |s: &str| Payload::Json(s.into());
        assert!(validate(&json("{\"a\":[1,2]}")).is_ok());
        assert!(validate(&json("42")).is_ok());
        assert_eq!(validate(&json("{")), Err(SendError::InvalidJson));
        assert_eq!(validate(&json("")), Err(SendError::InvalidJson));
        assert_eq!(validate(&json("1 2")), Err(SendError::InvalidJson));
        assert_eq!(
            validate(&Payload::Bytes(vec![0; MAX_MESSAGE_BYTES + 1])),
            Err(SendError::TooLarge)
        );
    }
}
