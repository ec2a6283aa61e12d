//! The `loadbalance` handler: CoreDNS's round-robin shuffle of A/AAAA (and MX) records in
//! NOERROR replies, then the preferred-subnet ordering.

use futures_util::future::BoxFuture;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

use super::setup::Cidr;
use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Reply, Request};

/// The running `loadbalance` plugin.
#[derive(Clone)]
pub struct LoadBalance {
    /// Preferred subnets.
    pub prefer: Vec<Cidr>,
    /// The weighted policy's state, when that policy is used.
    pub weighted: Option<std::sync::Arc<super::weighted::WeightedRR>>,
}

fn shuffle(records: &mut [Record]) {
    let l = records.len();
    match l {
        0 | 1 => {}
        2 => {
            if rand::random::<u16>().is_multiple_of(2) {
                records.swap(0, 1);
            }
        }
        _ => {
            for j in 0..l {
                let p = j + (rand::random::<u16>() as usize % (l - j));
                records.swap(j, p);
            }
        }
    }
}

/// CoreDNS's `roundRobin`: an all-A or all-AAAA list is shuffled in place; a mixed list becomes
/// CNAMEs, others, shuffled addresses, shuffled MX.
pub fn round_robin(input: Vec<Record>) -> Vec<Record> {
    if input.len() <= 1 {
        return input;
    }
    let t = input[0].record_type();
    if (t == RecordType::A || t == RecordType::AAAA) && input.iter().all(|r| r.record_type() == t) {
        let mut out = input;
        shuffle(&mut out);
        return out;
    }
    let (mut cname, mut address, mut mx, mut rest) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in input {
        match r.record_type() {
            RecordType::CNAME => cname.push(r),
            RecordType::A | RecordType::AAAA => address.push(r),
            RecordType::MX => mx.push(r),
            _ => rest.push(r),
        }
    }
    shuffle(&mut address);
    shuffle(&mut mx);
    cname.extend(rest);
    cname.extend(address);
    cname.extend(mx);
    cname
}

fn ip_of(r: &Record) -> Option<std::net::IpAddr> {
    match &r.data {
        RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(std::net::IpAddr::V6(a.0)),
        _ => None,
    }
}

/// CoreDNS's preferred-subnet ordering: CNAMEs, addresses by subnet priority, MX, the rest.
pub fn reorder_preferred(records: Vec<Record>, subnets: &[Cidr]) -> Vec<Record> {
    let (mut cname, mut address, mut mx, mut rest) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in records {
        match r.record_type() {
            RecordType::CNAME => cname.push(r),
            RecordType::A | RecordType::AAAA => address.push(r),
            RecordType::MX => mx.push(r),
            _ => rest.push(r),
        }
    }
    let mut seen = vec![false; address.len()];
    let mut sorted = Vec::with_capacity(address.len());
    for s in subnets {
        for (i, r) in address.iter().enumerate() {
            if !seen[i] && ip_of(r).is_some_and(|ip| s.contains(ip)) {
                sorted.push(r.clone());
                seen[i] = true;
            }
        }
    }
    for (i, r) in address.into_iter().enumerate() {
        if !seen[i] {
            sorted.push(r);
        }
    }
    cname.extend(sorted);
    cname.extend(mx);
    cname.extend(rest);
    cname
}

impl LoadBalance {
    /// Applies the shuffle (and preference) to a reply, as CoreDNS's response writer does.
    pub fn apply(&self, m: &mut Message) {
        if m.metadata.response_code != ResponseCode::NoError {
            return;
        }
        if let Some(q) = m.queries.first() {
            if q.query_type() == RecordType::AXFR || q.query_type() == RecordType::IXFR {
                return;
            }
        }
        if let Some(w) = &self.weighted {
            w.apply(m);
        } else {
            m.answers = round_robin(std::mem::take(&mut m.answers));
            m.authorities = round_robin(std::mem::take(&mut m.authorities));
            m.additionals = round_robin(std::mem::take(&mut m.additionals));
        }
        if !self.prefer.is_empty() {
            m.answers = reorder_preferred(std::mem::take(&mut m.answers), &self.prefer);
            m.additionals = reorder_preferred(std::mem::take(&mut m.additionals), &self.prefer);
        }
    }
}

impl Plugin for LoadBalance {
    fn name(&self) -> &'static str {
        "loadbalance"
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut out = next.serve(req).await;
            let Some(reply) = out.reply.as_ref() else { return out };
            if reply.rcode() != 0 {
                return out;
            }
            let Ok(mut m) = reply.to_message() else { return out };
            let addressish = |rs: &[Record]| rs.len() > 1;
            if !addressish(&m.answers) && !addressish(&m.authorities) && !addressish(&m.additionals) {
                return out;
            }
            self.apply(&mut m);
            out.reply = Some(Reply::Message(Box::new(m)));
            out
        })
    }
}
