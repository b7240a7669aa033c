//! Any bytes as an X-WS-Relay header: parsing never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rippy::http::middleware::websocket_relay::RelayTarget;

fuzz_target!(|data: &[u8]| {
    let _ = RelayTarget::parse(data);
});
