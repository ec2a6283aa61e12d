//! Log output in CoreDNS's line shapes: `[LEVEL] plugin/<name>: msg` or `[LEVEL] msg`, one
//! line per event on stdout, no timestamp (CoreDNS runs Go's logger with flags 0).
//!
//! Events are ordinary `tracing` events. A target of the form `plugin/<name>` names the plugin;
//! any other target prints the bare message. `warn!` prints as `[WARNING]`, `debug!`/`trace!`
//! as `[DEBUG]`, and debug lines appear only while [`set_debug`] is on (the `debug` plugin).

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::DynFilterFn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

static DEBUG: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);

/// Crates whose own `tracing` events are not part of our log output.
const FOREIGN_TARGETS: &[&str] =
    &["hyper", "h2", "rustls", "tokio", "mio", "notify", "netlink", "rtnetlink", "hickory"];

/// Turns debug mode on or off (the `debug` plugin turns it on): `[DEBUG]` lines are printed
/// and the server does not recover from a panicking handler.
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// Whether debug mode is on (`[DEBUG]` lines printed, no panic recovery).
pub fn debug_enabled() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

/// Whether `-quiet` was given (startup banner lines are suppressed; log lines are not).
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Installs the process-wide log formatter writing to stdout. `quiet` is remembered for
/// [`banner`]. Calling it again is harmless (the first subscriber stays).
pub fn init(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    let _ = tracing::subscriber::set_global_default(subscriber(std::io::stdout));
}

/// A subscriber printing CoreDNS-shaped lines to `writer` (tests capture output with it).
pub fn subscriber<W>(writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().event_format(CoreDnsFormat).with_writer(writer).with_filter(
        DynFilterFn::new(|meta, _cx| event_enabled(meta.level(), meta.target())).with_callsite_filter(|meta| {
            if FOREIGN_TARGETS.iter().any(|t| meta.target().starts_with(t)) {
                Interest::never()
            } else if *meta.level() <= Level::INFO {
                Interest::always()
            } else {
                // Debug output depends on the run-time switch.
                Interest::sometimes()
            }
        }),
    );
    tracing_subscriber::registry().with(layer)
}

/// Prints a startup banner line (e.g. `.:53`) to stdout unless `-quiet` was given.
pub fn banner(line: &str) {
    if !quiet() {
        write_stdout(&format!("{line}\n"));
    }
}

/// Prints `[FATAL] msg` to stdout and exits with status 1, as CoreDNS's `log.Fatal` helpers do.
pub fn fatal(msg: impl fmt::Display) -> ! {
    write_stdout(&format!("[FATAL] {msg}\n"));
    std::process::exit(1)
}

/// Prints `msg` to stderr and exits with status 1 (CoreDNS's startup failures, which go through
/// Go's plain `log.Fatal` on stderr).
pub fn fatal_stderr(msg: impl fmt::Display) -> ! {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{msg}");
    let _ = err.flush();
    std::process::exit(1)
}

fn write_stdout(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Whether an event at `level` with `target` is printed.
fn event_enabled(level: &Level, target: &str) -> bool {
    if FOREIGN_TARGETS.iter().any(|t| target.starts_with(t)) {
        return false;
    }
    *level <= Level::INFO || debug_enabled()
}

/// CoreDNS's level word for a tracing level.
pub fn level_word(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// One complete log line (with trailing newline) for an event.
pub fn format_line(level: Level, target: &str, msg: &str) -> String {
    let mut line = String::with_capacity(msg.len() + 32);
    let _ = write!(line, "[{}] ", level_word(level));
    if target.starts_with("plugin/") {
        line.push_str(target);
        line.push_str(": ");
    }
    line.push_str(msg);
    line.push('\n');
    line
}

/// The `FormatEvent` implementation producing [`format_line`] output.
struct CoreDnsFormat;

impl<S, N> FormatEvent<S, N> for CoreDnsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        writer.write_str(&format_line(*meta.level(), meta.target(), &visitor.text))
    }
}

/// Collects an event's message, then any other fields as ` key=value`.
#[derive(Default)]
struct MessageVisitor {
    text: String,
    extra: bool,
}

impl MessageVisitor {
    fn push_field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.text);
            let _ = write!(self.text, "{value}");
            self.text.push_str(&rest);
        } else {
            self.extra = true;
            let _ = write!(self.text, " {}={}", field.name(), value);
        }
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push_field(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push_field(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn plugin_target_gets_prefix() {
        assert_eq!(format_line(Level::WARN, "plugin/health", "x y"), "[WARNING] plugin/health: x y\n");
        assert_eq!(format_line(Level::INFO, "nodecache::server", "hello"), "[INFO] hello\n");
        assert_eq!(format_line(Level::TRACE, "plugin/cache", "t"), "[DEBUG] plugin/cache: t\n");
    }
}
