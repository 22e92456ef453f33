//! Bodies too large, and clients too slow: refused in time while others are served.

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Sentinel;
use crate::helpers::raw::{addr, closes, find, http, raw, refused, send_bytes, trickle};
use crate::helpers::{ACCOUNT, spawn_app, spawn_app_with};

const TEN_MB: usize = 10 * 1024 * 1024;

#[tokio::test]
async fn a_ten_megabyte_body_is_413_at_once_and_the_app_and_its_clients_carry_on() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let target = format!(
        "/client/v4/accounts/{ACCOUNT}/queues/{}/messages",
        sentinel.queue
    );

    // Declared with Content-Length: refused from the head alone, before any body byte.
    let mut head = http(&app, "POST", target.as_bytes(), "", b"");
    let cl = find(&head, b"Content-Length: 0").expect("content-length");
    head.splice(
        cl..,
        format!("Content-Length: {TEN_MB}\r\n\r\n").into_bytes(),
    );
    let started = Instant::now();
    let (reply, mut stream) = raw(&app, &head).await;
    let reply = reply.expect("an answer");
    refused(&reply, 413, 10209, "declared 10 MB");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The unread body cannot be told from the next request: the server hangs up.
    assert!(closes(&mut stream).await);

    // Sent whole by reqwest: the same 413, however much of the body got written.
    let started = Instant::now();
    let reply = send_bytes(
        &app,
        Method::POST,
        &format!("/queues/{}/messages", sentinel.queue),
        vec![b' '; TEN_MB],
    )
    .await;
    refused(&reply, 413, 10209, "10 MB through reqwest");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Chunked, without Content-Length: refused once the limit is crossed, and the
    // connection closed rather than the rest drained for as long as the client sends.
    let stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        addr(&app),
        app.token
    );
    let started = Instant::now();
    let writing = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = [b' '; 64 * 1024];
        for _ in 0..TEN_MB / chunk.len() {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let mut answer = Vec::new();
    // Reset or EOF, either way the server hung up.
    let _ = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer))
        .await
        .expect("the server hangs up within 10 s");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let _ = writing.await.expect("writer");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains(r#""code":10209"#), "{text}");

    sentinel.assert_delivered_intact(&app).await;
}

// ---- slow clients ----------------------------------------------------------------------

/// The ways a client can be slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slow {
    /// Its body, a byte at a time (`Content-Length`): our 408 envelope.
    Body,
    /// Its body, a one-byte chunk at a time: our 408 envelope.
    ChunkedBody,
    /// Its head, a byte at a time: actix-http's bare 408.
    Head,
    /// A chunked body, a byte at a time, to a route that reads none: answered at once.
    UnreadChunkedBody,
}

#[tokio::test]
async fn slowloris_bodies_and_heads_are_cut_off_within_the_client_timeout_while_others_are_served()
{
    let app = spawn_app_with(|s| s.server.client_timeout_secs = 1).await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let queue = format!("/client/v4/accounts/{ACCOUNT}/queues/{}", sentinel.queue);
    let (host, token) = (addr(&app), app.token.clone());
    let body = br#"{"body":"this arrives one byte at a time, far too slowly"}"#.to_vec();
    let head = format!(
        "POST {queue}/messages HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let chunked_head = |method: &str, path: &str| {
        format!("{method} {queue}{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes()
    };
    let chunked_body: Vec<u8> = body
        .iter()
        .flat_map(|b| [b"1\r\n".as_slice(), std::slice::from_ref(b), b"\r\n"].concat())
        .collect();
    let gap = Duration::from_millis(50);

    // Many slow clients at once, in every way, while ordinary requests go on. Each
    // would take seconds more to finish sending.
    let mut slow = Vec::new();
    for (i, kind) in [
        Slow::Body,
        Slow::ChunkedBody,
        Slow::Head,
        Slow::UnreadChunkedBody,
    ]
    .into_iter()
    .cycle()
    .take(40)
    .enumerate()
    {
        let (head, body) = match kind {
            Slow::Body => (head.clone().into_bytes(), body.clone()),
            Slow::ChunkedBody => (chunked_head("POST", "/messages"), chunked_body.clone()),
            Slow::Head => (Vec::new(), [head.as_bytes(), &body].concat()),
            Slow::UnreadChunkedBody => (chunked_head("GET", "/metrics"), chunked_body.clone()),
        };
        let host = host.clone();
        // Staggered, so the cut-offs do not all land at once.
        let gap = gap + Duration::from_millis(i as u64 % 7);
        slow.push(tokio::spawn(async move {
            (kind, trickle(host, head, body, gap).await)
        }));
    }
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(700) {
        let asked = Instant::now();
        assert_eq!(app.metrics(&sentinel.queue).await["backlog_count"], 2);
        assert!(
            asked.elapsed() < Duration::from_millis(300),
            "{:?}",
            asked.elapsed()
        );
        served += 1;
    }
    assert!(
        served >= 5,
        "only {served} requests served alongside the slow clients"
    );
    for handle in slow {
        let (kind, (answer, elapsed)) = handle.await.expect("slow client");
        assert!(
            elapsed < Duration::from_millis(2500),
            "{kind:?}: cut off after {elapsed:?}: {answer}"
        );
        match kind {
            Slow::Body | Slow::ChunkedBody => {
                assert!(answer.starts_with("HTTP/1.1 408"), "{kind:?}: {answer}");
                assert!(answer.contains(r#""code":10210"#), "{kind:?}: {answer}");
            }
            Slow::Head => assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
                "{kind:?}: {answer}"
            ),
            Slow::UnreadChunkedBody => {
                assert!(answer.starts_with("HTTP/1.1 200"), "{kind:?}: {answer}");
                assert!(answer.contains("connection: close"), "{kind:?}: {answer}");
            }
        }
    }
    sentinel.assert_delivered_intact(&app).await;
}
