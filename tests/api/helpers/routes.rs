//! `every_route()`: the one list of the routes the app mounts (`src/api/mod.rs`), for
//! the tests that walk them all. A route added there goes here too, with the scope it
//! needs and a body it accepts, and these tests then cover it: the OpenAPI document
//! lists it with that scope, a token without the scope is refused and one with it is
//! served (under `/client/v4` and at the root), a queue-limited token cannot reach it
//! on another queue, and hostile tokens, path segments, nesting and invalid UTF-8 are
//! refused on it.

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use super::{ACCOUNT, Reply, TestApp};

/// One route: how it is called, the scope a token needs for it and a body it accepts.
#[derive(Clone, Debug)]
pub struct Route {
    pub method: Method,
    /// The path as `docs/openapi.json` writes it: `{account_id}`, `{queue_id}`,
    /// `{consumer_id}`, `{message_id}` and `{listener_id}` stand for ids. The `/accounts/…` routes are
    /// served both at the root and under `/client/v4`.
    pub template: &'static str,
    /// The scope a token needs; `None` for the public routes, which need no token.
    pub scope: Option<&'static str>,
    /// A JSON body the route accepts, on a queue holding a message; `None` for the
    /// routes that read no body.
    pub body: Option<&'static str>,
}

/// The ids to put in a route's path.
#[derive(Clone, Copy, Debug)]
pub struct Ids<'a> {
    pub account: &'a str,
    pub queue: &'a str,
    pub consumer: &'a str,
    pub message: &'a str,
    pub listener: &'a str,
}

/// A well-formed listener id no listener has.
const NO_LISTENER: &str = "00000000000000000000000000000000";

impl<'a> Ids<'a> {
    /// These ids in the test account (and a listener id no listener has).
    pub fn new(queue: &'a str, consumer: &'a str, message: &'a str) -> Self {
        Self {
            account: ACCOUNT,
            queue,
            consumer,
            message,
            listener: NO_LISTENER,
        }
    }
}

impl Route {
    /// Whether the route is under `/accounts/{account_id}` (and needs a token).
    pub fn is_account(&self) -> bool {
        self.template.starts_with("/accounts/{account_id}/")
    }

    /// Whether the path holds this id (`"{queue_id}"`, `"{consumer_id}"`, …).
    pub fn names(&self, id: &str) -> bool {
        self.template.contains(id)
    }

    /// The path with `ids` in place (an account route's, at the root).
    pub fn path(&self, ids: Ids) -> String {
        self.template
            .replace("{account_id}", ids.account)
            .replace("{queue_id}", ids.queue)
            .replace("{consumer_id}", ids.consumer)
            .replace("{message_id}", ids.message)
            .replace("{listener_id}", ids.listener)
    }

    /// The path after `/accounts/{account_id}`, with `ids` in place: what
    /// `TestApp::url` and the helpers built on it take.
    pub fn in_account(&self, ids: Ids) -> String {
        let rest = self
            .template
            .strip_prefix("/accounts/{account_id}")
            .unwrap_or_else(|| panic!("{} is not an account route", self.template));
        Route {
            template: rest,
            ..self.clone()
        }
        .path(ids)
    }
}

fn route(
    method: Method,
    template: &'static str,
    scope: Option<&'static str>,
    body: Option<&'static str>,
) -> Route {
    Route {
        method,
        template,
        scope,
        body,
    }
}

/// A listener's body: a destination nothing answers at (test apps allow loopback ones).
const LISTENER: &str = r#"{"name":"l","notify_url":"http://127.0.0.1:9/hook"}"#;

