//! The `minimal` handler: classifies the reply like CoreDNS's `response.Typify` and keeps only
//! the answer section of plain NOERROR answers.

use futures_util::future::BoxFuture;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Reply, Request};

/// CoreDNS's response types, as far as `minimal` needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// Positive answer.
    NoError,
    /// NXDOMAIN with SOA.
    NameError,
    /// NOERROR/NODATA with SOA.
    NoData,
    /// Referral.
    Delegation,
    /// Zone transfer / notify.
    Meta,
    /// Dynamic update.
    Update,
    /// Anything else.
    OtherError,
}

/// Classifies a reply (CoreDNS's `response.Typify`, without the DNSSEC expiry check).
pub fn typify(m: &Message) -> ResponseType {
    if m.queries.is_empty() {
        return ResponseType::OtherError;
    }
    if m.metadata.op_code == OpCode::Update {
        return ResponseType::Update;
    }
    if m.metadata.op_code == OpCode::Notify {
        return ResponseType::Meta;
    }
    let qt = m.queries[0].query_type();
    if qt == RecordType::AXFR || qt == RecordType::IXFR {
        return ResponseType::Meta;
    }
    let rcode = m.metadata.response_code;
    if !m.answers.is_empty() && rcode == ResponseCode::NoError {
        return ResponseType::NoError;
    }
    let soa = m.authorities.iter().any(|r| r.record_type() == RecordType::SOA);
    let ns = m.authorities.iter().filter(|r| r.record_type() == RecordType::NS).count();
    if soa && rcode == ResponseCode::NoError {
        return ResponseType::NoData;
    }
    if soa && rcode == ResponseCode::NXDomain {
        return ResponseType::NameError;
    }
    if ns > 0 && rcode == ResponseCode::NoError {
        return ResponseType::Delegation;
    }
    if rcode == ResponseCode::NoError {
        return ResponseType::NoError;
    }
    ResponseType::OtherError
}

/// The running `minimal` plugin.
#[derive(Debug, Clone, Copy)]
pub struct Minimal;

impl Plugin for Minimal {
    fn name(&self) -> &'static str {
        "minimal"
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut out = next.serve(req).await;
            if out.error.is_some() {
                return out;
            }
            let Some(reply) = out.reply.as_ref() else { return out };
            let Ok(mut m) = reply.to_message() else { return out };
            match typify(&m) {
                ResponseType::NoError => {
                    m.authorities.clear();
                    m.additionals.clear();
                    m.edns = None;
                    out.reply = Some(Reply::Message(Box::new(m)));
                }
                ResponseType::NameError
                | ResponseType::NoData
                | ResponseType::Delegation
                | ResponseType::OtherError => {}
                other => {
                    let name = m.queries.first().map(|q| q.name().to_ascii()).unwrap_or_default();
                    out.error = Some(format!("plugin/minimal: unhandled response type {:?} for \"{name}\"", other));
                }
            }
            out
        })
    }
}
