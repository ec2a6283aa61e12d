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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::cache::wire_scan::scan;
    use pretty_assertions::assert_eq;

    const A: u16 = 1;
    const NOW: i64 = 1_700_000_000;

    /// One record: type, TTL, RDATA (owner is a pointer to the question name; OPT uses root).
    type R = (u16, u32, Vec<u8>);

    fn msg(flags: u16, qtype: u16, an: &[R], ns: &[R], ar: &[R]) -> Vec<u8> {
        let mut b = vec![0x12, 0x34];
        b.extend_from_slice(&(flags | 0x8000).to_be_bytes());
        for n in [1, an.len(), ns.len(), ar.len()] {
            b.extend_from_slice(&(n as u16).to_be_bytes());
        }
        b.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0]);
        b.extend_from_slice(&qtype.to_be_bytes());
        b.extend_from_slice(&1u16.to_be_bytes());
        for (t, ttl, rd) in an.iter().chain(ns).chain(ar) {
            if *t == rtype::OPT {
                b.push(0);
            } else {
                b.extend_from_slice(&[0xc0, 12]);
            }
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&(if *t == rtype::OPT { 1232u16 } else { 1 }).to_be_bytes());
            b.extend_from_slice(&ttl.to_be_bytes());
            b.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            b.extend_from_slice(rd);
        }
        b
    }

    fn a(ttl: u32) -> R {
        (A, ttl, vec![192, 0, 2, 1])
    }
    fn soa(ttl: u32) -> R {
        let mut rd = vec![0, 0];
        rd.extend_from_slice(&[0; 20]);
        (rtype::SOA, ttl, rd)
    }
    fn ns(ttl: u32) -> R {
        (rtype::NS, ttl, vec![0xc0, 12])
    }
    fn opt(do_bit: bool) -> R {
        (rtype::OPT, if do_bit { 0x8000 } else { 0 }, vec![])
    }
    fn rrsig(inception: u32, expiration: u32) -> R {
        let mut rd = vec![0, 1, 8, 2, 0, 0, 0, 60];
        rd.extend_from_slice(&expiration.to_be_bytes());
        rd.extend_from_slice(&inception.to_be_bytes());
        rd.extend_from_slice(&[0, 1, 0]);
        (rtype::RRSIG, 60, rd)
    }

    fn kind(b: &[u8]) -> Kind {
        let s = scan(b).expect("test message scans");
        typify(b, &s, NOW)
    }

    #[test]
    fn typify_table() {
        let rc = |r: u16| r;
        assert_eq!(kind(&msg(5 << 11, A, &[], &[], &[])), Kind::Update);
        assert_eq!(kind(&msg(4 << 11, A, &[a(60)], &[], &[])), Kind::Meta);
        assert_eq!(kind(&msg(0, rtype::AXFR, &[a(60)], &[], &[])), Kind::Meta);
        assert_eq!(kind(&msg(0, rtype::IXFR, &[], &[], &[])), Kind::Meta);
        let expired = rrsig(NOW as u32 - 1000, NOW as u32 - 10);
        assert_eq!(kind(&msg(0, A, &[a(60), expired.clone()], &[], &[opt(true)])), Kind::OtherError);
        assert_eq!(kind(&msg(0, A, &[a(60), expired], &[], &[opt(false)])), Kind::NoError, "DO unset");
        let valid = rrsig(NOW as u32 - 1000, NOW as u32 + 1000);
        assert_eq!(kind(&msg(0, A, &[a(60), valid], &[], &[opt(true)])), Kind::NoError);
        assert_eq!(kind(&msg(rc(0), A, &[a(60)], &[], &[])), Kind::NoError);
        assert_eq!(kind(&msg(rc(3), A, &[a(60)], &[], &[])), Kind::OtherError);
        assert_eq!(kind(&msg(rc(0), A, &[], &[soa(60)], &[])), Kind::NoData);
        assert_eq!(kind(&msg(rc(3), A, &[], &[soa(60)], &[])), Kind::NameError);
        assert_eq!(kind(&msg(rc(3), A, &[], &[], &[])), Kind::NameError);
        assert_eq!(kind(&msg(rc(2), A, &[], &[], &[])), Kind::ServerError);
        assert_eq!(kind(&msg(rc(4), A, &[], &[], &[])), Kind::ServerError);
        assert_eq!(kind(&msg(rc(0), A, &[], &[ns(60)], &[])), Kind::Delegation);
        assert_eq!(kind(&msg(rc(0), A, &[], &[], &[])), Kind::NoError);
        assert_eq!(kind(&msg(rc(5), A, &[], &[], &[])), Kind::OtherError);
        // An extended rcode in OPT (BADVERS = 16) is not NOERROR.
        let badvers = msg(0, A, &[], &[], &[(rtype::OPT, 1 << 24, vec![])]);
        assert_eq!(kind(&badvers), Kind::OtherError);
        assert_eq!(scan(&badvers).unwrap().rcode(), 16);
    }

    #[test]
    fn storable_rules() {
        let check = |b: Vec<u8>| {
            let s = scan(&b).unwrap();
            let t = cache_type(&b, &s, NOW);
            (t, storable(&b, &s, t))
        };
        assert_eq!(check(msg(0x0200, A, &[a(60)], &[], &[])), (Kind::NoError, false), "TC");
        assert_eq!(check(msg(3, A, &[], &[], &[])), (Kind::NameError, false), "NXDOMAIN without SOA");
        assert_eq!(check(msg(3, A, &[], &[soa(60)], &[])), (Kind::NameError, true));
        assert_eq!(check(msg(2, A, &[], &[], &[])), (Kind::ServerError, true));
        // An answer whose records are of another type: without SOA not stored, with SOA NoData.
        let other = (rtype::NS, 60, vec![0xc0, 12]);
        assert_eq!(check(msg(0, A, std::slice::from_ref(&other), &[], &[])), (Kind::NoError, false));
        assert_eq!(check(msg(0, A, &[other], &[soa(60)], &[])), (Kind::NoData, true));
        assert_eq!(check(msg(0, A, &[], &[], &[])), (Kind::NoError, true), "empty NOERROR");
        assert_eq!(check(msg(0, A, &[], &[ns(60)], &[])), (Kind::Delegation, true));
        assert_eq!(check(msg(5, A, &[], &[], &[])), (Kind::OtherError, false));
    }

    #[test]
    fn minimal_ttl_rules() {
        let ttl = |b: Vec<u8>, max: u32| {
            let s = scan(&b).unwrap();
            let t = cache_type(&b, &s, NOW);
            minimal_ttl(&s, t, max)
        };
        assert_eq!(ttl(msg(0, A, &[], &[], &[]), 3600), 5, "no records");
        assert_eq!(ttl(msg(0, A, &[], &[], &[opt(false)]), 3600), 5, "only OPT");
        assert_eq!(ttl(msg(0, A, &[a(300)], &[soa(120)], &[a(900), (rtype::OPT, 7, vec![])]), 3600), 120);
        assert_eq!(ttl(msg(0, A, &[a(7200)], &[], &[]), 3600), 3600, "capped at the maximum");
        assert_eq!(ttl(msg(0, A, &[], &[ns(7200)], &[]), 3600), 5, "delegations use the 5s default");
        assert_eq!(ttl(msg(3, A, &[], &[soa(60)], &[]), 1800), 60);
        assert_eq!(clamp_ttl(3601, 5, 3600), 3600);
        assert_eq!(clamp_ttl(1, 5, 3600), 5);
        assert_eq!(clamp_ttl(0, 0, 3600), 0);
        assert_eq!(clamp_ttl(60, 5, 5), 5);
    }

    #[test]
    fn rrsig_serial_arithmetic() {
        assert!(rrsig_valid(100, 200, 150));
        assert!(!rrsig_valid(100, 200, 201));
        assert!(!rrsig_valid(100, 200, 99));
        // Times are taken modulo 2^32 toward now, as Go's ValidityPeriod does.
        let now = u32::MAX as i64 + 1000;
        assert!(!rrsig_valid(100, 200, now));
    }
}
