//! Node's `json` serialization: one `JSON.stringify` line per message,
//! `\n`-terminated, UTF-8.
//!
//! Reading is Node's `parseChannelMessages`, made safe against a peer that
//! is not Node: a line may arrive in pieces (a multi-byte character split
//! across reads included, since lines are split on the byte `\n`), several
//! lines may arrive at once, `\r\n` endings are accepted (JSON whitespace).
//! Where Node would throw and exit — an empty line, a line that is not
//! JSON — the reader reports the bad line and goes on with the next one; a
//! line longer than the limit is skipped to its end without being kept.

use crate::runtime::event::Payload;
use crate::runtime::message;

/// Why one line from a peer is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// An empty line (Node's `JSON.parse('')` throws).
    #[error("an empty line (Node's peers never send one)")]
    Empty,
    /// Not one JSON value.
    #[error("a line that is not one JSON value ({0})")]
    NotJson(String),
    /// Longer than the limit.
    #[error("a line of more than {0} bytes")]
    TooLong(usize),
    /// The peer ended in the middle of a line.
    #[error("the channel ended in the middle of a message ({0} bytes without a newline)")]
    Truncated(usize),
}

/// A message line, decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A user message.
    Message(Payload),
    /// One of Node's own messages (`{"cmd":"NODE_…"}`): never a user's.
    Internal(serde_json::Value),
}

/// Splits a byte stream into lines.
pub struct LineReader {
    buf: Vec<u8>,
    /// Bytes of an overlong line being skipped (`None`: not skipping).
    skipping: Option<usize>,
    max: usize,
}

impl LineReader {
    /// A reader of lines up to `max` bytes.
    pub fn new(max: usize) -> LineReader {
        LineReader {
            buf: Vec::new(),
            skipping: None,
            max,
        }
    }

    /// Feeds the bytes of one read; each complete line, decoded, goes to
    /// `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut impl FnMut(Result<Line, LineError>)) {
        while !bytes.is_empty() {
            let newline = memchr(b'\n', bytes);
            let (piece, rest) = match newline {
                Some(at) => (&bytes[..at], Some(&bytes[at + 1..])),
                None => (bytes, None),
            };
            if let Some(skipped) = &mut self.skipping {
                *skipped += piece.len();
                if rest.is_some() {
                    out(Err(LineError::TooLong(self.max)));
                    self.skipping = None;
                }
            } else if self.buf.len() + piece.len() > self.max {
                self.skipping = Some(self.buf.len() + piece.len());
                self.buf = Vec::new();
                if rest.is_some() {
                    out(Err(LineError::TooLong(self.max)));
                    self.skipping = None;
                }
            } else if rest.is_some() && self.buf.is_empty() {
                // The usual case: a whole line inside one read, no copy.
                out(decode_line(piece));
            } else {
                self.buf.extend_from_slice(piece);
                if rest.is_some() {
                    let line = std::mem::take(&mut self.buf);
                    out(decode_line(&line));
                }
            }
            match rest {
                Some(rest) => bytes = rest,
                None => break,
            }
        }
    }

    /// The peer ended: a partial line left over is an error.
    pub fn finish(&mut self) -> Option<LineError> {
        let left = self.skipping.take().unwrap_or(0) + self.buf.len();
        self.buf = Vec::new();
        (left > 0).then_some(LineError::Truncated(left))
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Decodes one line (without its `\n`).
pub fn decode_line(line: &[u8]) -> Result<Line, LineError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(LineError::Empty);
    }
    // Node decodes the bytes as UTF-8 with replacement characters.
    let text = String::from_utf8_lossy(line).into_owned();
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        return Err(LineError::NotJson(e.to_string()));
    }
    let payload = Payload::Json(text);
    if message::is_internal(&payload) {
        let Payload::Json(text) = &payload else {
            unreachable!("made above")
        };
        let value = serde_json::from_str(text).expect("valid JSON, checked above");
        return Ok(Line::Internal(value));
    }
    Ok(Line::Message(payload))
}

pub use crate::runtime::message::is_internal_cmd;

