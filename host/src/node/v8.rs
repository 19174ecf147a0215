//! Node's `advanced` serialization (V8's `ValueSerializer` format), for Hive
//! messages.
//!
//! A Node process whose channel was opened with `serialization: 'advanced'`
//! (`NODE_CHANNEL_SERIALIZATION_MODE=advanced`) writes each
//! `process.send(value)` as one frame:
//!
//! ```text
//! [ u32 big-endian N ][ N bytes: 0xff, version varint (15 in Node 20), one value ]
//! ```
//!
//! [`split_frames`] finds the frames in a byte stream, [`decode`] turns one
//! frame body into a [`Payload`], [`encode`] turns a payload into a frame
//! body and [`frame`] puts the length in front. The value format is V8's
//! (`src/objects/value-serializer.cc`) with Node's own encoding of `Buffer`
//! and typed arrays as host objects (`lib/v8.js`,
//! `lib/internal/child_process/serialization.js`). Varints are LEB128,
//! at most 32 bits.
//!
//! # From Node ([`decode`])
//!
//! A top-level `Buffer` or `Uint8Array` becomes [`Payload::Bytes`]; any other
//! value becomes [`Payload::Json`] with the text `JSON.stringify(value)`
//! would give, except where the table says otherwise:
//!
//! | Node value | on the wire | Hive payload |
//! |---|---|---|
//! | `Buffer`, `Uint8Array` (top level) | `\` host object: `0` (a view), type `10` (`Buffer`) or `1` (`Uint8Array`), byte length, bytes; or V8's own `B` length bytes `V` `B` offset length flags | `Bytes` |
//! | `null` | `0` | `null` |
//! | `undefined` | `_` | `null` at top level and in arrays, property left out in objects (`JSON.stringify(undefined)` gives no text at all) |
//! | `true`, `false` | `T`, `F` | `true`, `false` |
//! | number | `I` zig-zag int32, `U` uint32, `N` float64 LE | as JavaScript prints it: `1099511627776`, `1.5`, `1e+21`, `5e-324`; `-0` → `0` |
//! | `NaN`, `±Infinity` | `N` | `null` |
//! | BigInt | `Z` sign and length varint, little-endian 64-bit digits | its decimal digits as a JSON number (`JSON.stringify` throws); at most 1024 bytes (8192 bits) |
//! | string | `"` Latin-1, `c` UTF-16LE (maybe after `\0` padding), `S` UTF-8 | JSON string; a lone surrogate becomes U+FFFD (`JSON.stringify` writes `\udXXX`) |
//! | `Date` | `D` float64 ms | its time value in ms, a number (`JSON.stringify` gives the ISO string); an invalid date → `null` |
//! | `new Number(x)`, `new String(s)`, `new Boolean(b)`, `Object(1n)` | `n`, `s`, `y`/`x`, `z` | as the primitive |
//! | array | `A` dense: length, elements (`-` for a hole), `$`, property count, length; `a` sparse: length, index/value pairs, `@`, property count, length | JSON array, holes → `null`, other properties left out; at most 2^20 holes in a frame |
//! | plain object | `o` key/value pairs `{` property count | JSON object; keys are strings or numbers (a number key becomes its string form); integer keys first in ascending order, then the others in order (as JavaScript orders them); a repeated key is invalid, as for V8 |
//! | `Buffer`, `Uint8Array` (nested) | as above | `{"type":"Buffer","data":[…]}`, `JSON.stringify`'s form for a `Buffer` (for a plain `Uint8Array` it gives `{"0":…}`) |
//! | other host object | `\` `1` then a copy of it | the copy, as Node reads it |
//! | `Map` `;`, `Set` `'`, `RegExp` `R`, `Error` `r`, `ArrayBuffer` `B`, resizable `~`, `SharedArrayBuffer` `u`, other typed arrays and `DataView`, an object met twice (shared or circular) `^`, WebAssembly `w` `m`, shared objects `p` | | [`DecodeError::Unsupported`], naming the type |
//!
//! Arrays and objects nest at most 128 deep (serde_json's limit). Format
//! versions 13 (the first with a host-object tag) to 15 (Node 20's) are
//! read; bytes after the value are an error (Node ignores them), and so are
//! repeated keys and whatever else V8 itself rejects. A Node peer never
//! sends a top-level `undefined` or BigInt (`process.send` takes only
//! strings, objects, numbers and booleans), but both decode.
//!
//! # To Node ([`encode`])
//!
//! | Hive payload | on the wire | Node reads |
//! |---|---|---|
//! | `Bytes` | `ff 0f 5c 00 0a` byte-length varint, bytes: exactly what Node writes for a `Buffer` | a `Buffer` |
//! | `Json` `null`, `true`, `false` | `0`, `T`, `F` | the same |
//! | `Json` number | `I` zig-zag varint if it is an integer that fits in an int32 and not `-0`, else `N` float64 (the nearest double, as `JSON.parse` rounds) | a number |
//! | `Json` string | `"` Latin-1 if every UTF-16 unit is at most U+00FF, else `\0` padding if needed (as V8 aligns) and `c` UTF-16LE; `\uD800` escapes stay lone surrogates | a string |
//! | `Json` array | `A` length, elements, `$ 00` length | an array |
//! | `Json` object | `o`, keys as strings in the text's order, values, `{` count; a repeated key once, where it first appears, with its last value (as `JSON.parse` keeps it: V8 rejects a frame that repeats a key, and Node, failing to read it, exits) | an object, as `JSON.parse` builds it |
//!
//! The JSON is read as `JSON.parse` reads it (RFC 8259, nothing more), in
//! order, without going through `serde_json`: with the features this
//! workspace gives it (`float_roundtrip` off), it reads about a third of
//! random shortest-form doubles one ulp off, and it rejects the lone
//! surrogates `JSON.stringify` may write (`"\ud800"`).
//!
//! Node's own frames are not reproducible byte for byte: V8 writes an
//! integral number as `N` when it sits in an array with a non-int32 number
//! (`[1, 1.5]` is `N N`) or in an object field that once held a double,
//! which depends on what the process did before. Node reads both forms as
//! the same value, and so does [`decode`].

use crate::runtime::event::Payload;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;

/// The first byte of every frame body (V8's `kVersion` tag).
const HEADER: u8 = 0xFF;
/// The format version we write: Node 20's (V8 11).
const VERSION: u8 = 15;
/// The versions we read (13: host objects have their own tag).
const VERSIONS: std::ops::RangeInclusive<u32> = 13..=15;
/// How deep arrays and objects may nest, both ways.
const MAX_DEPTH: usize = 128;
/// The largest BigInt [`decode`] turns into digits, in bytes of magnitude.
const MAX_BIGINT_BYTES: usize = 1024;
/// How many holes sparse arrays may expand to in one frame (each is a
/// `null,` in the text, where the frame holds nothing).
const MAX_HOLES: usize = 1 << 20;
/// The longest body [`encode`] writes: Node reads the length prefix as a
/// signed 32-bit number (`buf[0] << 24 | …`), so 2^31 and more come out
/// negative.
const MAX_BODY: usize = i32::MAX as usize;

/// V8's serialization tags (`SerializationTag` in `value-serializer.cc`).
mod tag {
    pub const PADDING: u8 = 0x00;
    pub const VERIFY_OBJECT_COUNT: u8 = b'?';
    pub const THE_HOLE: u8 = b'-';
    pub const UNDEFINED: u8 = b'_';
    pub const NULL: u8 = b'0';
    pub const TRUE: u8 = b'T';
    pub const FALSE: u8 = b'F';
    pub const INT32: u8 = b'I';
    pub const UINT32: u8 = b'U';
    pub const DOUBLE: u8 = b'N';
    pub const BIGINT: u8 = b'Z';
    pub const UTF8_STRING: u8 = b'S';
    pub const ONE_BYTE_STRING: u8 = b'"';
    pub const TWO_BYTE_STRING: u8 = b'c';
    pub const OBJECT_REFERENCE: u8 = b'^';
    pub const BEGIN_OBJECT: u8 = b'o';
    pub const END_OBJECT: u8 = b'{';
    pub const BEGIN_SPARSE_ARRAY: u8 = b'a';
    pub const END_SPARSE_ARRAY: u8 = b'@';
    pub const BEGIN_DENSE_ARRAY: u8 = b'A';
    pub const END_DENSE_ARRAY: u8 = b'$';
    pub const DATE: u8 = b'D';
    pub const TRUE_OBJECT: u8 = b'y';
    pub const FALSE_OBJECT: u8 = b'x';
    pub const NUMBER_OBJECT: u8 = b'n';
    pub const BIGINT_OBJECT: u8 = b'z';
    pub const STRING_OBJECT: u8 = b's';
    pub const REGEXP: u8 = b'R';
    pub const BEGIN_MAP: u8 = b';';
    pub const END_MAP: u8 = b':';
    pub const BEGIN_SET: u8 = b'\'';
    pub const END_SET: u8 = b',';
    pub const ARRAY_BUFFER: u8 = b'B';
    pub const RESIZABLE_ARRAY_BUFFER: u8 = b'~';
    pub const ARRAY_BUFFER_TRANSFER: u8 = b't';
    pub const ARRAY_BUFFER_VIEW: u8 = b'V';
    pub const SHARED_ARRAY_BUFFER: u8 = b'u';
    pub const SHARED_OBJECT: u8 = b'p';
    pub const WASM_MODULE_TRANSFER: u8 = b'w';
    pub const WASM_MEMORY_TRANSFER: u8 = b'm';
    pub const HOST_OBJECT: u8 = b'\\';
    pub const ERROR: u8 = b'r';
}

