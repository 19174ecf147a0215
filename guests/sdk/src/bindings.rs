//! The SDK's one `wit_bindgen::generate!`: the `hive:process` imports and
//! the monotonic clock the event loop's timers use. Everything else in the
//! crate wraps these types; guests never see them except through
//! re-exports.

wit_bindgen::generate!({
    inline: "
        package hive:sdk;
        world sdk {
            include hive:process/imports@0.1.0;
            import wasi:clocks/monotonic-clock@0.2.12;
        }
    ",
    path: "../../wit",
    world: "hive:sdk/sdk",
    generate_all,
});
