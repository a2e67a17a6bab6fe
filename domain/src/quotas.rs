//! The operator's quotas on what one user may ask of a bot, so one user's
//! flood costs that user alone: how often a bot may be triggered and how
//! many of its triggers may wait at once. (Bots per user is counted by the
//! command side from the log, which this crate cannot read.)

/// How many trade triggers a bot accepts (`BOT_TRIGGERS_PER_MINUTE`,
/// `BOT_MAX_PENDING_TRIGGERS`), handed to the Bot in `BotServices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerQuotas {
    /// Triggers accepted on one bot within any 60 seconds; one more is
    /// refused with the seconds until the oldest of them leaves the window.
    pub per_minute: u32,
    /// Triggers requested on one bot and not yet traded or skipped; one
    /// more is refused until the runner has handled one.
    pub max_pending: u32,
}

impl TriggerQuotas {
    pub const DEFAULT_PER_MINUTE: u32 = 6;
    pub const DEFAULT_MAX_PENDING: u32 = 10;
    /// What a bot remembers of its recent trigger times at most, however
    /// an operator sets `per_minute`: the rate cannot be raised past it.
    pub const MAX_PER_MINUTE: u32 = 256;
    /// The most pending triggers an operator may allow: the Bot keeps
    /// them in every snapshot.
    pub const MAX_PENDING: u32 = 256;

    /// The quotas, each from 1 to its maximum, or the reason they are not.
    pub fn new(per_minute: u32, max_pending: u32) -> Result<Self, String> {
        if !(1..=Self::MAX_PER_MINUTE).contains(&per_minute) {
            return Err(format!(
                "triggers per minute must be from 1 to {}",
                Self::MAX_PER_MINUTE
            ));
        }
        if !(1..=Self::MAX_PENDING).contains(&max_pending) {
            return Err(format!(
                "pending triggers must be from 1 to {}",
                Self::MAX_PENDING
            ));
        }
        Ok(Self {
            per_minute,
            max_pending,
        })
    }
}

impl Default for TriggerQuotas {
    fn default() -> Self {
        Self {
            per_minute: Self::DEFAULT_PER_MINUTE,
            max_pending: Self::DEFAULT_MAX_PENDING,
        }
    }
}