/// Node's type index for a `Uint8Array` host object (`lib/v8.js`).
const UINT8_ARRAY_INDEX: u32 = 1;
/// Node's type index for a `Buffer` (`FastBuffer`) host object.
const BUFFER_INDEX: u32 = 10;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame holds a value that a Hive message cannot carry.
    #[error(
        "{what} cannot be a Hive message (supported: null, undefined, booleans, numbers, strings, arrays, plain objects, Buffer/Uint8Array, BigInt, Date)"
    )]
    Unsupported {
        /// The JavaScript type, with its article: "a Map".
        what: &'static str,
    },
    /// The frame ends inside a value (or a length says more bytes follow
    /// than the frame has).
    #[error("the frame ends in the middle of a value (at byte {offset})")]
    Truncated {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// The frame does not start with V8's header byte.
    #[error("the frame does not start with V8's header byte 0xff (found {found:#04x})")]
    BadHeader {
        /// The first byte.
        found: u8,
    },
    /// The frame's format version is not one we read.
    #[error("V8 serialization format version {version} is not supported (supported: 13 to 15)")]
    UnsupportedVersion {
        /// The version in the header.
        version: u32,
    },
    /// A tag V8 does not define.
    #[error("unknown V8 serialization tag {tag:#04x} at byte {offset}")]
    UnknownTag {
        /// The tag byte.
        tag: u8,
        /// Where it is.
        offset: usize,
    },
    /// The frame breaks a rule of the format.
    #[error("invalid frame at byte {offset}: {reason}")]
    Invalid {
        /// Where.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Arrays and objects nest too deep.
    #[error("arrays and objects nest deeper than {limit} levels")]
    TooDeep {
        /// The deepest nesting allowed.
        limit: usize,
    },
    /// A BigInt too large to write as digits.
    #[error("a BigInt of {bytes} bytes is larger than the limit of {limit} bytes")]
    BigIntTooLarge {
        /// Its size.
        bytes: usize,
        /// The largest allowed.
        limit: usize,
    },
    /// Sparse arrays with more holes than the text may hold as `null`s.
    #[error("sparse arrays in the frame have more than {limit} holes")]
    TooManyHoles {
        /// The most holes allowed in one frame.
        limit: usize,
    },
    /// Bytes after the value.
    #[error("{count} bytes follow the value (at byte {offset})")]
    TrailingBytes {
        /// Where the value ended.
        offset: usize,
        /// How many bytes follow.
        count: usize,
    },
    /// A frame longer than the caller allows ([`split_frames`]).
    #[error("a frame of {len} bytes is larger than the limit of {max} bytes")]
    FrameTooLarge {
        /// The length in the frame's prefix.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a payload could not be written as a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A [`Payload::Json`] whose text is not one JSON value.
    #[error("the payload is not valid JSON: {reason} (at byte {offset})")]
    InvalidJson {
        /// Where in the text.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Arrays and objects nest too deep.
    #[error("arrays and objects nest deeper than {limit} levels")]
    TooDeep {
        /// The deepest nesting allowed.
        limit: usize,
    },
    /// The frame would be longer than Node can read.
    #[error("the frame would be {len} bytes, more than the {max} a Node peer can read")]
    TooLarge {
        /// The body's length (at least).
        len: usize,
        /// The longest body Node reads.
        max: usize,
    },
}

/// Decodes one advanced-mode frame body (the N bytes after the u32
/// big-endian length: 0xFF, version varint, value).
///
/// A top-level `Buffer` or `Uint8Array` gives [`Payload::Bytes`], anything
/// else [`Payload::Json`] (the mapping is in the [module docs](self)).
///
/// # Errors
///
/// [`DecodeError::Unsupported`] for a value a Hive message cannot carry
/// (a `Map`, a `Set`, …), and the other variants for a frame that is cut
/// short, malformed, nested deeper than 128 levels or followed by bytes.
/// No input makes it panic, and it allocates in proportion to the frame.
pub fn decode(frame: &[u8]) -> Result<Payload, DecodeError> {
    let mut reader = Reader {
        input: frame,
        pos: 0,
        version: 0,
        depth: 0,
        holes: 0,
    };
    let found = reader.byte()?;
    if found != HEADER {
        return Err(DecodeError::BadHeader { found });
    }
    let version = reader.varint()?;
    if !VERSIONS.contains(&version) {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    reader.version = version;
    let value = reader.value()?;
    if reader.pos != frame.len() {
        return Err(DecodeError::TrailingBytes {
            offset: reader.pos,
            count: frame.len() - reader.pos,
        });
    }
    Ok(match value {
        Value::Bytes(bytes) => Payload::Bytes(bytes),
        value => {
            let mut text = String::new();
            write_json(&mut text, &value);
            Payload::Json(text)
        }
    })
}

/// Encodes a payload as one frame body (without the 4-byte length prefix).
///
/// [`Payload::Bytes`] becomes a `Buffer`, byte for byte as Node writes one;
/// [`Payload::Json`] becomes the value Node's `JSON.parse` would make of
/// the text (the mapping is in the [module docs](self)).
///
/// # Errors
///
/// [`EncodeError::InvalidJson`] if the text is not exactly one JSON value,
/// [`EncodeError::TooDeep`] if it nests more than 128 levels and
/// [`EncodeError::TooLarge`] if the body would be 2^31 bytes or more.
pub fn encode(payload: &Payload) -> Result<Vec<u8>, EncodeError> {
    let mut writer = Writer {
        out: vec![HEADER, VERSION],
    };
    match payload {
        Payload::Bytes(bytes) => {
            // Header, tag, view, index, up to 5 length bytes, bytes.
            let len = bytes.len().saturating_add(10);
            if len > MAX_BODY {
                return Err(EncodeError::TooLarge { len, max: MAX_BODY });
            }
            writer
                .out
                .extend_from_slice(&[tag::HOST_OBJECT, 0, BUFFER_INDEX as u8]);
            writer.varint(bytes.len() as u64);
            writer.out.extend_from_slice(bytes);
        }
        Payload::Json(text) => writer.value(&parse_json(text)?),
    }
    if writer.out.len() > MAX_BODY {
        return Err(EncodeError::TooLarge {
            len: writer.out.len(),
            max: MAX_BODY,
        });
    }
    Ok(writer.out)
}

/// The frames found at the front of a byte stream ([`split_frames`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// The complete frame bodies, in order.
    pub bodies: Vec<Range<usize>>,
    /// How many bytes they used (a partial frame, or a length prefix split
    /// across reads, stays for later).
    pub used: usize,
    /// A length prefix past the limit after those frames: nothing after it
    /// can be trusted, and the caller drops the channel.
    pub error: Option<DecodeError>,
}

/// Splits a byte stream into frames: the complete frame bodies at the
/// front of `buf`, how many bytes they used, and, if a length prefix says
/// more than `max` bytes, [`DecodeError::FrameTooLarge`] — as soon as the
/// prefix is in, before the frame has arrived; the frames before it are
/// still returned.
///
/// A zero-length frame is returned as an empty range ([`decode`] then
/// reports it as truncated).
pub fn split_frames(buf: &[u8], max: usize) -> Split {
    let mut bodies = Vec::new();
    let mut pos = 0;
    while let Some(&[a, b, c, d]) = buf.get(pos..pos + 4) {
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len > max {
            let error = Some(DecodeError::FrameTooLarge { len, max });
            return Split {
                bodies,
                used: pos,
                error,
            };
        }
        let start = pos + 4;
        match start.checked_add(len) {
            Some(end) if end <= buf.len() => {
                bodies.push(start..end);
                pos = end;
            }
            _ => break,
        }
    }
    Split {
        bodies,
        used: pos,
        error: None,
    }
}

/// Puts the 4-byte big-endian length in front of a frame body.
///
/// # Panics
///
/// If `body` is 4 GiB or longer, which no body from [`encode`] is.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("a frame body is shorter than 4 GiB");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------
// Decoding

/// A value read from a frame, before it is printed as JSON.
#[derive(Debug)]
enum Value {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    /// Decimal digits, with a `-` if negative.
    BigInt(String),
    String(String),
    Bytes(Vec<u8>),
    /// `items` are sorted by index, each index once, all below `len`.
    Array {
        len: u32,
        items: Vec<(u32, Value)>,
    },
    /// In `JSON.stringify` order, each key once.
    Object(Vec<(String, Value)>),
}

/// A property key as V8 stores it: an array index or a name.
enum Key {
    Index(u32),
    Name(String),
}

impl Key {
    fn from_number(x: f64) -> Key {
        // Array indices are the integers below 2^32 - 1; -0 is "0".
        if x.fract() == 0.0 && (0.0..4_294_967_295.0).contains(&x) {
            Key::Index(x as u32)
        } else {
            let mut name = String::new();
            if x.is_nan() {
                name.push_str("NaN");
            } else if x.is_infinite() {
                name.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
            } else {
                write_js_number(&mut name, x);
            }
            Key::Name(name)
        }
    }

    fn from_name(name: String) -> Key {
        match array_index(name.as_bytes()) {
            Some(index) => Key::Index(index),
            None => Key::Name(name),
        }
    }
}

/// The array index a key names, if it is one: the canonical decimal form
/// of an integer below 2^32 - 1.
fn array_index(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    u32::try_from(n).ok().filter(|&n| n != u32::MAX)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    version: u32,
    depth: usize,
    holes: usize,
}

fn unsupported(what: &'static str) -> DecodeError {
    DecodeError::Unsupported { what }
}

impl<'a> Reader<'a> {
    fn invalid(&self, offset: usize, reason: &'static str) -> DecodeError {
        DecodeError::Invalid { offset, reason }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let byte = *self
            .input
            .get(self.pos)
            .ok_or(DecodeError::Truncated { offset: self.pos })?;
        self.pos += 1;
        Ok(byte)
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.input.len() - self.pos {
            return Err(DecodeError::Truncated {
                offset: self.input.len(),
            });
        }
        let bytes = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    fn varint(&mut self) -> Result<u32, DecodeError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return u32::try_from(value)
                    .map_err(|_| self.invalid(start, "a varint larger than 32 bits"));
            }
        }
        Err(self.invalid(start, "a varint longer than 5 bytes"))
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        Ok(self.varint()? as usize)
    }

    fn double(&mut self) -> Result<f64, DecodeError> {
        let bytes = self.bytes(8)?;
        let mut le = [0; 8];
        le.copy_from_slice(bytes);
        Ok(f64::from_le_bytes(le))
    }

    fn int32(&mut self) -> Result<i32, DecodeError> {
        let zigzag = self.varint()?;
        Ok((zigzag >> 1) as i32 ^ -((zigzag & 1) as i32))
    }

    /// The next tag and where it is, past any padding.
    fn tag(&mut self) -> Result<(u8, usize), DecodeError> {
        loop {
            let at = self.pos;
            match self.byte()? {
                tag::PADDING => continue,
                tag => return Ok((tag, at)),
            }
        }
    }

    /// The next tag, past any padding, without taking it.
    fn peek_tag(&mut self) -> Option<u8> {
        while self.input.get(self.pos) == Some(&tag::PADDING) {
            self.pos += 1;
        }
        self.input.get(self.pos).copied()
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep { limit: MAX_DEPTH });
        }
        Ok(())
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        let (mut t, mut at) = self.tag()?;
        // A deprecated object count V8 still skips.
        while t == tag::VERIFY_OBJECT_COUNT {
            self.varint()?;
            (t, at) = self.tag()?;
        }
        Ok(match t {
            tag::UNDEFINED => Value::Undefined,
            tag::NULL => Value::Null,
            tag::TRUE | tag::TRUE_OBJECT => Value::Bool(true),
            tag::FALSE | tag::FALSE_OBJECT => Value::Bool(false),
            tag::INT32 => Value::Number(f64::from(self.int32()?)),
            tag::UINT32 => Value::Number(f64::from(self.varint()?)),
            tag::DOUBLE | tag::NUMBER_OBJECT | tag::DATE => Value::Number(self.double()?),
            tag::BIGINT | tag::BIGINT_OBJECT => Value::BigInt(self.bigint()?),
            tag::ONE_BYTE_STRING | tag::TWO_BYTE_STRING | tag::UTF8_STRING => {
                Value::String(self.string(t, at)?)
            }
            tag::STRING_OBJECT => {
                let (t, at) = self.tag()?;
                Value::String(self.string(t, at)?)
            }
            tag::BEGIN_OBJECT => self.object(at)?,
            tag::BEGIN_DENSE_ARRAY => self.dense_array(at)?,
            tag::BEGIN_SPARSE_ARRAY => self.sparse_array(at)?,
            tag::HOST_OBJECT => self.host_object(at)?,
            tag::ARRAY_BUFFER => self.array_buffer(at)?,
            tag::BEGIN_MAP => return Err(unsupported("a Map")),
            tag::BEGIN_SET => return Err(unsupported("a Set")),
            tag::REGEXP => return Err(unsupported("a RegExp")),
            tag::ERROR => return Err(unsupported(self.error_name())),
            tag::OBJECT_REFERENCE => {
                return Err(unsupported(
                    "an object that appears twice (a shared or circular reference)",
                ));
            }
            tag::RESIZABLE_ARRAY_BUFFER => return Err(unsupported("a resizable ArrayBuffer")),
            tag::ARRAY_BUFFER_TRANSFER => return Err(unsupported("a transferred ArrayBuffer")),
            tag::SHARED_ARRAY_BUFFER => return Err(unsupported("a SharedArrayBuffer")),
            tag::SHARED_OBJECT => return Err(unsupported("a shared object")),
            tag::WASM_MODULE_TRANSFER => return Err(unsupported("a WebAssembly.Module")),
            tag::WASM_MEMORY_TRANSFER => return Err(unsupported("a WebAssembly.Memory")),
            tag::END_OBJECT
            | tag::END_DENSE_ARRAY
            | tag::END_SPARSE_ARRAY
            | tag::END_MAP
            | tag::END_SET
            | tag::THE_HOLE
            | tag::ARRAY_BUFFER_VIEW => {
                return Err(self.invalid(at, "a tag that cannot start a value"));
            }
            tag => return Err(DecodeError::UnknownTag { tag, offset: at }),
        })
    }

    /// The name of the error whose `r` tag was just read: its prototype
    /// comes first (`ErrorTag` in V8), if it is not a plain `Error`.
    fn error_name(&self) -> &'static str {
        match self.input.get(self.pos) {
            Some(b'E') => "an EvalError",
            Some(b'R') => "a RangeError",
            Some(b'F') => "a ReferenceError",
            Some(b'S') => "a SyntaxError",
            Some(b'T') => "a TypeError",
            Some(b'U') => "a URIError",
            _ => "an Error",
        }
    }

    fn string(&mut self, t: u8, at: usize) -> Result<String, DecodeError> {
        match t {
            tag::ONE_BYTE_STRING => {
                let len = self.len()?;
                Ok(self.bytes(len)?.iter().map(|&b| char::from(b)).collect())
            }
            tag::TWO_BYTE_STRING => {
                let len = self.len()?;
                if !len.is_multiple_of(2) {
                    return Err(self.invalid(at, "a two-byte string of an odd number of bytes"));
                }
                let units = self
                    .bytes(len)?
                    .chunks_exact(2)
                    .map(|unit| u16::from_le_bytes([unit[0], unit[1]]));
                Ok(char::decode_utf16(units)
                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect())
            }
            tag::UTF8_STRING => {
                let len = self.len()?;
                Ok(String::from_utf8_lossy(self.bytes(len)?).into_owned())
            }
            _ => Err(self.invalid(at, "expected a string")),
        }
    }

    fn bigint(&mut self) -> Result<String, DecodeError> {
        let at = self.pos;
        let bitfield = self.varint()?;
        let negative = bitfield & 1 == 1;
        let len = (bitfield >> 1) as usize;
        let magnitude = self.bytes(len)?;
        if len == 0 && negative {
            return Err(self.invalid(at, "a negative BigInt without digits"));
        }
        if len > MAX_BIGINT_BYTES {
            return Err(DecodeError::BigIntTooLarge {
                bytes: len,
                limit: MAX_BIGINT_BYTES,
            });
        }
        Ok(bigint_digits(negative, magnitude))
    }

    /// Key/value pairs up to `end` (V8's `ReadJSObjectProperties`).
    fn properties(&mut self, end: u8) -> Result<Vec<(Key, Value)>, DecodeError> {
        let mut properties = Vec::new();
        loop {
            let (t, at) = self.tag()?;
            let key = match t {
                _ if t == end => return Ok(properties),
                tag::INT32 => Key::from_number(f64::from(self.int32()?)),
                tag::UINT32 => Key::from_number(f64::from(self.varint()?)),
                tag::DOUBLE => Key::from_number(self.double()?),
                tag::ONE_BYTE_STRING | tag::TWO_BYTE_STRING | tag::UTF8_STRING => {
                    Key::from_name(self.string(t, at)?)
                }
                _ => {
                    return Err(self.invalid(at, "a property key that is not a string or a number"));
                }
            };
            let value = self.value()?;
            properties.push((key, value));
        }
    }

    /// The count (and, for arrays, the length) after an end tag.
    fn check_count(&mut self, at: usize, count: usize) -> Result<(), DecodeError> {
        if self.len()? != count {
            return Err(self.invalid(at, "the property count does not match the properties"));
        }
        Ok(())
    }

    fn object(&mut self, at: usize) -> Result<Value, DecodeError> {
        self.enter()?;
        let properties = self.properties(tag::END_OBJECT)?;
        self.check_count(at, properties.len())?;
        self.depth -= 1;

        let mut indexed = Vec::new();
        let mut named = Vec::new();
        for (key, value) in properties {
            match key {
                Key::Index(index) => indexed.push((index, value)),
                Key::Name(name) => named.push((name, value)),
            }
        }
        // V8 fails on a key it has already set.
        let indexed = sort_indexed(indexed).ok_or(self.invalid(at, REPEATED_KEY))?;
        if has_repeats(named.iter().map(|(name, _)| name.as_str())) {
            return Err(self.invalid(at, REPEATED_KEY));
        }
        let mut ordered: Vec<(String, Value)> = indexed
            .into_iter()
            .map(|(index, value)| (index.to_string(), value))
            .collect();
        ordered.extend(named);
        Ok(Value::Object(ordered))
    }

    fn dense_array(&mut self, at: usize) -> Result<Value, DecodeError> {
        self.enter()?;
        let len = self.varint()?;
        // Every element takes at least a byte.
        if len as usize > self.input.len() - self.pos {
            return Err(DecodeError::Truncated {
                offset: self.input.len(),
            });
        }
        let mut items = Vec::with_capacity((len as usize).min(4096));
        for index in 0..len {
            if self.peek_tag() == Some(tag::THE_HOLE) {
                self.pos += 1;
                continue;
            }
            items.push((index, self.value()?));
        }
        let properties = self.properties(tag::END_DENSE_ARRAY)?;
        self.check_count(at, properties.len())?;
        if self.varint()? != len {
            return Err(self.invalid(at, "the array's two lengths differ"));
        }
        self.depth -= 1;
        self.array(at, len, items, properties)
    }

    fn sparse_array(&mut self, at: usize) -> Result<Value, DecodeError> {
        self.enter()?;
        let len = self.varint()?;
        let properties = self.properties(tag::END_SPARSE_ARRAY)?;
        self.check_count(at, properties.len())?;
        if self.varint()? != len {
            return Err(self.invalid(at, "the array's two lengths differ"));
        }
        self.depth -= 1;
        self.array(at, len, Vec::new(), properties)
    }

    /// An array from its elements and its other properties (those that
    /// are not indices do not show in JSON).
    fn array(
        &mut self,
        at: usize,
        len: u32,
        mut items: Vec<(u32, Value)>,
        properties: Vec<(Key, Value)>,
    ) -> Result<Value, DecodeError> {
        let dense = items.len();
        for (key, value) in properties {
            if let Key::Index(index) = key {
                items.push((index, value));
            }
        }
        if items.len() != dense {
            // An element set twice (not a hole filled) fails in V8.
            items = sort_indexed(items).ok_or(self.invalid(at, REPEATED_KEY))?;
        }
        // An index at or past the length makes the array longer, as in JS
        // (an index is below 2^32 - 1, so this fits).
        let len = items.last().map_or(len, |&(last, _)| len.max(last + 1));
        self.holes += len as usize - items.len();
        if self.holes > MAX_HOLES {
            return Err(DecodeError::TooManyHoles { limit: MAX_HOLES });
        }
        Ok(Value::Array { len, items })
    }

    fn host_object(&mut self, at: usize) -> Result<Value, DecodeError> {
        match self.varint()? {
            // An ArrayBufferView: Node's type index, byte length, bytes.
            0 => {
                let index = self.varint()?;
                if index != UINT8_ARRAY_INDEX && index != BUFFER_INDEX {
                    return Err(match node_view_name(index) {
                        Some(name) => unsupported(name),
                        None => self.invalid(at, "an ArrayBufferView of an unknown type index"),
                    });
                }
                let len = self.len()?;
                Ok(Value::Bytes(self.bytes(len)?.to_vec()))
            }
            // Any other host object: Node sends a plain copy of it.
            1 => {
                self.enter()?;
                let value = self.value()?;
                self.depth -= 1;
                Ok(value)
            }
            _ => Err(self.invalid(
                at,
                "a host object that is neither a view (0) nor a copy (1)",
            )),
        }
    }

    /// An `ArrayBuffer`: fine only as the storage of a `Uint8Array` that
    /// follows it (V8's own form, which Node uses only when a serializer is
    /// not told to treat views as host objects).
    fn array_buffer(&mut self, at: usize) -> Result<Value, DecodeError> {
        let len = self.len()?;
        let buffer = self.bytes(len)?;
        if self.peek_tag() != Some(tag::ARRAY_BUFFER_VIEW) {
            return Err(unsupported("an ArrayBuffer"));
        }
        self.pos += 1;
        let subtag = self.byte()?;
        let offset = self.len()?;
        let len = self.len()?;
        if self.version >= 14 {
            self.varint()?; // flags (length-tracking, backed by resizable)
        }
        if subtag != b'B' {
            return Err(match v8_view_name(subtag) {
                Some(name) => unsupported(name),
                None => self.invalid(at, "an ArrayBufferView of an unknown type"),
            });
        }
        match offset.checked_add(len) {
            Some(end) if end <= buffer.len() => Ok(Value::Bytes(buffer[offset..end].to_vec())),
            _ => Err(self.invalid(at, "a Uint8Array past the end of its buffer")),
        }
    }
}

