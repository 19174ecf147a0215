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

#[cfg(test)]
mod tests {
    use super::*;

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
