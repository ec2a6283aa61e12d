//! The `weighted` policy: a weight file gives addresses of a name relative weights; the
//! address put first in A/AAAA/SRV replies is drawn with those weights.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, Record, RecordType};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// Parsed weight file: owner name (as written, FQDN) → (address, weight).
pub type Weights = HashMap<String, Vec<(IpAddr, u8)>>;

/// Parses weight-file text (CoreDNS's format: a domain line, then `IP WEIGHT` lines).
pub fn parse_weights(text: &str, file: &str) -> Result<Weights, String> {
    let mut domains: Weights = HashMap::new();
    let mut dname = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [name] => {
                if name.parse::<IpAddr>().is_ok() {
                    return Err(format!(
                        "wrong domain name:\"{name}\" in weight file {file}. (Maybe a missing weight value?)"
                    ));
                }
                dname = crate::dnsname::fqdn(name);
                domains.entry(dname.clone()).or_default();
            }
            [ip, weight] => {
                let ip: IpAddr = ip.parse().map_err(|_| format!("wrong IP address:\"{ip}\" in weight file {file}"))?;
                let w: u8 = weight
                    .parse()
                    .ok()
                    .filter(|w| *w > 0)
                    .ok_or_else(|| format!("wrong weight value:\"{weight}\" in weight file {file}"))?;
                if dname.is_empty() {
                    return Err(format!("missing domain name in weight file {file}"));
                }
                domains.entry(dname.clone()).or_default().push((ip, w));
            }
            _ => return Err(format!("could not parse weight line:\"{line}\" in weight file {file}")),
        }
    }
    Ok(domains)
}

#[derive(Default)]
struct State {
    digest: Option<Vec<u8>>,
    domains: Weights,
}

/// A weight file and its current contents.
pub struct WeightedRR {
    file: String,
    state: Mutex<State>,
}

/// Why reading the weight file failed.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be opened.
    Open,
    /// The file did not parse.
    Parse(String),
}

impl WeightedRR {
    /// Reads the file once and, with a non-zero `reload` and a tokio runtime, re-reads it
    /// periodically (until the returned value is dropped). A missing file is an error unless
    /// `reload` is set (then it is retried).
    pub fn start(file: &str, reload: Duration) -> Result<Arc<WeightedRR>, String> {
        let w = Arc::new(WeightedRR { file: file.to_string(), state: Mutex::new(State::default()) });
        match w.update() {
            Ok(()) => {}
            Err(LoadError::Open) if !reload.is_zero() => tracing::warn!(
                target: "plugin/loadbalance",
                "Failed to open weight file:weight file open error. Will try again in {:?}",
                reload
            ),
            Err(LoadError::Open) => return Err("weight file open error".into()),
            Err(LoadError::Parse(e)) => return Err(e),
        }
        if !reload.is_zero() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let weak: Weak<WeightedRR> = Arc::downgrade(&w);
                rt.spawn(async move {
                    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + reload, reload);
                    loop {
                        tick.tick().await;
                        let Some(w) = weak.upgrade() else { return };
                        match w.update() {
                            Ok(()) => {}
                            Err(LoadError::Open) => {
                                tracing::error!(target: "plugin/loadbalance", "weight file open error")
                            }
                            Err(LoadError::Parse(e)) => tracing::error!(target: "plugin/loadbalance", "{e}"),
                        }
                    }
                });
            }
        }
        Ok(w)
    }

    /// Re-reads the file when its contents changed.
    pub fn update(&self) -> Result<(), LoadError> {
        let bytes = std::fs::read(&self.file).map_err(|_| LoadError::Open)?;
        let digest = Sha256::digest(&bytes).to_vec();
        if self.state.lock().digest.as_deref() == Some(digest.as_slice()) {
            return Ok(());
        }
        let domains = parse_weights(&String::from_utf8_lossy(&bytes), &self.file).map_err(LoadError::Parse)?;
        let mut st = self.state.lock();
        st.digest = Some(digest);
        st.domains = domains;
        tracing::info!(target: "plugin/loadbalance", "Successfully reloaded weight file {}", self.file);
        Ok(())
    }

    fn top_index(&self, address: &[Record]) -> Option<usize> {
        let st = self.state.lock();
        let mut weighted: Vec<(usize, u8)> = address
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let ip = match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                };
                let w = st
                    .domains
                    .get(&r.name.to_ascii())
                    .and_then(|ws| ws.iter().find(|(a, _)| Some(*a) == ip))
                    .map(|(_, w)| *w)
                    .unwrap_or(1);
                (i, w)
            })
            .collect();
        let total: u32 = weighted.iter().map(|(_, w)| *w as u32).sum();
        if total == 0 {
            return None;
        }
        weighted.sort_by_key(|w| std::cmp::Reverse(w.1));
        let v = rand::random::<u32>() % total;
        let mut acc = 0u32;
        for (i, w) in weighted {
            acc += w as u32;
            if v < acc {
                return Some(i);
            }
        }
        None
    }

    fn reorder(&self, input: Vec<Record>) -> Vec<Record> {
        let (mut cname, mut address, mut mx, mut rest) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in input {
            match r.record_type() {
                RecordType::CNAME => cname.push(r),
                RecordType::A | RecordType::AAAA => address.push(r),
                RecordType::MX => mx.push(r),
                _ => rest.push(r),
            }
        }
        if address.is_empty() {
            cname.extend(rest);
            cname.extend(mx);
            return cname;
        }
        if let Some(top) = self.top_index(&address) {
            address.swap(0, top);
        }
        cname.extend(rest);
        cname.extend(address);
        cname.extend(mx);
        cname
    }

    /// Applies the weighted choice to A, AAAA and SRV replies.
    pub fn apply(&self, m: &mut Message) {
        let Some(q) = m.queries.first() else { return };
        if !matches!(q.query_type(), RecordType::A | RecordType::AAAA | RecordType::SRV) {
            return;
        }
        m.answers = self.reorder(std::mem::take(&mut m.answers));
        m.additionals = self.reorder(std::mem::take(&mut m.additionals));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn weight_file_parsing() {
        let w = parse_weights("# c\nwww.example.org\n10.0.0.1 100\n10.0.0.2 1\nother.org.\n::1 5\n", "w").unwrap();
        assert_eq!(w["www.example.org."], vec![("10.0.0.1".parse().unwrap(), 100), ("10.0.0.2".parse().unwrap(), 1)]);
        assert_eq!(w["other.org."].len(), 1);
        assert!(parse_weights("10.0.0.1 1\n", "w").unwrap_err().contains("missing domain name"));
        assert!(parse_weights("a.org\n10.0.0.1 0\n", "w").unwrap_err().contains("wrong weight value"));
        assert!(parse_weights("a.org\n10.0.0.1 300\n", "w").unwrap_err().contains("wrong weight value"));
        assert!(parse_weights("10.0.0.1\n", "w").unwrap_err().contains("wrong domain name"));
        assert!(parse_weights("a b c\n", "w").unwrap_err().contains("could not parse weight line"));
    }
}
