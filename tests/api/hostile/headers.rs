//! Hostile tokens, header values and counts, `Transfer-Encoding`/`Content-Length`
//! framing tricks, and `Content-Type`/`Content-Encoding` claims.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Sentinel;
use crate::helpers::raw::{addr, assert_parser_refusal, http, raw, refused, responses};
use crate::helpers::{ACCOUNT, Ids, Reply, Route, every_route, spawn_app, spawn_app_with};

fn b64url(bytes: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A JWT with this header and payload text, HS256-signed with `secret`.
fn hs256(header: &str, payload: &str, secret: &[u8]) -> String {
    use hmac::Mac;
    let signing_input = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&mac.finalize().into_bytes()))
}

const SECRET: &[u8] = b"hostile-known-secret-of-at-least-32-bytes";

#[tokio::test]
async fn hostile_tokens_are_401_envelopes_on_every_route() {
    let app = spawn_app_with(|s| {
        s.auth.jwt_secret = Some(String::from_utf8_lossy(SECRET).into_owned().into())
    })
    .await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let q = sentinel.queue.clone();
    let iat = leaseq::model::now_ms() / 1000;
    let exp = iat + 3600;
    // `iat` too: tokens without one are refused while auth.max_token_ttl_secs is set.
    let claims = |extra: &str| {
        format!(
            r#"{{"sub":"t","iat":{iat},"exp":{exp},"accounts":["{ACCOUNT}"],"scope":"queues:read queues:write messages:push messages:pull"{extra}}}"#
        )
    };
    let good = claims("");
    let hs = r#"{"alg":"HS256","typ":"JWT"}"#;
    assert_eq!(
        app.send_raw(
            app.client
                .get(app.url("/queues"))
                .bearer_auth(hs256(hs, &good, SECRET))
        )
        .await
        .status,
        200,
        "the hand-made token is right"
    );
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes()),
            b64url(good.as_bytes())
        )
    };
    let deep = claims("").replace(
        &format!("[\"{ACCOUNT}\"]"),
        &("[".repeat(10_000) + &"]".repeat(10_000)),
    );
    let tokens: Vec<(&str, String)> = vec![
        ("alg none", unsigned("none")),
        ("alg NONE", unsigned("NONE")),
        ("alg None", unsigned("None")),
        ("alg none with the real signature", {
            let real = hs256(hs, &good, SECRET);
            let sig = real.rsplit('.').next().expect("sig").to_owned();
            unsigned("none") + &sig
        }),
        (
            "alg HS512 by the same key",
            hs256(r#"{"alg":"HS512"}"#, &good, SECRET),
        ),
        (
            "a path as kid",
            hs256(
                r#"{"alg":"HS256","kid":"../../../../dev/null"}"#,
                &good,
                b"",
            ),
        ),
        (
            "a jku to elsewhere",
            hs256(
                r#"{"alg":"HS256","jku":"http://127.0.0.1:1/"}"#,
                &good,
                b"x",
            ),
        ),
        (
            "exp 1e400",
            hs256(hs, &claims("").replace(&exp.to_string(), "1e400"), SECRET),
        ),
        (
            "exp a string",
            hs256(
                hs,
                &claims("").replace(&exp.to_string(), "\"never\""),
                SECRET,
            ),
        ),
        (
            "exp negative",
            hs256(hs, &claims("").replace(&exp.to_string(), "-1"), SECRET),
        ),
        (
            "exp 1.5",
            hs256(hs, &claims("").replace(&exp.to_string(), "1.5"), SECRET),
        ),
        (
            "exp null",
            hs256(hs, &claims("").replace(&exp.to_string(), "null"), SECRET),
        ),
        (
            "exp NaN",
            hs256(hs, &claims("").replace(&exp.to_string(), "NaN"), SECRET),
        ),
        (
            "accounts a string",
            hs256(
                hs,
                &claims("").replace(&format!("[\"{ACCOUNT}\"]"), &format!("\"{ACCOUNT}\"")),
                SECRET,
            ),
        ),
        (
            "accounts [null]",
            hs256(
                hs,
                &claims("").replace(&format!("[\"{ACCOUNT}\"]"), "[null]"),
                SECRET,
            ),
        ),
        (
            "scope a number",
            hs256(hs, &claims(r#","scope":5"#), SECRET),
        ),
        ("accounts nested 10 000 deep", hs256(hs, &deep, SECRET)),
        ("claims not JSON", hs256(hs, "not json", SECRET)),
        ("claims an array", hs256(hs, "[1,2]", SECRET)),
        ("claims invalid UTF-8", {
            let t = hs256(hs, "x", SECRET);
            let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
            parts[1] = b64url(b"{\"exp\":1,\"sub\":\"\xff\"}");
            parts.join(".")
        }),
        ("a header that is not JSON", hs256("{", &good, SECRET)),
        ("four segments", hs256(hs, &good, SECRET) + ".x"),
        (
            "two segments",
            format!("{}.{}", b64url(hs.as_bytes()), b64url(good.as_bytes())),
        ),
        ("dots only", "...".into()),
        ("a.b.c", "a.b.c".into()),
        ("padding and symbols", "e30=.e30=.+/+/".into()),
        ("20 000 dots", ".".repeat(20_000)),
        ("100 KB of junk", "x".repeat(100 * 1024)),
        (
            "the real token with junk after it",
            hs256(hs, &good, SECRET) + &"A".repeat(64 * 1024),
        ),
    ];
    let consumer = uuid::Uuid::now_v7().simple().to_string();
    let message = uuid::Uuid::now_v7().simple().to_string();
    let ids = Ids::new(&q, &consumer, &message);
    let routes: Vec<Route> = every_route()
        .into_iter()
        .filter(Route::is_account)
        .collect();
    for (what, token) in &tokens {
        for route in &routes {
            let path = route.path(ids);
            let url = format!("{}/client/v4{path}", app.base);
            let reply = app.send_route(route, &url, token).await;
            refused(
                &reply,
                401,
                10000,
                &format!("{what}: {} {path}", route.method),
            );
        }
    }
    sentinel.assert_delivered_intact(&app).await;
}

#[tokio::test]
async fn hostile_header_values_and_counts_get_401_or_a_parser_refusal_never_a_5xx() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let metrics = app.url(&format!("/queues/{}/metrics", sentinel.queue));
    let send = |headers: Vec<(&'static str, Vec<u8>)>| {
        let mut request = app.client.get(&metrics);
        for (name, value) in headers {
            request = request.header(name, HeaderValue::from_bytes(&value).expect("value"));
        }
        app.send_raw(request)
    };
    let token = app.token.clone().into_bytes();
    let bearer = |t: &[u8]| [b"Bearer ".as_slice(), t].concat();
    for (what, headers) in [
        ("no scheme", vec![("authorization", token.clone())]),
        (
            "Basic",
            vec![("authorization", [b"Basic ".as_slice(), &token].concat())],
        ),
        (
            "Bearer and nothing",
            vec![("authorization", b"Bearer".to_vec())],
        ),
        (
            "Bearer and spaces",
            vec![("authorization", b"Bearer    ".to_vec())],
        ),
        (
            "bytes that are not UTF-8",
            vec![("authorization", bearer(b"\xff\xfe\xfd"))],
        ),
        (
            "UTF-8 that is not ASCII",
            vec![("authorization", bearer("jwt\u{2713}".as_bytes()))],
        ),
        (
            "tab-separated",
            vec![("authorization", [b"Bearer\t".as_slice(), &token].concat())],
        ),
        ("junk in the API key", vec![("x-api-key", b"junk".to_vec())]),
        (
            "junk in the auth key",
            vec![("x-auth-key", b"\xff".to_vec())],
        ),
        (
            "junk Authorization wins over a good API key",
            vec![
                ("authorization", bearer(b"junk")),
                ("x-api-key", token.clone()),
            ],
        ),
        (
            "a junk token, then the good one",
            vec![
                ("authorization", bearer(b"junk")),
                ("authorization", bearer(&token)),
            ],
        ),
        (
            "the good token, then a junk one",
            vec![
                ("authorization", bearer(&token)),
                ("authorization", bearer(b"junk")),
            ],
        ),
        (
            "two good tokens",
            vec![
                ("authorization", bearer(&token)),
                ("authorization", bearer(&token)),
            ],
        ),
        (
            "two API keys",
            vec![
                ("x-api-key", token.clone()),
                ("x-api-key", b"junk".to_vec()),
            ],
        ),
    ] {
        refused(&send(headers).await, 401, 10000, what);
    }
    // The scheme is case-insensitive and spaces around the token do not matter.
    let loose = vec![(
        "authorization",
        [b"bEaReR   ".as_slice(), &token, b"  "].concat(),
    )];
    assert_eq!(send(loose).await.assert_ok(), &sentinel.before.metrics);
    // 90 copies of one header: within actix-http's 96, so the app answers.
    let many: Vec<(&str, Vec<u8>)> = std::iter::repeat_n(("x-junk", b"x".to_vec()), 90)
        .chain([("authorization", bearer(&token))])
        .collect();
    assert_eq!(send(many).await.assert_ok(), &sentinel.before.metrics);
    let many: Vec<(&str, Vec<u8>)> =
        std::iter::repeat_n(("authorization", bearer(&token)), 90).collect();
    refused(&send(many).await, 401, 10000, "90 Authorization headers");
    // Past the parser's limits, or malformed: actix-http answers before any handler, with
    // a bare status, and closes the connection.
    let target = format!(
        "/client/v4/accounts/{ACCOUNT}/queues/{}/metrics",
        sentinel.queue
    );
    for (what, extra, status) in [
        ("200 headers", "X-Junk: x\r\n".repeat(200), 431),
        (
            "a 200 KB header",
            format!("X-Junk: {}\r\n", "x".repeat(200 * 1024)),
            431,
        ),
        (
            "a 200 KB token",
            format!("X-Api-Key: {}\r\n", "x".repeat(200 * 1024)),
            431,
        ),
        (
            "two different Content-Lengths",
            "Content-Length: 5\r\n".to_owned(),
            400,
        ),
        ("a header with no colon", "Junk\r\n".to_owned(), 400),
        (
            "a header name with a space",
            "X Junk: x\r\n".to_owned(),
            400,
        ),
        ("NUL in a value", "X-Junk: a\0b\r\n".to_owned(), 400),
        ("a bare CR in a value", "X-Junk: a\rb\r\n".to_owned(), 400),
        (
            "an obsolete folded line",
            "X-Junk: a\r\n b\r\n".to_owned(),
            400,
        ),
    ] {
        let (reply, stream) = raw(&app, &http(&app, "GET", target.as_bytes(), &extra, b"")).await;
        assert_parser_refusal(reply, stream, &[status], what).await;
    }
    // Just under the limit, a 100 KB token reaches the app and is refused properly.
    let big = vec![("authorization", bearer(&vec![b'x'; 100 * 1024]))];
    refused(&send(big).await, 401, 10000, "a 100 KB token");
    sentinel.assert_delivered_intact(&app).await;
}

/// What one framing case must get back.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// actix-http's parser: a bare 400, connection closed.
    Refused,
    /// The body could not be read: our 400 envelope.
    Unreadable,
    /// The peek is served (after a `100 Continue` when asked).
    Served,
}

