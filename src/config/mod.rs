//! Typed configuration: the plugin registry, CoreDNS's fixed plugin order, and the plan
//! (listeners → zones → chains) built from parsed server blocks.

pub mod build;
pub mod duration;
pub mod explain;
pub mod keys;
pub mod order;
pub mod plan;
pub mod registry;

pub use build::{build_plan, PlanOptions};
pub use explain::explain;
pub use keys::normalize_key;
pub use plan::{BlockPlan, ListenerPlan, Plan, Transport, ZoneKey};
