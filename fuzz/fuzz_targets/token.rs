//! Any string as a token: validation never panics and never accepts.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rippy::security::{TokenStore, TokenStoreConfig};

fn store() -> &'static TokenStore {
    static STORE: OnceLock<TokenStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let config: TokenStoreConfig = serde_yaml::from_str("store: x:s\ntoken_key_file: fuzz.key\n").unwrap();
        let mem = rippy::store::MemoryStore::start(&Default::default());
        TokenStore::new("x:t", &config, &std::env::temp_dir(), mem, Arc::default()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        assert!(store().validate(token).is_err());
    }
});
