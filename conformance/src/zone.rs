//! Authoritative zone data for the upstream fixture: master-file parsing and answer lookup.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

/// The records of every zone found in one master-file text.
#[derive(Debug, Clone, Default)]
pub struct ZoneSet {
    /// Zone apexes the fixture is authoritative for (every `$ORIGIN` and every SOA owner).
    pub zones: Vec<Name>,
    /// All records, owner names as written in the file.
    pub records: Vec<Record>,
}

/// What the lookup decided: rcode, whether the answer is authoritative, and the sections.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Response code.
    pub rcode: ResponseCode,
    /// AA bit.
    pub authoritative: bool,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authorities: Vec<Record>,
}

impl ZoneSet {
    /// Parses master-file text. Zones are the `$ORIGIN` names and the SOA owners.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut zones: Vec<Name> = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next().is_some_and(|w| w.eq_ignore_ascii_case("$ORIGIN")) {
                if let Some(origin) = words.next() {
                    let name = Name::from_ascii(origin).map_err(|e| format!("bad $ORIGIN {origin}: {e}"))?;
                    if name.is_fqdn() {
                        push_unique(&mut zones, name.to_lowercase());
                    }
                }
            }
        }
        let (_, sets) =
            Parser::new(text, None, Some(Name::root())).parse().map_err(|e| format!("zone parse error: {e}"))?;
        let mut records = Vec::new();
        for set in sets.values() {
            for record in set.records_without_rrsigs() {
                if record.record_type() == RecordType::SOA {
                    push_unique(&mut zones, record.name.to_lowercase());
                }
                records.push(record.clone());
            }
        }
        Ok(Self { zones, records })
    }

    /// The longest zone containing `qname`, if any.
    pub fn zone_for(&self, qname: &Name) -> Option<&Name> {
        self.zones.iter().filter(|z| z.zone_of(qname)).max_by_key(|z| z.num_labels())
    }

    /// The SOA to put in the authority section for a negative answer inside `zone`, with the
    /// TTL real servers give it there: the lesser of the SOA's own TTL and its MINIMUM field
    /// (RFC 2308 §3).
    fn soa_for(&self, zone: &Name) -> Vec<Record> {
        let mut best: Option<&Record> = None;
        for r in &self.records {
            if r.record_type() == RecordType::SOA
                && r.name.zone_of(zone)
                && best.is_none_or(|b| r.name.num_labels() > b.name.num_labels())
            {
                best = Some(r);
            }
        }
        best.cloned()
            .map(|mut soa| {
                if let RData::SOA(data) = &soa.data {
                    soa.ttl = soa.ttl.min(data.minimum);
                }
                soa
            })
            .into_iter()
            .collect()
    }

    fn at(&self, name: &Name) -> Vec<&Record> {
        self.records.iter().filter(|r| &r.name == name).collect()
    }

    fn exists(&self, name: &Name) -> bool {
        self.records.iter().any(|r| name.zone_of(&r.name))
    }

    /// Records at `name`, or synthesised from a wildcard covering it.
    fn at_or_wildcard(&self, name: &Name, zone: &Name) -> Vec<Record> {
        let direct = self.at(name);
        if !direct.is_empty() || self.exists(name) {
            return direct.into_iter().cloned().collect();
        }
        let mut parent = name.base_name();
        while zone.zone_of(&parent) {
            if let Ok(wild) = parent.prepend_label("*") {
                let found = self.at(&wild);
                if !found.is_empty() {
                    return found
                        .into_iter()
                        .map(|r| {
                            let mut r = r.clone();
                            r.name = name.clone();
                            r
                        })
                        .collect();
                }
            }
            if parent.is_root() {
                break;
            }
            parent = parent.base_name();
        }
        Vec::new()
    }

    /// Answers `qname qtype` (class IN) authoritatively, chasing CNAMEs inside the fixture's zones.
    /// Names outside every zone get REFUSED. The first owner keeps the spelling of `qname` as asked.
    pub fn lookup(&self, qname: &Name, qtype: RecordType, qclass: DNSClass) -> Answer {
        let refused =
            Answer { rcode: ResponseCode::Refused, authoritative: false, answers: Vec::new(), authorities: Vec::new() };
        if qclass != DNSClass::IN {
            return refused;
        }
        let Some(first_zone) = self.zone_for(qname).cloned() else {
            return refused;
        };
        let mut zone = first_zone;
        let mut name = qname.clone();
        let mut answers: Vec<Record> = Vec::new();
        for _ in 0..10 {
            let here = self.at_or_wildcard(&name, &zone);
            let matching: Vec<Record> =
                here.iter().filter(|r| qtype == RecordType::ANY || r.record_type() == qtype).cloned().collect();
            if !matching.is_empty() {
                answers.extend(matching.into_iter().map(|mut r| {
                    if r.name == name {
                        r.name = name.clone();
                    }
                    r
                }));
                return positive(answers);
            }
            let cname = here.iter().find(|r| r.record_type() == RecordType::CNAME).cloned();
            if let Some(mut cname) = cname {
                cname.name = name.clone();
                let target = match &cname.data {
                    RData::CNAME(c) => c.0.clone(),
                    _ => return positive(answers),
                };
                answers.push(cname);
                match self.zone_for(&target) {
                    Some(z) => {
                        zone = z.clone();
                        name = target;
                        continue;
                    }
                    None => return positive(answers),
                }
            }
            if here.is_empty() && !self.exists(&name) {
                return Answer {
                    rcode: ResponseCode::NXDomain,
                    authoritative: true,
                    answers,
                    authorities: self.soa_for(&zone),
                };
            }
            return Answer {
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers,
                authorities: self.soa_for(&zone),
            };
        }
        positive(answers)
    }
}

