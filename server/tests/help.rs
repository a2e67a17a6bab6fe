//! `muckard --help` names every environment variable the service reads,
//! and the possible values of every enumerated argument.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;

fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_muckard"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run muckard");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// The names `Settings::from_lookup` asks for in `environment`, with the
/// secrets given (so no development key file is written).
fn names_read(environment: &str) -> BTreeSet<String> {
    let asked = Mutex::new(BTreeSet::new());
    let _ = muckard::settings::Settings::from_lookup(|name| {
        asked.lock().unwrap().insert(name.to_string());
        match name {
            "MUCKARD_ENV" => Some(environment.to_string()),
            "JWT_SECRET" => Some("j".repeat(40)),
            "SECRETS_ENCRYPTION_KEY" | "AUDIT_SIGNING_KEY" => Some("ab".repeat(32)),
            "SMTP_URL" => Some("smtp://127.0.0.1:2525".to_string()),
            _ => None,
        }
    });
    asked.into_inner().unwrap()
}

#[test]
fn every_setting_the_service_reads_is_in_its_help() {
    let text = help(&[]);
    let read: BTreeSet<String> = ["development", "production"]
        .into_iter()
        .flat_map(names_read)
        .collect();
    assert!(read.len() > 50, "{read:?}");
    let missing: Vec<&String> = read
        .iter()
        .filter(|name| {
            !text.contains(&format!("  {name}=")) && !text.contains(&format!("  {name} (unset)"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "read by the service but not in `muckard --help` (add them to .env.example): {missing:?}"
    );
}

#[test]
fn enumerated_arguments_list_their_values() {
    assert!(
        help(&["serve"]).contains(
            "[possible values: api, projector, kafka-mirror, publisher, runner, notifier, all]"
        ),
        "{}",
        help(&["serve"])
    );
    assert!(
        help(&["grant-role"]).contains("[possible values: user, support, admin, auditor]"),
        "{}",
        help(&["grant-role"])
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_muckard"))
        .args(["serve", "--roles", "api,nonsense"])
        .output()
        .expect("run muckard");
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("invalid value 'nonsense'") && stderr.contains("possible values"),
        "{stderr}"
    );
}
