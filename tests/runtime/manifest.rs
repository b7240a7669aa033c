//! Manifest validation: one test per error class; every message names the
//! entry, the field and what was expected.

use std::path::PathBuf;
use std::process::Command;

use rippy::manifest::{Manifest, ManifestErrors};
use rippy::registry::Registry;

use super::support::{actors, repo};

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

fn errors_of(name: &str) -> Vec<String> {
    let result = Manifest::load(&fixture(name))
        .and_then(|m| Registry::check(m, &actors::catalog()).map(|_| ()));
    match result {
        Ok(()) => panic!("{name} validated"),
        Err(ManifestErrors(errors)) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

fn only_error(name: &str) -> String {
    let errors = errors_of(name);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

fn assert_has(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{text:?} lacks {p:?}");
    }
}

#[test]
fn a_manifest_using_every_kind_validates() {
    let manifest = Manifest::load(&fixture("valid_every_kind.yaml")).unwrap();
    let plan = Registry::check(manifest, &actors::catalog()).unwrap();
    assert_eq!(plan.len(), 16);
    let order = plan.boot_order();
    let pos = |id: &str| order.iter().position(|x| *x == id).unwrap();
    assert!(pos("app:redis") < pos("app:feed"));
    assert!(pos("app:store") < pos("app:tokens"));
    assert!(pos("app:server") < pos("app:router"));
    assert!(pos("app:router") < pos("app:endpoint"));
    assert!(pos("app:fn") < pos("app:endpoint"));
}

#[test]
fn an_entry_id_in_args_needs_the_module_that_reaches_its_kind() {
    let errors = errors_of("arg_without_module.yaml");
    let feed = errors
        .iter()
        .find(|e| e.contains("entry app:ticker (process.rust) field args.feed"))
        .unwrap_or_else(|| panic!("{errors:#?}"));
    assert_has(feed, &["module `feed`", "listed: [time]"]);
    let db = errors
        .iter()
        .find(|e| e.contains("entry app:migrate-service (process.service) field args.db"))
        .unwrap_or_else(|| panic!("{errors:#?}"));
    assert_has(db, &["module `sql`", "listed: [crypto]"]);
}

#[test]
fn the_shipped_manifest_validates() {
    let manifest = Manifest::load(&repo().join("_index.yaml")).unwrap();
    Registry::check(manifest, &actors::catalog()).unwrap();
}

#[test]
fn an_unknown_kind_is_named_with_the_known_ones() {
    let e = only_error("unknown_kind.yaml");
    assert_has(
        &e,
        &[
            "entry app:cache (store.etcd)",
            "field kind",
            "unknown kind \"store.etcd\"",
            "store.memory",
        ],
    );
}

#[test]
fn an_unknown_module_name_is_a_check_error_naming_the_field_and_the_known_ones() {
    let errors = errors_of("unknown_module.yaml");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_has(
        &errors[0],
        &[
            "entry app:worker (process.rust)",
            "field modules[1]",
            "unknown module \"logr\"",
            "json, logger, time, crypto, sql, store, security, http, process, channel",
        ],
    );
    assert_has(
        &errors[1],
        &[
            "entry app:migrate (process.rust)",
            "field modules[0]",
            "unknown module \"database\"",
        ],
    );
}

#[test]
fn a_module_the_catalog_says_the_code_uses_but_the_entry_lacks_is_a_check_error() {
    let e = only_error("missing_module.yaml");
    assert_has(
        &e,
        &[
            "entry app:ticker (process.rust)",
            "field modules",
            "file://actors/ticker.rs#run uses module `time`",
            "listed: [json]",
        ],
    );
}

#[test]
fn an_unknown_field_is_named() {
    let e = only_error("unknown_field.yaml");
    assert_has(
        &e,
        &[
            "entry app:tokens (security.token_store)",
            "field token_lenght: unknown field",
            "token_length",
        ],
    );
}

#[test]
fn a_field_of_the_wrong_type_is_named_with_the_expected_type() {
    let e = only_error("wrong_type.yaml");
    assert_has(
        &e,
        &[
            "entry app:tokens (security.token_store)",
            "field token_length",
            "-1",
            "u32",
        ],
    );
}

#[test]
fn a_missing_required_field_is_named() {
    let e = only_error("missing_field.yaml");
    assert_has(
        &e,
        &[
            "entry app:db (db.sql.sqlite)",
            "field file",
            "missing field",
        ],
    );
}

#[test]
fn a_duplicate_id_is_reported_with_both_positions() {
    let e = only_error("duplicate_id.yaml");
    assert_has(
        &e,
        &[
            "entry app:processes",
            "duplicate id",
            "entries[0]",
            "entries[1]",
        ],
    );
}

#[test]
fn a_dangling_reference_names_the_field_and_the_missing_id() {
    let e = only_error("dangling_reference.yaml");
    assert_has(
        &e,
        &[
            "entry app:tokens (security.token_store)",
            "field store",
            "no entry app:token_data",
            "store.memory",
        ],
    );
}

#[test]
fn a_reference_to_the_wrong_kind_counts_as_dangling() {
    let e = only_error("wrong_kind_reference.yaml");
    assert_has(
        &e,
        &[
            "entry app:tokens",
            "field store",
            "app:processes is a process.host",
            "store.memory",
        ],
    );
}

#[test]
fn a_dependency_cycle_is_reported_with_its_path() {
    let e = only_error("cycle.yaml");
    assert_has(
        &e,
        &[
            "field lifecycle.depends_on[0]",
            "dependency cycle",
            "app:a -> app:b -> app:a",
        ],
    );
}

#[test]
fn a_bad_duration_is_named_with_the_expected_form() {
    let e = only_error("bad_duration.yaml");
    assert_has(
        &e,
        &[
            "entry app:tokens",
            "field default_expiration",
            "\"1 fortnight\"",
            "10ms",
        ],
    );
}

#[test]
fn code_missing_from_the_catalog_is_reported_with_what_the_catalog_has() {
    let e = only_error("missing_catalog_code.yaml");
    assert_has(
        &e,
        &[
            "entry app:worker (process.rust)",
            "field source",
            "file://actors/worker.rs#run",
            "file://actors/ticker.rs#run",
        ],
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let errors = errors_of("many_errors.yaml");
    let all = errors.join("\n");
    assert_eq!(errors.len(), 5, "{all}");
    assert_has(
        &all,
        &[
            "app:cache",
            "field file",
            "no entry app:nothing",
            "app:db is a db.sql.sqlite",
            "field sweep_interval",
        ],
    );
}

#[test]
fn invalid_yaml_and_a_bad_top_level_are_errors_not_panics() {
    for text in [
        "",
        "[1, 2",
        "version: 2\nentries: 3",
        "namespace: app\nentries: [1]",
        "- a\n- b",
    ] {
        let result = Manifest::parse("x.yaml", &repo(), text);
        let errors = result.expect_err(text);
        assert!(!errors.0.is_empty());
        assert!(errors.to_string().starts_with("x.yaml: "), "{errors}");
    }
}

#[test]
fn rippy_check_exits_0_with_a_summary_for_a_valid_manifest() {
    let out = Command::new(env!("CARGO_BIN_EXE_rippy"))
        .arg("check")
        .arg(repo().join("_index.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok, 20 entries valid"), "{stdout}");
}

#[test]
fn rippy_check_exits_1_and_prints_every_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_rippy"))
        .arg("check")
        .arg(fixture("many_errors.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 5, "{stderr}");
}

#[test]
fn cors_credentials_with_any_origin_is_a_check_error() {
    let e = only_error("cors_credentials_any_origin.yaml");
    assert_has(
        &e,
        &[
            "entry app:router (http.router)",
            "field options.cors.allow.credentials",
            "any origin",
        ],
    );
}

#[test]
fn middleware_option_values_that_boot_would_refuse_fail_check() {
    let errors = errors_of("bad_middleware_values.yaml");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_has(
        &errors[0],
        &["entry app:router", "field options.cors.max_age", "\"soon\""],
    );
    assert_has(
        &errors[1],
        &[
            "entry app:router",
            "field post_options.wsrelay.queue_size",
            "\"many\"",
        ],
    );
}

#[test]
fn an_address_without_a_port_and_a_relative_prefix_fail_check() {
    let errors = errors_of("bad_address_and_prefix.yaml");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_has(
        &errors[0],
        &["entry app:server (http.service)", "field addr", "host:port"],
    );
    assert_has(
        &errors[1],
        &["entry app:router (http.router)", "field prefix", "\"api\""],
    );
}

#[actix_web::test]
async fn a_go_style_address_listens_on_every_interface() {
    let manifest = super::support::parse(
        "version: \"1.0\"\nnamespace: t\nentries:\n  - name: server\n    kind: http.service\n    addr: \":0\"\n",
    );
    let registry = Registry::boot(manifest, &actors::catalog()).unwrap();
    let addr = registry.http_addr("t:server").unwrap();
    assert!(addr.ip().is_unspecified(), "{addr}");
    let res = awc::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    super::support::within(
        "shutdown",
        registry.shutdown(std::time::Duration::from_secs(1)),
    )
    .await;
}

#[test]
fn entry_ids_in_args_that_the_code_declares_are_checked_like_any_reference() {
    let errors = errors_of("bad_args_references.yaml");
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let all = errors.join("\n");
    assert_has(
        &all,
        &[
            "entry app:ws (function.rust) field args.host: missing, expected the id of a process.host entry",
            "entry app:migrate-service (process.service) field args.db: dangling reference: app:store is a store.memory",
            "entry app:ws (function.rust) field args.handler: dangling reference: no entry app:nowhere",
        ],
    );
}

#[test]
fn two_endpoints_on_one_method_and_full_path_fail_check() {
    let e = only_error("duplicate_route.yaml");
    assert_has(
        &e,
        &[
            "entry app:two (http.endpoint)",
            "field path",
            "GET /api/x on app:server is already served by app:one",
        ],
    );
}

#[test]
fn a_manifest_in_wippys_vocabulary_passes_rippy_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_rippy"))
        .arg("check")
        .arg(fixture("wippy_vocabulary.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lifecycle_requires_orders_boot_like_depends_on() {
    let manifest = Manifest::load(&fixture("wippy_vocabulary.yaml")).unwrap();
    let plan = Registry::check(manifest, &actors::catalog()).unwrap();
    let order = plan.boot_order();
    let pos = |id: &str| order.iter().position(|x| *x == id).unwrap();
    // migrate-service requires db only through `requires` (its input also
    // names it); ticker-service requires migrate-service only so.
    assert!(pos("app:db") < pos("app:migrate-service"));
    assert!(pos("app:migrate-service") < pos("app:ticker-service"));
}

#[test]
fn bare_references_resolve_to_ids_in_the_entrys_namespace() {
    let manifest = Manifest::load(&fixture("wippy_vocabulary.yaml")).unwrap();
    let plan = Registry::check(manifest, &actors::catalog()).unwrap();
    let entry = |id: &str| plan.manifest().entry(id).unwrap().fields.clone();
    let text = |id: &str| serde_yaml::to_string(&entry(id)).unwrap();
    assert_has(&text("app:tokens"), &["store: app:token_data"]);
    assert_has(&text("app:public_router"), &["server: app:gateway"]);
    assert_has(&text("app:ws_router"), &["token_auth.store: app:tokens"]);
    assert_has(
        &text("app:migrate-service"),
        &["process: app:migrate", "host: app:processes", "db: app:db"],
    );
    assert_has(&text("app:ws_ticker"), &["host: app:ws_processes"]);
    assert_has(&text("app:auth_token"), &["- app:user_policy"]);
}

#[test]
fn a_dangling_bare_reference_shows_what_was_written_and_the_resolved_id() {
    let e = only_error("bare_dangling_reference.yaml");
    assert_has(
        &e,
        &[
            "entry app:tokens (security.token_store)",
            "field store",
            "no entry app:token_datx",
            "written \"token_datx\"",
        ],
    );
}
