//! `Receiver`: a real HTTP server on loopback, standing in for a listener's endpoint.
//! It records every request and answers as the test scripts it to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON delivery")
    }

    /// The ids of the messages delivered.
    pub fn message_ids(&self) -> Vec<String> {
        self.json()["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["id"].as_str().expect("id").to_owned())
            .collect()
    }
}

/// How to answer a request: the script is given its index (0-based) and its body.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16),
    Json(u16, Value),
    /// Answer 200 after this long.
    After(Duration),
    /// 307 to this URL.
    Redirect(String),
}

type Script = Arc<dyn Fn(usize, &Value) -> Answer + Send + Sync>;

struct State {
    requests: Mutex<Vec<Received>>,
    script: Mutex<Script>,
}

pub struct Receiver {
    pub url: String,
    state: Arc<State>,
}

impl Receiver {
    /// A receiver answering 200 to everything.
    pub async fn start() -> Self {
        Self::scripted(|_, _| Answer::Status(200)).await
    }

    pub async fn scripted(
        script: impl Fn(usize, &Value) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(Arc::new(script)),
        });
        let shared = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// From now on, answer with `script`.
    pub fn rescript(&self, script: impl Fn(usize, &Value) -> Answer + Send + Sync + 'static) {
        *self.state.script.lock().expect("lock") = Arc::new(script);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// Waits until `done` holds for the requests so far; panics after `within`.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if done(&self.requests()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not get what was expected within {within:?}: {} requests",
                self.requests().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let mut headers: HashMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    headers.insert(":path".into(), req.path().to_owned());
    headers.insert(":method".into(), req.method().as_str().to_owned());
    let n = {
        let mut requests = state.requests.lock().expect("lock");
        requests.push(Received {
            headers,
            body: body.to_vec(),
        });
        requests.len() - 1
    };
    let script = state.script.lock().expect("lock").clone();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match script(n, &json) {
        Answer::Status(status) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("a status"))
                .finish()
        }
        Answer::Json(status, body) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("a status"))
                .json(body)
        }
        Answer::Redirect(to) => HttpResponse::TemporaryRedirect()
            .insert_header(("location", to))
            .finish(),
        Answer::After(wait) => {
            tokio::time::sleep(wait).await;
            HttpResponse::Ok().finish()
        }
    }
}
