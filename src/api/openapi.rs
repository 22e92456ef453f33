//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and response types, served at `GET /openapi.json` and
//! printed by `leaseq openapi` (checked in as `docs/openapi.json`).

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayItems, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use super::doc::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, RequestTimeout, TooManyRequests,
    Unauthorized, Unavailable,
};
use super::envelope::ErrorEnvelope;
use super::input::MessageInput;
use super::{consumers, health, identity, listeners, messages, metrics, queues, ui};

/// The ways to present a token (SPEC §6). Each operation that needs one lists all three,
/// with the scope it needs as the requirement's role.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("`Authorization: Bearer <JWT>`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "x_auth_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Auth-Key",
                "The same JWT, for clients that send it here.",
            ))),
        );
        components.add_security_scheme(
            "x_api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-KEY",
                "The same JWT, for clients that send it here (discue-style).",
            ))),
        );
    }
}

/// The operations of a path, for the methods the API serves.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    let PathItem {
        get,
        put,
        post,
        delete,
        patch,
        ..
    } = item;
    [get, put, post, delete, patch].into_iter().flatten()
}

/// The errors every handler can meet before its own code runs, added to each operation
/// from what it declares, so no annotation can forget one:
/// - a token (the `Principal` extractor): 401, 403, 429, and 503 because every such
///   route goes to Redis;
/// - `{account_id}` and `{queue_id}` path segments: 400 when malformed, 404 for a queue
///   that does not exist;
/// - a request body (`JsonBody`): 400, 408 and 413.
///
/// Route-specific errors (409s, 404 of a consumer or message) are in the annotations.
struct SharedErrors;

impl SharedErrors {
    fn add(operation: &mut Operation, status: u16, response: (&str, RefOr<Response>)) {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response.0)));
    }

    fn operation(path: &str, operation: &mut Operation) {
        let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
        // The identity routes need a token but name no account, and read no Redis.
        let on_account = secured && path.contains("{account_id}");
        let has_body = operation.request_body.is_some();
        let has_query = operation
            .parameters
            .iter()
            .flatten()
            .any(|p| p.parameter_in == ParameterIn::Query);
        if path.contains("{account_id}") || path.contains("{queue_id}") || has_body || has_query {
            Self::add(operation, 400, BadRequest::response());
        }
        if secured {
            Self::add(operation, 401, Unauthorized::response());
        }
        if on_account {
            Self::add(operation, 403, Forbidden::response());
        }
        if path.contains("{queue_id}") {
            Self::add(operation, 404, NotFound::response());
        }
        if has_body {
            Self::add(operation, 408, RequestTimeout::response());
            Self::add(operation, 413, PayloadTooLarge::response());
        }
        if on_account {
            Self::add(operation, 429, TooManyRequests::response());
            Self::add(operation, 503, Unavailable::response());
        }
    }
}

impl Modify for SharedErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for operation in operations(item) {
                Self::operation(path, operation);
            }
        }
    }
}

/// utoipa writes an optional request body as `oneOf: [null, T]`, but a JSON `null` body
/// is refused (400, "must be a JSON object"): an optional body is absent or a `T`.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let bodies = operations(item).filter_map(|operation| operation.request_body.as_mut());
            for body in bodies {
                for content in body.content.values_mut() {
                    if let Some(RefOr::T(Schema::OneOf(one))) = &content.schema
                        && let [RefOr::T(Schema::Object(null)), object] = one.items.as_slice()
                        && null.schema_type == SchemaType::Type(Type::Null)
                    {
                        content.schema = Some(object.clone());
                    }
                }
            }
        }
    }
}

/// What `Limits::message` checks across a message's fields (10203), which struct
/// derives cannot say: `delay_seconds` and `deliver_at_ms` are not both set, and a
/// "text" message's body is a string. `MessageInput` becomes `allOf: [its fields, …]`.
struct MessageRules;

