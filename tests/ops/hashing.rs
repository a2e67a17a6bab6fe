//! Password hashing a client cannot monopolise: a burst of log-ins runs at
//! most `PASSWORD_HASH_CONCURRENCY` argon2id hashes at once and answers the
//! rest quickly with 503 and `Retry-After`, while `/health` stays fast and
//! the process's memory stays within the stated bound.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use command_side::passwords::PasswordHashingSettings;
use integration_tests::TestApp;

const LOGINS: usize = 400;

/// The resident set of this process (server and client alike), in KiB.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line in kB")
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

struct LoginOutcome {
    status: u16,
    retry_after: Option<String>,
    elapsed: Duration,
}

async fn log_in(client: &reqwest::Client, base: &str, n: usize) -> LoginOutcome {
    let body = format!(r#"{{"email": "nobody-{n}@example.com", "password": "not the password"}}"#);
    post_login(client, base, body).await
}

async fn post_login(client: &reqwest::Client, base: &str, body: String) -> LoginOutcome {
    let started = Instant::now();
    let response = client
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the log-in is answered");
    LoginOutcome {
        status: response.status().as_u16(),
        retry_after: response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        elapsed: started.elapsed(),
    }
}

/// Serves `router` on 127.0.0.1:0 from a runtime of its own (two worker
/// threads, as the service on this machine), as a separate process would:
/// the test's 400 client tasks are not queued in the server's runtime.
fn serve_on_its_own_runtime(
    router: axum::Router,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (bound, address) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the server's runtime")
            .block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                bound.send(listener.local_addr().unwrap()).unwrap();
                let service = router.into_make_service_with_connect_info::<SocketAddr>();
                axum::serve(listener, service)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            })
    });
    (address.recv().expect("the server bound"), stop, server)
}

