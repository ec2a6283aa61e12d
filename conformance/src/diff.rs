//! Differential comparison of two replies (ours vs a reference server).

use hickory_proto::rr::rdata::SRV;
use hickory_proto::rr::{RData, Record};

use crate::check::{DnsOutcome, Mismatch};
use crate::records::{flags, question, rcode_name, render_without_ttl};

/// Every difference in rcode, flags, question, EDNS presence and sections; RR order is ignored and
/// TTLs may differ by up to `ttl_tolerance` seconds. Mismatch `expected` is the reference's value.
pub fn compare(ours: &DnsOutcome, reference: &DnsOutcome, ttl_tolerance: u32) -> Vec<Mismatch> {
    let (a, b) = match (ours, reference) {
        (DnsOutcome::Reply(a), DnsOutcome::Reply(b)) => (&a.msg, &b.msg),
        (DnsOutcome::Reply(_), _) => return vec![Mismatch::new("diff reply", "no reply", "a reply")],
        (_, DnsOutcome::Reply(_)) => return vec![Mismatch::new("diff reply", "a reply", "no reply")],
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    let (ra, rb) = (rcode_name(a.metadata.response_code), rcode_name(b.metadata.response_code));
    if ra != rb {
        out.push(Mismatch::new("diff rcode", rb, ra));
    }
    let (fa, fb) = (flags(a).join(" "), flags(b).join(" "));
    if fa != fb {
        out.push(Mismatch::new("diff flags", fb, fa));
    }
    let (qa, qb) = (question(a), question(b));
    if qa != qb {
        out.push(Mismatch::new("diff question", qb, qa));
    }
    if a.edns.is_some() != b.edns.is_some() {
        out.push(Mismatch::new("diff edns", b.edns.is_some().to_string(), a.edns.is_some().to_string()));
    } else if let (Some(ea), Some(eb)) = (&a.edns, &b.edns) {
        let (oa, ob) = (render_opt(ea), render_opt(eb));
        if oa != ob {
            out.push(Mismatch::new("diff opt", ob, oa));
        }
    }
    for (name, sa, sb) in [
        ("answer", &a.answers, &b.answers),
        ("authority", &a.authorities, &b.authorities),
        ("additional", &a.additionals, &b.additionals),
    ] {
        if !same_records(sa, sb, ttl_tolerance) {
            out.push(Mismatch::new(format!("diff {name}"), render(sb), render(sa)));
        }
    }
    out
}

/// The reply OPT's fields that a client sees: UDP size, version, DO, the high rcode bits and
/// every option (code and data) in order.
fn render_opt(e: &hickory_proto::op::Edns) -> String {
    let options: Vec<String> =
        e.options().as_ref().iter().map(|(code, opt)| format!("{}={opt:?}", u16::from(*code))).collect();
    format!(
        "size {} version {} do {} rcode_high {} options [{}]",
        e.max_payload(),
        e.version(),
        e.flags().dnssec_ok,
        e.rcode_high(),
        options.join(", ")
    )
}

/// whoami's SRV carries the client's source port, which differs between the two servers: compare
/// such records (target `.`) with the port zeroed.
fn normalise(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .map(|r| match &r.data {
            RData::SRV(srv) if srv.target.is_root() => {
                let mut r = r.clone();
                r.data = RData::SRV(SRV::new(srv.priority, srv.weight, 0, srv.target.clone()));
                r
            }
            _ => r.clone(),
        })
        .collect()
}

fn same_records(a: &[Record], b: &[Record], tol: u32) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a, b) = (normalise(a), normalise(b));
    let mut used = vec![false; b.len()];
    a.iter().all(|x| {
        let found = (0..b.len()).find(|j| {
            !used[*j] && *x == b[*j] && x.record_type() == b[*j].record_type() && x.ttl.abs_diff(b[*j].ttl) <= tol
        });
        match found {
            Some(j) => {
                used[j] = true;
                true
            }
            None => false,
        }
    })
}

fn render(records: &[Record]) -> String {
    let mut lines: Vec<String> = records.iter().map(|r| format!("{} (ttl {})", render_without_ttl(r), r.ttl)).collect();
    lines.sort();
    lines.join("\n")
}