impl Modify for MessageRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(RefOr::T(schema)) = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut(MessageInput::name().as_ref()))
        else {
            return;
        };
        let field = |name: &str, schema: ObjectBuilder| ObjectBuilder::new().property(name, schema);
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let one_delay = AnyOfBuilder::new()
            .item(field("delay_seconds", null()))
            .item(field("deliver_at_ms", null()))
            .description(Some("delay_seconds and deliver_at_ms cannot both be set."));
        let not_text = ObjectBuilder::new()
            .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
            .enum_values(Some([Some("json"), None]));
        let text_is_a_string = AnyOfBuilder::new()
            .item(field("content_type", not_text))
            .item(field(
                "body",
                ObjectBuilder::new().schema_type(Type::String),
            ))
            .description(Some("With content_type \"text\", the body is a string."));
        *schema = AllOfBuilder::new()
            .item(schema.clone())
            .item(one_delay)
            .item(text_is_a_string)
            .into();
    }
}

/// utoipa inlines the type argument of a generic schema (`Envelope<Queue>` holds a copy
/// of `Queue`). This puts back a `$ref` wherever a copy of a struct's component stands,
/// so clients generated from the document share one `Queue` type.
struct ReferenceComponents;

impl ReferenceComponents {
    fn walk(schema: &mut RefOr<Schema>, components: &[(String, Schema)]) {
        let RefOr::T(inner) = schema else { return };
        if let Some((name, _)) = components.iter().find(|(_, c)| c == inner) {
            *schema = RefOr::Ref(Ref::from_schema_name(name.as_str()));
            return;
        }
        match inner {
            Schema::Object(object) => {
                for property in object.properties.values_mut() {
                    Self::walk(property, components);
                }
            }
            Schema::Array(array) => {
                if let ArrayItems::RefOrSchema(items) = &mut array.items {
                    Self::walk(items, components);
                }
            }
            Schema::AllOf(all) => all.items.iter_mut().for_each(|s| Self::walk(s, components)),
            Schema::OneOf(one) => one.items.iter_mut().for_each(|s| Self::walk(s, components)),
            Schema::AnyOf(any) => any.items.iter_mut().for_each(|s| Self::walk(s, components)),
            _ => {}
        }
    }
}

impl Modify for ReferenceComponents {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        // Only structs (objects with properties, or flattened into allOf) are worth a
        // reference; a bare `{"type": "null"}` is not.
        let structs: Vec<(String, Schema)> = components
            .schemas
            .iter()
            .filter_map(|(name, schema)| match schema {
                RefOr::T(s @ Schema::Object(o)) if !o.properties.is_empty() => {
                    Some((name.clone(), s.clone()))
                }
                RefOr::T(s @ Schema::AllOf(_)) => Some((name.clone(), s.clone())),
                _ => None,
            })
            .collect();
        for (name, schema) in components.schemas.iter_mut() {
            // A component is not replaced by a reference to itself, only its parts.
            let others: Vec<(String, Schema)> = structs
                .iter()
                .filter(|(other, _)| other != name)
                .cloned()
                .collect();
            if let RefOr::T(inner) = schema {
                match inner {
                    Schema::Object(object) => {
                        for property in object.properties.values_mut() {
                            Self::walk(property, &others);
                        }
                    }
                    Schema::AllOf(all) => all.items.iter_mut().for_each(|s| Self::walk(s, &others)),
                    _ => {}
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "leaseq",
        description = "A pull-based lease/ack message broker speaking the Cloudflare Queues \
            REST API (v4), on Redis.\n\nEvery `/accounts` route is also served under \
            `/client/v4` (`/client/v4/accounts/{account_id}/queues…`), so Cloudflare's \
            clients work with `base_url=http://host:8080/client/v4`. Responses use \
            Cloudflare's envelope; errors come with a non-2xx status and the error envelope. \
            Unknown JSON fields are ignored; an empty body is an empty object.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/")),
    paths(
        queues::create,
        queues::list,
        queues::get,
        queues::put,
        queues::patch,
        queues::delete,
        queues::metrics,
        queues::purge,
        queues::purge_status,
        queues::redrive,
        consumers::create,
        consumers::list,
        consumers::get,
        consumers::put,
        consumers::delete,
        listeners::create,
        listeners::list,
        listeners::get,
        listeners::put,
        listeners::patch,
        listeners::delete,
        listeners::deliveries,
        messages::push,
        messages::push_batch,
        messages::list,
        messages::pull,
        messages::ack,
        messages::peek,
        messages::extend,
        messages::purge,
        messages::get,
        messages::delete,
        identity::list_accounts,
        identity::list_memberships,
        identity::verify_token,
        health::healthz,
        health::readyz,
        metrics::metrics,
        serve,
        ui::page,
        ui::file,
    ),
    components(
        schemas(ErrorEnvelope),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            RequestTimeout,
            Conflict,
            PayloadTooLarge,
            TooManyRequests,
            Unavailable,
        ),
    ),
    modifiers(
        &SecuritySchemes,
        &SharedErrors,
        &OptionalBodies,
        &MessageRules,
        &ReferenceComponents,
    ),
    tags(
        (name = "queues", description = "Queues: create, list, update, delete, purge, backlog."),
        (name = "consumers", description = "A queue's `http_pull` consumer (at most one)."),
        (name = "listeners", description = "Push delivery: a queue's listeners receive every message pushed after their creation at their notify_url, signed (Standard Webhooks), with retries, dead letters and liveness checks."),
        (name = "messages", description = "Push, pull, ack, and the extensions: peek, extend, list, get and delete one message."),
        (name = "identity", description = "What Cloudflare clients ask about their token: its accounts, memberships and status. Any valid token."),
        (name = "operations", description = "Health, readiness, Prometheus metrics and this document; no token needed."),
    ),
)]
pub struct ApiDoc;

