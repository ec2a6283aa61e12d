//! The caches of a running instance as bytes, for a successor to load: a snapshot written when
//! an instance stops with no successor, or streamed to a starting instance.
//!
//! Layout (integers little-endian): the magic `NCSNAP01`, the program version (u16 length and
//! bytes), the wall-clock time of writing (u64 ms since the Unix epoch), the number of caches
//! (u32); per cache its carry-over key (u32 length and bytes, it covers the block, the cache's
//! configuration and everything after it in the chain) and, for the success then the denial
//! store, an entry count (u32) and the entries, least recently used first; then an FNV-1a-64
//! checksum of everything before it. An entry is its key (u64), its age when written (u64 ms),
//! its TTL (u32), the question's end, type and class (u16 each), kind and answering (u8 each),
//! the reply (u16 length and bytes) and its TTL offsets (u16 count, u16 each).
//!
//! Loading checks the magic, the version, the checksum and every entry's bounds; entries whose
//! TTL ran out while no instance served (wall-clock time since writing is added to their age)
//! are dropped, and caches whose key the running configuration does not have are skipped.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::classify::Kind;
use super::store::{Entry, Store, Stores};

const MAGIC: &[u8; 8] = b"NCSNAP01";

/// The largest snapshot accepted (a full default cache is a few MiB).
pub const MAX_BYTES: usize = 256 << 20;

/// Why a snapshot was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a snapshot, or cut short.
    Truncated,
    /// The checksum does not match.
    Corrupt,
    /// Written by another version of the program.
    Version(String),
    /// Larger than [`MAX_BYTES`].
    TooLarge(usize),
    /// An entry whose fields point outside its reply.
    BadEntry,
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Truncated => f.write_str("not a cache snapshot, or truncated"),
            SnapshotError::Corrupt => f.write_str("checksum mismatch (corrupt)"),
            SnapshotError::Version(v) => write!(f, "written by version {v:?}, this is {}", env!("CARGO_PKG_VERSION")),
            SnapshotError::TooLarge(n) => write!(f, "{n} bytes is more than the {MAX_BYTES} accepted"),
            SnapshotError::BadEntry => f.write_str("an entry does not fit its reply (corrupt)"),
        }
    }
}

/// What loading a snapshot did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadStats {
    /// Entries added to the caches.
    pub loaded: usize,
    /// Entries whose TTL had run out.
    pub expired: usize,
    /// Caches in the snapshot the running configuration does not have.
    pub unmatched_caches: usize,
}

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// FNV-1a-64 of `bytes` (the snapshot's checksum).
fn fnv1a(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    h.finish()
}

fn kind_code(k: Kind) -> u8 {
    match k {
        Kind::NoError => 0,
        Kind::NameError => 1,
        Kind::ServerError => 2,
        Kind::NoData => 3,
        Kind::Delegation => 4,
        Kind::Meta => 5,
        Kind::Update => 6,
        Kind::OtherError => 7,
    }
}

fn kind_from(code: u8) -> Option<Kind> {
    Some(match code {
        0 => Kind::NoError,
        1 => Kind::NameError,
        2 => Kind::ServerError,
        3 => Kind::NoData,
        4 => Kind::Delegation,
        5 => Kind::Meta,
        6 => Kind::Update,
        7 => Kind::OtherError,
        _ => return None,
    })
}

