//! The `minimal` plugin: strips authority and additional sections from positive answers.

pub mod handler;
pub mod setup;
