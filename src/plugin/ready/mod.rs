//! The `ready` plugin: an HTTP `/ready` endpoint reporting whether the plugins of the blocks
//! using it are ready (no query handler). Checks and endpoint live in [`crate::observe`].

pub mod setup;
