//! The `errors` handler: logs `RCODE QNAME QTYPE: ERR` for errors returned by the rest of the
//! chain, or counts them under a consolidation rule and logs a summary per period.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use crate::gocompat::duration;
use crate::gocompat::names::type_name;
use crate::plugin::{Next, Plugin};
use crate::server::{Outcome, Request};

use super::setup::{Level, Pattern};

/// Emits one line at `level` under `plugin/errors`.
fn emit(level: Level, line: &str) {
    match level {
        Level::Error => tracing::error!(target: "plugin/errors", "{line}"),
        Level::Warning => tracing::warn!(target: "plugin/errors", "{line}"),
        Level::Info => tracing::info!(target: "plugin/errors", "{line}"),
        Level::Debug => tracing::debug!(target: "plugin/errors", "{line}"),
    }
}

struct Rule {
    pattern: Pattern,
    count: AtomicU32,
    timer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Shared {
    rules: Vec<Rule>,
    stopped: AtomicBool,
}

impl Shared {
    /// Logs and resets rule `i`'s count (the summary).
    fn flush(&self, i: usize) {
        let Some(rule) = self.rules.get(i) else { return };
        let n = rule.count.swap(0, Ordering::AcqRel);
        if n == 0 {
            return;
        }
        if n > 1 || !rule.pattern.show_first {
            let line = format!(
                "{n} errors like '{}' occurred in last {}",
                rule.pattern.regex.as_str(),
                duration::format_std(rule.pattern.period)
            );
            emit(rule.pattern.level, &line);
        }
    }
}

/// The errors plugin's handler.
pub struct ErrorsHandler {
    shared: Arc<Shared>,
}

impl ErrorsHandler {
    /// A handler with the given consolidation rules.
    pub fn new(patterns: Vec<Pattern>) -> ErrorsHandler {
        let rules = patterns
            .into_iter()
            .map(|pattern| Rule { pattern, count: AtomicU32::new(0), timer: Mutex::new(None) })
            .collect();
        ErrorsHandler { shared: Arc::new(Shared { rules, stopped: AtomicBool::new(false) }) }
    }

    /// Counts an error for rule `i`. True when the error is absorbed into the summary; false
    /// when the caller should log it now (the first error of a `show_first` rule, or after stop).
    fn consolidate(&self, i: usize) -> bool {
        let shared = &self.shared;
        if shared.stopped.load(Ordering::Acquire) {
            return false;
        }
        let Some(rule) = shared.rules.get(i) else { return false };
        let n = rule.count.fetch_add(1, Ordering::AcqRel) + 1;
        if n == 1 {
            let period = rule.pattern.period;
            let s = shared.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let handle = rt.spawn(async move {
                        tokio::time::sleep(period).await;
                        s.flush(i);
                    });
                    *rule.timer.lock() = Some(handle);
                }
                // Without a runtime there is no timer: report the error immediately.
                Err(_) => {
                    rule.count.store(0, Ordering::Release);
                    return false;
                }
            }
            return !rule.pattern.show_first;
        }
        true
    }

    /// Stops the timers and logs what they were counting (at shutdown or reload).
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        for (i, rule) in self.shared.rules.iter().enumerate() {
            if let Some(t) = rule.timer.lock().take() {
                if !t.is_finished() {
                    t.abort();
                    self.shared.flush(i);
                }
            }
        }
    }

    /// Logs or consolidates one error as CoreDNS does.
    fn report(&self, outcome: &Outcome, req: &Request) {
        let Some(err) = outcome.error.as_deref() else { return };
        let mut level = Level::Error;
        for (i, rule) in self.shared.rules.iter().enumerate() {
            if rule.pattern.regex.is_match(err) {
                if self.consolidate(i) {
                    return;
                }
                level = rule.pattern.level;
                break;
            }
        }
        let rcode = u16::from(outcome.rcode);
        emit(level, &format!("{rcode} {} {}: {err}", req.qname_lower, type_name(req.qtype)));
    }
}

impl Drop for ErrorsHandler {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Plugin for ErrorsHandler {
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn name(&self) -> &'static str {
        "errors"
    }

    fn fast_role(&self) -> crate::plugin::fast::FastRole {
        // Reports failures only; a reply the fast path sends is not one.
        crate::plugin::fast::FastRole::Transparent
    }

    fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let outcome = next.serve(req).await;
            self.report(&outcome, req);
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::Dispenser;
    use crate::plugin::errors::setup;
    use crate::plugin::log::testutil::{capture, request, run, Captured, Responder};
    use crate::plugin::SetupContext;
    use crate::server::request::Proto;
    use hickory_proto::op::ResponseCode;
    use pretty_assertions::assert_eq;
    use std::time::Duration;
    use tracing::Level as TLevel;

    fn handler(text: &str) -> Arc<ErrorsHandler> {
        let mut d = Dispenser::from_text(text);
        let cfg = setup::parse(&mut d, &SetupContext::default()).expect("errors config");
        let cfg = cfg.as_any().downcast_ref::<setup::Config>().cloned().unwrap_or_default();
        Arc::new(ErrorsHandler::new(cfg.patterns))
    }

    fn failing(rcode: ResponseCode, err: &'static str) -> Responder {
        Responder(Box::new(move |_| Outcome::unwritten(rcode, Some(err.to_string()))))
    }

    fn line(level: TLevel, message: &str) -> Captured {
        Captured { level, target: "plugin/errors".into(), message: message.into() }
    }

    #[test]
    fn case_45_logs_rcode_qname_qtype_and_error() {
        let h = handler("errors");
        let ((rcode, err), events) = capture(async {
            let mut req = request("Example.ORG.", 1, Proto::Udp, None, "127.0.0.1:5000");
            let out = run(h.clone(), failing(ResponseCode::NotAuth, "test error"), &mut req).await;
            (out.rcode, out.error)
        });
        assert_eq!(rcode, ResponseCode::NotAuth);
        assert_eq!(err.as_deref(), Some("test error"));
        assert_eq!(events, vec![line(TLevel::ERROR, "9 example.org. A: test error")]);
    }

    #[test]
    fn no_error_no_log() {
        let h = handler("errors");
        let (_, events) = capture(async {
            let mut req = request("example.org.", 28, Proto::Udp, None, "127.0.0.1:5000");
            run(h.clone(), Responder(Box::new(|_| Outcome::unwritten(ResponseCode::NoError, None))), &mut req).await
        });
        assert_eq!(events, vec![]);
    }

    #[test]
    fn consolidation_summarises_on_timer() {
        let h = handler("errors {\nconsolidate 20ms ^timeout warning\n}");
        let (_, events) = capture(async {
            for _ in 0..3 {
                let mut req = request("example.org.", 1, Proto::Udp, None, "127.0.0.1:5000");
                run(h.clone(), failing(ResponseCode::ServFail, "timeout reading"), &mut req).await;
            }
            let mut req = request("example.org.", 1, Proto::Udp, None, "127.0.0.1:5000");
            run(h.clone(), failing(ResponseCode::ServFail, "other problem"), &mut req).await;
            // The summary timer (20ms) fires before this longer sleep ends.
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        assert_eq!(
            events,
            vec![
                line(TLevel::ERROR, "2 example.org. A: other problem"),
                line(TLevel::WARN, "3 errors like '^timeout' occurred in last 20ms"),
            ]
        );
    }

    #[test]
    fn show_first_logs_first_and_skips_single_summary() {
        let h = handler("errors {\nconsolidate 1h timeout info show_first\n}");
        let (_, events) = capture(async {
            let mut req = request("example.org.", 1, Proto::Udp, None, "127.0.0.1:5000");
            run(h.clone(), failing(ResponseCode::ServFail, "timeout"), &mut req).await;
            h.stop();
        });
        assert_eq!(events, vec![line(TLevel::INFO, "2 example.org. A: timeout")]);
    }

    #[test]
    fn pending_summary_flushed_at_stop() {
        let h = handler("errors {\nconsolidate 1h timeout\n}");
        let (_, events) = capture(async {
            for _ in 0..2 {
                let mut req = request("example.org.", 1, Proto::Udp, None, "127.0.0.1:5000");
                run(h.clone(), failing(ResponseCode::ServFail, "timeout"), &mut req).await;
            }
            h.stop();
            // After stop, errors are logged directly again.
            let mut req = request("example.org.", 1, Proto::Udp, None, "127.0.0.1:5000");
            run(h.clone(), failing(ResponseCode::ServFail, "timeout"), &mut req).await;
        });
        assert_eq!(
            events,
            vec![
                line(TLevel::ERROR, "2 errors like 'timeout' occurred in last 1h0m0s"),
                line(TLevel::ERROR, "2 example.org. A: timeout"),
            ]
        );
    }
}