/// The type Node's host-object type index names (`lib/v8.js`).
fn node_view_name(index: u32) -> Option<&'static str> {
    Some(match index {
        0 => "an Int8Array",
        2 => "a Uint8ClampedArray",
        3 => "an Int16Array",
        4 => "a Uint16Array",
        5 => "an Int32Array",
        6 => "a Uint32Array",
        7 => "a Float32Array",
        8 => "a Float64Array",
        9 => "a DataView",
        11 => "a BigInt64Array",
        12 => "a BigUint64Array",
        _ => return None,
    })
}

/// The type V8's `ArrayBufferViewTag` names.
fn v8_view_name(subtag: u8) -> Option<&'static str> {
    Some(match subtag {
        b'b' => "an Int8Array",
        b'C' => "a Uint8ClampedArray",
        b'w' => "an Int16Array",
        b'W' => "a Uint16Array",
        b'd' => "an Int32Array",
        b'D' => "a Uint32Array",
        b'h' => "a Float16Array",
        b'f' => "a Float32Array",
        b'F' => "a Float64Array",
        b'q' => "a BigInt64Array",
        b'Q' => "a BigUint64Array",
        b'?' => "a DataView",
        _ => return None,
    })
}

const REPEATED_KEY: &str = "a property key that appears twice";

/// Sorts by index; `None` if an index repeats.
fn sort_indexed<V>(mut items: Vec<(u32, V)>) -> Option<Vec<(u32, V)>> {
    items.sort_by_key(|&(index, _)| index);
    if items.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return None;
    }
    Some(items)
}

/// Whether a key comes twice.
fn has_repeats<K: Eq + std::hash::Hash>(keys: impl ExactSizeIterator<Item = K>) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    keys.into_iter().any(|key| !seen.insert(key))
}

/// A BigInt's decimal digits from its sign and little-endian magnitude.
fn bigint_digits(negative: bool, magnitude: &[u8]) -> String {
    const CHUNK: u128 = 10_000_000_000_000_000_000; // 10^19, the most that fits in a u64
    let mut limbs: Vec<u64> = magnitude
        .chunks(8)
        .map(|bytes| {
            let mut le = [0; 8];
            le[..bytes.len()].copy_from_slice(bytes);
            u64::from_le_bytes(le)
        })
        .collect();
    let mut chunks = Vec::new(); // base 10^19, least significant first
    loop {
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        if limbs.is_empty() {
            break;
        }
        let mut rem: u128 = 0;
        for limb in limbs.iter_mut().rev() {
            let cur = (rem << 64) | u128::from(*limb);
            *limb = (cur / CHUNK) as u64;
            rem = cur % CHUNK;
        }
        chunks.push(rem as u64);
    }
    let mut out = String::new();
    match chunks.split_last() {
        None => out.push('0'),
        Some((first, rest)) => {
            if negative {
                out.push('-');
            }
            let _ = write!(out, "{first}");
            for chunk in rest.iter().rev() {
                let _ = write!(out, "{chunk:019}");
            }
        }
    }
    out
}

