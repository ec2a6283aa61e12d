//! The `cancel` handler: runs the rest of the chain under a deadline.

use std::time::Duration;

use futures_util::future::BoxFuture;
use hickory_proto::op::ResponseCode;

use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Request};

/// The running `cancel` plugin.
#[derive(Debug, Clone, Copy)]
pub struct Cancel {
    /// Deadline for the rest of the chain.
    pub timeout: Duration,
}

impl Plugin for Cancel {
    fn name(&self) -> &'static str {
        "cancel"
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, next.serve(req)).await {
                Ok(out) => out,
                Err(_) => Outcome::unwritten(ResponseCode::ServFail, Some("context deadline exceeded".to_string())),
            }
        })
    }
}
