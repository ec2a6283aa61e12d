//! The `loop` plugin: detects forwarding loops by sending itself a random HINFO probe at
//! startup and counting how often that probe comes back.

pub mod handler;
pub mod setup;
