//! `GET /ui/`: the web dashboard (SPEC §12). Three files compiled into the binary, served
//! as they are: no build step, no CDN. The page talks to the public API with the token
//! the user gives it, so it can do nothing that token could not do with curl.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use super::error::ApiError;

/// The dashboard's files: name, content type, contents.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "",
        "text/html; charset=utf-8",
        include_str!("ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("ui/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("ui/favicon.svg"),
    ),
];

/// Only this origin's own files and API: no inline script, no framing, no other host,
/// so an injected string can neither run nor send the token anywhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

fn asset(name: &str) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or(ApiError::NoRoute)?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // The files change with the binary: always ask.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(*body))
}

/// The dashboard's page; it asks for a token (or takes one from `#token=…`).
#[utoipa::path(
    get,
    path = "/ui/",
    operation_id = "dashboard",
    tag = "operations",
    responses((status = 200, description = "The dashboard (HTML).", content_type = "text/html; charset=utf-8", body = String)),
)]
pub async fn page() -> Result<HttpResponse, ApiError> {
    asset("")
}

/// A file of the dashboard: `app.js`, `style.css` or `favicon.svg`.
#[utoipa::path(
    get,
    path = "/ui/{asset}",
    operation_id = "dashboard_asset",
    tag = "operations",
    params(("asset" = String, Path, description = "`app.js`, `style.css` or `favicon.svg`")),
    responses(
        (status = 200, description = "The file.", body = String),
        (status = 404, description = "No such file (code 7003, as for any unknown path)."),
    ),
)]
pub async fn file(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match name.as_str() {
        "" => Err(ApiError::NoRoute),
        name => asset(name),
    }
}

/// `/ui` without its slash: the page's relative links need the slash.
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}
