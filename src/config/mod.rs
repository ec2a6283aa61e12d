//! Typed configuration: the plugin registry, CoreDNS's fixed plugin order, and the plan
//! (listeners → zones → chains) built from parsed server blocks.

pub mod order;
pub mod plan;
pub mod registry;

pub use plan::{BlockPlan, ListenerPlan, Plan, Transport, ZoneKey};
