//! The standby serves within the stated bound (10 s) when the active
//! runner stops serving: its supervisor dies (the lock's session ends with
//! it), or its consumers cannot reach RabbitMQ while the standby can (the
//! active runner gives the lock up).

use std::time::{Duration, Instant};

use bot_runner::RunnerSettings;
use integration_tests::rabbit::{rabbit_url, RabbitTest};
use integration_tests::{TestApp, TestUser};
use messaging::RabbitSettings;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::flow::{bot_events, bot_with, hourly_dca, service, wait_for_state};
use crate::resume::runner_lock_holder;

/// The bound ARCHITECTURE.md states for a standby to take over.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);

/// A service without a runner of its own; the tests start runners.
async fn service_without_runner(rabbit: &RabbitTest) -> TestApp {
    service(rabbit, &[("MUCKARD_ROLES", "api,projector,publisher")]).await
}

fn spawn_runner(
    app: &TestApp,
    rabbit: &RabbitTest,
    url: String,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    bot_runner::spawn_runner(
        app.state.commands.clone(),
        app.state.commands.settings.exchange.clone(),
        RabbitSettings::new(url, rabbit.prefix.clone()),
        RunnerSettings {
            tick: Duration::from_millis(100),
            ..RunnerSettings::default()
        },
        shutdown.clone(),
    )
}

/// A running bot, started through the active runner.
async fn running_bot(app: &TestApp, user: &TestUser) -> Uuid {
    let bot_id = bot_with(app, user, hourly_dca()).await;
    app.post_empty(&format!("/api/v1/bot/{bot_id}/start"), Some(&user.token))
        .await;
    wait_for_state(app, user, bot_id, "running").await;
    bot_id
}

/// Asks to stop `bot_id` and returns how long until it stopped.
async fn stop_takes(app: &TestApp, user: &TestUser, bot_id: Uuid, since: Instant) -> Duration {
    app.post(
        &format!("/api/v1/bot/{bot_id}/stop"),
        Some(&user.token),
        json!({}),
    )
    .await;
    app.eventually(30, "the bot stopped", || async {
        !bot_events(app, bot_id, "bot.stopped").await.is_empty()
    })
    .await;
    since.elapsed()
}

#[tokio::test]
async fn the_standby_serves_when_the_active_runners_supervisor_dies() {
    let rabbit = RabbitTest::new().await;
    let app = service_without_runner(&rabbit).await;
    let (first_stop, second_stop) = (CancellationToken::new(), CancellationToken::new());
    let _guards = (
        first_stop.clone().drop_guard(),
        second_stop.clone().drop_guard(),
    );
    let first = spawn_runner(&app, &rabbit, rabbit_url(), &first_stop);
    app.eventually(30, "a runner active", || async {
        runner_lock_holder(&app, &rabbit.prefix).await.is_some()
    })
    .await;
    let active = runner_lock_holder(&app, &rabbit.prefix).await;
    let _second = spawn_runner(&app, &rabbit, rabbit_url(), &second_stop);
    let user = app.user().await;
    let bot_id = running_bot(&app, &user).await;

    let killed = Instant::now();
    for task in &first {
        task.abort();
    }
    let took = stop_takes(&app, &user, bot_id, killed).await;
    let holder = runner_lock_holder(&app, &rabbit.prefix).await;
    eprintln!("supervisor aborted: the standby stopped the bot {took:?} later");
    assert!(
        holder.is_some() && holder != active,
        "the standby holds the lock"
    );
    assert!(took < TAKEOVER_BOUND, "took {took:?}");
}

#[tokio::test]
async fn the_active_runner_that_cannot_reach_rabbitmq_hands_over_to_the_standby() {
    let rabbit = RabbitTest::new().await;
    let app = service_without_runner(&rabbit).await;
    // The active runner reaches RabbitMQ through a proxy the test cuts.
    let proxy = Proxy::start(rabbit_address()).await;
    let proxied_url = rabbit_url().replace(&rabbit_address(), &format!("127.0.0.1:{}", proxy.port));
    let (first_stop, second_stop) = (CancellationToken::new(), CancellationToken::new());
    let _guards = (
        first_stop.clone().drop_guard(),
        second_stop.clone().drop_guard(),
    );
    let _first = spawn_runner(&app, &rabbit, proxied_url, &first_stop);
    app.eventually(30, "a runner active", || async {
        runner_lock_holder(&app, &rabbit.prefix).await.is_some()
    })
    .await;
    let active = runner_lock_holder(&app, &rabbit.prefix).await;
    let _second = spawn_runner(&app, &rabbit, rabbit_url(), &second_stop);
    let user = app.user().await;
    let bot_id = running_bot(&app, &user).await;
    assert_eq!(runner_lock_holder(&app, &rabbit.prefix).await, active);

    let cut = Instant::now();
    proxy.cut();
    let took = stop_takes(&app, &user, bot_id, cut).await;
    let holder = runner_lock_holder(&app, &rabbit.prefix).await;
    eprintln!(
        "rabbitmq cut off from the active runner: the standby stopped the bot {took:?} later"
    );
    assert!(
        holder.is_some() && holder != active,
        "the standby holds the lock"
    );
    assert!(took < TAKEOVER_BOUND, "took {took:?}");
}

/// `host:port` of the test broker.
fn rabbit_address() -> String {
    let url = rabbit_url();
    let after_credentials = url.rsplit_once('@').map_or(url.as_str(), |(_, rest)| rest);
    after_credentials
        .split('/')
        .next()
        .expect("an authority")
        .to_string()
}

/// A TCP proxy to `target` that the test can cut: every connection
/// through it ends and no new one is accepted.
struct Proxy {
    port: u16,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            // Dropped with this task, which aborts every connection's task.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { port, task }
    }

    fn cut(&self) {
        self.task.abort();
    }
}
