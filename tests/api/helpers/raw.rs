//! Raw HTTP for the tests that need more than reqwest: requests sent byte for byte over
//! a `TcpStream` (targets reqwest would normalise, broken framing, bodies that trickle
//! in), the replies read back by hand, and raw bytes sent as a JSON body.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Reply, TestApp};

/// Raw bytes as a JSON request body, with the test token.
pub async fn send_bytes(
    app: &TestApp,
    method: Method,
    path: &str,
    body: impl Into<Vec<u8>>,
) -> Reply {
    let request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(body.into());
    app.send_raw(request).await
}

/// Asserts the envelope with this status and code, naming the case when it is not.
#[track_caller]
pub fn refused(reply: &Reply, status: u16, code: u64, case: &str) {
    assert_eq!(
        (reply.status.as_u16(), &reply.body["errors"][0]["code"]),
        (status, &json!(code)),
        "{case}: {}",
        reply.body
    );
    reply.assert_error(status, code);
}

/// The app's `host:port`, for raw connections.
pub fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// An HTTP/1.1 request, byte for byte: `target` is sent as given, and `headers` are
/// `Name: value\r\n` lines added after Host, Authorization and `Connection: close`.
pub fn http(app: &TestApp, method: &str, target: &[u8], headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
            addr(app),
            app.token,
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one response (head, then `Content-Length` bytes of body); `None` when the
/// server closed the connection without answering. Panics after 5 s: a hang.
pub async fn read_reply(stream: &mut TcpStream) -> Option<Reply> {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let head_end = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let mut headers = HeaderMap::new();
        for line in lines {
            let (name, value) = line.split_once(':').expect("header line");
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
                HeaderValue::from_str(value.trim()).expect("header value"),
            );
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        body.truncate(length);
        Some(Reply {
            status: StatusCode::from_u16(status).expect("status"),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        })
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the server answers or closes within 5 s")
}

/// Whether the server closes the connection (EOF or reset) within 5 s.
pub async fn closes(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .is_ok()
}

/// Sends `request` on a fresh connection and reads the answer.
pub async fn raw(app: &TestApp, request: &[u8]) -> (Option<Reply>, TcpStream) {
    let mut stream = TcpStream::connect(addr(app)).await.expect("connect");
    // The server may answer and close before it has read everything: that is allowed.
    let _ = stream.write_all(request).await;
    let reply = read_reply(&mut stream).await;
    (reply, stream)
}

/// A bare status from actix-http's parser: no envelope, and the connection closed.
pub async fn assert_parser_refusal(
    reply: Option<Reply>,
    mut stream: TcpStream,
    statuses: &[u16],
    case: &str,
) {
    let reply = reply.unwrap_or_else(|| panic!("{case}: no answer"));
    assert!(
        statuses.contains(&reply.status.as_u16()) && reply.body.is_null(),
        "{case}: {} {}",
        reply.status,
        reply.body
    );
    assert!(
        closes(&mut stream).await,
        "{case}: the connection is closed"
    );
}

/// Splits what the server sent on one connection into its responses.
pub fn responses(bytes: &[u8]) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(end) = find(rest, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let length = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let body = &rest[end + 4..(end + 4 + length).min(rest.len())];
        out.push((status, serde_json::from_slice(body).unwrap_or(Value::Null)));
        rest = &rest[(end + 4 + length).min(rest.len())..];
    }
    out
}

/// Sends `head` then `body` one byte every `gap`, until the server hangs up; returns
/// what the server answered and how long after the first byte.
pub async fn trickle(
    addr: String,
    head: Vec<u8>,
    body: Vec<u8>,
    gap: Duration,
) -> (String, Duration) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let writing = tokio::spawn(async move {
        writer.write_all(&head).await?;
        for byte in body {
            tokio::time::sleep(gap).await;
            writer.write_all(&[byte]).await?;
        }
        std::io::Result::Ok(())
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), reader.read_to_end(&mut answer)).await;
    let elapsed = started.elapsed();
    writing.abort();
    assert!(
        read.is_ok(),
        "the server neither answered nor hung up within 8 s: {}",
        String::from_utf8_lossy(&answer)
    );
    (String::from_utf8_lossy(&answer).into_owned(), elapsed)
}
