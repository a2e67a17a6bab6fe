//! The User aggregate: a person who logs in, owns keys and bots, and holds
//! one role. Passwords never reach it: the command side keeps their argon2id
//! hashes in a side table.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::common::{bounded_text, Actor, Role};
use crate::error::DomainError;
use crate::personal::{wrap_clear, PersonalText, CLEAR_IN_VERSION_ONE};

/// Commands on a user. Imperative, as the caller asked them.
#[derive(Debug, Clone, PartialEq)]
///
/// Personal data arrives sealed ([`PersonalText`]): the command side checks
/// the clear text (with [`normalise_email`], [`check_display_name`] and
/// [`login_source`]) and seals it under the user's data key before the
/// command is handled, so no clear text reaches an event.
pub enum UserCommand {
    Register {
        user_id: Uuid,
        email: PersonalText,
        display_name: Option<PersonalText>,
        at: DateTime<Utc>,
    },
    /// Recorded after the command side checked the password.
    LogIn { at: DateTime<Utc> },
    /// Changes the profile fields given; the command side refuses a
    /// change with none.
    UpdateProfile {
        actor: Actor,
        changes: ProfileChanges,
        at: DateTime<Utc>,
    },
    /// Recorded after the command side checked the emailed code.
    VerifyEmail { at: DateTime<Utc> },
    /// Recorded after the command side stored the new password's hash
    /// (which never reaches the aggregate): by the user with their current
    /// password, or by an emailed reset code.
    RecordPasswordChange {
        by: PasswordChangeKind,
        at: DateTime<Utc>,
    },
    /// An admin disables the account: log-ins and tokens are refused, and
    /// the command side revokes the sessions and stops the bots.
    Disable {
        actor: Actor,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    /// An admin re-enables a disabled account.
    Enable { actor: Actor, at: DateTime<Utc> },
    CompleteOnboarding {
        actor: Actor,
        risk_profile: RiskProfile,
        experience: Experience,
        terms_version: String,
        at: DateTime<Utc>,
    },
    AssignRole {
        actor: Actor,
        role: Role,
        at: DateTime<Utc>,
    },
    /// Recorded after the command side found the password wrong: `source`
    /// names where the attempt came from (the client address), never the
    /// password.
    RecordFailedLogin {
        source: PersonalText,
        at: DateTime<Utc>,
    },
    /// Erasure: recorded before the user's data key is destroyed. An admin
    /// or the System asks it; erasing an erased user records nothing.
    Erase { actor: Actor, at: DateTime<Utc> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskProfile {
    Conservative,
    Balanced,
    Aggressive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Experience {
    Beginner,
    Intermediate,
    Expert,
}

/// How a password was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordChangeKind {
    /// By the user, with the current password.
    Changed,
    /// By a code sent to the user's email.
    Reset,
}

/// Which notifications a user wants by email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationPreferences {
    /// A bot's fill.
    pub trade_fills: bool,
    /// A bot stopped by an error, an exchange key that failed its test.
    pub bot_errors: bool,
    /// Log-ins, password and email changes.
    pub security: bool,
    /// Which notifications the user's list gets (`GET
    /// /api/v1/notifications`); absent from events before it existed,
    /// hence the default (all).
    #[serde(default)]
    pub in_app: crate::notification::NotificationLevel,
}

/// The profile fields a `user.updated` changes; absent fields keep their
/// value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<PersonalText>,
    /// An IANA time zone name (`Europe/Paris`), checked by
    /// [`check_timezone`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationPreferences>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_profile: Option<RiskProfile>,
}

impl ProfileChanges {
    pub fn is_empty(&self) -> bool {
        self.display_name.is_none()
            && self.timezone.is_none()
            && self.notifications.is_none()
            && self.risk_profile.is_none()
    }
}

/// Events of a user, past tense, with their wire names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum UserEvent {
    #[serde(rename = "user.created")]
    UserCreated {
        user_id: Uuid,
        email: PersonalText,
        display_name: Option<PersonalText>,
        role: Role,
        at: DateTime<Utc>,
    },
    #[serde(rename = "user.logged_in")]
    UserLoggedIn { at: DateTime<Utc> },
    /// The changed fields only (before the other fields existed, always a
    /// `display_name`).
    #[serde(rename = "user.updated")]
    UserUpdated {
        #[serde(flatten)]
        changes: ProfileChanges,
        at: DateTime<Utc>,
    },
    #[serde(rename = "user.email_verified")]
    EmailVerified { at: DateTime<Utc> },
    /// No hash, no password: only that and how it changed.
    #[serde(rename = "user.password_changed")]
    PasswordChanged {
        by: PasswordChangeKind,
        at: DateTime<Utc>,
    },
    #[serde(rename = "user.disabled")]
    UserDisabled {
        disabled_by: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "user.enabled")]
    UserEnabled {
        enabled_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "onboarding.completed")]
    OnboardingCompleted {
        risk_profile: RiskProfile,
        experience: Experience,
        terms_version: String,
        at: DateTime<Utc>,
    },
    #[serde(rename = "user.role_assigned")]
    RoleAssigned {
        role: Role,
        assigned_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
    #[serde(rename = "user.login_failed")]
    LoginFailed {
        source: PersonalText,
        at: DateTime<Utc>,
    },
    /// The user's personal data was erased: their data key is destroyed, so
    /// every sealed field of theirs in the log is unreadable from here on.
    #[serde(rename = "user.erased")]
    UserErased {
        erased_by: Option<Uuid>,
        at: DateTime<Utc>,
    },
}

