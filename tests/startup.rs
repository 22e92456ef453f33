//! The real binary, started in its own process: what it prints and what it refuses.
//! Its own test binary, because each case sets the environment of a child process.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Secrets that satisfy the rules (at least 32 bytes each, and different).
const JWT_SECRET: &str = "startup-test-jwt-secret-0123456789abcdef";
const LEASE_SECRET: &str = "startup-test-lease-secret-0123456789abcdef";

fn redis_url() -> String {
    std::env::var("LEASEQ__REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `leaseq serve` on port 0 under a fresh key prefix, with `env` on top.
fn serve(args: &[&str], env: &[(&str, &str)]) -> Child {
    let prefix = format!("lqtest:{}", uuid::Uuid::now_v7().simple());
    let mut command = Command::new(env!("CARGO_BIN_EXE_leaseq"));
    command
        .arg("serve")
        .args(args)
        .env_remove("RUST_LOG")
        .env("LEASEQ__SERVER__BIND", "127.0.0.1:0")
        .env("LEASEQ__REDIS__URL", redis_url())
        .env("LEASEQ__REDIS__KEY_PREFIX", prefix)
        .env("LEASEQ__AUTH__JWT_SECRET", JWT_SECRET)
        .env("LEASEQ__AUTH__LEASE_SECRET", LEASE_SECRET)
        .env("LEASEQ__LOG__FORMAT", "text")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("the broker starts")
}

/// What a broker printed: stdout and stderr.
struct Output {
    stdout: String,
    stderr: String,
}

/// Reads `child`'s output until it prints `until` on stdout (or exits, or 10 s pass),
/// gives it `linger` more, then kills it.
fn output_of(mut child: Child, until: &str, linger: Duration) -> Output {
    fn reader(mut pipe: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0
                    || send
                        .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                        .is_err()
                {
                    break;
                }
            }
        });
        receive
    }
    let stdout = reader(child.stdout.take().expect("stdout"));
    let stderr = reader(child.stderr.take().expect("stderr"));
    let mut output = Output {
        stdout: String::new(),
        stderr: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !output.stdout.contains(until) && Instant::now() < deadline {
        if let Ok(chunk) = stdout.recv_timeout(Duration::from_millis(50)) {
            output.stdout.push_str(&chunk);
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
    }
    std::thread::sleep(linger);
    let _ = child.kill();
    let _ = child.wait();
    output.stdout.extend(stdout.try_iter());
    output.stderr.extend(stderr.iter());
    output
}

/// How `child` exited within 10 s (`None`: it was still running, and is killed), and
/// its stderr.
fn exit_of(mut child: Child) -> (Option<std::process::ExitStatus>, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = None;
    while status.is_none() && Instant::now() < deadline {
        status = child.try_wait().ok().flatten();
        std::thread::sleep(Duration::from_millis(20));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    (status, stderr_of(&mut child))
}

/// What `child` wrote to stderr (read to the end: call it once `child` has exited or
/// been killed).
fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    let _ = child
        .stderr
        .take()
        .map(|mut e| e.read_to_string(&mut stderr));
    stderr
}

#[test]
fn the_redis_password_is_never_logged_when_redis_does_not_answer() {
    for format in ["text", "json"] {
        let child = serve(
            &[],
            &[
                (
                    "LEASEQ__REDIS__URL",
                    "redis://default:s3cretpw@127.0.0.1:1/",
                ),
                ("LEASEQ__LOG__FORMAT", format),
            ],
        );
        let output = output_of(child, "leaseq listening on", Duration::from_millis(1500));
        let all = format!("{}\n{}", output.stdout, output.stderr);
        assert!(
            output.stderr.contains("redis is not answering"),
            "{format}: the warning is logged:\n{all}"
        );
        assert!(
            output.stderr.contains("127.0.0.1:1"),
            "{format}: the host and port are:\n{all}"
        );
        assert!(
            !all.contains("s3cretpw"),
            "{format}: the password leaked:\n{all}"
        );
    }
}

/// A redis-server of this test's own that speaks only TLS (fixtures in
/// tests/fixtures/redis-tls: a test CA and a certificate for 127.0.0.1), with a password.
struct TlsRedis {
    port: u16,
    dir: std::path::PathBuf,
}

impl TlsRedis {
    const PASSWORD: &str = "tls-redis-password";

    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "leaseq-redis-tls-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/redis-tls");
        let status = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--daemonize", "yes", "--save", ""])
            .args(["--tls-cert-file", &format!("{fixtures}/server.pem")])
            .args(["--tls-key-file", &format!("{fixtures}/server.key")])
            .args(["--tls-ca-cert-file", &format!("{fixtures}/ca.pem")])
            .args(["--tls-auth-clients", "no", "--requirepass", Self::PASSWORD])
            .arg("--dir")
            .arg(&dir)
            .status()
            .expect("redis-server runs");
        assert!(status.success());
        Self { port, dir }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/redis-tls");
        let _ = Command::new("redis-cli")
            .args(["--tls", "--cacert", &format!("{fixtures}/ca.pem")])
            .args(["-p", &self.port.to_string(), "-a", Self::PASSWORD])
            .args(["--no-auth-warning", "shutdown", "nosave"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The status code of `GET path` on `base` (`http://host:port`), by hand.
fn get_status(base: &str, path: &str) -> Option<u16> {
    use std::io::Write;
    let address = base.strip_prefix("http://")?;
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.split(' ').nth(1)?.parse().ok()
}

#[test]
fn a_rediss_url_reaches_redis_over_tls() {
    let redis = TlsRedis::start();
    let url = format!("rediss://:{}@127.0.0.1:{}/", TlsRedis::PASSWORD, redis.port);
    let ca = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/redis-tls/ca.pem"
    );
    let mut child = serve(&[], &[("LEASEQ__REDIS__URL", &url), ("SSL_CERT_FILE", ca)]);
    let base = base_url(&mut child);
    // Redis may take a moment to accept connections after daemonizing.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = get_status(&base, "/readyz");
    while status != Some(200) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        status = get_status(&base, "/readyz");
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        status,
        Some(200),
        "readyz answers once Redis answers over TLS"
    );
}

/// `leaseq token --account acct` with only `env` set (nothing inherited).
fn mint(env: &[(&str, &str)]) -> std::process::Output {
    mint_with(&[], env)
}

/// `leaseq token --account acct` with `args`, and only `env` set (nothing inherited).
fn mint_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leaseq"))
        .args(["token", "--account", "acct"])
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("leaseq token runs")
}

