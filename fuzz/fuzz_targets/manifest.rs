//! Any bytes as a manifest: parsing and validation never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rippy::catalog::Catalog;
use rippy::manifest::Manifest;
use rippy::registry::Registry;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(manifest) = Manifest::parse("fuzz.yaml", std::path::Path::new("."), text) {
            let _ = Registry::check(manifest, &Catalog::new());
        }
    }
});
