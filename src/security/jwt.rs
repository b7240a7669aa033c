//! `security.jwt`: verifies HS256 JSON Web Tokens.
//!
//! The algorithm is fixed by the manifest (`HS256` is the only one accepted);
//! the token's header never chooses it, so `none`, `HS384` or an RSA header
//! is refused. The signature is checked before any claim is trusted. `exp`
//! is required, `nbf` is honoured when present, both with `leeway`; the
//! `username` claim is required and non-empty.
//!
//! The time claims are read here, not by the library: `jsonwebtoken` skips an
//! `nbf` (and ignores an `iat`) it cannot parse, which would let
//! `"nbf": "99999999999"` or `1e30` through. Every registered time claim that
//! is present (`exp`, `nbf`, `iat`) must be an integer NumericDate in
//! `0..=MAX_NUMERIC_DATE` (the end of year 9999), else the token is refused
//! as `bad_claim`; a missing `nbf` or `iat` is fine, a missing `exp` is
//! `missing_claim`.
//!
//! ## Tokens verified lately
//! A client sends the same token with every request until it expires, so a
//! verifier keeps the tokens it has accepted (at most [`RECENT_TOKENS`]; the
//! set starts again when full) with their claims. A token found there is
//! compared with the one presented in constant time, byte for byte, and its
//! `exp` checked against the clock again; anything else is verified in full.
//! Only tokens that passed every check are kept, so the set cannot be filled
//! by a client without the secret. It is found by a randomly keyed hash of
//! the token's signature, so its lookup tells nothing about tokens the
//! caller does not already hold.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

use crate::manifest::FieldError;
use crate::manifest::ManifestDuration;

/// The only algorithm accepted.
pub const HS256: &str = "HS256";

/// How many verified tokens a verifier keeps (see the module docs).
pub const RECENT_TOKENS: usize = 4096;

/// The largest NumericDate accepted: 9999-12-31T23:59:59Z.
pub const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// The `security.jwt` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Must be `HS256`.
    pub algorithm: String,
    /// The shared secret, inline (local runs only).
    #[serde(default)]
    pub secret: Option<String>,
    /// The environment variable holding the secret; wins when set.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Clock skew allowed on `exp` and `nbf` (default 0s).
    #[serde(default)]
    pub leeway: Option<ManifestDuration>,
}

impl JwtConfig {
    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.algorithm != HS256 {
            errors.push(FieldError::at(
                "algorithm",
                format!(
                    "expected \"{HS256}\" (the only accepted algorithm), found {:?}",
                    self.algorithm
                ),
            ));
        }
        if self.secret.is_none() && self.secret_env.is_none() {
            errors.push(FieldError::at(
                "secret_env",
                "missing: one of secret_env or secret is required",
            ));
        }
        errors
    }
}

/// The claims the gateway uses.
#[derive(Debug, Clone)]
pub struct Claims {
    /// The user the token was issued to (`sub`-like); shared with the
    /// verified-token cache.
    pub username: Arc<str>,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// The claims as signed, time claims still raw, so that a present but
/// unreadable one is refused rather than skipped.
#[derive(Deserialize)]
struct RawClaims {
    username: String,
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    nbf: Option<serde_json::Value>,
    #[serde(default)]
    iat: Option<serde_json::Value>,
}

/// A present time claim: an integer in range, else `bad_claim`.
fn numeric_date(value: Option<&serde_json::Value>) -> Result<Option<u64>, JwtError> {
    match value {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|t| *t <= MAX_NUMERIC_DATE)
            .map(Some)
            .ok_or(JwtError::Invalid("bad_claim")),
    }
}

/// Why a token was refused; the label goes to metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// The token has expired.
    Expired,
    /// The token is not valid; the text says why.
    Invalid(&'static str),
}

impl JwtError {
    /// A short, bounded label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            JwtError::Expired => "expired",
            JwtError::Invalid(reason) => reason,
        }
    }
}

/// A booted `security.jwt`.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    leeway: u64,
    /// Tokens verified lately, by [`JwtVerifier::recent_key`].
    recent: Mutex<Recent>,
    /// Keys `recent` by a token's signature: only verified tokens are
    /// stored, and a hit is compared whole, so a cheap keyed hash serves.
    keys: foldhash::fast::RandomState,
}

/// Verified tokens with their claims, by [`JwtVerifier::recent_key`].
type Recent = HashMap<u64, (Box<str>, Claims), BuildHasherDefault<KeyedAlready>>;

/// The hasher of `recent`, whose keys are a keyed hash already: a second
/// hash of them would add nothing but its cost.
#[derive(Default)]
struct KeyedAlready(u64);

impl Hasher for KeyedAlready {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl JwtVerifier {
    /// Resolves the secret: `secret_env` when that variable is set, else `secret`.
    pub fn new(config: &JwtConfig) -> Result<Self, String> {
        let from_env = config
            .secret_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|s| !s.is_empty());
        let secret = match (from_env, &config.secret) {
            (Some(s), _) => s,
            (None, Some(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(format!(
                    "no JWT secret: environment variable {} is unset and no secret is given",
                    config.secret_env.as_deref().unwrap_or("(none)")
                ));
            }
        };
        if secret.len() < 16 {
            return Err(format!(
                "JWT secret is {} bytes, expected at least 16",
                secret.len()
            ));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // Time claims are checked in `verify` (see the module doc).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        Ok(JwtVerifier {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            leeway: config.leeway.map_or(0, |d| d.get().as_secs()),
            recent: Mutex::default(),
            keys: Default::default(),
        })
    }

