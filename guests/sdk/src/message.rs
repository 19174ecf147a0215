//! Messages between processes (Node's `process.send` payloads): one JSON
//! value, or raw bytes.

use crate::bindings::hive::process::types as wit;

/// A message from another process: one JSON value, or raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Json(String),
    Bytes(Vec<u8>),
}

impl Message {
    /// Deserializes a JSON message (bytes are parsed as JSON text too).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match self {
            Message::Json(text) => serde_json::from_str(text),
            Message::Bytes(bytes) => serde_json::from_slice(bytes),
        }
    }

    /// The message as text: a JSON string's value, or other JSON as written.
    pub fn text(&self) -> String {
        match self {
            Message::Json(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::String(s)) => s,
                _ => text.clone(),
            },
            Message::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// Builds a JSON message from any serializable value.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Message {
        Message::Json(serde_json::to_string(value).expect("value serializes to JSON"))
    }
}

impl From<wit::Message> for Message {
    fn from(m: wit::Message) -> Self {
        use wit::Message as M;
        match m {
            M::Json(t) => Message::Json(t),
            M::Bytes(b) => Message::Bytes(b),
        }
    }
}

impl From<Message> for wit::Message {
    fn from(m: Message) -> Self {
        use wit::Message as M;
        match m {
            Message::Json(t) => M::Json(t),
            Message::Bytes(b) => M::Bytes(b),
        }
    }
}

/// Anything that can be sent: a [`Message`] as is, or any serde value as JSON.
pub trait IntoMessage {
    fn into_message(self) -> Message;
}

impl IntoMessage for Message {
    fn into_message(self) -> Message {
        self
    }
}

impl<T: serde::Serialize + ?Sized> IntoMessage for &T {
    fn into_message(self) -> Message {
        Message::json(self)
    }
}
