//! Test helpers shared by the errors and log plugin tests: requests, fixed responders, and a
//! tracing capture.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::plugin::{Chain, Next, Plugin};
use crate::server::request::{ClientEdns, Proto};
use crate::server::{Outcome, Request};

/// A query for `qname`/`qtype` with ID 4242 and RD, optionally with an OPT (size, DO).
pub fn request(qname: &str, qtype: u16, proto: Proto, edns: Option<(u16, bool)>, client: &str) -> Request {
    let mut msg = Message::new(4242, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    let name = Name::from_ascii(qname).unwrap_or_default();
    msg.add_query(Query::query(name, RecordType::from(qtype)));
    if let Some((size, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        msg.set_edns(e);
    }
    let wire = msg.to_vec().unwrap_or_default();
    Request {
        received_len: wire.len(),
        wire,
        qname: qname.to_string(),
        qname_lower: qname.to_lowercase(),
        qtype,
        qclass: 1,
        edns: edns.map(|(udp_size, dnssec_ok)| ClientEdns { udp_size, dnssec_ok, version: 0, options: Vec::new() }),
        client: client.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 53000))),
        local: SocketAddr::from(([127, 0, 0, 1], 53)),
        proto,
        server: Arc::from("dns://:53"),
        zone: Arc::from("."),
        started: Instant::now(),
        metadata: Vec::new(),
    }
}

/// A plugin that returns what its closure makes of the request.
pub struct Responder(pub Box<dyn Fn(&Request) -> Outcome + Send + Sync>);

impl Plugin for Responder {
    fn name(&self) -> &'static str {
        "responder"
    }
    fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> BoxFuture<'a, Outcome> {
        let out = (self.0)(req);
        Box::pin(async move { out })
    }
}

/// Runs `req` through `plugin` followed by `responder`.
pub async fn run(plugin: Arc<dyn Plugin>, responder: Responder, req: &mut Request) -> Outcome {
    let chain: Chain = Arc::from(vec![plugin, Arc::new(responder) as Arc<dyn Plugin>]);
    Next::start(&chain).serve(req).await
}

/// One captured event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// Level.
    pub level: Level,
    /// Target.
    pub target: String,
    /// The formatted message.
    pub message: String,
}

#[derive(Clone, Default)]
struct CaptureLayer(Arc<Mutex<Vec<Captured>>>);

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = MessageVisitor(String::new());
        event.record(&mut v);
        self.0.lock().push(Captured {
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            message: v.0,
        });
    }
}

/// Runs `f` on a current-thread runtime with a subscriber that records every event; returns `f`'s result and the events.
pub fn capture<T>(f: impl std::future::Future<Output = T>) -> (T, Vec<Captured>) {
    let layer = CaptureLayer::default();
    let store = layer.0.clone();
    let subscriber = tracing_subscriber::registry().with(layer);
    let out = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build();
        match rt {
            Ok(rt) => Some(rt.block_on(f)),
            Err(_) => None,
        }
    });
    let events = store.lock().clone();
    (out.expect("tokio runtime"), events)
}
