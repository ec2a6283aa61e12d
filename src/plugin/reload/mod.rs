//! The `reload` plugin's syntax: how often the Corefile is checked for changes. Setup-only;
//! the watching itself lives in [`crate::reload`].

pub mod setup;