fn put_bytes16(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_bytes32(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_store(out: &mut Vec<u8>, store: &Store, now: Instant) {
    let entries = store.entries_oldest_first();
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (key, e) in entries {
        out.extend_from_slice(&key.to_le_bytes());
        let age = now.saturating_duration_since(e.stored).as_millis() as u64;
        out.extend_from_slice(&age.to_le_bytes());
        out.extend_from_slice(&e.orig_ttl.to_le_bytes());
        out.extend_from_slice(&e.qname_end.to_le_bytes());
        out.extend_from_slice(&e.qtype.to_le_bytes());
        out.extend_from_slice(&e.qclass.to_le_bytes());
        out.push(kind_code(e.kind));
        out.push(u8::from(e.answering));
        put_bytes16(out, e.wire());
        let offs: Vec<u16> = e.ttl_offs().collect();
        out.extend_from_slice(&(offs.len() as u16).to_le_bytes());
        for o in offs {
            out.extend_from_slice(&o.to_le_bytes());
        }
    }
}

/// Writes every cache (carry-over key and stores) as of `now`.
pub fn encode(caches: &[(String, Arc<Stores>)], now: Instant) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * 1024);
    out.extend_from_slice(MAGIC);
    put_bytes16(&mut out, env!("CARGO_PKG_VERSION").as_bytes());
    out.extend_from_slice(&wall_ms().to_le_bytes());
    out.extend_from_slice(&(caches.len() as u32).to_le_bytes());
    for (key, stores) in caches {
        put_bytes32(&mut out, key.as_bytes());
        put_store(&mut out, &stores.success, now);
        put_store(&mut out, &stores.denial, now);
    }
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// A bounds-checked reader over the snapshot body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self.pos.checked_add(n).ok_or(SnapshotError::Truncated)?;
        let b = self.buf.get(self.pos..end).ok_or(SnapshotError::Truncated)?;
        self.pos = end;
        Ok(b)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, SnapshotError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// One decoded entry before it is placed.
struct Decoded {
    key: u64,
    age_ms: u64,
    entry: Entry,
}

fn read_entry(r: &mut Reader<'_>, placeholder: Instant) -> Result<Decoded, SnapshotError> {
    let key = r.u64()?;
    let age_ms = r.u64()?;
    let orig_ttl = r.u32()?;
    let (qname_end, qtype, qclass) = (r.u16()?, r.u16()?, r.u16()?);
    let kind = kind_from(r.u8()?).ok_or(SnapshotError::BadEntry)?;
    let answering = r.u8()? != 0;
    let wire_len = usize::from(r.u16()?);
    let wire = r.take(wire_len)?.to_vec();
    let n = usize::from(r.u16()?);
    let mut offs = Vec::with_capacity(n);
    for _ in 0..n {
        offs.push(r.u16()?);
    }
    let fits = wire.len() >= crate::server::wire::HEADER_LEN
        && usize::from(qname_end) + 4 <= wire.len()
        && offs.iter().all(|o| usize::from(*o) + 4 <= wire.len());
    if !fits {
        return Err(SnapshotError::BadEntry);
    }
    let entry = Entry::new(wire, offs, qname_end, qtype, qclass, kind, answering, orig_ttl, placeholder);
    Ok(Decoded { key, age_ms, entry })
}

/// Checks `bytes` and adds its entries to the caches of `caches` with the same carry-over key,
/// aged by the wall-clock time since the snapshot was written. Nothing is added unless the
/// whole snapshot checks out.
pub fn load(bytes: &[u8], caches: &[(String, Arc<Stores>)], now: Instant) -> Result<LoadStats, SnapshotError> {
    if bytes.len() > MAX_BYTES {
        return Err(SnapshotError::TooLarge(bytes.len()));
    }
    if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::Truncated);
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    let mut r = Reader { buf: body, pos: MAGIC.len() };
    let version_len = usize::from(r.u16()?);
    let version = String::from_utf8_lossy(r.take(version_len)?).into_owned();
    let mut want = [0u8; 8];
    want.copy_from_slice(sum);
    if fnv1a(body) != u64::from_le_bytes(want) {
        return Err(SnapshotError::Corrupt);
    }
    if version != env!("CARGO_PKG_VERSION") {
        return Err(SnapshotError::Version(version));
    }
    let elapsed = wall_ms().saturating_sub(r.u64()?);
    let count = r.u32()?;
    let mut placed: Vec<(Arc<Stores>, [Vec<Decoded>; 2])> = Vec::new();
    let mut stats = LoadStats::default();
    for _ in 0..count {
        let key_len = r.u32()? as usize;
        let key = String::from_utf8_lossy(r.take(key_len)?).into_owned();
        let mut stores: [Vec<Decoded>; 2] = [Vec::new(), Vec::new()];
        for store in &mut stores {
            let n = r.u32()?;
            for _ in 0..n {
                store.push(read_entry(&mut r, now)?);
            }
        }
        match caches.iter().find(|(k, _)| *k == key) {
            Some((_, target)) => placed.push((target.clone(), stores)),
            None => stats.unmatched_caches += 1,
        }
    }
    if r.pos != body.len() {
        return Err(SnapshotError::Truncated);
    }
    for (target, [success, denial]) in placed {
        for (store, entries) in [(&target.success, success), (&target.denial, denial)] {
            for d in entries {
                let age = d.age_ms.saturating_add(elapsed);
                let stored = now.checked_sub(Duration::from_millis(age));
                match stored {
                    Some(stored) if age < u64::from(d.entry.orig_ttl) * 1000 => {
                        let mut entry = d.entry;
                        entry.stored = stored;
                        store.add(d.key, Arc::new(entry));
                        stats.loaded += 1;
                    }
                    _ => stats.expired += 1,
                }
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn reply(name: u8) -> (Vec<u8>, Vec<u16>) {
        // Header, question `<name>.` A IN, one A record with TTL 60.
        let mut w = vec![0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        w.extend_from_slice(&[1, name, 0, 0, 1, 0, 1]);
        let ttl_off = w.len() + 2 + 4;
        w.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        (w, vec![ttl_off as u16])
    }

    fn stores_with(n: u8, ttl: u32, stored: Instant) -> Arc<Stores> {
        let s = Arc::new(Stores { success: Store::new(1000), denial: Store::new(1000) });
        for i in 0..n {
            let (w, offs) = reply(b'a' + i);
            s.success.add(u64::from(i), Arc::new(Entry::new(w, offs, 15, 1, 1, Kind::NoError, true, ttl, stored)));
        }
        s
    }

    #[test]
    fn round_trip_keeps_entries_and_their_age() {
        let now = Instant::now();
        let written_at = now.checked_sub(Duration::from_secs(10)).unwrap_or(now);
        let src = stores_with(5, 60, written_at);
        let bytes = encode(&[("k".to_string(), src)], now);
        let dst = Arc::new(Stores { success: Store::new(1000), denial: Store::new(1000) });
        let stats = load(&bytes, &[("k".to_string(), dst.clone())], now).expect("loads");
        assert_eq!(stats, LoadStats { loaded: 5, expired: 0, unmatched_caches: 0 });
        let e = dst.success.peek(3).expect("entry 3");
        assert_eq!(e.wire(), reply(b'd').0.as_slice());
        assert_eq!(e.ttl_offs().collect::<Vec<_>>(), reply(b'd').1);
        let left = e.ttl(now);
        assert!((49..=50).contains(&left), "10 s of 60 used, {left} left");
    }

    #[test]
    fn expired_entries_and_other_configurations_are_dropped() {
        let now = Instant::now();
        let old = now.checked_sub(Duration::from_secs(61)).unwrap_or(now);
        let bytes = encode(&[("k".to_string(), stores_with(3, 60, old))], now);
        let dst = Arc::new(Stores { success: Store::new(1000), denial: Store::new(1000) });
        let stats = load(&bytes, &[("k".to_string(), dst.clone())], now).expect("loads");
        assert_eq!(stats, LoadStats { loaded: 0, expired: 3, unmatched_caches: 0 });
        let stats = load(&bytes, &[("other".to_string(), dst.clone())], now).expect("loads");
        assert_eq!(stats, LoadStats { loaded: 0, expired: 0, unmatched_caches: 1 });
        assert!(dst.success.is_empty());
    }

    #[test]
    fn corrupt_truncated_and_foreign_snapshots_are_refused_whole() {
        let now = Instant::now();
        let bytes = encode(&[("k".to_string(), stores_with(4, 60, now))], now);
        let dst = Arc::new(Stores { success: Store::new(1000), denial: Store::new(1000) });
        let caches = [("k".to_string(), dst.clone())];
        for cut in [0, 7, 20, bytes.len() / 2, bytes.len() - 1] {
            let err = load(&bytes[..cut], &caches, now).expect_err("truncated");
            assert!(matches!(err, SnapshotError::Truncated | SnapshotError::Corrupt), "cut {cut}: {err}");
        }
        let mut flipped = bytes.clone();
        flipped[40] ^= 0x10;
        assert_eq!(load(&flipped, &caches, now), Err(SnapshotError::Corrupt));
        let mut foreign = bytes.clone();
        let at = MAGIC.len() + 2;
        foreign[at] = b'9';
        let body_len = foreign.len() - 8;
        let sum = fnv1a(&foreign[..body_len]);
        foreign[body_len..].copy_from_slice(&sum.to_le_bytes());
        assert!(matches!(load(&foreign, &caches, now), Err(SnapshotError::Version(_))));
        assert_eq!(load(b"garbage", &caches, now), Err(SnapshotError::Truncated));
        assert!(dst.success.is_empty(), "nothing is added from a refused snapshot");
    }

    #[test]
    fn an_entry_pointing_outside_its_reply_is_refused() {
        let now = Instant::now();
        let s = Arc::new(Stores { success: Store::new(1000), denial: Store::new(1000) });
        let (w, _) = reply(b'a');
        let bad_off = w.len() as u16;
        s.success.add(1, Arc::new(Entry::new(w, vec![bad_off], 15, 1, 1, Kind::NoError, true, 60, now)));
        let bytes = encode(&[("k".to_string(), s)], now);
        let dst = Arc::new(Stores { success: Store::new(1000), denial: Store::new(1000) });
        assert_eq!(load(&bytes, &[("k".to_string(), dst)], now), Err(SnapshotError::BadEntry));
    }
}
