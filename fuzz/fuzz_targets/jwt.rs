//! Any string as a JWT: verification never panics and never accepts.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rippy::security::{JwtConfig, JwtVerifier};

fn verifier() -> &'static JwtVerifier {
    static JWT: OnceLock<JwtVerifier> = OnceLock::new();
    JWT.get_or_init(|| {
        let config: JwtConfig = serde_yaml::from_str("algorithm: HS256\nsecret: fuzz-secret-0123456789abcdef\n").unwrap();
        JwtVerifier::new(&config).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        assert!(verifier().verify(token).is_err());
    }
});
