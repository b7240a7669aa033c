//! Property tests: the parsers never panic, and manifest errors always say
//! where they are. (`fuzz/` has coverage-guided targets for the same parsers.)

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use rippy::http::middleware::websocket_relay::RelayTarget;
use rippy::manifest::Manifest;
use rippy::registry::Registry;
use rippy::security::{JwtConfig, JwtVerifier, TokenStore, TokenStoreConfig};

use super::support::{actors, repo};

fn index_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| std::fs::read_to_string(repo().join("_index.yaml")).unwrap())
}

fn check(text: &str) {
    let result = Manifest::parse("m.yaml", &repo(), text)
        .and_then(|m| Registry::check(m, &actors::catalog()).map(|_| ()));
    if let Err(errors) = result {
        assert!(!errors.0.is_empty());
        for e in &errors.0 {
            let line = e.to_string();
            assert!(line.starts_with("m.yaml: "), "{line}");
            if let Some(entry) = &e.entry {
                assert!(line.contains(&format!("entry {entry}")), "{line}");
            }
        }
    }
}

/// One edit of a manifest: delete, insert or replace a span, or duplicate a line.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    SwapValue(usize, String),
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut s: Vec<char> = text.chars().collect();
    let n = s.len().max(1);
    match edit {
        Edit::Delete(at, len) => {
            let at = at % n;
            let end = (at + len % 40).min(s.len());
            s.drain(at..end);
        }
        Edit::Insert(at, piece) => {
            let at = at % n;
            for (i, c) in piece.chars().enumerate() {
                s.insert((at + i).min(s.len()), c);
            }
        }
        Edit::DuplicateLine(line) => {
            let lines: Vec<&str> = text.lines().collect();
            let i = line % lines.len().max(1);
            let mut out: Vec<&str> = lines.clone();
            out.insert(i, lines[i]);
            return out.join("\n");
        }
        Edit::SwapValue(line, value) => {
            let lines: Vec<String> = text
                .lines()
                .enumerate()
                .map(|(i, l)| match l.split_once(": ") {
                    Some((k, _)) if i == line % text.lines().count().max(1) => {
                        format!("{k}: {value}")
                    }
                    _ => l.to_owned(),
                })
                .collect();
            return lines.join("\n");
        }
    }
    s.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    let piece = prop_oneof![
        Just(":".to_owned()),
        Just("- ".to_owned()),
        Just("\n  ".to_owned()),
        Just("{".to_owned()),
        Just("app:".to_owned()),
        Just("\"".to_owned()),
        "[ -~]{0,12}",
    ];
    let value = prop_oneof![
        Just("-1".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("null".to_owned()),
        Just("\"10 parsecs\"".to_owned()),
        Just("app:nothing".to_owned()),
        Just("99999999999999999999".to_owned()),
        "[a-z:._-]{0,10}",
    ];
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Delete(a, l)),
        (any::<usize>(), piece).prop_map(|(a, p)| Edit::Insert(a, p)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), value).prop_map(|(l, v)| Edit::SwapValue(l, v)),
    ]
}

fn tokens() -> &'static TokenStore {
    static STORE: OnceLock<TokenStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rippy-prop-{}", std::process::id()));
        let config: TokenStoreConfig =
            serde_yaml::from_str("store: x:s\ntoken_key_file: prop.key\n").unwrap();
        let store = rippy::store::MemoryStore::start(&Default::default());
        TokenStore::new("x:t", &config, &dir, store, Arc::default()).unwrap()
    })
}

fn jwt() -> &'static JwtVerifier {
    static JWT: OnceLock<JwtVerifier> = OnceLock::new();
    JWT.get_or_init(|| {
        let config: JwtConfig =
            serde_yaml::from_str("algorithm: HS256\nsecret: prop-secret-0123456789abcdef\n")
                .unwrap();
        JwtVerifier::new(&config).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics_the_manifest_parser(text in "\\PC{0,300}") {
        check(&text);
    }

    #[test]
    fn mutated_manifests_never_panic_and_errors_name_their_place(edits in prop::collection::vec(edit(), 1..4)) {
        let mut text = index_text().to_owned();
        for e in &edits {
            text = apply(&text, e);
        }
        check(&text);
    }

    #[test]
    fn random_tokens_are_refused_without_panic(token in "[0-9a-fA-F]{0,200}|\\PC{0,140}") {
        prop_assert!(tokens().validate(&token).is_err());
    }

    #[test]
    fn a_flipped_character_breaks_a_token(i in 0usize..128, c in "[0-9a-f]") {
        let token = tokens()
            .create(rippy::security::Actor::new("user:p"), vec![], None, serde_json::Value::Null)
            .unwrap();
        let mut chars: Vec<char> = token.chars().collect();
        let replacement = c.chars().next().unwrap();
        prop_assume!(chars[i] != replacement);
        chars[i] = replacement;
        let changed: String = chars.into_iter().collect();
        prop_assert!(tokens().validate(&changed).is_err());
    }

    #[test]
    fn a_token_is_one_token_in_either_case(upper in prop::collection::vec(any::<bool>(), 128)) {
        let token = tokens()
            .create(rippy::security::Actor::new("user:case"), vec![], None, serde_json::Value::Null)
            .unwrap();
        let mixed: String = token
            .chars()
            .zip(&upper)
            .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c })
            .collect();
        prop_assert_eq!(tokens().validate(&mixed).unwrap().actor.id, "user:case");
        prop_assert!(tokens().revoke(&mixed));
        prop_assert!(tokens().validate(&token).is_err());
    }

    #[test]
    fn random_relay_headers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = RelayTarget::parse(&bytes);
    }

    #[test]
    fn relay_headers_round_trip(host in "[a-z]{1,8}:[a-z]{1,8}", id in any::<u64>()) {
        let target = RelayTarget {
            target_pid: rippy::process::Pid::new(host, id),
            metadata: serde_json::json!({ "user_id": "user:x" }),
        };
        prop_assert_eq!(RelayTarget::parse(target.header_value().as_bytes()).unwrap(), target);
    }

    #[test]
    fn random_jwts_are_refused_without_panic(
        parts in prop::collection::vec("[A-Za-z0-9_=+/-]{0,60}", 0..5),
        junk in "\\PC{0,80}",
    ) {
        prop_assert!(jwt().verify(&parts.join(".")).is_err());
        prop_assert!(jwt().verify(&junk).is_err());
    }

    #[test]
    fn random_pids_never_panic(text in "\\PC{0,40}") {
        let _ = text.parse::<rippy::process::Pid>();
    }
}
