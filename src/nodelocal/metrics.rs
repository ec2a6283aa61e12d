//! node-cache's own metric, `coredns_nodecache_setup_errors_total{errortype}`.
//!
//! The counter always counts; it is exposed only after [`register_setup_error_metric`]
//! (node-cache registers it only when its metrics listener started).

use std::sync::{LazyLock, Once};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The `errortype` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetupErrorKind {
    /// An iptables check/insert/delete failed.
    Iptables,
    /// iptables failed because another process held the xtables lock.
    IptablesLock,
    /// Creating the dummy interface failed.
    InterfaceAdd,
    /// Checking the dummy interface failed.
    InterfaceCheck,
    /// Validating, reading or writing the Corefile failed.
    Configmap,
}

impl SetupErrorKind {
    /// All kinds, in node-cache's pre-creation order.
    pub const ALL: [SetupErrorKind; 5] = [
        SetupErrorKind::Iptables,
        SetupErrorKind::IptablesLock,
        SetupErrorKind::InterfaceAdd,
        SetupErrorKind::InterfaceCheck,
        SetupErrorKind::Configmap,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SetupErrorKind::Iptables => "iptables",
            SetupErrorKind::IptablesLock => "iptables_lock",
            SetupErrorKind::InterfaceAdd => "interface_add",
            SetupErrorKind::InterfaceCheck => "interface_check",
            SetupErrorKind::Configmap => "configmap",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorTypeLabels {
    errortype: String,
}

static SETUP_ERRORS: LazyLock<Family<ErrorTypeLabels, Counter>> = LazyLock::new(Family::default);

fn labels(kind: SetupErrorKind) -> ErrorTypeLabels {
    ErrorTypeLabels { errortype: kind.as_str().to_string() }
}

/// Metric name as registered (the encoder appends `_total`).
pub const SETUP_ERRORS_NAME: &str = "coredns_nodecache_setup_errors";
/// Help text.
pub const SETUP_ERRORS_HELP: &str = "The number of errors during periodic network setup for node-cache";

/// Registers the counter in the process-wide registry with all five label values at 0.
/// Idempotent.
pub fn register_setup_error_metric() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for kind in SetupErrorKind::ALL {
            let _ = SETUP_ERRORS.get_or_create(&labels(kind));
        }
        crate::observe::register(SETUP_ERRORS_NAME, SETUP_ERRORS_HELP, SETUP_ERRORS.clone());
    });
}

/// Counts one setup error.
pub fn inc(kind: SetupErrorKind) {
    SETUP_ERRORS.get_or_create(&labels(kind)).inc();
}

/// Current value for `kind` (for tests and diagnostics).
pub fn value(kind: SetupErrorKind) -> u64 {
    SETUP_ERRORS.get_or_create(&labels(kind)).get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_with_all_labels_and_total_suffix() {
        register_setup_error_metric();
        let before = value(SetupErrorKind::InterfaceCheck);
        inc(SetupErrorKind::InterfaceCheck);
        assert_eq!(value(SetupErrorKind::InterfaceCheck), before + 1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &crate::observe::registry().lock()).unwrap();
        assert!(
            text.contains(&format!("# HELP coredns_nodecache_setup_errors {SETUP_ERRORS_HELP}."))
                || text.contains("# HELP coredns_nodecache_setup_errors "),
            "{text}"
        );
        assert!(text.contains("# TYPE coredns_nodecache_setup_errors counter"), "{text}");
        for kind in SetupErrorKind::ALL {
            assert!(
                text.contains(&format!("coredns_nodecache_setup_errors_total{{errortype=\"{}\"}}", kind.as_str())),
                "{kind:?} missing in {text}"
            );
        }
    }
}