/// The claims of `token` if `secret` signed it.
fn verified(token: &[u8], secret: &str) -> Option<leaseq::auth::Claims> {
    let token = std::str::from_utf8(token).ok()?.trim();
    leaseq::auth::TokenKeys::hs256(secret.as_bytes(), leaseq::auth::TokenPolicy::default())
        .verify(token)
        .ok()
}

#[test]
fn a_numeric_secret_in_the_environment_is_taken_exactly_as_written() {
    // Read as a number, this would lose its leading zero (and used to stop start-up
    // with an error quoting it).
    let digits = "0123456789012345678901234567890123456789";
    let output = mint(&[
        ("LEASEQ__AUTH__JWT_SECRET", digits),
        ("LEASEQ__AUTH__LEASE_SECRET", LEASE_SECRET),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(digits), "{stderr}");
    let claims = verified(&output.stdout, digits).expect("signed with the digits as written");
    assert_eq!(claims.accounts, ["acct"]);
}

#[test]
fn a_weak_secret_stops_start_up_without_being_printed() {
    for (jwt, lease, expected) in [
        ("12345", LEASE_SECRET, "at least 32 bytes"),
        ("1.5", LEASE_SECRET, "at least 32 bytes"),
        (JWT_SECRET, "too-short-lease-secret", "at least 32 bytes"),
        (JWT_SECRET, JWT_SECRET, "must be different"),
    ] {
        let child = serve(
            &[],
            &[
                ("LEASEQ__AUTH__JWT_SECRET", jwt),
                ("LEASEQ__AUTH__LEASE_SECRET", lease),
            ],
        );
        let (status, stderr) = exit_of(child);
        assert!(
            status.is_some_and(|s| !s.success()),
            "{jwt} / {lease}: refused, not {status:?}"
        );
        assert!(stderr.contains(expected), "{jwt} / {lease}: {stderr}");
        for secret in [jwt, lease] {
            assert!(!stderr.contains(secret), "{secret} printed: {stderr}");
        }
    }
}

#[test]
fn secrets_can_be_read_from_files_named_in_the_environment() {
    let dir =
        std::env::temp_dir().join(format!("leaseq-secrets-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (jwt_file, lease_file) = (dir.join("jwt"), dir.join("lease"));
    std::fs::write(&jwt_file, format!("{JWT_SECRET}\n")).expect("write");
    std::fs::write(&lease_file, format!("{LEASE_SECRET}\n")).expect("write");
    let jwt_file = jwt_file.to_str().expect("utf-8 path");
    let lease_file = lease_file.to_str().expect("utf-8 path");
    let output = mint(&[
        ("LEASEQ__AUTH__JWT_SECRET_FILE", jwt_file),
        ("LEASEQ__AUTH__LEASE_SECRET_FILE", lease_file),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        verified(&output.stdout, JWT_SECRET).is_some(),
        "newline trimmed"
    );
    let both = mint(&[
        ("LEASEQ__AUTH__JWT_SECRET", JWT_SECRET),
        ("LEASEQ__AUTH__JWT_SECRET_FILE", jwt_file),
        ("LEASEQ__AUTH__LEASE_SECRET_FILE", lease_file),
    ]);
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(!both.status.success());
    assert!(stderr.contains("not both"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dev_mode_refuses_to_serve_on_an_address_that_is_not_loopback() {
    let dir = std::env::temp_dir().join(format!("leaseq-dev-{}", uuid::Uuid::now_v7().simple()));
    let data_dir = dir.to_str().expect("utf-8 path");
    let child = serve(
        &["--dev"],
        &[
            ("LEASEQ__SERVER__BIND", "0.0.0.0:0"),
            ("LEASEQ__SERVER__DATA_DIR", data_dir),
            ("LEASEQ__AUTH__JWT_SECRET", ""),
            ("LEASEQ__AUTH__LEASE_SECRET", ""),
        ],
    );
    let output = output_of(child, "leaseq listening on", Duration::ZERO);
    assert!(
        output
            .stderr
            .contains("--dev only listens on a loopback address"),
        "{}\n{}",
        output.stdout,
        output.stderr
    );
    assert!(!output.stdout.contains("token:"), "{}", output.stdout);
    assert!(!dir.exists(), "no secret was generated");
}

#[test]
fn the_token_command_does_not_mint_beyond_max_token_ttl_secs() {
    let secrets = [
        ("LEASEQ__AUTH__JWT_SECRET", JWT_SECRET),
        ("LEASEQ__AUTH__LEASE_SECRET", LEASE_SECRET),
    ];
    let year = mint_with(&["--ttl", "365days"], &secrets);
    assert!(
        year.status.success(),
        "{}",
        String::from_utf8_lossy(&year.stderr)
    );
    let longer = mint_with(&["--ttl", "366days"], &secrets);
    let stderr = String::from_utf8_lossy(&longer.stderr);
    assert!(!longer.status.success());
    assert!(stderr.contains("max_token_ttl_secs"), "{stderr}");
    assert!(longer.stdout.is_empty());
    let capped = [
        secrets[0],
        secrets[1],
        ("LEASEQ__AUTH__MAX_TOKEN_TTL_SECS", "3600"),
    ];
    assert!(!mint_with(&["--ttl", "2h"], &capped).status.success());
    assert!(mint_with(&["--ttl", "1h"], &capped).status.success());
}

#[test]
fn a_public_key_without_an_audience_is_warned_about_at_start_up() {
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rsa_public.pem");
    let public_key = [
        ("LEASEQ__AUTH__JWT_SECRET", ""),
        ("LEASEQ__AUTH__JWT_PUBLIC_KEY_FILE", key),
        ("LEASEQ__AUTH__JWT_ALGORITHM", "RS256"),
    ];
    let output = output_of(
        serve(&[], &public_key),
        "leaseq listening on",
        Duration::ZERO,
    );
    assert!(
        output.stderr.contains("without auth.audience"),
        "{}",
        output.stderr
    );
    let with_audience = [
        public_key[0],
        public_key[1],
        public_key[2],
        ("LEASEQ__AUTH__AUDIENCE", "leaseq"),
    ];
    let output = output_of(
        serve(&[], &with_audience),
        "leaseq listening on",
        Duration::ZERO,
    );
    assert!(
        output.stdout.contains("leaseq listening on"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("audience"), "{}", output.stderr);
}

/// A certificate authority and a server certificate from `deploy/tls/make-local-ca.sh`,
/// in a fresh directory.
fn local_ca() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("leaseq-ca-{}", uuid::Uuid::now_v7().simple()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/tls/make-local-ca.sh");
    let made = Command::new(script)
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .expect("make-local-ca.sh runs");
    assert!(made.success());
    dir
}

/// Copies `from`'s certificate and key over `to`'s, each by a rename, as a renewal would.
fn install_certificate(from: &std::path::Path, to: &std::path::Path) {
    for file in ["cert.pem", "key.pem"] {
        let staged = to.join(format!("{file}.staged"));
        std::fs::copy(from.join(file), &staged).expect("copy");
        std::fs::rename(&staged, to.join(file)).expect("rename");
    }
}

/// An HTTPS client that trusts only `ca_dir`'s authority, one connection per request.
fn trusting(ca_dir: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(ca_dir.join("ca.pem")).expect("ca.pem");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// Reads `child`'s stdout up to the line giving its base URL.
fn base_url(child: &mut Child) -> String {
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stdout, &mut line).is_ok_and(|n| n > 0) {
        if let Some(found) = line.trim().strip_prefix("leaseq listening on ") {
            return found.to_owned();
        }
        line.clear();
    }
    let _ = child.kill();
    panic!("the broker did not start:\n{}", stderr_of(child));
}

#[tokio::test]
async fn tls_is_served_and_a_new_certificate_is_taken_on_sighup_without_dropping_requests() {
    let (first, second) = (local_ca(), local_ca());
    let live = local_ca();
    install_certificate(&first, &live);
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    // deploy/'s example, its addresses and files moved to the test's.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/tls/leaseq.toml");
    let mut child = serve(
        &["--config", example],
        &[
            (
                "LEASEQ__SERVER__TLS_CERT_FILE",
                cert.to_str().expect("utf-8"),
            ),
            ("LEASEQ__SERVER__TLS_KEY_FILE", key.to_str().expect("utf-8")),
            ("LEASEQ__METRICS__BIND", "127.0.0.1:0"),
        ],
    );
    let base = base_url(&mut child);
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let (old_ca, new_ca) = (trusting(&first), trusting(&second));
    let healthz = format!("{base}/healthz");
    let ok = old_ca
        .get(&healthz)
        .send()
        .await
        .expect("https with the first CA");
    assert_eq!(ok.status().as_u16(), 200);
    assert!(
        new_ca.get(&healthz).send().await.is_err(),
        "the second CA does not vouch for the first certificate"
    );

    // Plain HTTP on the TLS port gets no HTTP answer, and the broker carries on.
    assert_eq!(
        get_status(&base.replace("https://", "http://"), "/healthz"),
        None
    );

    // A long poll in flight across the reload.
    let token = mint(&[
        ("LEASEQ__AUTH__JWT_SECRET", JWT_SECRET),
        ("LEASEQ__AUTH__LEASE_SECRET", LEASE_SECRET),
    ]);
    let token = String::from_utf8(token.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    let queues = format!("{base}/client/v4/accounts/acct/queues");
    let created: serde_json::Value = old_ca
        .post(&queues)
        .bearer_auth(&token)
        .json(&serde_json::json!({"queue_name": "tls"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let queue = created["result"]["queue_id"]
        .as_str()
        .unwrap_or_else(|| panic!("created: {created}"))
        .to_owned();
    let in_flight = tokio::spawn({
        let (client, token) = (old_ca.clone(), token.clone());
        let url = format!("{queues}/{queue}/messages/pull");
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"wait_time_ms": 3000}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    install_certificate(&second, &live);
    let pid = child.id().to_string();
    let hup = |pid: &str| {
        Command::new("kill")
            .args(["-HUP", pid])
            .status()
            .expect("kill runs")
    };
    assert!(hup(&pid).success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut renewed = new_ca.get(&healthz).send().await;
    while renewed.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        renewed = new_ca.get(&healthz).send().await;
    }
    assert_eq!(
        renewed
            .expect("the new certificate is served")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        in_flight
            .await
            .expect("task")
            .expect("the long poll answered"),
        200,
        "the request in flight during the reload finished"
    );
    // (A fresh client: `old_ca` may resume its TLS session, authenticated before.)
    assert!(
        trusting(&first).get(&healthz).send().await.is_err(),
        "new connections get the new certificate"
    );

    // A reload that fails (a key that is not one) keeps the certificate being served.
    std::fs::write(&key, "not a key").expect("write");
    assert!(hup(&pid).success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = new_ca.get(&healthz).send().await.expect("still served");
    assert_eq!(still.status().as_u16(), 200);

    let _ = child.kill();
    let stderr = stderr_of(&mut child);
    let _ = child.wait();
    assert!(stderr.contains("TLS certificate reloaded"), "{stderr}");
    assert!(stderr.contains("TLS certificate not reloaded"), "{stderr}");
    assert!(
        !stderr.contains("not a key"),
        "the key file's contents are never logged"
    );
    for dir in [first, second, live] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn tls_needs_both_files_and_a_key_that_matches() {
    let (first, second) = (local_ca(), local_ca());
    let cert = first.join("cert.pem");
    let other_key = second.join("key.pem");
    let only_cert = serve(
        &[],
        &[(
            "LEASEQ__SERVER__TLS_CERT_FILE",
            cert.to_str().expect("utf-8"),
        )],
    );
    let (status, stderr) = exit_of(only_cert);
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("tls_key_file"), "{stderr}");
    let mismatched = serve(
        &[],
        &[
            (
                "LEASEQ__SERVER__TLS_CERT_FILE",
                cert.to_str().expect("utf-8"),
            ),
            (
                "LEASEQ__SERVER__TLS_KEY_FILE",
                other_key.to_str().expect("utf-8"),
            ),
        ],
    );
    let (status, stderr) = exit_of(mismatched);
    assert!(status.is_some_and(|s| !s.success()), "{stderr}");
    assert!(stderr.contains("does not match"), "{stderr}");
    for dir in [first, second] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn without_tls_a_sighup_changes_nothing_and_the_broker_keeps_serving() {
    let mut child = serve(&[], &[]);
    let base = base_url(&mut child);
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(hup.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().expect("status").is_none(),
        "still running after SIGHUP"
    );
    assert_eq!(get_status(&base, "/healthz"), Some(200));
    let _ = child.kill();
    let _ = child.wait();
}
