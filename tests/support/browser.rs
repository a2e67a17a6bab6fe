//! The web console's browser scenarios (`scripts/node/console.mjs`, run by
//! Node with playwright-core driving Debian's Chromium; installed by
//! `ensure_node_tools` and `ensure_chromium`), for the tests that load the
//! console: `tests/console` and the gateway test.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where the screenshots go: `CONSOLE_ARTEFACTS`, or `tests/var/console`.
pub fn artefacts() -> PathBuf {
    let directory = std::env::var_os("CONSOLE_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("var/console"));
    std::fs::create_dir_all(&directory).expect("the artefacts' directory");
    directory
}

/// Runs one scenario of `scripts/node/console.mjs` against the console at
/// `base`; returns its final result line. Fails with everything the
/// browser script printed when it fails or takes more than 3 minutes.
pub async fn scenario(name: &str, base: &str, env: &[(&str, &str)]) -> Value {
    let script = crate::node_tool("console.mjs");
    assert!(
        script.exists(),
        "{} missing: run `source scripts/services.sh && ensure_node_tools && ensure_chromium`",
        script.display()
    );
    let started = Instant::now();
    let output_file = |stream: &str| {
        artefacts().join(format!("{name}-{}.{stream}", uuid::Uuid::new_v4().simple()))
    };
    let (stdout_path, stderr_path) = (output_file("stdout"), output_file("stderr"));
    let mut command = std::process::Command::new("node");
    command
        .arg(&script)
        .arg(name)
        .env("CONSOLE_URL", format!("{base}/app/"))
        .env("ARTEFACTS", artefacts())
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("the scenario's stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("the scenario's stderr file"));
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("run node");
    // The browser works against this test's server, on this runtime:
    // wait for it without blocking the runtime.
    let deadline = started + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("the scenario's status") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let read = |path: &PathBuf| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let _ = std::fs::remove_file(path);
        text
    };
    let (stdout, stderr) = (read(&stdout_path), read(&stderr_path));
    let Some(status) = status else {
        panic!("the {name} scenario did not end within 3 minutes:\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    assert!(
        status.success(),
        "the {name} scenario failed ({:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        status.code()
    );
    eprintln!("{name} ({:?}):\n{stdout}", started.elapsed());
    let last = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_else(|| panic!("the {name} scenario printed nothing; stderr:\n{stderr}"));
    let result: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the {name} scenario's last line is not JSON ({e}): {last}"));
    assert_eq!(result["ok"], true, "{name}: {result}");
    result
}