/// Writes a value as `JSON.stringify` would (with this module's
/// exceptions); `Undefined` is `null` here, left out by objects.
fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Undefined | Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(x) if x.is_finite() => write_js_number(out, *x),
        Value::Number(_) => out.push_str("null"),
        Value::BigInt(digits) => out.push_str(digits),
        Value::String(s) => write_json_string(out, s),
        Value::Bytes(bytes) => {
            out.push_str(r#"{"type":"Buffer","data":["#);
            for (i, byte) in bytes.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{byte}");
            }
            out.push_str("]}");
        }
        Value::Array { len, items } => {
            out.push('[');
            let mut items = items.iter().peekable();
            for index in 0..*len {
                if index > 0 {
                    out.push(',');
                }
                match items.next_if(|(i, _)| *i == index) {
                    Some((_, item)) => write_json(out, item),
                    None => out.push_str("null"),
                }
            }
            out.push(']');
        }
        Value::Object(properties) => {
            out.push('{');
            let mut first = true;
            for (key, value) in properties {
                if matches!(value, Value::Undefined) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                write_json_string(out, key);
                out.push(':');
                write_json(out, value);
            }
            out.push('}');
        }
    }
}

/// A string as `JSON.stringify` quotes it.
fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite number as JavaScript's `Number.prototype.toString()` writes it
/// (ECMA-262 `Number::toString`): the shortest digits that read back as
/// the same double, in positional notation from 1e-7 up to 1e21, else as
/// `d.ddde±n`.
fn write_js_number(out: &mut String, x: f64) {
    if x == 0.0 {
        out.push('0'); // also -0
        return;
    }
    if x < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `1.5e-7`.
    let scientific = format!("{:e}", x.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let k = digits.len() as i32;
    // The value is 0.DIGITS × 10^n.
    let n = exponent.parse::<i32>().unwrap_or(0) + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{}", if n > 0 { '+' } else { '-' }, (n - 1).abs());
    }
}

// ---------------------------------------------------------------------------
// Encoding

/// A JSON value as `JSON.parse` would build it, keys in the text's order.
#[derive(Debug)]
enum Json<'a> {
    Null,
    Bool(bool),
    Number(f64),
    String(Text<'a>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Text<'a>, Json<'a>)>),
}

/// A JSON string: borrowed when it has no escapes, else UTF-16 units (an
/// escape may make a lone surrogate, which a `str` cannot hold).
#[derive(Debug)]
enum Text<'a> {
    Str(&'a str),
    Units(Vec<u16>),
}

impl Text<'_> {
    fn units(&self) -> Box<dyn Iterator<Item = u16> + '_> {
        match self {
            Text::Str(s) => Box::new(s.encode_utf16()),
            Text::Units(units) => Box::new(units.iter().copied()),
        }
    }
}

/// Texts are equal when their characters are: `"é"` is `"\u00e9"`.
impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Text::Str(a), Text::Str(b)) => a == b,
            _ => self.units().eq(other.units()),
        }
    }
}

impl Eq for Text<'_> {}

impl std::hash::Hash for Text<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for unit in self.units() {
            state.write_u16(unit);
        }
    }
}

/// Keeps each key once, where it first came, with its last value (as
/// `JSON.parse` does).
fn dedup_keys<K: Eq + std::hash::Hash + Clone, V>(items: Vec<(K, V)>) -> Vec<(K, V)> {
    let mut out: Vec<(K, V)> = Vec::with_capacity(items.len());
    if items.len() <= 16 {
        for (key, value) in items {
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => out.push((key, value)),
            }
        }
    } else {
        let mut slots: HashMap<K, usize> = HashMap::with_capacity(items.len());
        for (key, value) in items {
            match slots.get(&key) {
                Some(&slot) => out[slot].1 = value,
                None => {
                    slots.insert(key.clone(), out.len());
                    out.push((key, value));
                }
            }
        }
    }
    out
}

fn parse_json(text: &str) -> Result<Json<'_>, EncodeError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    parser.whitespace();
    let value = parser.value()?;
    parser.whitespace();
    if parser.pos != text.len() {
        return Err(parser.error("unexpected text after the value"));
    }
    Ok(value)
}