#[tokio::test]
async fn transfer_encoding_and_content_length_tricks_are_refused_and_smuggle_nothing() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let q = sentinel.queue.clone();
    let peek = format!("/client/v4/accounts/{ACCOUNT}/queues/{q}/messages/peek");
    let host = addr(&app);
    let auth = format!("Authorization: Bearer {}\r\n", app.token);
    let post = |headers: &str, body: &str| {
        format!("POST {peek} HTTP/1.1\r\nHost: {host}\r\n{auth}{headers}\r\n{body}")
    };
    // A push to the sentinel queue hidden where a body should be: were it ever run as a
    // request, the sentinel's metrics would show it.
    let hidden = r#"{"body":"smuggled"}"#;
    let smuggled = format!(
        "POST /client/v4/accounts/{ACCOUNT}/queues/{q}/messages HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {}\r\n\r\n{hidden}",
        hidden.len()
    );
    let end_then_smuggle = format!("0\r\n\r\n{smuggled}");
    let both = format!("Content-Length: {}\r\n", end_then_smuggle.len());
    use Framing::*;
    let cases: Vec<(&str, String, Framing)> = vec![
        (
            "TE then CL",
            post(
                &format!("Transfer-Encoding: chunked\r\n{both}"),
                &end_then_smuggle,
            ),
            Refused,
        ),
        (
            "CL then TE",
            post(
                &format!("{both}Transfer-Encoding: chunked\r\n"),
                &end_then_smuggle,
            ),
            Refused,
        ),
        (
            "TE xchunked",
            post("Transfer-Encoding: xchunked\r\n", &end_then_smuggle),
            Refused,
        ),
        (
            "TE chunked, identity",
            post(
                "Transfer-Encoding: chunked, identity\r\n",
                &end_then_smuggle,
            ),
            Refused,
        ),
        (
            "TE identity",
            post("Transfer-Encoding: identity\r\n", &end_then_smuggle),
            Refused,
        ),
        (
            "TE gzip, chunked",
            post("Transfer-Encoding: gzip, chunked\r\n", &end_then_smuggle),
            Refused,
        ),
        (
            "TE twice",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                &end_then_smuggle,
            ),
            Refused,
        ),
        (
            "TE with a space before the colon",
            post("Transfer-Encoding : chunked\r\n", &end_then_smuggle),
            Refused,
        ),
        (
            "TE on HTTP/1.0",
            post("Transfer-Encoding: chunked\r\n", &end_then_smuggle)
                .replacen("HTTP/1.1", "HTTP/1.0", 1),
            Refused,
        ),
        (
            "CL with a plus",
            post("Content-Length: +2\r\n", "{}"),
            Refused,
        ),
        ("CL negative", post("Content-Length: -1\r\n", "{}"), Refused),
        (
            "CL past u64",
            post("Content-Length: 99999999999999999999999\r\n", "{}"),
            Refused,
        ),
        (
            "CL as a list",
            post("Content-Length: 2, 2\r\n", "{}"),
            Refused,
        ),
        (
            "a chunk size past u64",
            post(
                "Transfer-Encoding: chunked\r\n",
                "fffffffffffffffff1\r\n{}\r\n0\r\n\r\n",
            ),
            Unreadable,
        ),
        (
            "a negative chunk size",
            post("Transfer-Encoding: chunked\r\n", "-2\r\n{}\r\n0\r\n\r\n"),
            Unreadable,
        ),
        (
            "a chunk size with junk",
            post("Transfer-Encoding: chunked\r\n", "2x\r\n{}\r\n0\r\n\r\n"),
            Unreadable,
        ),
        (
            "a chunk shorter than declared",
            post("Transfer-Encoding: chunked\r\n", "5\r\n{}\r\n0\r\n\r\n"),
            Unreadable,
        ),
        (
            "chunk lines ending in LF only",
            post("Transfer-Encoding: chunked\r\n", "2\n{}\n0\n\n"),
            Unreadable,
        ),
        (
            "TE in capitals",
            post("Transfer-Encoding: CHUNKED\r\n", "2\r\n{}\r\n0\r\n\r\n"),
            Served,
        ),
        (
            "TE after a tab",
            post("Transfer-Encoding:\tchunked\r\n", "2\r\n{}\r\n0\r\n\r\n"),
            Served,
        ),
        (
            "a 5 KB chunk extension",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("2;{}\r\n{{}}\r\n0\r\n\r\n", "x=y;".repeat(1250)),
            ),
            Served,
        ),
        (
            "trailers, one a Content-Length",
            post(
                "Transfer-Encoding: chunked\r\n",
                "2\r\n{}\r\n0\r\nX-Trailer: evil\r\nContent-Length: 99\r\n\r\n",
            ),
            Served,
        ),
        (
            "Expect: 100-continue",
            post("Expect: 100-continue\r\nContent-Length: 2\r\n", "{}"),
            Served,
        ),
        (
            "an unknown Expect",
            post("Expect: 999-nonsense\r\nContent-Length: 2\r\n", "{}"),
            Served,
        ),
        (
            "an h2c upgrade",
            post(
                "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 2\r\n",
                "{}",
            ),
            Served,
        ),
        // An upgrade makes the rest of the connection the body: it ends unfinished.
        (
            "a websocket upgrade on a POST",
            post(
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 2\r\n",
                "{}",
            ),
            Unreadable,
        ),
        (
            "a websocket upgrade on a GET",
            format!(
                "GET /client/v4/accounts/{ACCOUNT}/queues/{q}/metrics HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ),
            Served,
        ),
        // A body on a route that reads none: never run as the next request.
        (
            "a request as the body",
            post(
                &format!("Content-Length: {}\r\n", smuggled.len()),
                &smuggled,
            )
            .replacen(
                &format!("POST {peek}"),
                &format!("GET /client/v4/accounts/{ACCOUNT}/queues/{q}/metrics"),
                1,
            ),
            Served,
        ),
    ];
    for (what, request, expected) in cases {
        let mut stream = TcpStream::connect(&host).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        stream.shutdown().await.expect("half-close");
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all))
            .await
            .unwrap_or_else(|_| panic!("{what}: no hang-up within 5 s"))
            .expect("read");
        let mut got = responses(&all);
        if got.first().is_some_and(|(status, _)| *status == 100) {
            assert!(what.contains("100-continue"), "{what}: {got:?}");
            got.remove(0);
        }
        assert_eq!(
            got.len(),
            1,
            "{what}: one response, nothing smuggled: {got:?}"
        );
        let (status, body) = got.remove(0);
        let reply = Reply {
            status: StatusCode::from_u16(status).expect("status"),
            headers: HeaderMap::new(),
            body,
        };
        match expected {
            Refused => assert_eq!((status, &reply.body), (400, &Value::Null), "{what}"),
            Unreadable => refused(&reply, 400, 10207, what),
            Served => {
                assert_eq!(status, 200, "{what}: {}", reply.body);
                let result = reply.assert_ok();
                let count = result
                    .get("messages")
                    .map_or(result["backlog_count"].clone(), |m| {
                        json!(m.as_array().map_or(0, Vec::len))
                    });
                assert_eq!(count, 2, "{what}: {result}");
            }
        }
    }
    sentinel.assert_delivered_intact(&app).await;
}

