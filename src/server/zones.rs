//! Zone routing for one listener: the longest matching zone wins, `.` is tried last, DS
//! queries prefer the least specific non-root match.

use std::collections::HashMap;
use std::sync::Arc;

/// What a listener routes to: zone → block.
#[derive(Clone)]
pub struct ZoneTable<B> {
    zones: HashMap<String, Arc<B>>,
    root: Option<Arc<B>>,
}

impl<B> Default for ZoneTable<B> {
    fn default() -> Self {
        ZoneTable { zones: HashMap::new(), root: None }
    }
}

/// The offsets where each label of a presentation-form name starts (first is 0), honouring
/// `\.` escapes.
fn label_starts(name: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = name.as_bytes();
    let mut next_start = Some(0usize);
    std::iter::from_fn(move || {
        let start = next_start.take()?;
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'.' => {
                    if i + 1 < bytes.len() {
                        next_start = Some(i + 1);
                    }
                    break;
                }
                _ => i += 1,
            }
        }
        Some(start)
    })
}

impl<B> ZoneTable<B> {
    /// Adds `zone` (lower-case FQDN) served by `block`; the first block added for a zone wins.
    pub fn insert(&mut self, zone: &str, block: Arc<B>) {
        if zone == "." {
            self.root.get_or_insert(block);
        } else {
            self.zones.entry(zone.to_string()).or_insert(block);
        }
    }

    /// Routes a lower-cased FQDN qname; returns the block and its zone.
    pub fn route(&self, qname_lower: &str, is_ds: bool) -> Option<(&str, &Arc<B>)> {
        let mut ds_match = None;
        for start in label_starts(qname_lower) {
            let suffix = &qname_lower[start..];
            if suffix == "." {
                break;
            }
            if let Some((z, b)) = self.zones.get_key_value(suffix) {
                if !is_ds {
                    return Some((z.as_str(), b));
                }
                ds_match = Some((z.as_str(), b));
            }
        }
        if ds_match.is_some() {
            return ds_match;
        }
        self.root.as_ref().map(|b| (".", b))
    }

    /// True when nothing is served.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty() && self.root.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn table() -> ZoneTable<&'static str> {
        let mut t = ZoneTable::default();
        t.insert("example.org.", Arc::new("org"));
        t.insert("sub.example.org.", Arc::new("sub"));
        t.insert(".", Arc::new("root"));
        t
    }

    #[test]
    fn longest_match_wins() {
        let t = table();
        let r = |q: &str| t.route(q, false).map(|(z, b)| (z.to_string(), **b));
        assert_eq!(r("www.sub.example.org."), Some(("sub.example.org.".into(), "sub")));
        assert_eq!(r("sub.example.org."), Some(("sub.example.org.".into(), "sub")));
        assert_eq!(r("xsub.example.org."), Some(("example.org.".into(), "org")));
        assert_eq!(r("other.test."), Some((".".into(), "root")));
        assert_eq!(r("."), Some((".".into(), "root")));
    }

    #[test]
    fn ds_prefers_parent() {
        let t = table();
        assert_eq!(t.route("sub.example.org.", true).map(|(z, _)| z), Some("example.org."));
    }

    #[test]
    fn escaped_dots_are_not_label_breaks() {
        let mut t: ZoneTable<&str> = ZoneTable::default();
        t.insert("org.", Arc::new("org"));
        assert_eq!(label_starts("a\\.b.org.").collect::<Vec<_>>(), vec![0, 5]);
        assert!(t.route("a\\.b.org.", false).is_some());
        assert!(t.route("net.", false).is_none());
    }
}
