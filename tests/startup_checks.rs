//! Start-up of both binaries: an empty or comment-only `-conf` Corefile is an error (exit 1,
//! the file named), the embedded default still loads, and the soft RLIMIT_NOFILE is raised to
//! the hard limit.

mod reload_common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nodecache_conformance::server::ServerProcess;
use pretty_assertions::assert_eq;
use reload_common::*;

const NODECACHE: &str = env!("CARGO_BIN_EXE_nodecache");
const NODE_CACHE: &str = env!("CARGO_BIN_EXE_node-cache");

/// node-cache's arguments without interface or iptables set-up; the template is `template`.
fn node_cache_args(template: &Path, conf: &Path, p: u16, metrics: u16) -> Vec<String> {
    let mut args: Vec<String> =
        ["-localip", "127.0.0.1", "-setupinterface=false", "-setupiptables=false"].map(String::from).to_vec();
    args.extend(["-basecorefile".into(), template.display().to_string(), "-conf".into(), conf.display().to_string()]);
    args.extend(["-metrics-listen-address".into(), format!("127.0.0.1:{metrics}")]);
    args.extend(["-dns.port".into(), p.to_string()]);
    args
}

/// Runs `bin args` in `cwd` and waits for it to exit; returns the exit code and the output.
fn run_to_exit(bin: &str, args: &[String], cwd: &Path) -> (Option<i32>, String) {
    let cmd = format!("{bin} {}", args.join(" "));
    let mut proc = ServerProcess::spawn(&cmd, &BTreeMap::new(), cwd).expect("spawn");
    let status = proc.wait_exit(Duration::from_secs(10));
    let out = proc.output();
    assert!(status.is_some(), "{bin} did not exit:\n{out}");
    (status.and_then(|s| s.code()), out)
}

#[test]
fn nodecache_refuses_to_start_on_an_empty_or_comment_only_corefile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = port();
    for (i, text) in ["", "# only a comment\n\n   # and another\n", " \t\r\n"].iter().enumerate() {
        let conf = dir.path().join(format!("Corefile.{i}"));
        std::fs::write(&conf, text).expect("write");
        let args = ["-conf".to_string(), conf.display().to_string(), "-dns.port".into(), p.to_string()];
        let (code, out) = run_to_exit(NODECACHE, &args, dir.path());
        assert_eq!(code, Some(1), "{text:?}:\n{out}");
        assert!(out.contains(&format!("Corefile {} is empty", conf.display())), "{text:?}:\n{out}");
        // Nothing was served meanwhile (no default server took the port).
        assert!(ask(p, "a.example.", "A", false, Duration::from_millis(200)).is_none());
        // -validate agrees.
        let (code, out) =
            run_to_exit(NODECACHE, &["-validate".into(), "-conf".into(), conf.display().to_string()], dir.path());
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("is empty"), "{out}");
    }
}

#[test]
fn node_cache_refuses_to_start_when_the_rendered_corefile_is_comment_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (p, metrics) = (port(), port());
    let template = dir.path().join("Corefile.base");
    std::fs::write(&template, "# __PILLAR__LOCAL__DNS__ was here\n").expect("write");
    let conf = dir.path().join("Corefile");
    let (code, out) = run_to_exit(NODE_CACHE, &node_cache_args(&template, &conf, p, metrics), dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("Corefile {} is empty", conf.display())), "{out}");
    // The template was rendered (so it is the generated file that was refused).
    assert_eq!(std::fs::read_to_string(&conf).unwrap_or_default(), "# 127.0.0.1 was here\n");
}

#[test]
fn the_embedded_default_still_loads() {
    // No -conf and no ./Corefile: the README's loopback cache on 127.0.0.1:5353.
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out) = run_to_exit(NODECACHE, &["-explain".to_string()], dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("dns://127.0.0.1:5353"), "{out}");
    assert!(out.contains("cache") && out.contains("forward"), "{out}");
}

/// Spawns `bin args` with RLIMIT_NOFILE lowered to `soft:hard` before exec.
fn spawn_limited(bin: &str, args: &[String], cwd: &Path, soft: u64, hard: u64) -> Child {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit is async-signal-safe and only reads `lim`, a copy owned by the closure.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.spawn().expect("spawn with a lowered limit")
}

/// The (soft, hard) "Max open files" of `pid` from /proc/<pid>/limits.
fn nofile_of(pid: u32) -> Option<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut f = line.trim_start_matches("Max open files").split_whitespace();
    Some((f.next()?.to_string(), f.next()?.to_string()))
}

/// The lowered limits to start with: a hard limit we are allowed to set (at most ours).
fn lowered() -> (u64, u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the valid `rlimit` we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let hard = lim.rlim_max.min(4096);
    assert!(hard >= 64, "the test's own hard limit is too low to lower: {hard}");
    (256.min(hard / 2), hard)
}

/// Starts `bin` under lowered limits, waits until it answers on `p`, and checks its soft limit
/// became the hard one.
fn assert_soft_raised(bin: &str, args: &[String], cwd: &Path, p: u16) {
    let (soft, hard) = lowered();
    let mut child = spawn_limited(bin, args, cwd, soft, hard);
    let up =
        wait_until(Duration::from_secs(10), || ask(p, "a.example.", "A", false, Duration::from_millis(200)).is_some());
    let limits = nofile_of(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(up.is_some(), "{bin} did not start");
    assert_eq!(limits, Some((hard.to_string(), hard.to_string())), "{bin} started with {soft}:{hard}");
}

#[test]
fn both_binaries_raise_the_soft_nofile_limit_to_the_hard_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = port();
    let conf = dir.path().join("Corefile");
    std::fs::write(&conf, template_block("example.", p, "10.0.0.1", "")).expect("write");
    let args = ["-conf".to_string(), conf.display().to_string(), "-dns.port".into(), p.to_string()];
    assert_soft_raised(NODECACHE, &args, dir.path(), p);

    let (p, metrics) = (port(), port());
    let template = dir.path().join("Corefile.base");
    std::fs::write(&template, template_block("example.", p, "10.0.0.1", "")).expect("write");
    let conf = dir.path().join("Corefile.node-cache");
    assert_soft_raised(NODE_CACHE, &node_cache_args(&template, &conf, p, metrics), dir.path(), p);
}
