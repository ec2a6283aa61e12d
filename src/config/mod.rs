//! Typed configuration: the plugin registry, CoreDNS's fixed plugin order, and the plan
//! (listeners → zones → chains) built from parsed server blocks.

pub mod build;
pub mod explain;
pub mod keys;
pub mod order;
pub mod plan;
pub mod registry;

pub use build::{build_plan, load_file, load_str, PlanOptions};
pub use explain::{explain, startup_text};
pub use keys::normalize_key;
pub use plan::{BlockPlan, ListenerPlan, Plan, Transport, ZoneKey};
