//! `hive:process/types`: the shared types, and the conversion of a host
//! error into the guest's `error-code`.

use crate::bindings::hive::process::types::Host;
use crate::bindings::{ErrorCode, HostError};
use crate::runtime::message::MAX_MESSAGE_BYTES;
use wasmtime::component::HasData;

/// The `HasData` marker of `hive:process/types`, and its (empty) view: the
/// interface needs no state.
pub struct HiveTypes;

impl HasData for HiveTypes {
    type Data<'a> = HiveTypes;
}

impl Host for HiveTypes {
    fn max_message_bytes(&mut self) -> wasmtime::Result<u64> {
        Ok(MAX_MESSAGE_BYTES as u64)
    }

    fn convert_error_code(&mut self, err: HostError) -> wasmtime::Result<ErrorCode> {
        err.downcast()
    }
}
