//! node-cache's own parts: flags, Corefile template and stub domains, networking setup.
//!
//! Start with [`app::CacheApp`], which ties everything together in node-cache's order.
//!
//! Modules and their entry points (the binary `src/bin/node-cache.rs` wires them):
//! - [`flags`]: `flags::parse(argv0, args)` → `FlagsOutcome::{Run{flags, args}, Help{usage}}` or
//!   `FlagError` (`stderr_text()`, `exit_code()`); `flags::usage(argv0)`. `NodeCacheFlags` has
//!   `sync_interval()`, `kubedns_cm_dir()`, `upstream_ip_from_env()`, `is_ipv6()`.
//! - [`template`]: `template::render(template, &KubeDnsConfig, &TemplateParams)` (pure),
//!   `template::update_corefile(base, conf, &cfg, &params)` (node-cache's whole write step),
//!   `template::write_corefile(path, text)`.
//! - [`kubedns`]: `KubeDnsConfig` (+ `validate`, `validate_node_local_cache`), `load_dir`,
//!   `DirSync::{once, poll}` (one ConfigMap directory poller).
//! - [`metrics`]: the `coredns_nodecache_setup_errors_total` counter (label `errortype`):
//!   `register_setup_error_metric()`, `inc(kind)`.
//! - [`goparse`]: Go stdlib parsing behaviours the above rely on.
//! - [`iptables`]: `node_cache_rules(localip, port, health_port)` (12 per IP) and the
//!   `Iptables` runner (`ensure_rule`, `delete_rule`, `check_rule`; `IptablesError::kind()`).
//! - [`netif`]: `NetifManager::{ensure_dummy_device, remove_dummy_device}` over rtnetlink.
//! - [`setup`]: `NetworkSetup::from_flags(&flags)`; `setup_networking(with_iptables)`,
//!   `spawn_periodic(interval)` (pidfile gating, then every `-syncinterval`), `teardown()`.
//!   Blocking: call from plain threads or `spawn_blocking`.
//! - [`backoff`]: `Backoff` (0.5 s doubling to 30 s), the retry delay of failed setup passes.
//! - [`policy_lint`]: `lint_yaml(file, text, &LintOptions::default())` / `lint_path(path, ..)`:
//!   warns about Cilium policies allowing DNS to kube-dns but not to node-local-dns.
pub mod app;
pub mod backoff;
pub mod flags;
pub mod goparse;
pub mod iptables;
pub mod kubedns;
pub mod metrics;
pub mod netif;
pub mod policy_lint;
pub mod setup;
pub mod template;
