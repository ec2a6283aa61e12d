//! The `whoami` handler: AA reply, empty answer, client address and port in the additional
//! section.

use std::net::IpAddr;

use futures_util::future::BoxFuture;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record};

use crate::plugin::template::common::reply_to;
use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Reply, Request};

/// The running `whoami` plugin.
#[derive(Debug, Clone, Copy)]
pub struct Whoami;

/// Builds the `whoami` reply for `req`.
pub fn answer(req: &Request) -> Result<Message, String> {
    let mut m = reply_to(req)?;
    m.metadata.authoritative = true;
    let owner = m.queries.first().map(|q| q.name().clone()).ok_or("no question")?;
    let class = DNSClass::from(req.qclass);
    let rdata = match req.client.ip().to_canonical() {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    let mut addr = Record::from_rdata(owner.clone(), 0, rdata);
    addr.dns_class = class;
    let srv_name = if owner.is_root() {
        format!("_{}.", req.proto.as_str())
    } else {
        format!("_{}.{}", req.proto.as_str(), owner.to_ascii())
    };
    let srv_owner = Name::from_ascii(&srv_name).map_err(|e| e.to_string())?;
    let mut srv = Record::from_rdata(srv_owner, 0, RData::SRV(SRV::new(0, 0, req.client.port(), Name::root())));
    srv.dns_class = class;
    m.additionals = vec![addr, srv];
    Ok(m)
}

impl Plugin for Whoami {
    fn name(&self) -> &'static str {
        "whoami"
    }

    fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> BoxFuture<'a, Outcome> {
        let out = match answer(req) {
            Ok(m) => Outcome::written("whoami", Reply::Message(Box::new(m))),
            Err(e) => Outcome::unwritten(ResponseCode::ServFail, Some(format!("plugin/whoami: {e}"))),
        };
        Box::pin(std::future::ready(out))
    }
}
