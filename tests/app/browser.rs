//! The browser page in headless Chromium (Debian `chromium` + Node
//! `playwright-core`, installed by `.ci/run`). Under CI a missing tool is a
//! failure; elsewhere the test says it skipped and how to enable it.

use std::path::Path;
use std::process::Command;

use super::cli::Server;
use super::support::{Edition, repo};

const HOW: &str =
    "install Debian's chromium and run `npm install --prefix tests/browser` (or run .ci/run)";

fn tools_present() -> Result<(), String> {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!("no Chromium at {chromium}"));
    }
    if !repo()
        .join("tests/browser/node_modules/playwright-core")
        .exists()
    {
        return Err("playwright-core is not installed in tests/browser".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node is not on PATH".into());
    }
    Ok(())
}

crate::both_editions! {
    async fn the_page_streams_prices_into_the_table_and_draws_the_charts(edition: Edition) {
        if let Err(missing) = tools_present() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("browser test cannot run under CI: {missing}");
            }
            eprintln!(
                "SKIPPED the_page_streams_prices_into_the_table_and_draws_the_charts: {missing}; to enable: {HOW}"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start_edition(edition, dir.path());
        let key = server.demo_key();
        let shot = repo().join(format!("target/browser-ticker-{edition:?}.png").to_lowercase());
        let out = Command::new("node")
            .arg(repo().join("tests/browser/ticker.mjs"))
            .arg(format!("{}/", server.base))
            .arg(&key)
            .arg(&shot)
            .output()
            .expect("run node");
        let (code, _, _) = server.terminate();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "browser run failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: serde_json::Value =
            serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).expect("result JSON");
        assert_ne!(
            result["first"], result["second"],
            "the price did not change"
        );
        assert_eq!(result["user"], "user:demo");
        let inked = result["inked"].as_array().unwrap();
        assert_eq!(inked.len(), 3);
        assert!(
            inked.iter().all(|n| n.as_u64().unwrap() > 100),
            "a chart is blank: {inked:?}"
        );
        assert_eq!(result["errors"], serde_json::json!([]));
        assert!(shot.exists());
        assert_eq!(code, Some(0));
    }
}
