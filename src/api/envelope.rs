//! The Cloudflare v4 envelope and the JSON body extractor.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use super::ApiError;
use crate::broker::BrokerError;

/// An entry of `errors` (and of `messages`, which leaseq always leaves empty).
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseInfo {
    pub code: u32,
    pub message: String,
}

/// JSON `null`: the `result` of deletes and of every error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Null;

impl Serialize for Null {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl utoipa::PartialSchema for Null {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Null).into()
    }
}

impl ToSchema for Null {}

/// `{"success": true, "errors": [], "messages": [], "result": …}`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always true.
    success: bool,
    /// Always empty.
    errors: Vec<ResponseInfo>,
    /// Always empty.
    messages: Vec<ResponseInfo>,
    result: T,
}

/// A list: the envelope with Cloudflare's `result_info`.
#[derive(Serialize, ToSchema)]
pub struct Page<T, I> {
    /// Always true.
    success: bool,
    /// Always empty.
    errors: Vec<ResponseInfo>,
    /// Always empty.
    messages: Vec<ResponseInfo>,
    result: Vec<T>,
    result_info: I,
}

/// Where a page of a list is.
#[derive(Serialize, ToSchema)]
pub struct ResultInfo {
    pub page: usize,
    pub per_page: usize,
    /// Items on this page.
    pub count: usize,
    pub total_count: usize,
    pub total_pages: usize,
}

/// Non-2xx status, always: `{"success": false, "errors": [{code, message}], "messages": [],
/// "result": null}`. Clients read the status, not `success`.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always false.
    success: bool,
    /// One entry: the Cloudflare code and what went wrong.
    #[schema(min_items = 1)]
    errors: Vec<ResponseInfo>,
    /// Always empty.
    messages: Vec<ResponseInfo>,
    result: Null,
}

impl ErrorEnvelope {
    pub fn new(code: u32, message: String) -> Self {
        Self {
            success: false,
            errors: vec![ResponseInfo { code, message }],
            messages: Vec::new(),
            result: Null,
        }
    }
}

/// A JSON response. It goes through `serde_json::Value`, whose maps are sorted, so every
/// response keeps the alphabetical key order it had before the bodies were typed.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    match serde_json::to_value(body) {
        Ok(value) => HttpResponse::build(status).json(value),
        Err(e) => ApiError::from(BrokerError::Internal(format!(
            "response did not serialize: {e}"
        )))
        .error_response(),
    }
}

/// `{"success": true, "errors": [], "messages": [], "result": …}`.
pub fn ok<T: Serialize>(result: T) -> HttpResponse {
    json_response(
        StatusCode::OK,
        &Envelope {
            success: true,
            errors: Vec::new(),
            messages: Vec::new(),
            result,
        },
    )
}

/// A list with `result_info` of any shape.
pub fn ok_list<T: Serialize, I: Serialize>(result: Vec<T>, result_info: I) -> HttpResponse {
    json_response(
        StatusCode::OK,
        &Page {
            success: true,
            errors: Vec::new(),
            messages: Vec::new(),
            result,
            result_info,
        },
    )
}

/// A list with Cloudflare's `result_info`.
pub fn ok_page<T: Serialize>(
    items: Vec<T>,
    page: usize,
    per_page: usize,
    total_count: usize,
) -> HttpResponse {
    let total_pages = if per_page == 0 {
        0
    } else {
        total_count.div_ceil(per_page)
    };
    let info = ResultInfo {
        page,
        per_page,
        count: items.len(),
        total_count,
        total_pages,
    };
    ok_list(items, info)
}

/// An envelope with `result: null`, for deletes.
pub fn ok_empty() -> HttpResponse {
    ok(Null)
}

/// A JSON request body, read with a size limit before any parsing.
///
/// An empty body is the type's default, so a pull with no body, or a DELETE that sends
/// `Content-Type: application/json` and nothing else, are valid. The content type is not
/// checked: curl and many clients send JSON without saying so.
pub struct JsonBody<T>(pub T);