/// The document as served and checked in: pretty-printed JSON.
pub fn document() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json()
}

/// The document, rendered once at start-up (app data of `GET /openapi.json`).
#[derive(Clone)]
pub struct OpenApiJson(web::Bytes);

impl OpenApiJson {
    pub fn new() -> Result<Self, serde_json::Error> {
        document().map(|json| Self(web::Bytes::from(json)))
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object)),
)]
pub async fn serve(document: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(document.0.clone())
}

#[cfg(test)]
mod tests {
    use std::ops::RangeInclusive;

    use serde_json::Value;

    use super::*;
    use crate::broker::limits::{self, Limits};
    use crate::model::{ACCOUNT_ID_PATTERN, HEX32_PATTERN, QUEUE_NAME_PATTERN};

    fn doc() -> Value {
        serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON")
    }

    /// A field of a component, looking into the first part of an `allOf`.
    fn property<'d>(doc: &'d Value, schema: &str, field: &str) -> &'d Value {
        let schema = &doc["components"]["schemas"][schema];
        let object = schema["allOf"].get(0).unwrap_or(schema);
        &object["properties"][field]
    }

    #[test]
    fn documented_number_bounds_are_the_validated_ones() {
        let doc = doc();
        let retention = Limits::default().min_retention_period..=*limits::RETENTION_SECONDS.end();
        let cases: [(&str, &str, RangeInclusive<u64>); 16] = [
            ("PullInput", "batch_size", limits::PULL_BATCH_SIZE),
            (
                "PullInput",
                "visibility_timeout_ms",
                limits::VISIBILITY_TIMEOUT_MS,
            ),
            ("PullInput", "wait_time_ms", limits::WAIT_TIME_MS),
            ("PeekInput", "batch_size", limits::PULL_BATCH_SIZE),
            (
                "ConsumerSettingsInput",
                "batch_size",
                limits::PULL_BATCH_SIZE,
            ),
            ("ConsumerSettingsInput", "max_retries", limits::MAX_RETRIES),
            (
                "ConsumerSettingsInput",
                "retry_delay",
                limits::DELAY_SECONDS,
            ),
            (
                "ConsumerSettingsInput",
                "visibility_timeout_ms",
                limits::VISIBILITY_TIMEOUT_MS,
            ),
            (
                "QueueSettingsInput",
                "delivery_delay",
                limits::DELAY_SECONDS,
            ),
            ("QueueSettingsInput", "message_retention_period", retention),
            (
                "QueueSettingsInput",
                "dedup_window_seconds",
                limits::DEDUP_WINDOW_SECONDS,
            ),
            ("MessageInput", "delay_seconds", limits::DELAY_SECONDS),
            ("BatchInput", "delay_seconds", limits::DELAY_SECONDS),
            ("RetryEntryInput", "delay_seconds", limits::DELAY_SECONDS),
            (
                "ExtendEntryInput",
                "visibility_timeout_ms",
                limits::VISIBILITY_TIMEOUT_MS,
            ),
            ("RedriveInput", "max_messages", limits::REDRIVE_MESSAGES),
        ];
        for (schema, field, range) in cases {
            let documented = property(&doc, schema, field);
            assert_eq!(
                documented["type"],
                serde_json::json!(["integer", "null"]),
                "{schema}.{field}"
            );
            assert_eq!(
                (
                    documented["minimum"].as_u64(),
                    documented["maximum"].as_u64()
                ),
                (Some(*range.start()), Some(*range.end())),
                "{schema}.{field}: {documented}"
            );
        }
        let defaults = Limits::default();
        let batch = property(&doc, "BatchInput", "messages");
        assert_eq!(
            batch["maxItems"].as_u64(),
            Some(defaults.batch_messages as u64)
        );
        let leases = property(&doc, "ExtendInput", "leases");
        assert_eq!(
            leases["maxItems"].as_u64(),
            Some(defaults.ack_entries as u64)
        );
        let dedup_id = property(&doc, "MessageInput", "dedup_id");
        assert_eq!(
            dedup_id["maxLength"].as_u64(),
            Some(limits::DEDUP_ID_BYTES as u64)
        );
    }

    #[test]
    fn documented_id_patterns_are_the_parsed_ones() {
        let doc = doc();
        let queue = &doc["paths"]["/accounts/{account_id}/queues/{queue_id}/messages/{message_id}"]
            ["get"]["parameters"];
        let pattern = |name: &str| {
            queue
                .as_array()
                .and_then(|params| params.iter().find(|p| p["name"] == name))
                .map(|p| p["schema"]["pattern"].clone())
        };
        assert_eq!(pattern("account_id"), Some(ACCOUNT_ID_PATTERN.into()));
        assert_eq!(pattern("queue_id"), Some(HEX32_PATTERN.into()));
        assert_eq!(pattern("message_id"), Some(HEX32_PATTERN.into()));
        assert_eq!(
            property(&doc, "QueueInput", "queue_name")["pattern"],
            QUEUE_NAME_PATTERN
        );
        assert_eq!(
            doc["components"]["schemas"]["QueueId"]["pattern"],
            HEX32_PATTERN
        );
    }

    #[test]
    fn every_account_route_needs_a_token_and_lists_its_errors() {
        let doc = doc();
        let paths = doc["paths"].as_object().expect("paths");
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                let statuses: Vec<&str> = operation["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                    .map(String::as_str)
                    .collect();
                if path.starts_with("/accounts/") {
                    let schemes: Vec<&str> = operation["security"]
                        .as_array()
                        .expect("security")
                        .iter()
                        .filter_map(|r| r.as_object()?.keys().next().map(String::as_str))
                        .collect();
                    assert_eq!(
                        schemes,
                        ["bearer", "x_auth_key", "x_api_key"],
                        "{method} {path}"
                    );
                    for status in ["200", "400", "401", "403", "429", "503"] {
                        assert!(statuses.contains(&status), "{method} {path}: {status}");
                    }
                } else if ["/accounts", "/memberships", "/user/tokens/verify"]
                    .contains(&path.as_str())
                {
                    assert!(operation["security"].is_array(), "{method} {path}");
                    for status in ["200", "401"] {
                        assert!(statuses.contains(&status), "{method} {path}: {status}");
                    }
                } else {
                    assert!(operation.get("security").is_none(), "{method} {path}");
                }
            }
        }
    }
}
