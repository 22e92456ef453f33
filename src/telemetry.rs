//! Logging set-up: one subscriber for the process, text or JSON.

use std::fmt;

use actix_web::dev::ServiceRequest;
use actix_web::http::Version;
use actix_web::http::header::{HOST, USER_AGENT};
use actix_web::{HttpMessage, web};
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

use crate::config::LogFormat;
use crate::forwarded::TrustedProxies;

/// Installs the global subscriber. `RUST_LOG` overrides `level`. Logs go to stderr so
/// stdout stays free for what commands print (tokens, the dev banner).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // One line per request: the request span (method, route, status, request id) is
    // logged when it closes, with its duration. Bodies and tokens are never fields.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        // Colours only for a person at a terminal, never into files or collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.fmt_fields(EscapedFields).try_init(),
    };
}

/// Text-format fields with every control character escaped, so nothing a client sends
/// (a header, a name in an error message) can start a new log line, rewrite one with a
/// carriage return, or drive the terminal. String values are quoted (`ua="…"`), so they
/// cannot pass for other fields either. JSON needs none of this: it escapes by itself.
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            result: Ok(()),
            first: true,
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    result: fmt::Result,
    first: bool,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        // `log` records carry their metadata as fields, already shown by the formatter.
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let separator = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        let text = Escaped(value);
        self.result = match field.name() {
            "message" => write!(self.writer, "{separator}{text}"),
            name => write!(self.writer, "{separator}{name}={text}"),
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

/// Text with control characters (C0, DEL, C1) and Unicode line and paragraph
/// separators written as `\u{…}` escapes.
struct Escaped<T>(T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escaper<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let mut rest = s;
                while let Some(at) = rest.find(|c: char| c.is_control() || is_separator(c)) {
                    self.0.write_str(&rest[..at])?;
                    let c = rest[at..].chars().next().unwrap_or_default();
                    write!(self.0, "\\u{{{:x}}}", u32::from(c))?;
                    rest = &rest[at + c.len_utf8()..];
                }
                self.0.write_str(rest)
            }
        }
        fmt::Write::write_fmt(&mut Escaper(f), format_args!("{}", self.0))
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// The request span, with tracing-actix-web's field names (method, route, status,
/// request id…) plus the account and queue, recorded once the request is authorized.
///
/// Built here rather than with `root_span!` for two reasons: the client address
/// believes `X-Forwarded-For` / `Forwarded` (and the host and scheme their
/// `X-Forwarded-*` kin) only from `server.trusted_proxies`, and what the client sends
/// (user agent, host, target) is recorded as strings, which the text format quotes.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> tracing::Span {
        let proxies = request.app_data::<web::Data<TrustedProxies>>();
        let peer = request.peer_addr().map(|addr| addr.ip());
        let via_proxy = proxies.is_some_and(|p| p.trusts(peer));
        let client_ip = match proxies {
            Some(proxies) => proxies.client_ip(peer, request.headers()),
            None => peer,
        };
        let header = |name| {
            request
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default()
        };
        let (host, scheme) = if via_proxy {
            let info = request.connection_info();
            (info.host().to_owned(), info.scheme().to_owned())
        } else {
            let scheme = if request.app_config().secure() {
                "https"
            } else {
                "http"
            };
            (header(HOST), scheme.to_owned())
        };
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "default".to_owned());
        let method = request.method().as_str();
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let target = request
            .uri()
            .path_and_query()
            .map_or("", |p| p.as_str())
            .to_owned();
        tracing::info_span!(
            "HTTP request",
            http.method = method,
            http.route = route.as_str(),
            http.flavor = flavor(request.version()),
            http.scheme = scheme.as_str(),
            http.host = host.as_str(),
            http.client_ip = client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            http.user_agent = header(USER_AGENT).as_str(),
            http.target = target.as_str(),
            http.status_code = tracing::field::Empty,
            otel.name = format!("{method} {route}").as_str(),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            request_id = request_id.as_str(),
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
            account = tracing::field::Empty,
            queue = tracing::field::Empty,
        )
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

fn flavor(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2.0",
        Version::HTTP_3 => "3.0",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What a text subscriber with [`EscapedFields`] writes while `log` runs.
    fn text_log(log: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                if let Ok(mut buffer) = self.0.lock() {
                    buffer.extend_from_slice(bytes);
                }
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .fmt_fields(EscapedFields)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn control_characters_in_fields_cannot_start_or_rewrite_a_log_line() {
        let forged = "x\r\n2026-01-01T00:00:00.000000Z  INFO leaseq: forged\u{1b}[2K\u{2028}";
        let log = text_log(|| {
            let span = tracing::info_span!("HTTP request", http.user_agent = forged);
            span.in_scope(|| {
                tracing::info!(error = %forged, detail = ?forged, "failed: {forged}");
            });
        });
        assert_eq!(
            log.lines().count(),
            2,
            "one event and one close line:\n{log}"
        );
        assert!(
            log.lines()
                .all(|line| !line.starts_with("2026-01-01") && !line.contains('\u{1b}')),
            "{log}"
        );
        assert!(!log.contains('\r') && !log.contains('\u{2028}'), "{log:?}");
        // Strings are quoted, so they cannot pass for other fields.
        assert!(
            log.contains(r#"http.user_agent="x\r\n2026-01-01T00:00:00.000000Z  INFO leaseq: forged\u{1b}[2K\u{2028}""#),
            "{log}"
        );
        assert!(log.contains(r"error=x\u{d}\u{a}2026-01-01"), "{log}");
        assert!(log.contains(r"failed: x\u{d}\u{a}2026-01-01"), "{log}");
    }
}
