//! The `template` plugin: answers queries whose name matches a regex with records rendered from
//! Go-style text templates.

pub mod common;
pub mod expr;
pub mod gotmpl;
pub mod handler;
pub mod presentation;
pub mod rrtext;
pub mod setup;
