//! One endpoint's HTTP service: `/health`, `/ready` and `/metrics` (whichever it serves), 404
//! for anything else, with CoreDNS's 5 s timeouts.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::Route;
use crate::observe::readiness;

/// Read/write/idle limit for one connection (CoreDNS uses 5 s for each).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The routes an endpoint currently serves; changed in place when a reload changes them.
#[derive(Debug, Default)]
pub struct RouteState {
    health: AtomicBool,
    ready: AtomicBool,
    metrics: AtomicBool,
}

impl RouteState {
    /// Sets the served routes to exactly `routes`.
    pub fn set(&self, routes: &[Route]) {
        self.health.store(routes.contains(&Route::Health), Ordering::SeqCst);
        self.ready.store(routes.contains(&Route::Ready), Ordering::SeqCst);
        self.metrics.store(routes.contains(&Route::Metrics), Ordering::SeqCst);
    }

    fn serves(&self, route: Route) -> bool {
        match route {
            Route::Health => self.health.load(Ordering::SeqCst),
            Route::Ready => self.ready.load(Ordering::SeqCst),
            Route::Metrics => self.metrics.load(Ordering::SeqCst),
        }
    }
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Answers one request.
pub fn handle(path: &str, routes: &RouteState) -> Response<Full<Bytes>> {
    let route = match path {
        "/health" => Some(Route::Health),
        "/ready" => Some(Route::Ready),
        "/metrics" => Some(Route::Metrics),
        _ => None,
    };
    match route.filter(|r| routes.serves(*r)) {
        Some(Route::Health) => respond(StatusCode::OK, TEXT_PLAIN, "OK"),
        Some(Route::Ready) => ready(),
        Some(Route::Metrics) => {
            respond(StatusCode::OK, crate::observe::TEXT_CONTENT_TYPE, crate::observe::encode_text())
        }
        None => {
            let mut resp = respond(StatusCode::NOT_FOUND, TEXT_PLAIN, "404 page not found\n");
            resp.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
            resp
        }
    }
}

fn ready() -> Response<Full<Bytes>> {
    if readiness::is_shutting_down() {
        return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT_PLAIN, "Shutting down");
    }
    match readiness::check() {
        Ok(()) => respond(StatusCode::OK, TEXT_PLAIN, "OK"),
        Err(names) => {
            tracing::info!(target: "plugin/ready", "Plugins not ready: {names:?}");
            respond(StatusCode::SERVICE_UNAVAILABLE, TEXT_PLAIN, names)
        }
    }
}

/// Serves one accepted connection until it closes or goes quiet.
pub async fn serve_connection(stream: TcpStream, routes: Arc<RouteState>) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let resp = handle(req.uri().path(), &routes);
        async move { Ok::<_, Infallible>(resp) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    // Bounds slow or idle clients; scrapers simply reconnect.
    let _ = tokio::time::timeout(TIMEOUT * 6, conn).await;
}