/// The event version of events that carry [`PersonalText`]; version 1.0
/// carried those fields in clear.
pub const SEALED_EVENT_VERSION: &str = "2.0";

/// A stored payload brought to the current version of its event type with
/// [`upcasters`], for readers that decode rows themselves (an auditor's
/// fold of a stream).
pub fn upcast_payload(
    event_type: &str,
    event_version: &str,
    mut payload: serde_json::Value,
) -> serde_json::Value {
    for upcaster in upcasters() {
        if upcaster.can_upcast(event_type, event_version) {
            let event = upcaster.upcast(cqrs_es::persist::SerializedEvent {
                aggregate_id: String::new(),
                sequence: 0,
                aggregate_type: String::new(),
                event_type: event_type.to_string(),
                event_version: event_version.to_string(),
                payload,
                metadata: serde_json::Value::Null,
            });
            payload = event.payload;
        }
    }
    payload
}

/// Brings version 1.0 of the event types in [`CLEAR_IN_VERSION_ONE`] to version 2.0: each clear
/// personal field becomes [`PersonalText::Clear`]. The command side's event
/// stores and the log reader load with these.
pub fn upcasters() -> Vec<Box<dyn cqrs_es::persist::EventUpcaster>> {
    CLEAR_IN_VERSION_ONE
        .into_iter()
        .map(|event_type| {
            Box::new(cqrs_es::persist::SemanticVersionEventUpcaster::new(
                event_type,
                SEALED_EVENT_VERSION,
                Box::new(move |payload| wrap_clear(event_type, payload)),
            )) as Box<dyn cqrs_es::persist::EventUpcaster>
        })
        .collect()
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::UserCreated { .. } => "user.created",
            UserEvent::UserLoggedIn { .. } => "user.logged_in",
            UserEvent::UserUpdated { .. } => "user.updated",
            UserEvent::EmailVerified { .. } => "user.email_verified",
            UserEvent::PasswordChanged { .. } => "user.password_changed",
            UserEvent::UserDisabled { .. } => "user.disabled",
            UserEvent::UserEnabled { .. } => "user.enabled",
            UserEvent::OnboardingCompleted { .. } => "onboarding.completed",
            UserEvent::RoleAssigned { .. } => "user.role_assigned",
            UserEvent::LoginFailed { .. } => "user.login_failed",
            UserEvent::UserErased { .. } => "user.erased",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        if CLEAR_IN_VERSION_ONE.contains(&self.event_type().as_str()) {
            SEALED_EVENT_VERSION.to_string()
        } else {
            "1.0".to_string()
        }
    }
}