/// A strict RFC 8259 parser (what `JSON.parse` accepts).
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, reason: &'static str) -> EncodeError {
        self.error_at(self.pos, reason)
    }

    fn error_at(&self, offset: usize, reason: &'static str) -> EncodeError {
        EncodeError::InvalidJson { offset, reason }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn digits(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn value(&mut self) -> Result<Json<'a>, EncodeError> {
        match self.peek() {
            None => Err(self.error("unexpected end of the text")),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'[') => self.array(),
            Some(b'{') => self.object(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    fn literal(&mut self, word: &str, value: Json<'a>) -> Result<Json<'a>, EncodeError> {
        if !self.bytes[self.pos..].starts_with(word.as_bytes()) {
            return Err(self.error("expected a value"));
        }
        self.pos += word.len();
        Ok(value)
    }

    fn number(&mut self) -> Result<Json<'a>, EncodeError> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("expected a digit")),
        }
        if self.eat(b'.') && !self.digits() {
            return Err(self.error("expected a digit after `.`"));
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !self.digits() {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        // Rust's float parsing rounds correctly, as JSON.parse does (and
        // overflows to infinity, as it does).
        self.text[start..self.pos]
            .parse()
            .map(Json::Number)
            .map_err(|_| self.error_at(start, "invalid number"))
    }

    fn string(&mut self) -> Result<Text<'a>, EncodeError> {
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        // Most strings have no escapes: borrow them.
        loop {
            match self.peek() {
                None => return Err(self.error_at(open, "unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Text::Str(&self.text[start..self.pos - 1]));
                }
                Some(b'\\') => break,
                Some(0..0x20) => return Err(self.error("control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
        let mut units: Vec<u16> = self.text[start..self.pos].encode_utf16().collect();
        loop {
            match self.peek() {
                None => return Err(self.error_at(open, "unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Text::Units(units));
                }
                Some(b'\\') => {
                    let at = self.pos;
                    self.pos += 2;
                    units.push(match self.bytes.get(at + 1) {
                        Some(b'"') => 0x22,
                        Some(b'\\') => 0x5C,
                        Some(b'/') => 0x2F,
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0C,
                        Some(b'n') => 0x0A,
                        Some(b'r') => 0x0D,
                        Some(b't') => 0x09,
                        Some(b'u') => self.hex4(at)?,
                        _ => return Err(self.error_at(at, "invalid escape")),
                    });
                }
                Some(0..0x20) => return Err(self.error("control character in a string")),
                Some(_) => {
                    // A run of plain characters; it ends on an ASCII byte,
                    // so on a character boundary.
                    let run = self.pos;
                    while let Some(b) = self.peek() {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        self.pos += 1;
                    }
                    units.extend(self.text[run..self.pos].encode_utf16());
                }
            }
        }
    }

    /// The four hex digits after `\u`.
    fn hex4(&mut self, at: usize) -> Result<u16, EncodeError> {
        let mut unit = 0u16;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.error_at(at, "invalid \\u escape"))?;
            unit = (unit << 4) | digit as u16;
            self.pos += 1;
        }
        Ok(unit)
    }

    fn enter(&mut self) -> Result<(), EncodeError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(EncodeError::TooDeep { limit: MAX_DEPTH });
        }
        self.pos += 1;
        self.whitespace();
        Ok(())
    }

    fn array(&mut self) -> Result<Json<'a>, EncodeError> {
        self.enter()?;
        let mut items = Vec::new();
        if !self.eat(b']') {
            loop {
                items.push(self.value()?);
                self.whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.whitespace();
                    }
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or `]`")),
                }
            }
        }
        self.depth -= 1;
        Ok(Json::Array(items))
    }

    fn object(&mut self) -> Result<Json<'a>, EncodeError> {
        self.enter()?;
        let mut properties = Vec::new();
        if !self.eat(b'}') {
            loop {
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a string key"));
                }
                let key = self.string()?;
                self.whitespace();
                if !self.eat(b':') {
                    return Err(self.error("expected `:`"));
                }
                self.whitespace();
                properties.push((key, self.value()?));
                self.whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.whitespace();
                    }
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or `}`")),
                }
            }
        }
        self.depth -= 1;
        Ok(Json::Object(properties))
    }
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut value: u64) {
        loop {
            let byte = (value & 0x7F) as u8;
            value >>= 7;
            if value == 0 {
                self.out.push(byte);
                return;
            }
            self.out.push(byte | 0x80);
        }
    }

    fn value(&mut self, value: &Json<'_>) {
        match value {
            Json::Null => self.out.push(tag::NULL),
            Json::Bool(true) => self.out.push(tag::TRUE),
            Json::Bool(false) => self.out.push(tag::FALSE),
            Json::Number(x) => self.number(*x),
            Json::String(text) => self.string(text),
            Json::Array(items) => {
                self.out.push(tag::BEGIN_DENSE_ARRAY);
                self.varint(items.len() as u64);
                for item in items {
                    self.value(item);
                }
                self.out.push(tag::END_DENSE_ARRAY);
                self.varint(0);
                self.varint(items.len() as u64);
            }
            Json::Object(properties) => {
                let properties = dedup_keys(properties.iter().map(|(k, v)| (k, v)).collect());
                self.out.push(tag::BEGIN_OBJECT);
                for (key, value) in &properties {
                    self.string(key);
                    self.value(value);
                }
                self.out.push(tag::END_OBJECT);
                self.varint(properties.len() as u64);
            }
        }
    }

    /// A V8 small integer (what `JSON.parse` makes of an integral number
    /// in the int32 range, but not of -0) as `I`, any other number as `N`.
    fn number(&mut self, x: f64) {
        let int = x as i32; // saturating; NaN → 0
        if f64::from(int) == x && !(x == 0.0 && x.is_sign_negative()) {
            self.out.push(tag::INT32);
            self.varint(u64::from(((int << 1) ^ (int >> 31)) as u32));
        } else {
            self.out.push(tag::DOUBLE);
            self.out.extend_from_slice(&x.to_le_bytes());
        }
    }

    fn string(&mut self, text: &Text<'_>) {
        match text {
            Text::Str(s) if s.chars().all(|c| c <= '\u{ff}') => {
                self.out.push(tag::ONE_BYTE_STRING);
                self.varint(s.chars().count() as u64);
                self.out.extend(s.chars().map(|c| c as u8));
            }
            Text::Str(s) => self.two_byte(s.encode_utf16().count(), s.encode_utf16()),
            Text::Units(units) if units.iter().all(|&u| u <= 0xFF) => {
                self.out.push(tag::ONE_BYTE_STRING);
                self.varint(units.len() as u64);
                self.out.extend(units.iter().map(|&u| u as u8));
            }
            Text::Units(units) => self.two_byte(units.len(), units.iter().copied()),
        }
    }

    /// A `c` string, after a padding byte if its characters would start at
    /// an odd offset (V8 aligns them; Node's 4-byte prefix keeps parity).
    fn two_byte(&mut self, len: usize, units: impl Iterator<Item = u16>) {
        let byte_len = 2 * len as u64;
        let varint_len = (64 - byte_len.max(1).leading_zeros()).div_ceil(7) as usize;
        if !(self.out.len() + 1 + varint_len).is_multiple_of(2) {
            self.out.push(tag::PADDING);
        }
        self.out.push(tag::TWO_BYTE_STRING);
        self.varint(byte_len);
        self.out.reserve(2 * len);
        for unit in units {
            self.out.extend_from_slice(&unit.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from hex, spaces allowed: `"ff 0f 30"`.
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn json(text: &str) -> Payload {
        Payload::Json(text.into())
    }

    #[track_caller]
    fn decodes(frame: &str, expected: &str) {
        assert_eq!(decode(&hex(frame)), Ok(json(expected)), "decoding {frame}");
    }

    #[track_caller]
    fn encodes(text: &str, frame: &str) {
        assert_eq!(encode(&json(text)), Ok(hex(frame)), "encoding {text}");
    }

    /// Both ways: the frame decodes to the text and the text encodes to
    /// the frame.
    #[track_caller]
    fn both(frame: &str, text: &str) {
        decodes(frame, text);
        encodes(text, frame);
    }

    #[track_caller]
    fn unsupported(frame: &str, what: &str) {
        match decode(&hex(frame)) {
            Err(DecodeError::Unsupported { what: found }) => assert_eq!(found, what),
            other => panic!("decoding {frame}: expected {what} to be unsupported, got {other:?}"),
        }
    }

    // The rows of node.md §2.3, as Node v20.20.2 writes them.

    #[test]
    fn table_one_byte_string() {
        both("ff 0f 22 02 68 69", r#""hi""#);
    }

    #[test]
    fn table_int32() {
        both("ff 0f 49 02", "1");
        both("ff 0f 49 01", "-1");
    }

    #[test]
    fn table_double() {
        both("ff 0f 4e 00 00 00 00 00 00 f8 3f", "1.5");
    }

    #[test]
    fn table_oddballs() {
        both("ff 0f 54", "true");
        both("ff 0f 46", "false");
        both("ff 0f 30", "null");
        // undefined: null at top level (JSON.stringify gives no text).
        decodes("ff 0f 5f", "null");
    }

    #[test]
    fn table_object() {
        both("ff 0f 6f 22 01 61 49 02 7b 01", r#"{"a":1}"#);
    }

    #[test]
    fn table_dense_array() {
        both("ff 0f 41 02 49 02 49 04 24 00 02", "[1,2]");
    }

    #[test]
    fn table_bigint() {
        decodes(
            "ff 0f 6f 22 01 62 5a 10 0a 00 00 00 00 00 00 00 7b 01",
            r#"{"b":10}"#,
        );
    }

    #[test]
    fn table_map() {
        let err = decode(&hex("ff 0f 3b 49 02 22 01 78 3a 02")).unwrap_err();
        assert_eq!(err, DecodeError::Unsupported { what: "a Map" });
        assert_eq!(
            err.to_string(),
            "a Map cannot be a Hive message (supported: null, undefined, booleans, numbers, \
             strings, arrays, plain objects, Buffer/Uint8Array, BigInt, Date)"
        );
    }

    #[test]
    fn table_buffer() {
        let frame = hex("ff 0f 5c 00 0a 03 01 02 03");
        assert_eq!(decode(&frame), Ok(Payload::Bytes(vec![1, 2, 3])));
        assert_eq!(encode(&Payload::Bytes(vec![1, 2, 3])), Ok(frame));
    }

    #[test]
    fn table_uint8array() {
        assert_eq!(
            decode(&hex("ff 0f 5c 00 01 01 09")),
            Ok(Payload::Bytes(vec![9]))
        );
    }

    #[test]
    fn table_date() {
        decodes("ff 0f 44 00 00 00 00 00 00 00 00", "0");
    }

    #[test]
    fn table_two_byte_string() {
        both("ff 0f 63 08 e9 00 ac 20 3d d8 00 de", r#""é€😀""#);
    }

    #[test]
    fn table_internal_message() {
        both(
            "ff 0f 6f 22 03 63 6d 64 22 06 4e 4f 44 45 5f 58 7b 01",
            r#"{"cmd":"NODE_X"}"#,
        );
    }

    // More frames Node v20 writes (see the commit that added this file for
    // the script that printed them).

    #[test]
    fn two_byte_strings_are_aligned() {
        // {ab:'€'}: the characters would start at an odd offset.
        both("ff 0f 6f 22 02 61 62 00 63 02 ac 20 7b 01", r#"{"ab":"€"}"#);
        // A lone surrogate, as JSON.parse('"\\ud800"') makes it.
        encodes(r#""\ud800""#, "ff 0f 63 02 00 d8");
        decodes("ff 0f 63 02 00 d8", "\"\u{fffd}\"");
        decodes("ff 0f 63 04 00 dc 00 d8", "\"\u{fffd}\u{fffd}\"");
        // A long two-byte string: a two-byte length varint changes parity.
        let long = "€".repeat(64);
        let body = encode(&json(&format!("\"{long}\""))).unwrap();
        assert_eq!(&body[..5], &hex("ff 0f 00 63 80 01")[..5]);
        assert_eq!(body.len(), 6 + 128);
        assert_eq!(decode(&body), Ok(json(&format!("\"{long}\""))));
    }

    #[test]
    fn one_byte_strings_are_latin1() {
        both("ff 0f 22 02 e9 ff", r#""éÿ""#);
        encodes(r#""\u00e9""#, "ff 0f 22 01 e9");
        encodes(r#""\ud83d\ude00""#, "ff 0f 63 04 3d d8 00 de");
        // UTF-8, which V8 still reads.
        decodes("ff 0f 53 02 c3 a9", r#""é""#);
        decodes("ff 0f 53 01 ff", "\"\u{fffd}\"");
    }

    #[test]
    fn strings_are_quoted_as_json_stringify_does() {
        // One-byte (Latin-1) characters only, so that the bytes are the text.
        let text = "q\" b\\ \u{8}\u{c}\n\r\t \u{0} \u{1f} \u{7f} /";
        let mut frame = vec![0xff, 0x0f, b'"', text.len() as u8];
        frame.extend(text.bytes());
        assert_eq!(
            decode(&frame),
            Ok(json(
                "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0000 \\u001f \u{7f} /\""
            ))
        );
        // U+2028 and U+2029 are not escaped (JSON.stringify does not).
        let separators = json("\"\u{2028}\u{2029}\"");
        assert_eq!(decode(&encode(&separators).unwrap()), Ok(separators));
    }

    #[test]
    fn sparse_arrays() {
        // [1,,3] and [1,2,3] after `delete a[1]`.
        decodes("ff 0f 61 03 49 00 49 02 49 04 49 06 40 02 03", "[1,null,3]");
        // a[5] = 1
        decodes(
            "ff 0f 61 06 49 0a 49 02 40 01 06",
            "[null,null,null,null,null,1]",
        );
        // How Node re-sends [1,2,[3]] that it received.
        decodes(
            "ff 0f 61 03 49 00 49 02 49 02 49 04 49 04 61 01 49 00 49 06 40 01 01 40 03 03",
            "[1,2,[3]]",
        );
        // a[4294967294] = 1: four billion nulls.
        assert_eq!(
            decode(&hex(
                "ff 0f 61 ff ff ff ff 0f 4e 00 00 c0 ff ff ff ef 41 49 02 40 01 ff ff ff ff 0f"
            )),
            Err(DecodeError::TooManyHoles { limit: MAX_HOLES })
        );
        // An index past the length makes the array longer, as in JS.
        decodes("ff 0f 61 01 49 04 54 40 01 01", "[null,null,true]");
    }

    #[test]
    fn dense_arrays_with_holes_and_properties() {
        decodes("ff 0f 41 03 49 02 2d 49 06 24 00 03", "[1,null,3]");
        // Object.assign([1,2], {foo:'bar'}): the property does not show.
        decodes(
            "ff 0f 41 02 49 02 49 04 22 03 66 6f 6f 22 03 62 61 72 24 01 02",
            "[1,2]",
        );
        // undefined elements are null.
        decodes("ff 0f 41 02 5f 49 02 24 00 02", "[null,1]");
    }

    #[test]
    fn object_keys_in_javascript_order() {
        // {b:1, 2:'two', 1:'one', a:2}: V8 writes integer keys as numbers.
        decodes(
            "ff 0f 6f 49 02 22 03 6f 6e 65 49 04 22 03 74 77 6f 22 01 62 49 02 22 01 61 49 04 7b 04",
            r#"{"1":"one","2":"two","b":1,"a":2}"#,
        );
        // {4294967295: 1, 4294967294: 2}: only the second is an index.
        decodes(
            "ff 0f 6f 4e 00 00 c0 ff ff ff ef 41 49 04 22 0a 34 32 39 34 39 36 37 32 39 35 49 02 7b 02",
            r#"{"4294967294":2,"4294967295":1}"#,
        );
        // A frame of our own: keys out of JS order, a repeat, "01".
        let body = encode(&json(r#"{"b":1,"1":2,"b":3,"01":4,"x":5}"#)).unwrap();
        assert_eq!(decode(&body), Ok(json(r#"{"1":2,"b":3,"01":4,"x":5}"#)));
        // Number keys that are not indices: their JS string form.
        decodes(
            "ff 0f 6f 4e 00 00 00 00 00 00 f8 3f 54 49 01 46 4e 00 00 00 00 00 00 f8 7f 30 7b 03",
            r#"{"1.5":true,"-1":false,"NaN":null}"#,
        );
        // undefined properties are left out.
        decodes("ff 0f 6f 22 01 61 5f 22 01 62 49 02 7b 02", r#"{"b":1}"#);
    }

    #[test]
    fn keys_are_written_in_order() {
        encodes(
            r#"{"b":1,"a":[]}"#,
            "ff 0f 6f 22 01 62 49 02 22 01 61 41 00 24 00 00 7b 02",
        );
    }

    #[test]
    fn numbers_print_as_javascript_does() {
        for (x, js) in [
            (1099511627776.0, "1099511627776"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0 / 3.0, "0.3333333333333333"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1.5e21, "1.5e+21"),
            (1e-6, "0.000001"),
            (1.234e-6, "0.000001234"),
            (1e-7, "1e-7"),
            (-1.5e-7, "-1.5e-7"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (2f64.powi(53) + 2.0, "9007199254740994"),
            (4.35, "4.35"),
            (-1e100, "-1e+100"),
        ] {
            let mut frame = vec![0xff, 0x0f, b'N'];
            frame.extend(x.to_le_bytes());
            assert_eq!(decode(&frame), Ok(json(js)), "{x:e}");
        }
        decodes("ff 0f 4e 00 00 00 00 00 00 f8 7f", "null"); // NaN
        decodes("ff 0f 4e 00 00 00 00 00 00 f0 7f", "null"); // Infinity
        decodes("ff 0f 4e 00 00 00 00 00 00 f0 ff", "null"); // -Infinity
        decodes("ff 0f 55 ff ff ff ff 0f", "4294967295"); // uint32
    }

    #[test]
    fn int32_range() {
        both("ff 0f 49 80 80 80 80 08", "1073741824"); // 2^30
        both("ff 0f 49 fe ff ff ff 0f", "2147483647");
        both("ff 0f 49 ff ff ff ff 0f", "-2147483648");
        both("ff 0f 4e 00 00 00 00 00 00 e0 41", "2147483648");
        both("ff 0f 4e 00 00 20 00 00 00 e0 c1", "-2147483649");
        both("ff 0f 4e 00 00 00 00 00 00 70 42", "1099511627776"); // 2^40
        // -0 stays a double, as JSON.parse keeps it.
        encodes("-0", "ff 0f 4e 00 00 00 00 00 00 00 80");
        decodes("ff 0f 4e 00 00 00 00 00 00 00 80", "0");
        encodes("1.0", "ff 0f 49 02");
        encodes("1e2", "ff 0f 49 c8 01");
        encodes("1E+2", "ff 0f 49 c8 01");
        encodes("1e400", "ff 0f 4e 00 00 00 00 00 00 f0 7f");
    }

    #[test]
    fn bigints_are_digits() {
        decodes(
            "ff 0f 5a 21 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00",
            "-18446744073709551616",
        );
        decodes("ff 0f 5a 00", "0");
        decodes("ff 0f 5a 02 01", "1"); // not whole 64-bit digits
        decodes("ff 0f 5a 03 ff", "-255");
        decodes("ff 0f 7a 10 05 00 00 00 00 00 00 00", "5"); // Object(5n)
        // 2^128, in 17 bytes (V8 writes whole digits; any length is read).
        decodes(
            "ff 0f 5a 22 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01",
            "340282366920938463463374607431768211456",
        );
        // 10^19 exactly, which is one chunk of digits plus zeros.
        decodes(
            "ff 0f 5a 10 00 00 e8 89 04 23 c7 8a",
            "10000000000000000000",
        );
        let mut big = hex("ff 0f 5a 82 10");
        big.extend([1; 1025]);
        assert_eq!(
            decode(&big),
            Err(DecodeError::BigIntTooLarge {
                bytes: 1025,
                limit: MAX_BIGINT_BYTES
            })
        );
    }

    #[test]
    fn dates_are_milliseconds() {
        let mut frame = hex("ff 0f 6f 22 01 64 44");
        frame.extend(1_700_000_000_000f64.to_le_bytes());
        frame.extend(hex("7b 01"));
        assert_eq!(decode(&frame), Ok(json(r#"{"d":1700000000000}"#)));
        decodes("ff 0f 44 00 00 00 00 00 00 f8 7f", "null"); // new Date(NaN)
    }

    #[test]
    fn wrapper_objects_are_their_primitives() {
        decodes("ff 0f 6e 00 00 00 00 00 00 08 40", "3");
        decodes("ff 0f 73 22 01 73", r#""s""#);
        decodes("ff 0f 79", "true");
        decodes("ff 0f 78", "false");
    }

    #[test]
    fn nested_buffers_are_json_stringify_buffers() {
        decodes(
            "ff 0f 6f 22 03 62 75 66 5c 00 0a 02 68 69 7b 01",
            r#"{"buf":{"type":"Buffer","data":[104,105]}}"#,
        );
        decodes(
            "ff 0f 41 01 5c 00 01 00 24 00 01",
            r#"[{"type":"Buffer","data":[]}]"#,
        );
    }

    #[test]
    fn host_objects() {
        // A non-view host object: Node sends a plain copy.
        decodes("ff 0f 5c 01 6f 22 01 61 49 02 7b 01", r#"{"a":1}"#);
        // V8's own form of a Uint8Array (subarray(1) of [5,6,7]).
        assert_eq!(
            decode(&hex("ff 0f 42 03 05 06 07 56 42 01 02 00")),
            Ok(Payload::Bytes(vec![6, 7]))
        );
        assert!(matches!(
            decode(&hex("ff 0f 42 03 05 06 07 56 42 02 02 00")),
            Err(DecodeError::Invalid { .. })
        ));
        unsupported("ff 0f 42 04 00 00 80 3f 56 66 00 04 00", "a Float32Array");
        unsupported(
            "ff 0f 5c 00 08 08 00 00 00 00 00 00 f0 3f",
            "a Float64Array",
        );
        unsupported("ff 0f 5c 00 09 01 00", "a DataView");
        unsupported("ff 0f 5c 00 02 01 01", "a Uint8ClampedArray");
        unsupported("ff 0f 5c 00 00 01 01", "an Int8Array");
        assert!(matches!(
            decode(&hex("ff 0f 5c 00 0d 00")),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn unsupported_types_are_named() {
        unsupported("ff 0f 27 49 02 2c 01", "a Set");
        unsupported("ff 0f 52 22 01 61 01", "a RegExp");
        unsupported("ff 0f 72 52 6d 22 01 78 2e", "a RangeError");
        unsupported("ff 0f 72 54 6d 22 01 79 2e", "a TypeError");
        unsupported("ff 0f 72 6d 22 01 78 2e", "an Error");
        unsupported(
            "ff 0f 41 02 6f 7b 00 5e 01 24 00 02",
            "an object that appears twice (a shared or circular reference)",
        );
        unsupported("ff 0f 42 02 00 00", "an ArrayBuffer");
        unsupported("ff 0f 7e 02 04 00 00", "a resizable ArrayBuffer");
        unsupported("ff 0f 75 00", "a SharedArrayBuffer");
        unsupported("ff 0f 77 00", "a WebAssembly.Module");
        // Inside an object, too.
        unsupported("ff 0f 6f 22 01 6d 3b 3a 00 7b 01", "a Map");
    }

    #[test]
    fn malformed_frames() {
        use DecodeError::*;
        let cases: &[(&str, DecodeError)] = &[
            ("", Truncated { offset: 0 }),
            ("ff", Truncated { offset: 1 }),
            ("ff 0f", Truncated { offset: 2 }),
            ("30", BadHeader { found: 0x30 }),
            ("ff 10 30", UnsupportedVersion { version: 16 }),
            ("ff 0c 30", UnsupportedVersion { version: 12 }),
            (
                "ff 0f 30 30",
                TrailingBytes {
                    offset: 3,
                    count: 1,
                },
            ),
            ("ff 0f 22 05 61", Truncated { offset: 5 }),
            ("ff 0f 4e 00 00", Truncated { offset: 5 }),
            ("ff 0f 41 ff ff ff ff 0f", Truncated { offset: 8 }),
            ("ff 0f 5c 00 0a ff ff ff ff 0f 00", Truncated { offset: 11 }),
            ("ff 0f 01", UnknownTag { tag: 1, offset: 2 }),
            ("ff 0f 00 00 01", UnknownTag { tag: 1, offset: 4 }),
        ];
        for (frame, expected) in cases {
            assert_eq!(decode(&hex(frame)).as_ref(), Err(expected), "{frame:?}");
        }
        for frame in [
            "ff 0f 63 03 00 00 00",       // odd two-byte length
            "ff 0f 6f 22 01 61 30 7b 02", // wrong property count
            "ff 0f 41 01 30 24 00 02",    // lengths differ
            "ff 0f 6f 30 30 7b 01",       // null as a key
            "ff 0f 7b 00",                // an end tag as a value
            "ff 0f 2d",                   // a hole outside an array
            "ff 0f 49 ff ff ff ff ff 01", // a varint of 6 bytes
            "ff 0f 49 ff ff ff ff 7f",    // a varint over 32 bits
            "ff 0f 5c 02 30",             // host object of kind 2
            "ff 0f 73 49 02",             // a String object that holds a number
            "ff 0f 5a 01",                // -0n, which V8 rejects
            // Repeated keys, which V8 rejects (Node then exits):
            "ff 0f 6f 22 01 61 30 22 01 61 30 7b 02", // "a", "a"
            "ff 0f 6f 49 02 30 22 01 31 30 7b 02",    // 1, "1"
            "ff 0f 61 02 49 00 30 49 00 30 40 02 02", // a sparse index twice
            "ff 0f 41 01 30 49 00 30 24 01 01",       // a dense element and index 0
        ] {
            assert!(
                matches!(decode(&hex(frame)), Err(Invalid { .. })),
                "{frame}: {:?}",
                decode(&hex(frame))
            );
        }
        // Padding before a tag, as V8 may write, and V8's obsolete object
        // count before a value, are skipped.
        decodes("ff 0f 00 00 54", "true");
        decodes("ff 0f 3f 05 54", "true");
        // A property may fill a dense array's hole (V8 reads [true]).
        decodes("ff 0f 41 01 2d 49 00 54 24 01 01", "[true]");
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let ok = encode(&json(&nested(MAX_DEPTH))).unwrap();
        assert_eq!(decode(&ok), Ok(json(&nested(MAX_DEPTH))));
        assert_eq!(
            encode(&json(&nested(MAX_DEPTH + 1))),
            Err(EncodeError::TooDeep { limit: MAX_DEPTH })
        );
        let objects = |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        assert!(encode(&json(&objects(MAX_DEPTH))).is_ok());
        assert_eq!(
            encode(&json(&objects(MAX_DEPTH + 1))),
            Err(EncodeError::TooDeep { limit: MAX_DEPTH })
        );
        // A frame nested one deeper than we write.
        let mut deep = vec![0xff, 0x0f];
        deep.extend(std::iter::repeat_n([b'A', 1], MAX_DEPTH + 1).flatten());
        deep.extend([b'A', 0, b'$', 0, 0]);
        deep.extend(std::iter::repeat_n([b'$', 0, 1], MAX_DEPTH + 1).flatten());
        assert_eq!(
            decode(&deep),
            Err(DecodeError::TooDeep { limit: MAX_DEPTH })
        );
        // Host objects that wrap host objects count too.
        let mut wrapped = vec![0xff, 0x0f];
        wrapped.extend(std::iter::repeat_n([b'\\', 1], 10_000).flatten());
        wrapped.push(b'0');
        assert_eq!(
            decode(&wrapped),
            Err(DecodeError::TooDeep { limit: MAX_DEPTH })
        );
    }

    #[test]
    fn encode_reads_json_as_json_parse_does() {
        encodes(" \t\r\n[ 1 , 2 ]\n", "ff 0f 41 02 49 02 49 04 24 00 02");
        encodes(r#""a\/b\"\\""#, "ff 0f 22 05 61 2f 62 22 5c");
        encodes(r#"{}"#, "ff 0f 6f 7b 00");
        encodes(r#""""#, "ff 0f 22 00");
        // A repeated key once, in its first place, with its last value
        // (as Node writes JSON.parse's object); "é" and "\u00e9" are one key.
        encodes(r#"{"a":1,"a":2}"#, "ff 0f 6f 22 01 61 49 04 7b 01");
        encodes(
            r#"{"é":1,"b":2,"\u00e9":3}"#,
            "ff 0f 6f 22 01 e9 49 06 22 01 62 49 04 7b 02",
        );
        for bad in [
            "",
            " ",
            "[1,]",
            "[1 2]",
            r#"{"a"}"#,
            r#"{"a":1,}"#,
            "{a:1}",
            "01",
            "1.",
            ".5",
            "+1",
            "-",
            "1e",
            "nul",
            "NaN",
            "Infinity",
            r#""\x""#,
            "\"a\nb\"",
            r#""\u12""#,
            r#""\u12g4""#,
            "\"abc",
            "[1] x",
            "'a'",
            "[",
            "{\"a\":",
        ] {
            assert!(
                matches!(encode(&json(bad)), Err(EncodeError::InvalidJson { .. })),
                "{bad:?}: {:?}",
                encode(&json(bad))
            );
        }
        assert_eq!(
            encode(&json("[1,]")).unwrap_err().to_string(),
            "the payload is not valid JSON: expected a value (at byte 3)"
        );
    }

    #[test]
    fn frames_are_split() {
        let a = frame(&hex("ff 0f 30"));
        assert_eq!(a, hex("00 00 00 03 ff 0f 30"));
        let b = frame(&hex("ff 0f 49 02"));
        let mut stream = [a.clone(), b.clone()].concat();
        let split = |buf: &[u8], max| {
            let Split {
                bodies,
                used,
                error,
            } = split_frames(buf, max);
            (bodies, used, error)
        };
        assert_eq!(split(&stream, 100), (vec![4..7, 11..15], 15, None));
        // A partial frame, and a split length prefix, stay for later.
        for cut in 0..stream.len() {
            let (frames, used, _) = split(&stream[..cut], 100);
            let expected = if cut >= 15 {
                2
            } else if cut >= 7 {
                1
            } else {
                0
            };
            assert_eq!(frames.len(), expected, "cut at {cut}");
            assert_eq!(used, [0, 7, 15][expected]);
        }
        // An empty frame is a frame (that decode rejects).
        stream.extend([0, 0, 0, 0]);
        assert_eq!(split(&stream, 100).0[2], 19..19);
        assert_eq!(decode(&[]), Err(DecodeError::Truncated { offset: 0 }));
        // Too large as soon as the prefix is in; the frames before it are kept.
        let too_large = Some(DecodeError::FrameTooLarge { len: 256, max: 255 });
        assert_eq!(
            split(&hex("00 00 01 00"), 255),
            (vec![], 0, too_large.clone())
        );
        let before = [a.clone(), hex("00 00 01 00")].concat();
        let (bodies, used, error) = split(&before, 255);
        assert_eq!(
            (bodies.len(), bodies[0].clone(), used, error),
            (1, 4..7, 7, too_large)
        );
        assert_eq!(split(&hex("ff ff ff ff"), usize::MAX), (vec![], 0, None));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;
        use serde_json::Value as JsonValue;

        /// JSON-ish values: every kind of number and string, nested a few
        /// levels.
        pub(super) fn json_value() -> impl Strategy<Value = JsonValue> {
            let leaf = prop_oneof![
                Just(JsonValue::Null),
                any::<bool>().prop_map(JsonValue::Bool),
                any::<i32>().prop_map(JsonValue::from),
                any::<i64>().prop_map(JsonValue::from),
                any::<u64>().prop_map(JsonValue::from),
                any::<f64>().prop_filter_map("a finite number", |x| {
                    serde_json::Number::from_f64(x).map(JsonValue::Number)
                }),
                (-1e7f64..1e7).prop_map(JsonValue::from),
                any::<String>().prop_map(JsonValue::String),
                "[a-zé€😀\\\\\"\n\u{0}]{0,6}".prop_map(JsonValue::String),
            ];
            let key = prop_oneof!["[a-c]{0,2}", "[0-9]{1,11}", any::<String>()];
            leaf.prop_recursive(4, 48, 6, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(JsonValue::Array),
                    prop::collection::vec((key.clone(), inner), 0..6)
                        .prop_map(|pairs| JsonValue::Object(pairs.into_iter().collect())),
                ]
            })
        }

        /// A JSON text as JavaScript sees it, as a serde_json value: every
        /// number an f64 read with correct rounding (serde_json's own
        /// float parsing is not, with its defaults), keys in the text's
        /// order (the map compares without order).
        pub(super) fn as_javascript(text: &str) -> JsonValue {
            fn convert(value: &Json<'_>) -> JsonValue {
                let text = |t: &Text<'_>| match t {
                    Text::Str(s) => s.to_string(),
                    Text::Units(units) => String::from_utf16_lossy(units),
                };
                match value {
                    Json::Null => JsonValue::Null,
                    Json::Bool(b) => JsonValue::Bool(*b),
                    // -0 and 0 are the same JSON number.
                    Json::Number(x) => JsonValue::from(*x + 0.0),
                    Json::String(s) => JsonValue::String(text(s)),
                    Json::Array(items) => JsonValue::Array(items.iter().map(convert).collect()),
                    Json::Object(properties) => JsonValue::Object(
                        properties
                            .iter()
                            .map(|(k, v)| (text(k), convert(v)))
                            .collect(),
                    ),
                }
            }
            convert(&parse_json(text).expect("valid JSON"))
        }

        #[derive(Debug, Clone)]
        enum Mutation {
            Truncate(usize),
            Flip(usize, u8),
            Insert(usize, u8),
            Remove(usize),
        }

        fn mutation() -> impl Strategy<Value = Mutation> {
            prop_oneof![
                any::<usize>().prop_map(Mutation::Truncate),
                (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
                (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
                any::<usize>().prop_map(Mutation::Remove),
            ]
        }

        fn apply(body: &mut Vec<u8>, mutation: &Mutation) {
            let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
            match *mutation {
                Mutation::Truncate(i) => body.truncate(at(i, body.len() + 1)),
                Mutation::Flip(i, x) if !body.is_empty() => {
                    let i = at(i, body.len());
                    body[i] ^= x;
                }
                Mutation::Insert(i, b) => body.insert(at(i, body.len() + 1), b),
                Mutation::Remove(i) if !body.is_empty() => {
                    body.remove(at(i, body.len()));
                }
                _ => {}
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn random_bytes_never_panic(
                header in any::<bool>(),
                bytes in prop::collection::vec(any::<u8>(), 0..200),
                max in any::<usize>(),
            ) {
                let mut frame = if header { vec![0xff, 0x0f] } else { Vec::new() };
                frame.extend(&bytes);
                let _ = decode(&frame);
                let Split { bodies, used, .. } = split_frames(&frame, max);
                prop_assert!(used <= frame.len());
                for range in bodies {
                    prop_assert!(range.end <= used);
                    let _ = decode(&frame[range]);
                }
            }

            #[test]
            fn mutated_frames_never_panic(
                value in json_value(),
                mutations in prop::collection::vec(mutation(), 1..4),
            ) {
                let mut body = encode(&Payload::Json(value.to_string())).unwrap();
                for m in &mutations {
                    apply(&mut body, m);
                }
                let _ = decode(&body);
                let mut framed = frame(&body);
                apply(&mut framed, &mutations[0]);
                let _ = split_frames(&framed, 1 << 20);
            }

            #[test]
            fn json_round_trips(value in json_value()) {
                let text = value.to_string();
                let body = encode(&Payload::Json(text.clone())).unwrap();
                let Ok(Payload::Json(decoded)) = decode(&body) else {
                    panic!("{text} did not come back as JSON: {:?}", decode(&body));
                };
                prop_assert_eq!(as_javascript(&decoded), as_javascript(&text));
                // What decode writes is a fixed point.
                let again = decode(&encode(&Payload::Json(decoded.clone())).unwrap());
                prop_assert_eq!(again, Ok(Payload::Json(decoded)));
            }

            #[test]
            fn bytes_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
                let body = encode(&Payload::Bytes(bytes.clone())).unwrap();
                prop_assert_eq!(&body[..5], &[0xff, 0x0f, 0x5c, 0x00, 0x0a]);
                prop_assert_eq!(decode(&body), Ok(Payload::Bytes(bytes)));
            }

            #[test]
            fn frames_survive_any_chunking(
                values in prop::collection::vec(json_value(), 1..5),
                cuts in prop::collection::vec(any::<usize>(), 0..6),
            ) {
                let bodies: Vec<Vec<u8>> = values
                    .iter()
                    .map(|v| encode(&Payload::Json(v.to_string())).unwrap())
                    .collect();
                let stream: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
                cuts.push(stream.len());
                cuts.sort_unstable();
                // Feed the stream in chunks, as reads would deliver it.
                let (mut buf, mut got, mut fed) = (Vec::new(), Vec::new(), 0);
                for cut in cuts {
                    buf.extend_from_slice(&stream[fed..cut]);
                    fed = cut;
                    let Split { bodies: frames, used, .. } = split_frames(&buf, 1 << 20);
                    got.extend(frames.into_iter().map(|r| buf[r].to_vec()));
                    buf.drain(..used);
                }
                prop_assert!(buf.is_empty());
                prop_assert_eq!(got, bodies);
            }
        }
    }

    /// Against the real thing: `node` with an advanced-mode IPC channel, as
    /// a forked Node child has it.
    mod against_node {
        use super::super::*;
        use super::json;
        use super::properties::json_value;
        use proptest::strategy::{Strategy, ValueTree};
        use proptest::test_runner::TestRunner;
        use std::collections::VecDeque;
        use std::io::{BufRead, BufReader, Read, Write};
        use std::os::fd::OwnedFd;
        use std::os::unix::net::UnixStream;
        use std::process::{Child, Command, ExitStatus, Stdio};
        use std::sync::mpsc;
        use std::thread::JoinHandle;
        use std::time::{Duration, Instant};

        /// Sends the count, then each case (printing `[name, JSON.stringify
        /// of it or null]` on stdout first); then, for each pair of messages
        /// it gets, echoes the first and reports whether it equals the
        /// second's `JSON.parse(json)` (or `Buffer.from(hex)`) and what
        /// `JSON.stringify` makes of it.
        const SCRIPT: &str = r#"
'use strict';
const util = require('util');
let seed = 0x2545f491;
const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
const bits = new Float64Array(1);
const words = new Uint32Array(bits.buffer);
const randomBits = [];
while (randomBits.length < 200) {
  words[0] = next(); words[1] = next();
  if (Number.isFinite(bits[0])) randomBits.push(bits[0]);
}
const randomScaled = [];
for (let i = 0; i < 300; i++) {
  randomScaled.push((i % 2 ? 1 : -1) * (next() / 2 ** 32) * 10 ** ((next() % 46) - 23));
}
const randomIntegers = [];
for (let i = 0; i < 100; i++) randomIntegers.push((next() | 0) * 2 ** (next() % 40));
const sparse = [1, , 3]; sparse[10] = 'x';
const withProps = [1, 2]; withProps.foo = 'bar';
const shared = {};
const deep = []; let d = deep; for (let i = 0; i < 100; i++) { const n = []; d.push(n); d = n; }
const cases = [
  ['latin1', 'hi é ÿ ~'],
  ['empty-string', ''],
  ['bmp', 'é€中文'],
  ['emoji', 'a😀b'],
  ['escapes', 'q" b\\ \n\t\r\b\f \u0000 \u0001 \u001f \u007f \u2028 \u2029 /'],
  ['long-latin1', 'é'.repeat(300)],
  ['long-two-byte', '€'.repeat(300)],
  ['padding', { ab: '€', c: ['€', { x: '😀' }], dd: 'a€' }],
  ['lone-surrogate', '\ud800x\udc00'],
  ['int', 1], ['negative', -1], ['zero', 0],
  ['int32-max', 2147483647], ['int32-min', -2147483648],
  ['2^31', 2 ** 31], ['2^40', 2 ** 40], ['2^53+2', 2 ** 53 + 2], ['1.5', 1.5],
  ['minus-zero', -0], ['nan', NaN], ['infinity', Infinity], ['minus-infinity', -Infinity],
  ['doubles', [0.1, 0.1 + 0.2, 1 / 3, -1.5e-9, 1e-6, 1e-7, 1.5e-7, 1e20, 1e21, 1.5e21,
    123456789012345680000, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308, 100,
    1e100, 4.35, 0.000001234, 9007199254740993, -0, 1.0]],
  ['doubles-random-bits', randomBits],
  ['doubles-random-scaled', randomScaled],
  ['integers-random', randomIntegers],
  ['null', null], ['true', true], ['false', false],
  ['undefined-in-array', [undefined, 1]],
  ['undefined-property', { a: undefined, b: 1 }],
  ['object', { a: 1, b: 'x', c: [1, { d: null }], e: {}, f: [] }],
  ['index-keys', { b: 1, 2: 'two', 1: 'one', a: 2, 4294967295: 'name', 4294967294: 'index' }],
  ['sparse', sparse],
  ['holey', [1, , 3]],
  ['long-sparse', (() => { const a = []; a[1000] = 1; return a; })()],
  ['array-props', withProps],
  ['deep', deep],
  ['wrappers', [new Number(3), new String('s'), new Boolean(false)]],
  ['buffer', Buffer.from([1, 2, 3, 255])],
  ['buffer-slice', Buffer.from('hello world').subarray(6)],
  ['empty-buffer', Buffer.alloc(0)],
  ['uint8array', new Uint8Array([9, 8, 7])],
  ['nested-buffer', { buf: Buffer.from('hi') }],
  ['nested-uint8array', [new Uint8Array([1, 2])]],
  // process.send() takes only strings, objects, numbers and booleans at
  // the top (a BigInt throws ERR_INVALID_ARG_TYPE, even in advanced mode).
  ['bigint', [12345678901234567890n]],
  ['bigint-negative', { n: -(2n ** 70n) }],
  ['bigint-zero', [0n]],
  ['bigint-nested', { b: 10n }],
  ['bigint-object', Object(5n)],
  ['date', new Date(1700000000000)],
  ['date-nested', { d: new Date(0) }],
  ['date-invalid', new Date(NaN)],
  ['map', new Map([[1, 'x']])],
  ['set', new Set([1])],
  ['regexp', /a/g],
  ['range-error', new RangeError('x')],
  ['shared', [shared, shared]],
  ['float64array', new Float64Array([1])],
  ['arraybuffer', new ArrayBuffer(2)],
];
process.send(cases.length);
for (const [name, value] of cases) {
  let text = null;
  try { text = JSON.stringify(value) ?? null; } catch {}
  console.log(JSON.stringify([name, text]));
  process.send(value);
}
let stored, have = false;
process.on('message', (m) => {
  if (!have) { stored = m; have = true; return; }
  have = false;
  const expected = m.hex !== undefined ? Buffer.from(m.hex, 'hex') : JSON.parse(m.json);
  process.send(stored);
  process.send({
    same: util.isDeepStrictEqual(stored, expected),
    json: Buffer.isBuffer(stored) ? null : JSON.stringify(stored),
  });
});
"#;

        /// What a case must decode to, where it is not `JSON.stringify`'s
        /// text (the exceptions in the module docs).
        enum Expect {
            Json(&'static str),
            /// Bytes, in the very frame `encode` writes.
            Buffer(&'static [u8]),
            Bytes(&'static [u8]),
            Unsupported(&'static str),
        }

        const EXPECT: &[(&str, Expect)] = &[
            ("lone-surrogate", Expect::Json("\"\u{fffd}x\u{fffd}\"")),
            ("buffer", Expect::Buffer(&[1, 2, 3, 255])),
            ("buffer-slice", Expect::Buffer(b"world")),
            ("empty-buffer", Expect::Buffer(&[])),
            ("uint8array", Expect::Bytes(&[9, 8, 7])),
            (
                "nested-uint8array",
                Expect::Json(r#"[{"type":"Buffer","data":[1,2]}]"#),
            ),
            ("bigint", Expect::Json("[12345678901234567890]")),
            (
                "bigint-negative",
                Expect::Json(r#"{"n":-1180591620717411303424}"#),
            ),
            ("bigint-zero", Expect::Json("[0]")),
            ("bigint-nested", Expect::Json(r#"{"b":10}"#)),
            ("bigint-object", Expect::Json("5")),
            ("date", Expect::Json("1700000000000")),
            ("date-nested", Expect::Json(r#"{"d":0}"#)),
            ("map", Expect::Unsupported("a Map")),
            ("set", Expect::Unsupported("a Set")),
            ("regexp", Expect::Unsupported("a RegExp")),
            ("range-error", Expect::Unsupported("a RangeError")),
            (
                "shared",
                Expect::Unsupported(
                    "an object that appears twice (a shared or circular reference)",
                ),
            ),
            ("float64array", Expect::Unsupported("a Float64Array")),
            ("arraybuffer", Expect::Unsupported("an ArrayBuffer")),
        ];

        /// JSON texts of our own to send, and what Node's `JSON.stringify`
        /// makes of them where that is not what `decode` gives.
        fn texts() -> Vec<(String, Option<&'static str>)> {
            let mut texts: Vec<(String, Option<&'static str>)> = [
                "  [ 1 , 2 ]\n",
                r#"{"a":1,"a":2}"#,
                r#"{"b":1,"1":2,"01":3,"4294967295":4,"4294967294":5,"b":6}"#,
                "-0",
                "[-0,0]",
                "1.0",
                "1e2",
                "1E+2",
                "-1.5e-3",
                "2147483647",
                "2147483648",
                "-2147483648",
                "-2147483649",
                "9007199254740993",
                "1e400",
                "-1e400",
                "0.1",
                "123456789012345678901234567890",
                "5e-324",
                "2.4703282292062328e-324",
                "2.2250738585072011e-308",
                "2.2250738585072014e-308",
                "1.7976931348623157e308",
                "1.7976931348623158e308",
                "0.30000000000000004",
                "9.999999999999999e22",
                "1e23",
                "8.41e21",
                "[1,1.5,-0,2147483648]",
                "1.00000000000000011102230246251565404236316680908203125",
                "1.00000000000000011102230246251565404236316680908203126",
                r#""\u00e9\ud83d\ude00 \/ \b\f\n\r\t \" \\ \u0000""#,
                r#"{"ab":"€"}"#,
                r#"["€","a€",{"x":"€€"},"😀"]"#,
                "{}",
                "[]",
                r#""""#,
                "null",
                "true",
                "false",
                r#"{"__proto__":1}"#,
                r#"{"cmd":"NODE_"}"#,
            ]
            .into_iter()
            .map(|text| (text.to_string(), None))
            .collect();
            // Lone surrogates reach Node; JSON.stringify escapes them.
            texts.push((r#""\ud800""#.into(), Some(r#""\ud800""#)));
            texts.push((r#"["\udc00\ud800"]"#.into(), Some(r#"["\udc00\ud800"]"#)));
            texts.push((format!("\"{}\"", "é".repeat(300)), None));
            texts.push((format!("\"{}\"", "€".repeat(300)), None));
            texts.push((
                format!("[\"{}\",\"{}\"]", "a".repeat(200), "€".repeat(70)),
                None,
            ));
            texts.push((
                format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH)),
                None,
            ));
            // And random ones, the same every run.
            let mut runner = TestRunner::deterministic();
            for _ in 0..150 {
                let value = json_value().new_tree(&mut runner).unwrap().current();
                texts.push((value.to_string(), None));
            }
            texts
        }

        struct Node {
            child: Child,
            socket: Option<UnixStream>,
            buf: Vec<u8>,
            frames: VecDeque<Vec<u8>>,
            stdout: mpsc::Receiver<String>,
            stderr: Option<JoinHandle<String>>,
        }

        impl Node {
            /// `node -e SCRIPT` with the channel at fd 3, or `None` if
            /// there is no `node`.
            fn spawn() -> Option<Node> {
                match Command::new("node").arg("--version").output() {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                    result => assert!(result.unwrap().status.success(), "node --version"),
                }
                let (ours, theirs) = UnixStream::pair().unwrap();
                ours.set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                // std cannot put a descriptor at a chosen number without
                // `unsafe` (pre_exec + dup2), so the child's end goes in as
                // stdin and `sh` moves it to fd 3 before running node.
                let mut command = Command::new("sh");
                command
                    .args(["-c", r#"exec "$@" 3<&0 </dev/null"#, "sh"])
                    .args(["node", "-e", SCRIPT])
                    .env("NODE_CHANNEL_FD", "3")
                    .env("NODE_CHANNEL_SERIALIZATION_MODE", "advanced")
                    .stdin(Stdio::from(OwnedFd::from(theirs)))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = command.spawn().unwrap();
                drop(command); // our copy of the child's end: EOF must reach us
                let stdout = child.stdout.take().unwrap();
                let (lines, stdout_lines) = mpsc::channel();
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        if lines.send(line.unwrap()).is_err() {
                            break;
                        }
                    }
                });
                let mut stderr = child.stderr.take().unwrap();
                let stderr = std::thread::spawn(move || {
                    let mut text = String::new();
                    let _ = stderr.read_to_string(&mut text);
                    text
                });
                Some(Node {
                    child,
                    socket: Some(ours),
                    buf: Vec::new(),
                    frames: VecDeque::new(),
                    stdout: stdout_lines,
                    stderr: Some(stderr),
                })
            }

            fn socket(&mut self) -> &mut UnixStream {
                self.socket.as_mut().unwrap()
            }

            fn send(&mut self, body: &[u8]) {
                let framed = frame(body);
                self.socket().write_all(&framed).unwrap();
            }

            /// The next frame body from node.
            fn next(&mut self) -> Vec<u8> {
                loop {
                    if let Some(body) = self.frames.pop_front() {
                        return body;
                    }
                    let mut chunk = [0; 1 << 16];
                    let n = self
                        .socket()
                        .read(&mut chunk)
                        .expect("reading from node (did it time out?)");
                    assert!(n > 0, "node closed the channel");
                    self.buf.extend_from_slice(&chunk[..n]);
                    let Split {
                        bodies: frames,
                        used,
                        ..
                    } = split_frames(&self.buf, 1 << 24);
                    self.frames
                        .extend(frames.into_iter().map(|r| self.buf[r].to_vec()));
                    self.buf.drain(..used);
                }
            }

            fn line(&mut self) -> String {
                self.stdout
                    .recv_timeout(Duration::from_secs(60))
                    .expect("a line from node's stdout")
            }

            /// Closes the channel, which makes node exit.
            fn finish(&mut self) -> ExitStatus {
                drop(self.socket.take());
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    if let Some(status) = self.child.try_wait().unwrap() {
                        return status;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "node did not exit when the channel closed"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }

        impl Drop for Node {
            fn drop(&mut self) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                if std::thread::panicking()
                    && let Some(stderr) = self.stderr.take().and_then(|t| t.join().ok())
                {
                    eprintln!("node's stderr:\n{stderr}");
                }
            }
        }

        /// Checks what one of Node's frames decodes to.
        fn check_case(name: &str, stringified: Option<&str>, body: &[u8]) {
            let decoded = decode(body);
            match EXPECT.iter().find(|(n, _)| *n == name).map(|(_, e)| e) {
                None => {
                    let text = stringified.unwrap_or_else(|| panic!("{name}: no JSON"));
                    assert_eq!(decoded, Ok(json(text)), "{name}");
                }
                Some(Expect::Json(text)) => assert_eq!(decoded, Ok(json(text)), "{name}"),
                Some(Expect::Buffer(bytes)) => {
                    let payload = Payload::Bytes(bytes.to_vec());
                    assert_eq!(decoded.as_ref(), Ok(&payload), "{name}");
                    assert_eq!(encode(&payload).unwrap(), body, "{name}: Node's frame");
                }
                Some(Expect::Bytes(bytes)) => {
                    assert_eq!(decoded, Ok(Payload::Bytes(bytes.to_vec())), "{name}")
                }
                Some(Expect::Unsupported(what)) => {
                    assert_eq!(decoded, Err(DecodeError::Unsupported { what }), "{name}")
                }
            }
        }

        /// Sends a payload; node must echo what we decode from our own
        /// frame, read the same value as `JSON.parse` of the text makes,
        /// and stringify it as we decode it.
        fn check_round_trip(node: &mut Node, payload: &Payload, stringified: Option<&str>) {
            let ours = encode(payload).unwrap();
            let here = decode(&ours).unwrap();
            let probe = match payload {
                Payload::Json(text) => serde_json::json!({ "json": text }),
                Payload::Bytes(bytes) => {
                    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                    serde_json::json!({ "hex": hex })
                }
            };
            node.send(&ours);
            node.send(&encode(&Payload::Json(probe.to_string())).unwrap());
            let echo = node.next();
            let report = node.next();
            assert_eq!(
                decode(&echo).as_ref(),
                Ok(&here),
                "node's echo of {payload:?}"
            );
            let Ok(Payload::Json(report)) = decode(&report) else {
                panic!("node's report on {payload:?}: {:?}", decode(&report));
            };
            let report: serde_json::Value = serde_json::from_str(&report).unwrap();
            assert_eq!(
                report["same"], true,
                "node read {payload:?} as something else than JSON.parse makes of it"
            );
            match (&here, payload) {
                (Payload::Json(here), _) => assert_eq!(
                    report["json"].as_str(),
                    Some(stringified.unwrap_or(here)),
                    "node's JSON.stringify of {payload:?}"
                ),
                (Payload::Bytes(_), _) => {
                    assert_eq!(echo, ours, "node echoes a Buffer byte for byte");
                }
            }
        }

        #[test]
        fn against_node() {
            let Some(mut node) = Node::spawn() else {
                eprintln!("skipping node::v8 against_node: `node` is not on PATH");
                return;
            };
            // 1. Node's frames decode as JSON.stringify (or the documented
            //    exceptions) says.
            let count = match decode(&node.next()) {
                Ok(Payload::Json(count)) => count.parse::<usize>().unwrap(),
                other => panic!("node's first message: {other:?}"),
            };
            let mut payloads = Vec::new();
            let mut seen = Vec::new();
            for _ in 0..count {
                let body = node.next();
                let (name, stringified): (String, Option<String>) =
                    serde_json::from_str(&node.line()).unwrap();
                check_case(&name, stringified.as_deref(), &body);
                payloads.extend(decode(&body).ok());
                seen.push(name);
            }
            for (name, _) in EXPECT {
                assert!(seen.iter().any(|n| n == name), "no case named {name}");
            }
            // 2. What we encode reaches node as the value JSON.parse makes
            //    (Bytes as a Buffer), and comes back as we read it.
            for payload in &payloads {
                check_round_trip(&mut node, payload, None);
            }
            for (text, stringified) in texts() {
                check_round_trip(&mut node, &Payload::Json(text), stringified);
            }
            // 3. Closing the channel ends node, cleanly.
            let status = node.finish();
            assert!(status.success(), "node exited with {status}");
        }
    }
}
