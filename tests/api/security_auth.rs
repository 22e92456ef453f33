//! Security review, issue 19: token headers, token lifetimes, log hygiene, client IPs.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};

use crate::helpers::{ACCOUNT, eventually, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_token_in_two_different_headers_is_401_even_when_both_are_good() {
    let app = spawn_app().await;
    let url = app.url("/queues");
    let other = app.mint(&[ACCOUNT], "queues:read", None);
    let bearer = format!("Bearer {}", app.token);
    let pairs: [(&str, &str, &str, &str); 5] = [
        ("authorization", &bearer, "x-api-key", &app.token),
        ("authorization", &bearer, "x-auth-key", &app.token),
        ("x-auth-key", &app.token, "x-api-key", &app.token),
        ("authorization", &bearer, "x-api-key", &other),
        ("authorization", "Basic abc", "x-api-key", &app.token),
    ];
    for (first, first_value, second, second_value) in pairs {
        let mut headers = HeaderMap::new();
        headers.insert(first, HeaderValue::from_str(first_value).expect("header"));
        headers.insert(second, HeaderValue::from_str(second_value).expect("header"));
        let reply = app.send_raw(app.client.get(&url).headers(headers)).await;
        assert_eq!(
            reply.status.as_u16(),
            401,
            "{first} + {second}: {}",
            reply.body
        );
        reply.assert_error(401, 10000);
    }
    // One header at a time still works, whichever it is.
    for (name, value) in [
        ("authorization", bearer.as_str()),
        ("x-auth-key", app.token.as_str()),
        ("x-api-key", app.token.as_str()),
    ] {
        app.send_raw(app.client.get(&url).header(name, value))
            .await
            .assert_ok();
    }
}

fn now() -> u64 {
    leaseq::model::now_ms() / 1000
}

/// An HS256 secret the tests know, of the length every secret must have.
const KNOWN_SECRET: &str = "security-auth-known-secret-0123456789abcdef";

/// A token signed with [`KNOWN_SECRET`] granting everything on [`ACCOUNT`], with these
/// `iat` (`None`: absent) and `exp`.
fn signed(iat: Option<u64>, exp: u64) -> String {
    let mut claims = serde_json::json!({
        "sub": "t",
        "exp": exp,
        "accounts": [ACCOUNT],
        "scope": leaseq::auth::all_scopes(),
    });
    if let Some(iat) = iat {
        claims["iat"] = iat.into();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(KNOWN_SECRET.as_bytes()),
    )
    .expect("encodes")
}

#[tokio::test]
async fn a_token_living_longer_than_max_token_ttl_secs_is_401() {
    let app = spawn_app_with(|s| {
        s.auth.jwt_secret = Some(KNOWN_SECRET.to_owned().into());
        s.auth.max_token_ttl_secs = 3600;
    })
    .await;
    let url = app.url("/queues");
    let get = |token: String| app.send_raw(app.client.get(&url).bearer_auth(token));
    get(signed(Some(now()), now() + 3600)).await.assert_ok();
    get(signed(Some(now()), now() + 3601))
        .await
        .assert_error(401, 10000);
    // A far-away exp hidden behind an iat in the future.
    let later = now() + 365 * 86_400;
    get(signed(Some(later), later + 60))
        .await
        .assert_error(401, 10000);
}

#[tokio::test]
async fn a_token_without_iat_is_401_while_lifetimes_are_capped() {
    let app = spawn_app_with(|s| s.auth.jwt_secret = Some(KNOWN_SECRET.to_owned().into())).await;
    let url = app.url("/queues");
    let reply = app
        .send_raw(app.client.get(&url).bearer_auth(signed(None, now() + 60)))
        .await;
    reply.assert_error(401, 10000);
    assert!(
        reply.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("iat")),
        "{}",
        reply.body
    );
    // With the cap turned off, the same token is fine.
    let uncapped = spawn_app_with(|s| {
        s.auth.jwt_secret = Some(KNOWN_SECRET.to_owned().into());
        s.auth.max_token_ttl_secs = 0;
    })
    .await;
    uncapped
        .send_raw(
            uncapped
                .client
                .get(uncapped.url("/queues"))
                .bearer_auth(signed(None, now() + 60)),
        )
        .await
        .assert_ok();
}

/// The real binary in its own process, its stderr (the logs) collected as it comes.
struct Broker {
    base: String,
    child: tokio::process::Child,
    logs: std::sync::Arc<std::sync::Mutex<String>>,
    token: String,
}

