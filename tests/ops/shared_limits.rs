//! Rate limits shared by two `muckard` processes through a real Redis
//! (`REDIS_URL`): twice the rate through both gets 429s for the excess;
//! with Redis stopped both keep serving, per process, and say so in
//! `/ready`; with Redis back they share again.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{free_port, poll, TestApp};
use serde_json::Value;
use uuid::Uuid;

use crate::process::{get_json, spawn_service};

/// A Redis server of the test's own on `port`, keeping nothing on disk.
struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server (Debian's redis-server package)");
        Redis(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn rate_limit_scope(client: &reqwest::Client, port: u16) -> Option<(u16, Value)> {
    let (status, body) = get_json(client, &format!("http://127.0.0.1:{port}/ready")).await?;
    Some((status, body["rate_limit"].clone()))
}

async fn wait_for_scope(client: &reqwest::Client, ports: &[u16], scope: &str) {
    for &port in ports {
        poll(
            30,
            &format!("instance {port}: rate limits {scope}"),
            || async move {
                match rate_limit_scope(client, port).await {
                    Some((200, limit)) if limit["scope"] == scope => Some(()),
                    _ => None,
                }
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_limit_through_redis_and_keep_serving_without_it() {
    let app = TestApp::spawn().await;
    let redis_port = free_port();
    let mut redis = Redis::start(redis_port);
    let (per_second, burst) = (2.0, 10.0);
    let env = [
        ("MUCKARD_ROLES", "api".to_string()),
        ("REDIS_URL", format!("redis://127.0.0.1:{redis_port}")),
        (
            "REDIS_KEY_PREFIX",
            format!("test-{}:", Uuid::new_v4().simple()),
        ),
        ("RATE_LIMIT_PER_SECOND", per_second.to_string()),
        ("RATE_LIMIT_BURST", burst.to_string()),
    ];
    let ports = [free_port(), free_port()];
    let _services: Vec<_> = ports
        .iter()
        .map(|port| spawn_service(&app, *port, &env))
        .collect();
    let client = reqwest::Client::new();
    wait_for_scope(&client, &ports, "shared").await;

    // 40 anonymous requests from one address, alternating between the
    // instances: one shared bucket lets through its burst and what refills
    // meanwhile; two buckets of their own would let 2 × burst through.
    let started = Instant::now();
    let mut allowed = [0u32; 2];
    let mut limited = [0u32; 2];
    for n in 0..40 {
        let which = n % 2;
        let url = format!("http://127.0.0.1:{}/api/v1/user/me", ports[which]);
        let status = client.get(&url).send().await.expect("a request").status();
        match status.as_u16() {
            429 => limited[which] += 1,
            401 => allowed[which] += 1,
            other => panic!("unexpected {other} from instance {which}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total: u32 = allowed.iter().sum();
    let bound = burst + (per_second * elapsed).ceil() + 1.0;
    assert!(
        f64::from(total) <= bound && f64::from(total) >= burst,
        "{total} allowed in {elapsed:.2} s through both (allowed {allowed:?}, limited \
         {limited:?}); one shared limit allows at most {bound}"
    );
    assert!(
        limited.iter().all(|n| *n > 0),
        "both instances refuse the excess: {limited:?}"
    );

    // Redis stops: both instances keep serving, per process, and say so.
    let _ = redis.0.kill();
    let _ = redis.0.wait();
    let down = Instant::now();
    for &port in &ports {
        // Requests go on being answered while the instance notices.
        let url = format!("http://127.0.0.1:{port}/api/v1/user/me");
        let status = client.get(&url).send().await.expect("a request").status();
        assert!(matches!(status.as_u16(), 401 | 429), "{status}");
    }
    wait_for_scope(&client, &ports, "per_process").await;
    for &port in &ports {
        let (status, limit) = rate_limit_scope(&client, port).await.expect("/ready");
        assert_eq!(status, 200, "Redis down does not make the instance unready");
        assert_eq!(limit["redis"], "down", "{limit}");
        assert!(limit["error"].is_string(), "{limit}");
        let mut served = 0;
        for _ in 0..5 {
            let url = format!("http://127.0.0.1:{port}/api/v1/user/me");
            let status = client.get(&url).send().await.expect("a request").status();
            match status.as_u16() {
                401 => served += 1,
                429 => {}
                other => panic!("unexpected {other} with Redis down"),
            }
        }
        assert!(served > 0, "instance {port} serves with Redis down");
    }
    assert!(down.elapsed() < Duration::from_secs(30));

    // Redis back on the same port: shared again.
    let _redis = Redis::start(redis_port);
    wait_for_scope(&client, &ports, "shared").await;
}

/// The log-in back-off of an email no user holds (kept in memory without
/// Redis) holds across instances too: failures through either count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_unknown_email_login_back_off_holds_across_instances() {
    let app = TestApp::spawn().await;
    let redis_port = free_port();
    let _redis = Redis::start(redis_port);
    let env = [
        ("MUCKARD_ROLES", "api".to_string()),
        ("REDIS_URL", format!("redis://127.0.0.1:{redis_port}")),
        (
            "REDIS_KEY_PREFIX",
            format!("test-{}:", Uuid::new_v4().simple()),
        ),
        ("RATE_LIMIT_PER_SECOND", "0".to_string()),
        ("LOGIN_BACKOFF_FAILURES", "3".to_string()),
    ];
    let ports = [free_port(), free_port()];
    let _services: Vec<_> = ports
        .iter()
        .map(|port| spawn_service(&app, *port, &env))
        .collect();
    let client = reqwest::Client::new();
    for &port in &ports {
        poll(30, &format!("instance {port} reaches Redis"), || {
            let client = client.clone();
            async move {
                let (status, body) =
                    get_json(&client, &format!("http://127.0.0.1:{port}/ready")).await?;
                (status == 200 && body["rate_limit"]["redis"] == "up").then_some(())
            }
        })
        .await;
    }
    let email = format!("nobody-{}@example.com", Uuid::new_v4().simple());
    let log_in = |port: u16| {
        let client = client.clone();
        let body = serde_json::json!({ "email": email, "password": "wrong password, surely" });
        async move {
            client
                .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("a log-in")
        }
    };
    // Three failures, two through one instance and one through the other.
    for port in [ports[0], ports[1], ports[0]] {
        assert_eq!(log_in(port).await.status(), 401);
    }
    // The instance that saw one of them backs off as well.
    let refused = log_in(ports[1]).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
}
