//! Response classification (CoreDNS's `response.Typify`), the cache's extra rules on what is
//! stored, and the TTL the stored answer gets.

use super::wire_scan::{name_key, read_u32, rtype, Scan, Section};

/// Classification of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A positive answer.
    NoError,
    /// NXDOMAIN.
    NameError,
    /// SERVFAIL or NOTIMP.
    ServerError,
    /// The name exists but has no data of the type: NOERROR with SOA in authority.
    NoData,
    /// A referral: NOERROR with NS in authority.
    Delegation,
    /// NOTIFY, AXFR or IXFR.
    Meta,
    /// Dynamic update.
    Update,
    /// Anything else; never cached.
    OtherError,
}

const OPCODE_NOTIFY: u8 = 4;
const OPCODE_UPDATE: u8 = 5;
const RCODE_NOERROR: u16 = 0;
const RCODE_SERVFAIL: u16 = 2;
const RCODE_NXDOMAIN: u16 = 3;
const RCODE_NOTIMP: u16 = 4;

/// 2^31 seconds: RRSIG times are compared in serial-number arithmetic (RFC 4034 §3.1.5).
const YEAR68: i64 = 1 << 31;

/// Whether an RRSIG with these inception/expiration fields is valid at `now` (Unix seconds).
pub fn rrsig_valid(inception: u32, expiration: u32, now: i64) -> bool {
    let modi = (inception as i64 - now) / YEAR68;
    let mode = (expiration as i64 - now) / YEAR68;
    let ti = inception as i64 + modi * YEAR68;
    let te = expiration as i64 + mode * YEAR68;
    ti <= now && now <= te
}

fn has_expired_rrsig(buf: &[u8], s: &Scan, now: i64) -> bool {
    s.rrs.iter().filter(|r| r.rtype == rtype::RRSIG).any(|r| {
        // type covered(2) algorithm(1) labels(1) original TTL(4) expiration(4) inception(4)
        match (read_u32(buf, r.rdata + 8), read_u32(buf, r.rdata + 12)) {
            (Some(exp), Some(inc)) if r.rdlen >= 16 => !rrsig_valid(inc, exp, now),
            _ => false,
        }
    })
}

/// Classifies a reply as CoreDNS's `response.Typify` does. `now` is Unix seconds (RRSIG expiry
/// is only checked when the reply's own OPT has DO set).
pub fn typify(buf: &[u8], s: &Scan, now: i64) -> Kind {
    let opcode = s.opcode();
    if opcode == OPCODE_UPDATE {
        return Kind::Update;
    }
    if opcode == OPCODE_NOTIFY {
        return Kind::Meta;
    }
    if let Some(q) = s.question {
        if q.qtype == rtype::AXFR || q.qtype == rtype::IXFR {
            return Kind::Meta;
        }
    }
    if s.dnssec_ok() && has_expired_rrsig(buf, s, now) {
        return Kind::OtherError;
    }
    let rcode = s.rcode();
    let answers = s.count(Section::Answer);
    if answers > 0 && rcode == RCODE_NOERROR {
        return Kind::NoError;
    }
    if answers > 0 && rcode == RCODE_NXDOMAIN {
        return Kind::OtherError;
    }
    let soa = has_soa(s);
    let ns = s.section(Section::Authority).any(|r| r.rtype == rtype::NS);
    if soa && rcode == RCODE_NOERROR {
        return Kind::NoData;
    }
    if rcode == RCODE_NXDOMAIN {
        return Kind::NameError;
    }
    if rcode == RCODE_SERVFAIL || rcode == RCODE_NOTIMP {
        return Kind::ServerError;
    }
    if ns && rcode == RCODE_NOERROR {
        return Kind::Delegation;
    }
    if rcode == RCODE_NOERROR {
        return Kind::NoError;
    }
    Kind::OtherError
}

/// Whether the authority section holds an SOA.
pub fn has_soa(s: &Scan) -> bool {
    s.section(Section::Authority).any(|r| r.rtype == rtype::SOA)
}

fn class_matches(rr_class: u16, qclass: u16) -> bool {
    qclass == rtype::ANY || rr_class == qclass
}