/// The line for a payload, `\n` included: a JSON message on one line (the
/// whitespace between its tokens may hold newlines, which JSON strings
/// cannot), bytes as Node's Buffer JSON (`{"type":"Buffer","data":[…]}`,
/// what `JSON.stringify` makes of a Buffer).
pub fn encode(payload: &Payload) -> Vec<u8> {
    match payload {
        Payload::Json(text) => {
            let mut line = Vec::with_capacity(text.len() + 1);
            if text.bytes().any(|b| b == b'\n' || b == b'\r') {
                line.extend(text.bytes().filter(|&b| b != b'\n' && b != b'\r'));
            } else {
                line.extend_from_slice(text.as_bytes());
            }
            line.push(b'\n');
            line
        }
        Payload::Bytes(bytes) => {
            let mut line = Vec::with_capacity(bytes.len() * 4 + 32);
            line.extend_from_slice(br#"{"type":"Buffer","data":["#);
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                line.extend_from_slice(b.to_string().as_bytes());
            }
            line.extend_from_slice(b"]}\n");
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(reads: &[&[u8]], max: usize) -> (Vec<Result<Line, LineError>>, Option<LineError>) {
        let mut reader = LineReader::new(max);
        let mut got = Vec::new();
        for read in reads {
            reader.feed(read, &mut |l| got.push(l));
        }
        let end = reader.finish();
        (got, end)
    }

    fn json(text: &str) -> Result<Line, LineError> {
        Ok(Line::Message(Payload::Json(text.into())))
    }

    #[test]
    fn split_merged_and_crlf() {
        let (got, end) = lines(&[b"{\"a\":1}\n[1,", b"2]\r\n\"\xc3", b"\xa9\"\n42\n"], 100);
        assert_eq!(
            got,
            [json("{\"a\":1}"), json("[1,2]"), json("\"é\""), json("42")]
        );
        assert_eq!(end, None);
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let (got, end) = lines(&[b"1\n\n{\nnull\n", b"   \n2\n{\"x\""], 100);
        assert_eq!(got[0], json("1"));
        assert_eq!(got[1], Err(LineError::Empty));
        assert!(matches!(got[2], Err(LineError::NotJson(_))));
        assert_eq!(got[3], json("null"));
        assert_eq!(got[4], Err(LineError::Empty));
        assert_eq!(got[5], json("2"));
        assert_eq!(end, Some(LineError::Truncated(4)));
    }

    #[test]
    fn overlong_lines_are_skipped_without_being_kept() {
        let long = vec![b'1'; 50];
        let (got, _) = lines(&[&long, &long, b"\n7\n"], 64);
        assert_eq!(got, [Err(LineError::TooLong(64)), json("7")]);
        let (got, _) = lines(&[&[b'2'; 80], b"\n"], 64);
        assert_eq!(got, [Err(LineError::TooLong(64))]);
    }

    #[test]
    fn internal_messages() {
        assert!(matches!(
            decode_line(br#"{"cmd":"NODE_HANDLE","type":"net.Socket","msg":1}"#),
            Ok(Line::Internal(_))
        ));
        // Node's rule exactly: `NODE_` alone and other prefixes are ordinary.
        for ordinary in [
            r#"{"cmd":"NODE_"}"#,
            r#"{"cmd":"fooNODE_X"}"#,
            r#"{"cmd":1}"#,
        ] {
            assert_eq!(decode_line(ordinary.as_bytes()), json(ordinary));
        }
    }

    #[test]
    fn encodes_one_line() {
        assert_eq!(
            encode(&Payload::Json("{\n \"a\": [1,\r\n2]\n}".into())),
            b"{ \"a\": [1,2]}\n"
        );
        assert_eq!(encode(&Payload::Bytes(vec![1, 2, 255])), br#"{"type":"Buffer","data":[1,2,255]}"#.iter().chain(b"\n").copied().collect::<Vec<_>>());
        assert_eq!(
            encode(&Payload::Bytes(vec![])),
            b"{\"type\":\"Buffer\",\"data\":[]}\n"
        );
    }
}