/// Every route the app mounts, in the order of `src/api/mod.rs`.
pub fn every_route() -> Vec<Route> {
    let read = Some("queues:read");
    let write = Some("queues:write");
    let push = Some("messages:push");
    let pull = Some("messages:pull");
    vec![
        route(
            Method::POST,
            "/accounts/{account_id}/queues",
            write,
            Some(r#"{"queue_name":"new"}"#),
        ),
        route(Method::GET, "/accounts/{account_id}/queues", read, None),
        route(
            Method::GET,
            "/accounts/{account_id}/queues/{queue_id}",
            read,
            None,
        ),
        route(
            Method::PUT,
            "/accounts/{account_id}/queues/{queue_id}",
            write,
            Some(r#"{"queue_name":"renamed"}"#),
        ),
        route(
            Method::PATCH,
            "/accounts/{account_id}/queues/{queue_id}",
            write,
            Some("{}"),
        ),
        route(
            Method::DELETE,
            "/accounts/{account_id}/queues/{queue_id}",
            write,
            None,
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/messages",
            push,
            Some(r#"{"body":"x"}"#),
        ),
        route(
            Method::GET,
            "/accounts/{account_id}/queues/{queue_id}/messages",
            write,
            None,
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/messages/batch",
            push,
            Some(r#"{"messages":[{"body":"x"}]}"#),
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/messages/pull",
            pull,
            Some("{}"),
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/messages/ack",
            pull,
            Some(r#"{"acks":[]}"#),
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/messages/peek",
            pull,
            Some("{}"),
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/messages/extend",
            pull,
            Some(r#"{"leases":[]}"#),
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/messages/purge",
            write,
            Some(r#"{"refs":[]}"#),
        ),
        route(
            Method::GET,
            "/accounts/{account_id}/queues/{queue_id}/messages/{message_id}",
            pull,
            None,
        ),
        route(
            Method::DELETE,
            "/accounts/{account_id}/queues/{queue_id}/messages/{message_id}",
            write,
            None,
        ),
        route(
            Method::GET,
            "/accounts/{account_id}/queues/{queue_id}/metrics",
            read,
            None,
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/redrive",
            write,
            Some("{}"),
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/purge",
            write,
            Some("{}"),
        ),
        route(
            Method::GET,
            "/accounts/{account_id}/queues/{queue_id}/purge",
            read,
            None,
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/consumers",
            write,
            Some(r#"{"type":"http_pull"}"#),
        ),
        route(
            Method::GET,
            "/accounts/{account_id}/queues/{queue_id}/consumers",
            read,
            None,
        ),
        route(
            Method::GET,
            "/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}",
            read,
            None,
        ),
        route(
            Method::PUT,
            "/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}",
            write,
            Some("{}"),
        ),
        route(
            Method::DELETE,
            "/accounts/{account_id}/queues/{queue_id}/consumers/{consumer_id}",
            write,
            None,
        ),
        route(
            Method::POST,
            "/accounts/{account_id}/queues/{queue_id}/listeners",
            write,
            Some(LISTENER),
        ),
        route(
            Method::GET,
            "/accounts/{account_id}/queues/{queue_id}/listeners",
            read,
            None,
        ),
        route(
            Method::GET,
            "/accounts/{account_id}/queues/{queue_id}/listeners/{listener_id}",
            read,
            None,
        ),
        route(
            Method::PUT,
            "/accounts/{account_id}/queues/{queue_id}/listeners/{listener_id}",
            write,
            Some(LISTENER),
        ),
        route(
            Method::PATCH,
            "/accounts/{account_id}/queues/{queue_id}/listeners/{listener_id}",
            write,
            Some("{}"),
        ),
        route(
            Method::DELETE,
            "/accounts/{account_id}/queues/{queue_id}/listeners/{listener_id}",
            write,
            None,
        ),
        route(
            Method::GET,
            "/accounts/{account_id}/queues/{queue_id}/listeners/{listener_id}/deliveries",
            read,
            None,
        ),
        // Any valid token: no scope.
        route(Method::GET, "/accounts", None, None),
        route(Method::GET, "/memberships", None, None),
        route(Method::GET, "/user/tokens/verify", None, None),
        route(Method::GET, "/healthz", None, None),
        route(Method::GET, "/readyz", None, None),
        route(Method::GET, "/metrics", None, None),
        route(Method::GET, "/openapi.json", None, None),
        route(Method::GET, "/ui/", None, None),
        route(Method::GET, "/ui/{asset}", None, None),
    ]
}

impl TestApp {
    /// `route`'s path (from `/accounts`) on a fresh queue named `name` holding one
    /// message, with a consumer of its own and that message's id where the route names
    /// them: a route may delete or purge what it is given.
    pub async fn route_on_fresh_queue(&self, route: &Route, name: &str) -> String {
        let queue = self.create_queue(name).await;
        self.push(&queue, json!({"body": "x"})).await.assert_ok();
        let mut consumer = String::new();
        if route.names("{consumer_id}") {
            let created = self
                .post(&format!("/queues/{queue}/consumers"), json!({}))
                .await;
            consumer = created.assert_ok()["consumer_id"]
                .as_str()
                .expect("consumer_id")
                .to_owned();
        }
        let mut listener = String::new();
        if route.names("{listener_id}") {
            let created = self
                .post(
                    &format!("/queues/{queue}/listeners"),
                    serde_json::from_str(LISTENER).expect("JSON"),
                )
                .await;
            listener = created.assert_ok()["listener_id"]
                .as_str()
                .expect("listener_id")
                .to_owned();
        }
        let mut message = String::new();
        if route.names("{message_id}") {
            let peeked = self
                .post(&format!("/queues/{queue}/messages/peek"), json!({}))
                .await;
            message = peeked.assert_ok()["messages"][0]["id"]
                .as_str()
                .expect("message id")
                .to_owned();
        }
        route.path(Ids {
            listener: &listener,
            ..Ids::new(&queue, &consumer, &message)
        })
    }

    /// `route` called at `url` with `token`, and its body when it reads one.
    pub async fn send_route(&self, route: &Route, url: &str, token: &str) -> Reply {
        let mut request = self
            .client
            .request(route.method.clone(), url)
            .bearer_auth(token);
        if let Some(body) = route.body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        self.send_raw(request).await
    }
}
