//! Hostile path segments in every id position, and bytes a request target may not hold.

use super::Sentinel;
use crate::helpers::raw::{assert_parser_refusal, http, raw, refused};
use crate::helpers::{ACCOUNT, Ids, Route, TestApp, every_route, spawn_app};

/// Every Redis key, anywhere, matching `pattern` (test-only: KEYS is fine here).
async fn global_keys(app: &TestApp, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(app.redis_url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .expect("KEYS")
}

fn account_id_is_valid(segment: &str) -> bool {
    (1..=64).contains(&segment.len())
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[tokio::test]
async fn hostile_path_segments_are_envelopes_in_every_id_position_and_reach_no_redis_key() {
    let app = spawn_app().await;
    let sentinel = Sentinel::plant(&app, "sentinel").await;
    let q = sentinel.queue.clone();
    let marker = format!("hostile{}", uuid::Uuid::now_v7().simple());
    let mut segments: Vec<String> = [
        "{}",
        "*",
        "..",
        ".",
        "%00",
        "%2F",
        "a%2Fb",
        "%7B%7D",
        "%2e%2e",
        "%ff%fe",
        "%E2%9C%93",
        "%F0%9F%98%80",
        "%",
        "%zz",
        "a:b",
        "%20",
        "%0D%0A",
        "~",
        "'",
        "%22",
        ";",
        "+",
        "@",
        "%5C",
        "%25",
        "%3F",
        "%23",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    segments.extend([
        format!("%7B{q}%7D"),
        q.to_uppercase(),
        format!("{q}%00"),
        format!("{q}%20"),
        format!("{q}a"),
        format!("{}{marker}", "a".repeat(10_000)),
        format!("%E2%9C%93{marker}"),
        format!("{marker}*"),
    ]);
    let consumer = uuid::Uuid::now_v7().simple().to_string();
    let message = uuid::Uuid::now_v7().simple().to_string();
    let ids = Ids::new(&q, &consumer, &message);
    let routes: Vec<Route> = every_route()
        .into_iter()
        .filter(Route::is_account)
        .collect();
    // Each route with the segment as each id it holds, and as the account under both
    // mounts.
    let positions = [
        "{queue_id}",
        "{consumer_id}",
        "{message_id}",
        "{listener_id}",
    ];
    let per_segment: usize = routes
        .iter()
        .map(|r| 2 + positions.iter().filter(|id| r.names(id)).count())
        .sum();
    let mut cases_run = 0;
    for segment in &segments {
        let s = segment.as_str();
        let mut cases: Vec<(&Route, String, &str)> = Vec::new();
        for route in &routes {
            let v4 = |ids: Ids| format!("/client/v4{}", route.path(ids));
            for position in positions.into_iter().filter(|id| route.names(id)) {
                let (target, position) = match position {
                    "{queue_id}" => (v4(Ids { queue: s, ..ids }), "queue"),
                    "{consumer_id}" => (v4(Ids { consumer: s, ..ids }), "consumer"),
                    "{listener_id}" => (v4(Ids { listener: s, ..ids }), "listener"),
                    _ => (v4(Ids { message: s, ..ids }), "message"),
                };
                cases.push((route, target, position));
            }
            let at_root = route.path(Ids { account: s, ..ids });
            cases.push((route, format!("/client/v4{at_root}"), "account"));
            cases.push((route, at_root, "account"));
        }
        for (route, target, position) in cases {
            let (status, code) = match position {
                "queue" => (400, 10107),
                "consumer" => (404, 10120),
                "message" => (404, 10130),
                "listener" => (404, 10140),
                // Well-formed, but not an account the token grants.
                _ if account_id_is_valid(segment) => (403, 9109),
                _ => (400, 7003),
            };
            let method = route.method.as_str();
            let body = route.body.unwrap_or_default().as_bytes();
            let (reply, _) = raw(&app, &http(&app, method, target.as_bytes(), "", body)).await;
            let short: String = target.chars().take(120).collect();
            refused(
                &reply.expect("an answer"),
                status,
                code,
                &format!("{method} {short}"),
            );
            cases_run += 1;
        }
    }
    assert_eq!(cases_run, segments.len() * per_segment);
    // Bytes that must be percent-encoded in a request target: actix-http's parser refuses
    // the request line (a bare 400, connection closed) before any handler runs.
    for target in [
        format!("/client/v4/accounts/{ACCOUNT}/queues/\u{2713}/metrics").into_bytes(),
        [
            format!("/client/v4/accounts/{ACCOUNT}/queues/").as_bytes(),
            b"\xff\xfe/metrics",
        ]
        .concat(),
        [
            b"/client/v4/accounts/\xe2\x9c\x93".as_slice(),
            format!("/queues/{q}/metrics").as_bytes(),
        ]
        .concat(),
        [
            format!("/client/v4/accounts/{ACCOUNT}/queues/{q}/messages/").as_bytes(),
            b"\xc0\x80",
        ]
        .concat(),
    ] {
        let case = String::from_utf8_lossy(&target).into_owned();
        let (reply, stream) = raw(&app, &http(&app, "GET", &target, "", b"")).await;
        assert_parser_refusal(reply, stream, &[400], &case).await;
    }
    assert!(global_keys(&app, &format!("*{marker}*")).await.is_empty());
    assert!(global_keys(&app, "*{}*").await.is_empty());
    sentinel.assert_delivered_intact(&app).await;
}
