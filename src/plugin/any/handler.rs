//! The `any` handler: ANY → HINFO "ANY obsoleted" "See RFC 8482", TTL 8482.

use futures_util::future::BoxFuture;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::HINFO;
use hickory_proto::rr::{RData, Record};

use crate::plugin::template::common::reply_to;
use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Reply, Request};

/// The running `any` plugin.
#[derive(Debug, Clone, Copy)]
pub struct AnyHandler;

impl Plugin for AnyHandler {
    fn name(&self) -> &'static str {
        "any"
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if req.qtype != 255 {
                return next.serve(req).await;
            }
            match reply_to(req) {
                Ok(mut m) => {
                    if let Some(owner) = m.queries.first().map(|q| q.name().clone()) {
                        let hinfo = HINFO::new("ANY obsoleted".to_string(), "See RFC 8482".to_string());
                        m.answers.push(Record::from_rdata(owner, 8482, RData::HINFO(hinfo)));
                    }
                    Outcome::written("any", Reply::Message(Box::new(m)))
                }
                Err(e) => Outcome::unwritten(ResponseCode::ServFail, Some(format!("plugin/any: {e}"))),
            }
        })
    }
}