/// The state a user's commands are decided against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub user_id: Option<Uuid>,
    /// Sealed (or, from a version 1.0 event, clear); `None` once erased.
    pub email: Option<PersonalText>,
    pub display_name: Option<PersonalText>,
    pub role: Option<Role>,
    pub onboarded: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    /// The times of the failed log-ins since the last successful one, oldest
    /// first, at most [`REMEMBERED_FAILED_LOGINS`]. Absent from snapshots
    /// taken before it existed, hence the default.
    #[serde(default)]
    pub failed_logins: Vec<DateTime<Utc>>,
    /// Set by `user.erased`: the user may do nothing more.
    #[serde(default)]
    pub erased: bool,
    /// Set by `user.email_verified`.
    #[serde(default)]
    pub email_verified: bool,
    /// Set by `user.disabled`, cleared by `user.enabled`.
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub notifications: Option<NotificationPreferences>,
    #[serde(default)]
    pub risk_profile: Option<RiskProfile>,
}

/// How many failed log-ins a user's state remembers: the most a
/// [`LoginBackoff`] can count.
pub const REMEMBERED_FAILED_LOGINS: usize = 32;

/// The longest `source` a failed log-in records.
pub const MAX_LOGIN_SOURCE_CHARS: usize = 100;

/// When an account's log-ins are refused after failures: once
/// `max_failures` failed log-ins fall within `window` of each other, every
/// log-in (right password or not) is refused until `backoff` after the last
/// of them. Each failure after that closes it again while the last
/// `max_failures` still fall within the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginBackoff {
    pub max_failures: usize,
    pub window: chrono::Duration,
    pub backoff: chrono::Duration,
}

impl Default for LoginBackoff {
    /// 5 failures within 15 minutes close the account's log-ins for 5
    /// minutes.
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: chrono::Duration::minutes(15),
            backoff: chrono::Duration::minutes(5),
        }
    }
}

impl LoginBackoff {
    /// When log-ins open again, if `failures` (oldest first) close them at
    /// `now`.
    pub fn locked_until(
        &self,
        failures: &[DateTime<Utc>],
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let counted = self.max_failures.clamp(1, REMEMBERED_FAILED_LOGINS);
        let recent = failures.get(failures.len().checked_sub(counted)?..)?;
        let (first, last) = (*recent.first()?, *recent.last()?);
        if last - first > self.window {
            return None;
        }
        let until = last + self.backoff;
        (now < until).then_some(until)
    }
}

impl User {
    pub fn exists(&self) -> bool {
        self.user_id.is_some()
    }

    /// The user's id unless they are unknown or erased: an erased user is
    /// gone for every command but a repeated erasure.
    fn live_user_id(&self) -> Option<Uuid> {
        self.user_id.filter(|_| !self.erased)
    }

    /// When this user's log-ins open again, if `policy` closes them at `now`.
    pub fn login_locked_until(
        &self,
        policy: &LoginBackoff,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        policy.locked_until(&self.failed_logins, now)
    }

    fn ensure_actor_is_self_or_admin(&self, actor: &Actor) -> Result<Uuid, DomainError> {
        let user_id = self
            .live_user_id()
            .ok_or(DomainError::NotFound { entity: "user" })?;
        if actor.may_act_for(user_id) {
            Ok(user_id)
        } else {
            Err(DomainError::NotFound { entity: "user" })
        }
    }

    fn register(
        &self,
        user_id: Uuid,
        email: PersonalText,
        display_name: Option<PersonalText>,
        at: DateTime<Utc>,
    ) -> Result<UserEvent, DomainError> {
        if self.exists() {
            return Err(DomainError::conflict("user already registered"));
        }
        Ok(UserEvent::UserCreated {
            user_id,
            email,
            display_name,
            role: Role::User,
            at,
        })
    }

    fn complete_onboarding(
        &self,
        actor: Actor,
        risk_profile: RiskProfile,
        experience: Experience,
        terms_version: String,
        at: DateTime<Utc>,
    ) -> Result<UserEvent, DomainError> {
        self.ensure_actor_is_self_or_admin(&actor)?;
        if self.onboarded {
            return Err(DomainError::conflict("onboarding already completed"));
        }
        Ok(UserEvent::OnboardingCompleted {
            risk_profile,
            experience,
            terms_version: bounded_text("terms_version", &terms_version, 1, 32)?,
            at,
        })
    }