/// Limits on reading a request body (app data): its size, and how long a client may
/// take to send it (a slow sender holds a connection and a worker's attention).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub bytes: usize,
    pub timeout: std::time::Duration,
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (limit, timeout) = req
            .app_data::<web::Data<BodyLimit>>()
            .map_or((1024 * 1024, std::time::Duration::from_secs(30)), |l| {
                (l.bytes, l.timeout)
            });
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|len| len > limit) {
                return Err(ApiError::RequestTooLarge { limit });
            }
            let read = async {
                let mut body = web::BytesMut::new();
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk.map_err(|e| {
                        ApiError::schema(format!("could not read the request body: {e}"))
                    })?;
                    if body.len() + chunk.len() > limit {
                        return Err(ApiError::RequestTooLarge { limit });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            };
            let body = tokio::time::timeout(timeout, read).await.map_err(|_| {
                ApiError::RequestTimeout {
                    secs: timeout.as_secs(),
                }
            })??;
            parse_json(&body).map(JsonBody)
        })
    }
}

/// Parses a body: empty or whitespace is the default value; broken JSON is 10208;
/// JSON of the wrong shape is 10207.
pub fn parse_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    // JSON text is UTF-8 (RFC 8259 §8.1). serde_json checks the strings it decodes but
    // not those it skips, such as an unknown field's, so the whole body is checked here.
    let body = std::str::from_utf8(body).map_err(|e| {
        ApiError::MalformedJson(format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    })?;
    // JSON's whitespace, which is not all of ASCII's (no form feed).
    match body
        .bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        None => Ok(T::default()),
        Some(b'{') => serde_json::from_str(body).map_err(json_error),
        // serde would read a struct from an array too; Cloudflare's bodies are objects.
        // Whether this is JSON at all decides the code, not how far `T` got into it.
        Some(_) => Err(match serde_json::from_str::<serde::de::IgnoredAny>(body) {
            Ok(_) => ApiError::schema("request body must be a JSON object"),
            Err(e) => json_error(e),
        }),
    }
}

fn json_error(e: serde_json::Error) -> ApiError {
    match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::schema(format!("request body does not match the schema: {e}"))
        }
        _ => ApiError::MalformedJson(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::input::PullInput;

    #[test]
    fn empty_bodies_are_defaults_and_broken_json_is_10208() {
        assert!(parse_json::<PullInput>(b"").is_ok());
        assert!(parse_json::<PullInput>(b"  \n").is_ok());
        assert_eq!(
            parse_json::<PullInput>(b"{").map_err(|e| e.code()).err(),
            Some(10208)
        );
        assert_eq!(
            parse_json::<PullInput>(b"[1]").map_err(|e| e.code()).err(),
            Some(10207)
        );
        assert_eq!(
            parse_json::<PullInput>(br#"{"batch_size":"x"}"#)
                .map_err(|e| e.code())
                .err(),
            Some(10207)
        );
    }

    #[test]
    fn what_is_not_json_is_10208_even_where_nothing_reads_it() {
        let code = |body: &[u8]| parse_json::<PullInput>(body).map_err(|e| e.code()).err();
        assert_eq!(code(b"{\"batch_size\":1,\"note\":\"\xff\"}"), Some(10208));
        assert_eq!(code(b"{\"\xc0\x80\":1}"), Some(10208));
        assert_eq!(code("{\"note\":\"\u{e9}\"}".as_bytes()), None);
        // Not JSON is 10208 whatever the route expects; JSON that is not an object is 10207.
        assert_eq!(code(b"[[[1"), Some(10208));
        assert_eq!(code(b"[[[1]]]"), Some(10207));
        assert_eq!(code(b"nul"), Some(10208));
        // A form feed is ASCII whitespace, not JSON whitespace.
        assert_eq!(code(b"\x0c"), Some(10208));
        assert_eq!(code(b" \t\r\n"), None);
    }

    #[test]
    fn deeply_nested_json_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse_json::<PullInput>(deep.as_bytes()).is_err());
        let deep_field = format!(
            r#"{{"batch_size": {}{}}}"#,
            "[".repeat(500_000),
            "]".repeat(500_000)
        );
        assert!(parse_json::<PullInput>(deep_field.as_bytes()).is_err());
        // A message body is kept as raw text and never parsed into a tree, so deep
        // nesting there is skipped without recursion: accepted, and no stack overflow.
        let deep_body = format!(
            r#"{{"body": {}{}}}"#,
            "[".repeat(500_000),
            "]".repeat(500_000)
        );
        assert!(parse_json::<crate::api::input::MessageInput>(deep_body.as_bytes()).is_ok());
    }
}