fn positive(answers: Vec<Record>) -> Answer {
    Answer { rcode: ResponseCode::NoError, authoritative: true, answers, authorities: Vec::new() }
}

fn push_unique(zones: &mut Vec<Name>, name: Name) {
    if !zones.contains(&name) {
        zones.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const ZONE: &str = "$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n\
www IN A 192.0.2.1\nalias IN CNAME www\nout IN CNAME www.other.test.\n*.wild IN A 192.0.2.9\n\
a.b.c IN TXT \"deep\"\n";

    fn names(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.to_string()).collect()
    }

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn positive_cname_nodata_nxdomain_refused() {
        let z = ZoneSet::parse(ZONE).unwrap();
        let a = z.lookup(&n("WWW.example.org."), RecordType::A, DNSClass::IN);
        assert_eq!(names(&a.answers), vec!["WWW.example.org. 300 IN A 192.0.2.1"]);
        let a = z.lookup(&n("alias.example.org."), RecordType::A, DNSClass::IN);
        assert_eq!(
            names(&a.answers),
            vec!["alias.example.org. 300 IN CNAME www.example.org.", "www.example.org. 300 IN A 192.0.2.1"]
        );
        let a = z.lookup(&n("out.example.org."), RecordType::A, DNSClass::IN);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(a.answers.len(), 1);
        let a = z.lookup(&n("www.example.org."), RecordType::AAAA, DNSClass::IN);
        assert_eq!((a.rcode, a.answers.len(), a.authorities.len()), (ResponseCode::NoError, 0, 1));
        let a = z.lookup(&n("b.c.example.org."), RecordType::A, DNSClass::IN);
        assert_eq!((a.rcode, a.authorities.len()), (ResponseCode::NoError, 1));
        let a = z.lookup(&n("nope.example.org."), RecordType::A, DNSClass::IN);
        assert_eq!((a.rcode, a.authorities.len()), (ResponseCode::NXDomain, 1));
        assert_eq!(a.authorities[0].ttl, 60, "a negative answer's SOA has min(TTL 300, MINIMUM 60)");
        let a = z.lookup(&n("x.wild.example.org."), RecordType::A, DNSClass::IN);
        assert_eq!(names(&a.answers), vec!["x.wild.example.org. 300 IN A 192.0.2.9"]);
        let a = z.lookup(&n("www.other.test."), RecordType::A, DNSClass::IN);
        assert_eq!((a.rcode, a.authoritative), (ResponseCode::Refused, false));
    }
}