    /// Verifies signature, algorithm and time claims; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`verify`](Self::verify) with the clock at `now` (Unix seconds).
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        let key = self.recent_key(token);
        let known = {
            let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.get(&key).and_then(|(kept, claims)| {
                crate::util::constant_time_eq(kept.as_bytes(), token.as_bytes())
                    .then(|| claims.clone())
            })
        };
        if let Some(claims) = known {
            if self.expired(claims.exp, now) {
                return Err(JwtError::Expired);
            }
            return Ok(claims);
        }
        let claims = self.check(token, now)?;
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= RECENT_TOKENS {
            recent.clear();
        }
        recent.insert(key, (token.into(), claims.clone()));
        Ok(claims)
    }

    /// Where `token` is kept in `recent`: a randomly keyed hash of its
    /// signature, the part that differs between any two tokens the secret
    /// signed (the whole token is compared before a kept one is used).
    fn recent_key(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        let start = bytes
            .iter()
            .rposition(|&b| b == b'.')
            .map_or(0, |dot| dot + 1);
        self.keys.hash_one(&bytes[start..])
    }

    /// Whether `exp` has passed at `now`, beyond the leeway.
    fn expired(&self, exp: u64, now: u64) -> bool {
        exp < now.saturating_sub(self.leeway)
    }

    /// The full check: header, signature, then the claims against `now`.
    fn check(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        // Look at the header's alg first, so `none` and friends are named as
        // such rather than as a parse failure; the library checks it again.
        // Only `alg` is read, borrowed: no map is built for the header.
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            #[serde(borrow)]
            alg: Option<std::borrow::Cow<'a, str>>,
        }
        let header = token.split('.').next().unwrap_or("");
        let header = crate::util::base64url_decode(header).ok_or(JwtError::Invalid("malformed"))?;
        let head: Head<'_> =
            serde_json::from_slice(&header).map_err(|_| JwtError::Invalid("malformed"))?;
        if head.alg.as_deref() != Some(HS256) {
            return Err(JwtError::Invalid("wrong_alg"));
        }
        let data = decode::<RawClaims>(token, &self.key, &self.validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => JwtError::Expired,
            ErrorKind::InvalidSignature => JwtError::Invalid("bad_signature"),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                JwtError::Invalid("wrong_alg")
            }
            ErrorKind::ImmatureSignature => JwtError::Invalid("not_yet_valid"),
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => {
                JwtError::Invalid("missing_claim")
            }
            _ => JwtError::Invalid("malformed"),
        })?;
        let raw = data.claims;
        let exp = numeric_date(raw.exp.as_ref())?;
        let nbf = numeric_date(raw.nbf.as_ref())?;
        numeric_date(raw.iat.as_ref())?;
        let exp = exp.ok_or(JwtError::Invalid("missing_claim"))?;
        if self.expired(exp, now) {
            return Err(JwtError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(JwtError::Invalid("not_yet_valid"));
        }
        if raw.username.is_empty() {
            return Err(JwtError::Invalid("missing_claim"));
        }
        Ok(Claims {
            username: raw.username.into(),
            exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::{JwtConfig, JwtError, JwtVerifier, RECENT_TOKENS};

    const SECRET: &str = "a-test-secret-of-some-length";

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&JwtConfig {
            algorithm: "HS256".into(),
            secret: Some(SECRET.into()),
            secret_env: None,
            leeway: None,
        })
        .unwrap()
    }

    fn token(username: &str, exp: u64) -> String {
        let claims = json!({ "username": username, "exp": exp });
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn a_kept_token_is_refused_once_it_expires() {
        let v = verifier();
        let t = token("alice", 1_000);
        assert_eq!(&*v.verify_at(&t, 900).unwrap().username, "alice");
        assert_eq!(v.verify_at(&t, 1_000).unwrap().exp, 1_000);
        assert_eq!(v.verify_at(&t, 1_001).unwrap_err(), JwtError::Expired);
    }

    #[test]
    fn a_token_that_differs_from_a_kept_one_is_verified_in_full() {
        let v = verifier();
        let t = token("alice", 1_000);
        v.verify_at(&t, 900).unwrap();
        // One character in the middle of the signature changed.
        let mut forged = t.clone().into_bytes();
        let at = forged.len() - 10;
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(
            v.verify_at(&forged, 900).unwrap_err(),
            JwtError::Invalid("bad_signature")
        );
        // Same signature, another payload.
        let (_, sig) = t.rsplit_once('.').unwrap();
        let other = token("mallory", 1_000);
        let (signed, _) = other.rsplit_once('.').unwrap();
        let spliced = format!("{signed}.{sig}");
        assert!(v.verify_at(&spliced, 900).is_err());
        assert_eq!(&*v.verify_at(&t, 900).unwrap().username, "alice");
    }

    #[test]
    fn the_kept_tokens_are_bounded() {
        let v = verifier();
        for i in 0..RECENT_TOKENS + 10 {
            v.verify_at(&token(&format!("user{i}"), 1_000), 900)
                .unwrap();
        }
        let kept = v.recent.lock().unwrap().len();
        assert!((1..=RECENT_TOKENS).contains(&kept), "{kept}");
    }
}
