//! Per-bot serial lanes: the work of one bot runs in order, one piece at a
//! time; different bots run concurrently, at most `max_concurrent` pieces
//! at once on one queue and at most `per_user` at once for one user, so a
//! user with many busy bots cannot take every slot.
//!
//! A lane is a queue of jobs and the task that drains it; it exists while
//! it has work and ends when it runs dry. Each job runs behind
//! `catch_unwind`, so a job that panics ends that job only: the lane, the
//! other lanes and the consumer that feeds them carry on (the job itself
//! catches its command's panic first and records it on its bot; this is
//! the backstop).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// One piece of a bot's work.
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub(crate) struct Lanes {
    state: Mutex<LaneState>,
    total: Arc<Semaphore>,
    per_user: usize,
}

#[derive(Default)]
struct LaneState {
    /// Bot id → the jobs waiting in its lane.
    lanes: HashMap<Uuid, VecDeque<Job>>,
    /// User → (lanes of theirs that exist, their share of the slots).
    users: HashMap<Uuid, (usize, Arc<Semaphore>)>,
}

impl Lanes {
    pub(crate) fn new(max_concurrent: usize, per_user: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            total: Arc::new(Semaphore::new(max_concurrent.max(1))),
            per_user: per_user.max(1),
        })
    }

    /// Queues `job` at the end of `bot_id`'s lane (`user_id` owns the bot),
    /// starting the lane if it has none.
    pub(crate) fn dispatch(self: &Arc<Self>, bot_id: Uuid, user_id: Uuid, job: Job) {
        let mut state = self.state();
        if let Some(lane) = state.lanes.get_mut(&bot_id) {
            lane.push_back(job);
            return;
        }
        state.lanes.insert(bot_id, VecDeque::from([job]));
        let share = {
            let entry = state
                .users
                .entry(user_id)
                .or_insert_with(|| (0, Arc::new(Semaphore::new(self.per_user))));
            entry.0 += 1;
            entry.1.clone()
        };
        tokio::spawn(self.clone().drain(bot_id, user_id, share));
    }

    /// Jobs waiting, over every lane.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.state().lanes.values().map(VecDeque::len).sum()
    }

    async fn drain(self: Arc<Self>, bot_id: Uuid, user_id: Uuid, share: Arc<Semaphore>) {
        loop {
            let job = {
                let mut state = self.state();
                match state.lanes.get_mut(&bot_id).and_then(VecDeque::pop_front) {
                    Some(job) => job,
                    None => {
                        // Dry: the lane ends under the same lock that
                        // `dispatch` adds to it under, so no job is lost.
                        state.lanes.remove(&bot_id);
                        if let Some((lanes, _)) = state.users.get_mut(&user_id) {
                            *lanes -= 1;
                            if *lanes == 0 {
                                state.users.remove(&user_id);
                            }
                        }
                        return;
                    }
                }
            };
            let _user_slot = share.acquire().await;
            let _slot = self.total.acquire().await;
            if let Err(panic) = AssertUnwindSafe(job).catch_unwind().await {
                tracing::error!(%bot_id, panic = %panic_message(panic.as_ref()), "a bot's job panicked outside its command");
            }
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The text a panic was raised with.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// `text` fit to be recorded: control characters (which the domain refuses
/// in recorded text) become spaces, and it is cut to `max` characters.
pub(crate) fn recordable(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if cleaned.trim().is_empty() {
        "no reason given".to_string()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn one_bots_jobs_run_in_order_and_a_panic_ends_only_its_job() {
        let lanes = Lanes::new(4, 2);
        let order = Arc::new(Mutex::new(Vec::new()));
        let bot = Uuid::new_v4();
        let user = Uuid::new_v4();
        for n in 0..20 {
            let order = order.clone();
            lanes.dispatch(
                bot,
                user,
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(20 - n)).await;
                    if n == 7 {
                        panic!("job {n} fails");
                    }
                    order.lock().unwrap().push(n);
                }),
            );
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while order.lock().unwrap().len() < 19 {
            assert!(tokio::time::Instant::now() < deadline, "{order:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let expected: Vec<u64> = (0..20).filter(|n| *n != 7).collect();
        assert_eq!(*order.lock().unwrap(), expected);
        while lanes.waiting() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(lanes.state().users.is_empty(), "the user's share is freed");
    }

    #[tokio::test]
    async fn a_user_gets_at_most_their_share_and_others_still_run() {
        let lanes = Lanes::new(3, 2);
        let (greedy, other) = (Uuid::new_v4(), Uuid::new_v4());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        for _ in 0..6 {
            let (running, most, release) = (running.clone(), most.clone(), release.clone());
            lanes.dispatch(
                Uuid::new_v4(),
                greedy,
                Box::pin(async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    release.notified().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                }),
            );
        }
        let done = Arc::new(tokio::sync::Notify::new());
        let signal = done.clone();
        lanes.dispatch(
            Uuid::new_v4(),
            other,
            Box::pin(async move { signal.notify_one() }),
        );
        tokio::time::timeout(Duration::from_secs(2), done.notified())
            .await
            .expect("the other user's job ran while the greedy user's waited");
        assert_eq!(most.load(Ordering::SeqCst), 2);
        release.notify_waiters();
    }

    #[test]
    fn recorded_text_has_no_control_characters() {
        assert_eq!(recordable("a\u{0}b\nc", 100), "a b c");
        assert_eq!(recordable("\u{0}", 100), "no reason given");
        assert_eq!(recordable("abcdef", 3), "abc");
    }
}
