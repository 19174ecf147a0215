//! Node's `advanced` serialization (V8 ValueSerializer), for Hive messages.
//! (Placeholder signatures; the codec replaces this file.)

use crate::runtime::event::Payload;

/// Why a frame is not a message.
#[derive(Debug, thiserror::Error)]
#[error("advanced serialization is not implemented yet")]
pub struct DecodeError;

/// Why a payload has no frame.
#[derive(Debug, thiserror::Error)]
#[error("advanced serialization is not implemented yet")]
pub struct EncodeError;

/// Decodes one frame body.
pub fn decode(_frame: &[u8]) -> Result<Payload, DecodeError> {
    Err(DecodeError)
}

/// Encodes a payload as one frame body.
pub fn encode(_payload: &Payload) -> Result<Vec<u8>, EncodeError> {
    Err(EncodeError)
}

/// Splits a byte stream into frame bodies.
pub fn split_frames(
    _buf: &[u8],
    _max: usize,
) -> Result<(Vec<std::ops::Range<usize>>, usize), DecodeError> {
    Err(DecodeError)
}

/// Length prefix + body.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}