    /// `None` when the user already holds `role`: nothing to record.
    fn assign_role(
        &self,
        actor: Actor,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<Option<UserEvent>, DomainError> {
        if !actor.is_admin_or_system() {
            return Err(DomainError::forbidden("only an admin grants roles"));
        }
        if self.live_user_id().is_none() {
            return Err(DomainError::NotFound { entity: "user" });
        }
        if self.role == Some(role) {
            // Granting the role a user already holds changes nothing.
            return Ok(None);
        }
        Ok(Some(UserEvent::RoleAssigned {
            role,
            assigned_by: actor.user_id(),
            at,
        }))
    }

    /// `None` when the account is disabled already: nothing to record.
    fn disable(
        &self,
        actor: Actor,
        reason: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<Option<UserEvent>, DomainError> {
        if !actor.is_admin_or_system() {
            return Err(DomainError::forbidden("only an admin disables a user"));
        }
        if self.live_user_id().is_none() {
            return Err(DomainError::NotFound { entity: "user" });
        }
        if actor.user_id() == self.user_id {
            return Err(DomainError::conflict("an admin cannot disable themself"));
        }
        if self.disabled {
            return Ok(None);
        }
        let reason = reason
            .map(|reason| bounded_text("reason", &reason, 1, 500))
            .transpose()?;
        Ok(Some(UserEvent::UserDisabled {
            disabled_by: actor.user_id(),
            reason,
            at,
        }))
    }

    /// `None` when the account is enabled already: nothing to record.
    fn enable(&self, actor: Actor, at: DateTime<Utc>) -> Result<Option<UserEvent>, DomainError> {
        if !actor.is_admin_or_system() {
            return Err(DomainError::forbidden("only an admin re-enables a user"));
        }
        if self.live_user_id().is_none() {
            return Err(DomainError::NotFound { entity: "user" });
        }
        if !self.disabled {
            return Ok(None);
        }
        Ok(Some(UserEvent::UserEnabled {
            enabled_by: actor.user_id(),
            at,
        }))
    }

    /// The live user's id, refusing a disabled account as not found (what
    /// log-ins and the account's own commands see).
    fn active_user_id(&self) -> Result<Uuid, DomainError> {
        match self.live_user_id() {
            Some(user_id) if !self.disabled => Ok(user_id),
            _ => Err(DomainError::NotFound { entity: "user" }),
        }
    }

    /// `None` when the user is erased already: nothing to record.
    fn erase(&self, actor: Actor, at: DateTime<Utc>) -> Result<Option<UserEvent>, DomainError> {
        if !actor.is_admin_or_system() {
            return Err(DomainError::forbidden("only an admin erases a user"));
        }
        if !self.exists() {
            return Err(DomainError::NotFound { entity: "user" });
        }
        if self.erased {
            return Ok(None);
        }
        Ok(Some(UserEvent::UserErased {
            erased_by: actor.user_id(),
            at,
        }))
    }
}

/// A display name as it may be recorded: 1 to 100 characters, no control
/// characters.
pub fn check_display_name(name: &str) -> Result<String, DomainError> {
    bounded_text("display_name", name, 1, 100)
}

/// The longest time zone name [`check_timezone`] takes.
pub const MAX_TIMEZONE_CHARS: usize = 64;

/// A time zone as it may be recorded: `UTC`, or an IANA name of one to
/// three `/`-separated parts of ASCII letters, digits, `_`, `-` and `+`,
/// the first a letter (`Europe/Paris`, `America/Argentina/Buenos_Aires`,
/// `Etc/GMT+5`). The shape is checked, not membership of the tz database.
pub fn check_timezone(timezone: &str) -> Result<String, DomainError> {
    let parts: Vec<&str> = timezone.split('/').collect();
    let valid = timezone.len() <= MAX_TIMEZONE_CHARS
        && (1..=3).contains(&parts.len())
        && parts.iter().all(|part| {
            part.chars()
                .next()
                .is_some_and(|first| first.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        });
    if valid {
        Ok(timezone.to_string())
    } else {
        Err(DomainError::invalid(
            "timezone",
            "expected an IANA time zone name such as Europe/Paris or UTC",
        ))
    }
}

/// A failed log-in's source as recorded: control characters dropped, at
/// most [`MAX_LOGIN_SOURCE_CHARS`], `unknown` when nothing is left. The
/// source is the service's own description of the client, so it is cleaned
/// rather than refused: a failure must always be recorded.
pub fn login_source(source: &str) -> String {
    let cleaned: String = source
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LOGIN_SOURCE_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        "unknown".to_string()
    } else {
        cleaned.to_string()
    }
}

/// A lenient shape check: one `@`, something either side, a dot in the
/// domain. Deliverability is the mail server's business.
pub fn normalise_email(email: &str) -> Result<String, DomainError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(DomainError::invalid("email", "not a valid email address"))
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "User";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            UserCommand::Register {
                user_id,
                email,
                display_name,
                at,
            } => self.register(user_id, email, display_name, at)?,
            UserCommand::LogIn { at } => {
                self.active_user_id()?;
                UserEvent::UserLoggedIn { at }
            }
            UserCommand::UpdateProfile { actor, changes, at } => {
                self.ensure_actor_is_self_or_admin(&actor)?;
                if changes.is_empty() {
                    return Err(DomainError::invalid(
                        "body",
                        "names no profile field to change",
                    ));
                }
                UserEvent::UserUpdated { changes, at }
            }
            UserCommand::VerifyEmail { at } => {
                self.active_user_id()?;
                if self.email_verified {
                    return Ok(());
                }
                UserEvent::EmailVerified { at }
            }
            UserCommand::RecordPasswordChange { by, at } => {
                self.active_user_id()?;
                UserEvent::PasswordChanged { by, at }
            }
            UserCommand::Disable { actor, reason, at } => match self.disable(actor, reason, at)? {
                Some(event) => event,
                None => return Ok(()),
            },
            UserCommand::Enable { actor, at } => match self.enable(actor, at)? {
                Some(event) => event,
                None => return Ok(()),
            },
            UserCommand::CompleteOnboarding {
                actor,
                risk_profile,
                experience,
                terms_version,
                at,
            } => self.complete_onboarding(actor, risk_profile, experience, terms_version, at)?,
            UserCommand::AssignRole { actor, role, at } => {
                match self.assign_role(actor, role, at)? {
                    Some(event) => event,
                    None => return Ok(()),
                }
            }
            UserCommand::RecordFailedLogin { source, at } => {
                if self.live_user_id().is_none() {
                    return Err(DomainError::NotFound { entity: "user" });
                }
                UserEvent::LoginFailed { source, at }
            }
            UserCommand::Erase { actor, at } => match self.erase(actor, at)? {
                Some(event) => event,
                None => return Ok(()),
            },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            UserEvent::UserCreated {
                user_id,
                email,
                display_name,
                role,
                ..
            } => {
                self.user_id = Some(user_id);
                self.email = Some(email);
                self.display_name = display_name;
                self.role = Some(role);
            }
            UserEvent::UserLoggedIn { at } => {
                self.last_login_at = Some(at);
                self.failed_logins.clear();
            }
            UserEvent::UserUpdated { changes, .. } => {
                let ProfileChanges {
                    display_name,
                    timezone,
                    notifications,
                    risk_profile,
                } = changes;
                if display_name.is_some() {
                    self.display_name = display_name;
                }
                if timezone.is_some() {
                    self.timezone = timezone;
                }
                if notifications.is_some() {
                    self.notifications = notifications;
                }
                if risk_profile.is_some() {
                    self.risk_profile = risk_profile;
                }
            }
            UserEvent::EmailVerified { .. } => self.email_verified = true,
            UserEvent::PasswordChanged { .. } => self.failed_logins.clear(),
            UserEvent::UserDisabled { .. } => self.disabled = true,
            UserEvent::UserEnabled { .. } => self.disabled = false,
            UserEvent::OnboardingCompleted { risk_profile, .. } => {
                self.onboarded = true;
                self.risk_profile = Some(risk_profile);
            }
            UserEvent::RoleAssigned { role, .. } => self.role = Some(role),
            UserEvent::LoginFailed { at, .. } => {
                if self.failed_logins.len() >= REMEMBERED_FAILED_LOGINS {
                    self.failed_logins.remove(0);
                }
                self.failed_logins.push(at);
            }
            UserEvent::UserErased { .. } => {
                self.email = None;
                self.display_name = None;
                self.failed_logins.clear();
                self.erased = true;
            }
        }
    }
}
