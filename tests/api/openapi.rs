//! `GET /openapi.json`: served without a token, equal to the checked-in
//! `docs/openapi.json`, and covering every route the app mounts.

use serde_json::Value;

use crate::helpers::{every_route, spawn_app};

async fn served_document() -> Value {
    let app = spawn_app().await;
    // No token: the document is public.
    let response = reqwest::get(format!("{}/openapi.json", app.base))
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    response.json().await.expect("the document is JSON")
}

#[tokio::test]
async fn the_served_document_is_the_checked_in_one() {
    let served = served_document().await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let text = std::fs::read_to_string(path).expect("docs/openapi.json exists");
    let checked_in: Value = serde_json::from_str(&text).expect("docs/openapi.json is JSON");
    assert!(
        served == checked_in,
        "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json` and commit it"
    );
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_covers_every_route() {
    let served = served_document().await;
    let version = served["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "openapi is {version:?}");
    let paths = served["paths"].as_object().expect("paths");
    let routes = every_route();
    let operation = |method: &reqwest::Method, path: &str| {
        paths
            .get(path)
            .and_then(|item| item.get(method.as_str().to_lowercase()))
    };
    let missing: Vec<String> = routes
        .iter()
        .filter(|r| operation(&r.method, r.template).is_none())
        .map(|r| format!("{} {}", r.method, r.template))
        .collect();
    assert!(missing.is_empty(), "not in the document: {missing:?}");
    // The scope the list gives each route is the one documented (and, below, enforced).
    for route in &routes {
        let documented = operation(&route.method, route.template)
            .and_then(|op| op["security"][0]["bearer"][0].as_str());
        assert_eq!(
            documented, route.scope,
            "{} {}",
            route.method, route.template
        );
    }
    let documented = paths
        .values()
        .filter_map(Value::as_object)
        .map(|item| item.len())
        .sum::<usize>();
    assert_eq!(
        documented,
        routes.len(),
        "the document has operations every_route() does not list"
    );
}

/// The scope each operation documents is the scope it enforces: without it the answer
/// is 403 (code 9109); with only it, anything but 403. Walks the document itself, so a
/// route whose annotation and `Principal<S>` disagree cannot slip through.
#[tokio::test]
async fn every_documented_scope_is_the_one_the_route_enforces() {
    let document = served_document().await;
    let app = spawn_app().await;
    let all = leaseq::auth::all_scopes();
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let Some(scope) = operation["security"][0]["bearer"][0].as_str() else {
                continue; // a public route
            };
            // A fresh queue each time: a route may delete or purge it.
            let queue = app.create_queue(&format!("q{checked}")).await;
            let url = format!(
                "{}{}",
                app.base,
                path.replace("{account_id}", crate::helpers::ACCOUNT)
                    .replace("{queue_id}", &queue)
                    .replace("{consumer_id}", &"0".repeat(32))
                    .replace("{message_id}", &"0".repeat(32))
            );
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let others: Vec<&str> = all.split(' ').filter(|s| *s != scope).collect();
            for (token, documented) in [
                (
                    app.mint(&[crate::helpers::ACCOUNT], &others.join(" "), None),
                    false,
                ),
                (app.mint(&[crate::helpers::ACCOUNT], scope, None), true),
            ] {
                let mut request = app.client.request(method.clone(), &url).bearer_auth(token);
                if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
                    request = request.json(&serde_json::json!({}));
                }
                let reply = app.send_raw(request).await;
                if documented {
                    assert_ne!(
                        reply.status.as_u16(),
                        403,
                        "{method} {path} with {scope}: {}",
                        reply.body
                    );
                } else {
                    reply.assert_error(403, 9109);
                }
            }
            checked += 1;
        }
    }
    let guarded = every_route().iter().filter(|r| r.scope.is_some()).count();
    assert_eq!(checked, guarded, "every account route was checked");
}