/// `LOGINS` log-ins with unknown emails at once; their outcomes and how
/// long the burst took.
async fn burst(
    client: &reqwest::Client,
    base: &str,
    first: usize,
) -> (Vec<LoginOutcome>, Duration) {
    let started = Instant::now();
    let logins: Vec<_> = (0..LOGINS)
        .map(|n| {
            let (client, base) = (client.clone(), base.to_string());
            tokio::spawn(async move { log_in(&client, &base, first + n).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for login in logins {
        outcomes.push(login.await.unwrap());
    }
    (outcomes, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_concurrent_logins_leave_health_fast_and_memory_bounded() {
    // No per-address rate limit: every log-in of the burst reaches the
    // password check, as from many addresses.
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_SECOND", "0")]).await;
    let hashing: PasswordHashingSettings = app.settings.password_hashing;
    let (address, stop_serving, server) = serve_on_its_own_runtime(app.router.clone());
    let base = format!("http://{address}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(LOGINS)
        .build()
        .unwrap();

    // Warm up: the dummy hash, then the same burst of 400 connections and
    // requests that are refused before any hashing (a 422), so that what
    // the burst below adds to memory is what hashing adds.
    for n in 0..3 {
        assert_eq!(log_in(&client, &base, n).await.status, 401);
    }
    let unhashed: Vec<_> = (0..LOGINS)
        .map(|n| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let body = format!(r#"{{"email": "nobody-{n}@example.com", "password": {n}}}"#);
                post_login(&client, &base, body).await.status
            })
        })
        .collect();
    for request in unhashed {
        assert_eq!(request.await.unwrap(), 422);
    }
    // And two bursts like the measured one: 400 log-ins in flight at once
    // take memory of their own (connection tasks and handler futures on
    // both sides), which the allocator keeps for the next burst. It depends
    // on the connections, not on hashing, and stops growing by the second.
    let rss_first = vm_rss_kib();
    for round in 0..2 {
        let before = vm_rss_kib();
        let (warm_up, _) = burst(&client, &base, 10_000 * (round + 1)).await;
        println!(
            "warm-up burst {round}: {} × 401, VmRSS {before} kB -> {} kB",
            warm_up.iter().filter(|o| o.status == 401).count(),
            vm_rss_kib()
        );
    }
    let rss_before = vm_rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(rss_before));
    let peak_hashing = Arc::new(AtomicU64::new(0));
    let probe = {
        let (stop, peak_rss, base) = (stop.clone(), peak_rss.clone(), base.clone());
        let (peak_hashing, commands) = (peak_hashing.clone(), app.state.commands.clone());
        // A monitor as an orchestrator's probe is: its own thread and
        // runtime (not queued behind the burst's 400 client tasks), one
        // connection, sequential requests.
        let monitor = async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = client
                    .get(format!("{base}/health"))
                    .send()
                    .await
                    .expect("/health answers");
                assert_eq!(response.status().as_u16(), 200);
                response.bytes().await.expect("/health's body");
                latencies.push(started.elapsed());
                peak_rss.fetch_max(vm_rss_kib(), Ordering::Relaxed);
                peak_hashing.fetch_max(
                    commands.password_hashes_in_flight() as u64,
                    Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies
        };
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the monitor's runtime")
                .block_on(monitor)
        })
    };

    let (outcomes, burst) = burst(&client, &base, 1000).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = tokio::task::spawn_blocking(move || probe.join())
        .await
        .unwrap()
        .expect("the /health monitor ran to the end");
    let rss_after = vm_rss_kib();
    let _ = stop_serving.send(());
    tokio::task::spawn_blocking(move || server.join())
        .await
        .unwrap()
        .expect("the server thread ends");

    latencies.sort();
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let max = *latencies.last().unwrap();
    let unauthorised = outcomes.iter().filter(|o| o.status == 401).count();
    let busy: Vec<&LoginOutcome> = outcomes.iter().filter(|o| o.status == 503).collect();
    let slowest_busy = busy.iter().map(|o| o.elapsed).max().unwrap_or_default();
    let peak = peak_rss.load(Ordering::Relaxed).max(rss_after);
    let growth_kib = peak.saturating_sub(rss_before);
    let total_growth_kib = peak.saturating_sub(rss_first);
    // Unbounded, the 400 hashes of one burst alone would hold 400 × 19 MiB
    // (7.6 GiB) at once.
    let total_bound_kib = 512 * 1024;
    let bound_kib = (hashing.memory_bound_bytes() / 1024) as u64;
    // What is not hashing and the warm-up did not already take: tasks,
    // buffers and the allocator's slack under a different request mix.
    let allowance_kib = 32 * 1024;
    println!(
        "{LOGINS} concurrent log-ins in {burst:?} with {} hash slot(s), {:?} wait: \
         {unauthorised} × 401, {} × 503 (slowest {slowest_busy:?}); /health over {} requests: \
         p50 {p50:?}, p99 {p99:?}, max {max:?}; VmRSS {rss_before} kB before, peak {peak} kB, \
         {rss_after} kB after: grew {growth_kib} kB, hashing bound {bound_kib} kB \
         (+ {allowance_kib} kB allowance); {total_growth_kib} kB over the three bursts \
         (bound {total_bound_kib} kB); at most {} hash(es) in flight",
        hashing.concurrency,
        hashing.wait,
        busy.len(),
        latencies.len(),
        peak_hashing.load(Ordering::Relaxed),
    );

    let others: Vec<u16> = outcomes
        .iter()
        .map(|o| o.status)
        .filter(|status| ![401, 503].contains(status))
        .collect();
    assert!(others.is_empty(), "only 401 and 503 expected: {others:?}");
    assert!(unauthorised > 0, "some log-ins were checked");
    assert!(!busy.is_empty(), "the hashing bound refused some log-ins");
    assert!(
        busy.iter().all(|o| o.retry_after.as_deref() == Some("1")),
        "every 503 carries Retry-After"
    );
    assert!(
        slowest_busy < hashing.wait + Duration::from_secs(2),
        "a refused log-in is answered soon after the wait, not queued: {slowest_busy:?}"
    );
    assert!(
        peak_hashing.load(Ordering::Relaxed) <= hashing.concurrency as u64,
        "no more hashes at once than slots"
    );
    assert!(
        latencies.len() >= 10,
        "/health was measured during the burst"
    );
    assert!(p99 < Duration::from_millis(100), "/health p99 {p99:?}");
    assert!(
        total_growth_kib < total_bound_kib,
        "memory grew {total_growth_kib} kB over the bursts, bound {total_bound_kib} kB"
    );
    assert!(
        growth_kib < bound_kib + allowance_kib,
        "memory grew {growth_kib} kB, bound {bound_kib} kB + {allowance_kib} kB"
    );
}
