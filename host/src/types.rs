//! `hive:process/types`: the shared types, and the conversion of a host
//! error into the guest's `error-code`.
//!
//! Every interface whose functions return `error-code` needs this `Host`
//! too (bindgen makes it a supertrait), so each view implements it, through
//! [`types_host!`].

use wasmtime::component::HasData;

/// The `HasData` marker of `hive:process/types`, and its (empty) view: the
/// interface needs no state.
pub struct HiveTypes;

impl HasData for HiveTypes {
    type Data<'a> = HiveTypes;
}

/// Implements `hive:process/types`' `Host` for a view.
macro_rules! types_host {
    ($view:ty) => {
        impl $crate::bindings::hive::process::types::Host for $view {
            fn max_message_bytes(&mut self) -> wasmtime::Result<u64> {
                Ok($crate::runtime::message::MAX_MESSAGE_BYTES as u64)
            }

            fn convert_error_code(
                &mut self,
                err: $crate::bindings::HostError,
            ) -> wasmtime::Result<$crate::bindings::ErrorCode> {
                err.downcast()
            }
        }
    };
}
pub(crate) use types_host;

types_host!(HiveTypes);
