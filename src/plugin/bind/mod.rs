//! The `bind` plugin: restricts the addresses a server block listens on. Setup-only: it adds
//! no handler to the chain; the plan reads [`setup::Config::listen_hosts`].

pub mod ifaces;
pub mod setup;
