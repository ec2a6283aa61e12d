//! The `health` plugin: an HTTP `/health` endpoint answering 200 `OK` (no query handler). The
//! endpoint itself, its self-probe and lameduck live in [`crate::observe::http`].

pub mod setup;
