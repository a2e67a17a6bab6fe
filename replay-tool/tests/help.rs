//! `muckard-replay --help` names the environment it reads and each
//! command's enumerated values.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_muckard-replay"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run muckard-replay");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

#[test]
fn the_help_names_every_variable_and_value() {
    let top = help(&[]);
    let kafka = kafka_mirror::KafkaSettings::setting_names();
    assert!(kafka.iter().any(|name| name == "KAFKA_BOOTSTRAP_SERVERS"));
    assert!(kafka.iter().any(|name| name == "KAFKA_SASL_PASSWORD"));
    for name in kafka.iter().map(String::as_str).chain([
        "DATABASE_URL",
        "AUDIT_PUBLIC_KEY",
        "AUDIT_SIGNING_KEY",
        "RUST_LOG",
    ]) {
        assert!(top.contains(name), "{name} is not in --help:\n{top}");
    }
    let rebuild = help(&["rebuild"]);
    for name in projections::read_models::READ_MODELS
        .iter()
        .map(|model| model.name)
    {
        assert!(rebuild.contains(name), "{name}:\n{rebuild}");
    }
    let state = help(&["state"]);
    for kind in domain::AggregateType::ALL {
        assert!(state.contains(kind.as_str()), "{kind:?}:\n{state}");
    }
    let verify = help(&["verify"]);
    assert!(verify.contains("[env: AUDIT_PUBLIC_KEY"), "{verify}");
    assert!(verify.contains("`kafka`"), "{verify}");
}
