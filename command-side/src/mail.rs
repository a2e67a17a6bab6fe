//! Mail to users: a [`Mailer`] trait, SMTP in production ([`SmtpMailer`],
//! `SMTP_URL`) and, in development without `SMTP_URL`, a local outbox
//! directory ([`OutboxMailer`], `MAIL_OUTBOX_DIR`) that `./scripts/run`
//! names on start-up. What a message says is built here
//! ([`Mail::code`]); the one-time code is in the message's body and
//! nowhere else (no event, log line or response holds it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use domain::SecretString;

/// One message to one recipient, plain text.
#[derive(Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// Holds the code: never logged (its `Debug` does not show it).
    pub body: SecretString,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// What a one-time code is for; its wire name is the `purpose` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    VerifyEmail,
    PasswordReset,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::VerifyEmail => "verify_email",
            CodePurpose::PasswordReset => "password_reset",
        }
    }
}

impl Mail {
    /// The message carrying `code` for `purpose`, valid for `ttl`.
    pub fn code(to: &str, purpose: CodePurpose, code: &SecretString, ttl: Duration) -> Mail {
        let minutes = ttl.as_secs().div_ceil(60).max(1);
        let (subject, what) = match purpose {
            CodePurpose::VerifyEmail => (
                "Your Muckard verification code",
                "To verify your email address, enter this code",
            ),
            CodePurpose::PasswordReset => (
                "Your Muckard password reset code",
                "To choose a new password, enter this code",
            ),
        };
        Mail {
            to: to.to_string(),
            subject: subject.to_string(),
            body: SecretString::new(format!(
                "{what}:\r\n\r\n    {}\r\n\r\nIt expires in {minutes} minutes and works once. \
                 If you did not ask for it, ignore this message.\r\n",
                code.expose()
            )),
        }
    }
}

/// Where mail goes.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: Mail) -> Result<(), MailError>;
    /// Where this mailer delivers, for the start-up log (no credentials).
    fn describe(&self) -> String;
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail settings: {0}")]
    Settings(String),
    #[error("sending mail: {0}")]
    Send(String),
}

/// The mail settings: `SMTP_URL` (unset in development: the outbox),
/// `MAIL_FROM`, `MAIL_OUTBOX_DIR`.
#[derive(Clone)]
pub struct MailSettings {
    /// `smtp://host:port` (plain, or STARTTLS with `?tls=required` or
    /// `?tls=opportunistic`), `smtps://host:port` (implicit TLS);
    /// `user:password@` for authentication. Held as a secret: it may carry
    /// a password.
    pub smtp_url: Option<SecretString>,
    pub from: String,
    pub outbox_dir: PathBuf,
    /// The deadline of one SMTP exchange.
    pub timeout: Duration,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp", &self.smtp_url.is_some())
            .field("from", &self.from)
            .field("outbox_dir", &self.outbox_dir)
            .finish()
    }
}

impl MailSettings {
    /// The mailer these settings name.
    pub fn mailer(&self) -> Result<Arc<dyn Mailer>, MailError> {
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| MailError::Settings(format!("MAIL_FROM: {e}")))?;
        Ok(match &self.smtp_url {
            Some(url) => Arc::new(SmtpMailer::new(url.expose(), from, self.timeout)?),
            None => Arc::new(OutboxMailer {
                dir: self.outbox_dir.clone(),
                from,
            }),
        })
    }
}

/// Mail over SMTP.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    endpoint: String,
}

impl SmtpMailer {
    pub fn new(url: &str, from: Mailbox, timeout: Duration) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Settings(format!("SMTP_URL: {e}")))?
            .timeout(Some(timeout))
            .build();
        // Host and port only: the URL may hold a password.
        let endpoint = url
            .rsplit_once('@')
            .map_or(url, |(_, host)| host)
            .trim_start_matches("smtp://")
            .trim_start_matches("smtps://")
            .to_string();
        Ok(Self {
            transport,
            from,
            endpoint,
        })
    }
}

fn message(from: &Mailbox, mail: &Mail) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| MailError::Send(format!("recipient: {e}")))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.expose().to_string())
        .map_err(|e| MailError::Send(format!("building the message: {e}")))
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let message = message(&self.from, &mail)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Send(e.to_string()))
    }

    fn describe(&self) -> String {
        format!("SMTP at {}", self.endpoint)
    }
}

/// Development without `SMTP_URL`: each message a file `<time>-<id>.eml`
/// in the outbox directory (created when missing).
pub struct OutboxMailer {
    pub dir: PathBuf,
    pub from: Mailbox,
}

#[async_trait::async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: Mail) -> Result<(), MailError> {
        let message = message(&self.from, &mail)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| MailError::Send(format!("outbox {}: {e}", self.dir.display())))?;
        let name = format!(
            "{}-{}.eml",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            uuid::Uuid::new_v4().simple()
        );
        tokio::fs::write(self.dir.join(name), message.formatted())
            .await
            .map_err(|e| MailError::Send(format!("outbox {}: {e}", self.dir.display())))
    }

    fn describe(&self) -> String {
        format!("the outbox directory {}", self.dir.display())
    }
}
