//! What runs around every route: HTTP metrics by route template, the request id echoed,
//! and a chunked request body kept alive until the response is sent.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::TRANSFER_ENCODING;
use actix_web::{HttpMessage, web};

use super::metrics::{REQUEST_ID, request_id};
use crate::metrics::Metrics;

/// The middleware itself (`App::wrap_fn`), inside the request span TracingLogger opens.
pub fn around<S>(
    metrics: Arc<Metrics>,
    mut req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>> + use<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    let started = std::time::Instant::now();
    let chunked_body = share_chunked_body(&mut req);
    let method = req.method().as_str().to_owned();
    // The route template, never the raw path, so labels stay few.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = request_id(&req);
    let call = srv.call(req);
    async move {
        let mut response = call.await?;
        let status = response.status().as_u16();
        metrics.observe_http(&method, &route, status, started.elapsed());
        if let Some(id) = request_id {
            response.headers_mut().insert(REQUEST_ID, id);
        }
        Ok(match chunked_body {
            Some(held) => response.map_body(|_, body| BoxBody::new(HeldBody { body, _held: held })),
            None => response,
        })
    }
}

/// A chunked request body, shared by the handler (which may read it) and the response.
///
/// actix-http drains a chunked body that the app dropped unread for as long as the client
/// keeps sending, with no timer: a client trickling a body to a route that never reads
/// one, or one refused with 408 or 413, would hold its connection forever. When the body
/// is still alive as the response finishes, actix-http closes the connection instead
/// (after its short linger), so the response body keeps a handle on it ([`HeldBody`]).
/// Bodies framed by `Content-Length` need none of this: actix-http closes on those.
#[derive(Clone)]
struct SharedBody(Rc<RefCell<Payload>>);

impl futures_util::Stream for SharedBody {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

/// For a chunked request, swaps its body for a shared one and returns the other handle.
fn share_chunked_body(req: &mut ServiceRequest) -> Option<SharedBody> {
    if !req.headers().contains_key(TRANSFER_ENCODING) {
        return None;
    }
    let body = SharedBody(Rc::new(RefCell::new(req.take_payload())));
    req.set_payload(Payload::Stream {
        payload: Box::pin(body.clone()),
    });
    Some(body)
}

/// A response body that keeps the request's chunked body alive until it has been sent.
struct HeldBody {
    body: BoxBody,
    _held: SharedBody,
}

impl MessageBody for HeldBody {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}
