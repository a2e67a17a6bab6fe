//! A real SMTP server on loopback for the tests: aiosmtpd (from the venv
//! `ensure_python_tools` makes), started by the test on a port of its own,
//! delivering every message into a Maildir the test reads.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running aiosmtpd; killed on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    maildir: PathBuf,
}

/// One delivered message, as the server received it.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl Delivered {
    /// The 6-digit code the message carries on a line of its own.
    pub fn code(&self) -> Option<String> {
        self.text
            .lines()
            .map(str::trim)
            .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string)
    }
}

fn aiosmtpd() -> PathBuf {
    crate::python_tool("aiosmtpd")
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let binary = aiosmtpd();
        assert!(
            binary.exists(),
            "{} missing: run `source scripts/services.sh && ensure_python_tools`",
            binary.display()
        );
        let port = crate::free_port();
        let maildir = std::env::temp_dir().join(format!("muckard-smtp-{}", uuid::Uuid::new_v4()));
        let child = Command::new(binary)
            .args(["-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let sink = SmtpSink {
            child,
            port,
            maildir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sink
    }

    /// `SMTP_URL` for the service.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message delivered so far, oldest first.
    pub fn delivered(&self) -> Vec<Delivered> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .flat_map(|sub| {
                std::fs::read_dir(self.maildir.join(sub))
                    .into_iter()
                    .flatten()
            })
            .flatten()
            .map(|entry| {
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, entry.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
            .map(|text| {
                let header = |name: &str| {
                    text.lines()
                        .take_while(|line| !line.is_empty())
                        .find_map(|line| {
                            line.strip_prefix(name)
                                .and_then(|rest| rest.strip_prefix(':'))
                        })
                        .map(|value| value.trim().to_string())
                        .unwrap_or_default()
                };
                Delivered {
                    to: header("To"),
                    subject: header("Subject"),
                    text: text.clone(),
                }
            })
            .collect()
    }

    /// The messages to `email`, oldest first.
    pub fn to(&self, email: &str) -> Vec<Delivered> {
        self.delivered()
            .into_iter()
            .filter(|message| message.to.contains(email))
            .collect()
    }

    /// Waits up to `seconds` for the `n`th message (from 1) to `email` and
    /// returns its code.
    pub async fn nth_code(&self, email: &str, n: usize, seconds: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(message) = self.to(email).get(n - 1) {
                return message
                    .code()
                    .unwrap_or_else(|| panic!("no code in {message:?}"));
            }
            assert!(
                Instant::now() < deadline,
                "no message {n} to {email} within {seconds} s: {:?}",
                self.delivered()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