/// The single CNAME target of `owner` among the answer records: `Ok(None)` when `owner` has no
/// CNAME, `Err(())` when it has two different targets or a name cannot be read.
fn cname_target(buf: &[u8], s: &Scan, owner: &[u8], qclass: u16) -> Result<Option<Vec<u8>>, ()> {
    let mut target: Option<Vec<u8>> = None;
    for r in s.section(Section::Answer) {
        if r.rtype != rtype::CNAME || !class_matches(r.class, qclass) {
            continue;
        }
        if name_key(buf, r.owner).ok_or(())? != owner {
            continue;
        }
        let t = name_key(buf, r.rdata).ok_or(())?;
        match &target {
            Some(prev) if *prev != t => return Err(()),
            _ => target = Some(t),
        }
    }
    Ok(target)
}

/// Whether a NOERROR reply actually answers its question: for ANY a record at the qname, for
/// CNAME a CNAME at the qname, otherwise a record of the qtype at the end of the CNAME chain
/// starting at the qname (a malformed chain or a loop does not answer).
pub fn answers_question(buf: &[u8], s: &Scan) -> bool {
    let Some(q) = s.question else { return false };
    if s.rcode() != RCODE_NOERROR || s.count(Section::Answer) == 0 {
        return false;
    }
    let Some(mut name) = name_key(buf, q.name) else { return false };
    if q.qtype == rtype::ANY {
        return s
            .section(Section::Answer)
            .any(|r| class_matches(r.class, q.qclass) && name_key(buf, r.owner).as_deref() == Some(&name[..]));
    }
    if q.qtype == rtype::CNAME {
        return matches!(cname_target(buf, s, &name, q.qclass), Ok(Some(_)));
    }
    let mut visited: Vec<Vec<u8>> = Vec::new();
    // Each step visits a new owner name, so the walk ends within the number of answer records.
    loop {
        if visited.contains(&name) {
            return false;
        }
        visited.push(name.clone());
        match cname_target(buf, s, &name, q.qclass) {
            Err(()) => return false,
            Ok(Some(t)) => name = t,
            Ok(None) => break,
        }
    }
    s.section(Section::Answer).any(|r| {
        r.rtype == q.qtype && class_matches(r.class, q.qclass) && name_key(buf, r.owner).as_deref() == Some(&name[..])
    })
}

/// A NOERROR reply with a non-empty answer that does not answer the question.
pub fn is_nodata(buf: &[u8], s: &Scan) -> bool {
    s.count(Section::Answer) > 0 && !answers_question(buf, s)
}

/// The type the cache uses: [`typify`], with a NOERROR reply that has an SOA but whose answer
/// does not answer the question counted as NoData.
pub fn cache_type(buf: &[u8], s: &Scan, now: i64) -> Kind {
    let t = typify(buf, s, now);
    if t == Kind::NoError && has_soa(s) && is_nodata(buf, s) {
        return Kind::NoData;
    }
    t
}

/// Whether a reply of this type may be stored at all (before the duration and question checks):
/// not truncated, not OtherError/Meta/Update, NXDOMAIN only with an SOA, and not an SOA-less
/// NOERROR whose answer does not answer the question.
pub fn storable(buf: &[u8], s: &Scan, t: Kind) -> bool {
    if s.flags & 0x0200 != 0 {
        return false;
    }
    if matches!(t, Kind::OtherError | Kind::Meta | Kind::Update) {
        return false;
    }
    if t == Kind::NameError && !has_soa(s) {
        return false;
    }
    if t == Kind::NoError && !has_soa(s) && is_nodata(buf, s) {
        return false;
    }
    true
}

/// CoreDNS's `MinimalTTLWithMaximum`: 5 s for types other than NoError/NameError/NoData and for
/// replies without records (an OPT alone does not count); otherwise the lowest TTL of all
/// records except OPT, capped at `max`.
pub fn minimal_ttl(s: &Scan, t: Kind, max: u32) -> u32 {
    const MINIMAL_DEFAULT: u32 = 5;
    if !matches!(t, Kind::NoError | Kind::NameError | Kind::NoData) {
        return MINIMAL_DEFAULT;
    }
    let non_opt = s.rrs.iter().filter(|r| !(r.section == Section::Additional && r.rtype == rtype::OPT)).count();
    if non_opt == 0 {
        return MINIMAL_DEFAULT;
    }
    s.rrs.iter().filter(|r| !(r.section == Section::Additional && r.rtype == rtype::OPT)).fold(max, |m, r| m.min(r.ttl))
}

/// `min(max(msg_ttl, min_ttl), max_ttl)`.
pub fn clamp_ttl(msg_ttl: u32, min_ttl: u32, max_ttl: u32) -> u32 {
    msg_ttl.max(min_ttl).min(max_ttl)
}
