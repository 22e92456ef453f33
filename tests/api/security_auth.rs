//! Security review, issue 19: token headers, token lifetimes, log hygiene, client IPs.

use reqwest::header::{HeaderMap, HeaderValue};

use crate::helpers::{ACCOUNT, spawn_app};

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