impl Broker {
    async fn start(env: &[(&str, &str)]) -> Self {
        const LEASE: &str = "security-auth-lease-secret-0123456789abcdef";
        let prefix = format!("lqtest:{}", uuid::Uuid::now_v7().simple());
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_leaseq"))
            .arg("serve")
            .env_remove("RUST_LOG")
            .env("LEASEQ__SERVER__BIND", "127.0.0.1:0")
            .env("LEASEQ__REDIS__URL", crate::helpers::redis_url())
            .env("LEASEQ__REDIS__KEY_PREFIX", &prefix)
            .env("LEASEQ__AUTH__JWT_SECRET", KNOWN_SECRET)
            .env("LEASEQ__AUTH__LEASE_SECRET", LEASE)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("broker starts");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stderr, &mut buffer).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut logs) = sink.lock() {
                    logs.push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let base = loop {
            let line = lines
                .next_line()
                .await
                .expect("read")
                .expect("a listening line");
            if let Some(base) = line.strip_prefix("leaseq listening on ") {
                break base.to_owned();
            }
        };
        Self {
            base,
            child,
            logs,
            token: signed(Some(now()), now() + 600),
        }
    }

    fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The first log line containing `needle`, waiting for it up to 5 s.
    async fn log_line(&self, needle: &str) -> String {
        eventually(Duration::from_secs(5), || async {
            self.logs()
                .lines()
                .find(|line| line.contains(needle))
                .map(str::to_owned)
        })
        .await
    }
}

#[tokio::test]
async fn client_supplied_text_is_quoted_and_escaped_in_the_text_log() {
    let broker = Broker::start(&[("LEASEQ__LOG__FORMAT", "text")]).await;
    // Header values cannot hold CR or LF (the HTTP parser refuses them), but a tab,
    // quotes and text posing as other fields or another line's start get through.
    let user_agent = "probe/1 http.status_code=200 account=\"victim\"\t2026-01-01T00:00:00.000000Z  INFO leaseq: forged";
    let reply = reqwest::Client::new()
        .get(format!(
            "{}/client/v4/accounts/{ACCOUNT}/queues",
            broker.base
        ))
        .bearer_auth(&broker.token)
        .header("user-agent", user_agent)
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status().as_u16(), 200);
    let line = broker.log_line("probe/1").await;
    assert!(
        line.contains(r#"http.user_agent="probe/1 http.status_code=200 account=\"victim\"\t2026-01-01T00:00:00.000000Z  INFO leaseq: forged""#),
        "{line}"
    );
    assert!(!line.contains('\t'), "{line:?}");
    drop(broker.child);
}

#[tokio::test]
async fn x_forwarded_for_is_the_client_ip_only_from_a_trusted_proxy() {
    for (trusted, expected) in [("[]", "127.0.0.1"), (r#"["127.0.0.0/8"]"#, "203.0.113.9")] {
        let broker = Broker::start(&[
            ("LEASEQ__LOG__FORMAT", "json"),
            ("LEASEQ__SERVER__TRUSTED_PROXIES", trusted),
        ])
        .await;
        let reply = reqwest::Client::new()
            .get(format!(
                "{}/client/v4/accounts/{ACCOUNT}/queues",
                broker.base
            ))
            .bearer_auth(&broker.token)
            .header("x-forwarded-for", "198.51.100.1, 203.0.113.9")
            .header("forwarded", "for=192.0.2.66")
            .header("x-request-id", "xff-probe")
            .send()
            .await
            .expect("request");
        assert_eq!(reply.status().as_u16(), 200);
        let request_id = reply
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(request_id, "xff-probe");
        // The request span's own line: the one whose span has the client address.
        let client_ip = eventually(Duration::from_secs(5), || async {
            broker.logs().lines().find_map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).ok()?;
                line["span"]["http.client_ip"].as_str().map(str::to_owned)
            })
        })
        .await;
        assert_eq!(client_ip, expected, "trusted_proxies = {trusted}");
        if trusted == "[]" {
            let logs = broker.logs();
            for forged in ["198.51.100.1", "203.0.113.9", "192.0.2.66"] {
                assert!(!logs.contains(forged), "{forged} in:\n{logs}");
            }
        }
        drop(broker.child);
    }
}

#[tokio::test]
async fn a_queues_claim_absent_or_null_means_the_whole_account_and_empty_means_none() {
    let app = spawn_app_with(|s| s.auth.jwt_secret = Some(KNOWN_SECRET.to_owned().into())).await;
    let queue = app.create_queue("orders").await;
    // `None`: no queues claim at all.
    let with_queues = |queues: Option<serde_json::Value>| {
        let mut claims = serde_json::json!({
            "sub": "t",
            "iat": now(),
            "exp": now() + 600,
            "accounts": [ACCOUNT],
            "scope": leaseq::auth::all_scopes(),
        });
        if let Some(queues) = queues {
            claims["queues"] = queues;
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(KNOWN_SECRET.as_bytes()),
        )
        .expect("encodes")
    };
    let get = |token: String| {
        app.send_raw(
            app.client
                .get(app.url(&format!("/queues/{queue}")))
                .bearer_auth(token),
        )
    };
    get(with_queues(None)).await.assert_ok();
    get(with_queues(Some(serde_json::Value::Null)))
        .await
        .assert_ok();
    get(with_queues(Some(serde_json::json!(["orders"]))))
        .await
        .assert_ok();
    get(with_queues(Some(serde_json::json!([]))))
        .await
        .assert_error(404, 10104);
}
