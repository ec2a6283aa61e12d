//! Upstream selection policies: the order in which one query tries the upstreams.

use std::sync::atomic::{AtomicU32, Ordering};

use rand::Rng;

/// Most upstreams one `forward` may have.
pub const MAX_UPSTREAMS: usize = 15;

/// How upstreams are ordered for each query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// A fresh random permutation per query (default).
    Random,
    /// Rotate the configured order by an atomic counter.
    RoundRobin,
    /// Always the configured order.
    Sequential,
}

impl PolicyKind {
    /// The Corefile spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Random => "random",
            PolicyKind::RoundRobin => "round_robin",
            PolicyKind::Sequential => "sequential",
        }
    }
}

/// An ordering of upstream indices, kept on the stack.
#[derive(Clone, Copy, Debug)]
pub struct Order {
    idx: [u8; MAX_UPSTREAMS],
    len: usize,
}

impl Order {
    /// The indices in order.
    pub fn as_slice(&self) -> &[u8] {
        &self.idx[..self.len]
    }
}

/// A policy with its state.
#[derive(Debug)]
pub struct Policy {
    kind: PolicyKind,
    robin: AtomicU32,
}

impl Policy {
    /// A policy of `kind`.
    pub fn new(kind: PolicyKind) -> Policy {
        Policy { kind, robin: AtomicU32::new(0) }
    }

    /// The order for one query over `n` upstreams (`n` ≤ [`MAX_UPSTREAMS`]).
    pub fn order(&self, n: usize) -> Order {
        let n = n.min(MAX_UPSTREAMS);
        let mut idx = [0u8; MAX_UPSTREAMS];
        for (i, slot) in idx.iter_mut().enumerate().take(n) {
            *slot = i as u8;
        }
        match self.kind {
            PolicyKind::Sequential => {}
            PolicyKind::Random => shuffle(&mut idx[..n]),
            PolicyKind::RoundRobin if n > 0 => {
                let first = (self.robin.fetch_add(1, Ordering::Relaxed).wrapping_add(1) as usize) % n;
                // CoreDNS puts the chosen upstream first, then the others in configured order.
                let mut out = [0u8; MAX_UPSTREAMS];
                out[0] = first as u8;
                let mut k = 1;
                for i in 0..n {
                    if i != first {
                        out[k] = i as u8;
                        k += 1;
                    }
                }
                idx = out;
            }
            PolicyKind::RoundRobin => {}
        }
        Order { idx, len: n }
    }
}

/// Fisher-Yates shuffle with the thread-local RNG.
pub fn shuffle(s: &mut [u8]) {
    let mut rng = rand::rng();
    for i in (1..s.len()).rev() {
        let j = rng.random_range(0..=i);
        s.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn round_robin_rotates_first_choice() {
        let p = Policy::new(PolicyKind::RoundRobin);
        let firsts: Vec<u8> = (0..6).map(|_| p.order(3).as_slice()[0]).collect();
        assert_eq!(firsts, vec![1, 2, 0, 1, 2, 0]);
        assert_eq!(p.order(3).as_slice(), &[1, 0, 2]);
        assert_eq!(p.order(3).as_slice(), &[2, 0, 1]);
    }

    #[test]
    fn sequential_and_random_are_permutations() {
        assert_eq!(Policy::new(PolicyKind::Sequential).order(4).as_slice(), &[0, 1, 2, 3]);
        let mut r = Policy::new(PolicyKind::Random).order(5).as_slice().to_vec();
        r.sort();
        assert_eq!(r, vec![0, 1, 2, 3, 4]);
    }
}
