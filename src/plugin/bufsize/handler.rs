//! The `bufsize` handler: lowers the query's OPT UDP size to the configured value.

use futures_util::future::BoxFuture;

use crate::dnsmsg::opt_class_offset;
use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Request};

/// The running `bufsize` plugin.
#[derive(Debug, Clone, Copy)]
pub struct Bufsize {
    /// Maximum UDP size passed on.
    pub size: u16,
}

impl Bufsize {
    /// Caps the advertised size in `req` (wire and parsed EDNS kept in sync).
    pub fn apply(&self, req: &mut Request) {
        let Some(edns) = req.edns.as_mut() else { return };
        if edns.udp_size <= self.size {
            return;
        }
        if let Some(off) = opt_class_offset(&req.wire) {
            if let Some(slot) = req.wire.get_mut(off..off + 2) {
                slot.copy_from_slice(&self.size.to_be_bytes());
                edns.udp_size = self.size;
            }
        }
    }
}

impl Plugin for Bufsize {
    fn name(&self) -> &'static str {
        "bufsize"
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        self.apply(req);
        next.serve(req)
    }
}
