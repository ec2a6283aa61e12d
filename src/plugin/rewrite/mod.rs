//! The `rewrite` plugin: rewrites the question (name, type, class) before the rest of the chain
//! and the response (names, values, TTLs, rcode) after it.

pub mod edns0;
pub mod handler;
pub mod rules;
pub mod setup;