#[tokio::test]
async fn content_type_is_not_trusted_and_content_encoding_is_not_decoded() {
    let app = spawn_app().await;
    let queue = app.create_queue("types").await;
    let path = app.url(&format!("/queues/{queue}/messages"));
    let long_type = format!("application/{}", "x".repeat(8 * 1024));
    let content_types: [&[u8]; 9] = [
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=----",
        b"application/xml",
        b"image/png",
        b"",
        b";;;===",
        b"application/json; charset=\xff",
        long_type.as_bytes(),
    ];
    for content_type in content_types {
        let request = app
            .client
            .post(&path)
            .bearer_auth(&app.token)
            .header(
                "content-type",
                HeaderValue::from_bytes(content_type).expect("value"),
            )
            .body(r#"{"body":"typed"}"#);
        let reply = app.send_raw(request).await;
        assert_eq!(
            reply.status,
            200,
            "{}: {}",
            String::from_utf8_lossy(content_type),
            reply.body
        );
    }
    // What the body's bytes are decides, not what the headers claim.
    let utf16: Vec<u8> = r#"{"body":"x"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let gzip_magic = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\xae\x05\x00".to_vec();
    for (what, header, value, body) in [
        (
            "UTF-16 as its charset says",
            "content-type",
            "application/json; charset=utf-16le",
            utf16,
        ),
        ("gzip", "content-encoding", "gzip", gzip_magic.clone()),
        ("br", "content-encoding", "br", gzip_magic.clone()),
        (
            "deflate, twice",
            "content-encoding",
            "deflate, deflate",
            gzip_magic,
        ),
    ] {
        let request = app
            .client
            .post(&path)
            .bearer_auth(&app.token)
            .header(header, value)
            .body(body);
        refused(&app.send_raw(request).await, 400, 10208, what);
    }
    // Transfer-Encoding headers reqwest lets a caller set: hyper frames the body as they
    // say, and actix-http accepts only plain `chunked`.
    for (value, status) in [("chunked", 200), ("gzip, chunked", 400), ("identity", 400)] {
        let request = app
            .client
            .post(&path)
            .bearer_auth(&app.token)
            .header("transfer-encoding", value)
            .body(r#"{"body":"typed"}"#);
        match request.send().await {
            Ok(response) => assert_eq!(response.status(), status, "transfer-encoding: {value}"),
            // The parser refuses and hangs up at once, maybe before hyper is done writing.
            Err(e) if status == 400 && e.is_request() => {}
            Err(e) => panic!("transfer-encoding: {value}: {e}"),
        }
    }
    let stored = app.metrics(&queue).await;
    assert_eq!(stored["backlog_count"], content_types.len() + 1);
    let messages = app.pull_messages(&queue, json!({"batch_size": 100})).await;
    assert!(messages.iter().all(|m| m["body"] == "typed"));
}
