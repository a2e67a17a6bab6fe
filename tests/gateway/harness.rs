//! The gateway test's moving parts: `muckard serve --roles api` instances
//! as child processes, the real nginx running `deploy/nginx/nginx.conf`
//! in front of them, and a small HTTP/1.1 client that shows every header
//! as it arrived (so a duplicated one would be seen).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{free_port, muckard_binary, TestApp};
use serde_json::Value;

/// The browser origin the committed `deploy/nginx/cors-origins.conf`
/// allows; the instances are told to allow it too, so both would answer
/// with CORS headers if nginx did not hide the instances' ones.
pub const ALLOWED_ORIGIN: &str = "http://localhost:3000";
pub const OTHER_ORIGIN: &str = "https://evil.example";

const START_DEADLINE: Duration = Duration::from_secs(90);

/// Two groups of instances on one fresh database, and nginx in front.
pub struct Gateway {
    /// Dropped last: the instances and nginx go first (fields drop in
    /// order), then the database.
    pub nginx: Nginx,
    pub users: Vec<Instance>,
    pub trading: Vec<Instance>,
    pub app: TestApp,
}

impl Gateway {
    /// Starts the named user-facing and trading instances (role `api`
    /// only; the test's own process runs the projectors), waits until each
    /// answers `/health`, then starts nginx with upstreams naming them.
    pub async fn start(users: &[&str], trading: &[&str]) -> Gateway {
        let app = TestApp::spawn().await;
        let mut users: Vec<Instance> = users.iter().map(|n| Instance::spawn(&app, n)).collect();
        let mut trading: Vec<Instance> = trading.iter().map(|n| Instance::spawn(&app, n)).collect();
        for instance in users.iter_mut().chain(trading.iter_mut()) {
            instance.wait_until_serving().await;
        }
        let nginx = Nginx::start(
            &users.iter().map(|i| i.port).collect::<Vec<_>>(),
            &trading.iter().map(|i| i.port).collect::<Vec<_>>(),
        )
        .await;
        Gateway {
            nginx,
            users,
            trading,
            app,
        }
    }

    /// A request through the gateway.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        send(self.nginx.port, method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} through the gateway: {e}"))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        self.send("GET", path, &headers, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        self.send("POST", path, &headers, Some(body.to_string().into_bytes()))
            .await
    }
}

/// One `muckard serve --roles api` process on a port of its own, named by
/// `MUCKARD_INSTANCE`.
pub struct Instance {
    pub name: String,
    pub port: u16,
    child: Child,
}

impl Instance {
    fn spawn(app: &TestApp, name: &str) -> Instance {
        let port = free_port();
        let child = Command::new(muckard_binary())
            .args(["serve", "--roles", "api"])
            .envs(app.process_env())
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("MUCKARD_INSTANCE", name)
            .env("CORS_ALLOWED_ORIGINS", ALLOWED_ORIGIN)
            .stdout(Stdio::null())
            .stderr(child_log())
            .spawn()
            .expect("start a muckard instance");
        Instance {
            name: name.to_string(),
            port,
            child,
        }
    }

    async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("instance status") {
                panic!("instance {} exited before serving: {status}", self.name);
            }
            if let Ok(response) = send(self.port, "GET", "/health", &[], None).await {
                if response.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "instance {} did not serve /health within {START_DEADLINE:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A request straight to this instance, around the gateway.
    pub async fn send_direct(&self, method: &str, path: &str) -> Response {
        send(self.port, method, path, &[], None)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.name))
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The real nginx, run in the foreground with a prefix directory of its
/// own. The prefix holds symbolic links to the committed
/// `deploy/nginx/nginx.conf` and `cors-origins.conf`, and the two files a
/// deployment provides, written here: `upstreams.conf` naming the
/// instances and `listen.conf` naming a free port.
pub struct Nginx {
    pub port: u16,
    prefix: PathBuf,
    child: Child,
}

impl Nginx {
    async fn start(users: &[u16], trading: &[u16]) -> Nginx {
        let prefix =
            std::env::temp_dir().join(format!("muckard-gateway-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&prefix).expect("create the nginx prefix");
        // Workers run as an unprivileged user when the test runs as root;
        // they must reach their temporary directories under the prefix.
        set_mode(&prefix, 0o755);
        let committed = deploy_nginx_dir();
        for file in ["nginx.conf", "cors-origins.conf"] {
            std::os::unix::fs::symlink(committed.join(file), prefix.join(file))
                .expect("link a committed nginx file");
        }
        fs::write(
            prefix.join("upstreams.conf"),
            upstream("muckard_user_facing", users) + &upstream("muckard_trading", trading),
        )
        .expect("write upstreams.conf");
        let port = free_port();
        fs::write(
            prefix.join("listen.conf"),
            format!("listen 127.0.0.1:{port};\n"),
        )
        .expect("write listen.conf");
        let stderr = fs::File::create(prefix.join("stderr.log")).expect("nginx stderr file");
        let stdout = if logging() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(format!("{}/", prefix.display()))
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-e", "stderr", "-g", "daemon off;"])
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start nginx ({}): {e}; scripts/services.sh ensure_nginx installs it",
                    nginx_binary().display()
                )
            });
        let mut nginx = Nginx {
            port,
            prefix,
            child,
        };
        nginx.wait_until_serving().await;
        nginx
    }

    async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("nginx status") {
                panic!("nginx exited ({status}): {}", self.stderr());
            }
            if let Ok(response) = send(self.port, "GET", "/gateway/health", &[], None).await {
                if response.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not answer /gateway/health: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What nginx wrote to stderr (its error log).
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.prefix.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM makes the master stop its workers; SIGKILL would leave
        // them running, holding the port.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if logging() {
            eprintln!("nginx stderr:\n{}", self.stderr());
        }
        let _ = fs::remove_dir_all(&self.prefix);
    }
}

fn upstream(name: &str, ports: &[u16]) -> String {
    let servers: String = ports
        .iter()
        .map(|port| format!("    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n"))
        .collect();
    format!("upstream {name} {{\n    zone {name} 64k;\n{servers}    keepalive 8;\n}}\n")
}

fn deploy_nginx_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/nginx")
        .canonicalize()
        .expect("deploy/nginx exists")
}

/// `NGINX_BIN`, else `nginx` on the PATH, else Debian's `/usr/sbin/nginx`.
fn nginx_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NGINX_BIN") {
        return PathBuf::from(bin);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nginx"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn logging() -> bool {
    std::env::var_os("TEST_LOG").is_some()
}

fn child_log() -> Stdio {
    if logging() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// An HTTP response with its headers in arrival order, names lower-cased.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// Every value of the header `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }

    /// The instance that answered, if one did (`None`: nginx itself).
    pub fn instance(&self) -> Option<&str> {
        self.header("x-muckard-instance")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// One request on a fresh connection (`Connection: close`), with a
/// deadline on every step.
pub async fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> std::io::Result<Response> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = &body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("Connection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || exchange(port, request.into_bytes(), body))
        .await
        .expect("the request thread")
}

fn exchange(port: u16, head: Vec<u8>, body: Option<Vec<u8>>) -> std::io::Result<Response> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(15)))?;
    stream.write_all(&head)?;
    if let Some(body) = body {
        // A server may answer (413) and stop reading before the body is
        // all sent; its answer is what counts.
        let _ = stream.write_all(&body);
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> std::io::Result<Response> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| invalid("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| invalid("bad chunked body"))?;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
