//! The server under test as a child process: start, capture output, readiness, signals, kill.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hickory_proto::op::OpCode;
use hickory_proto::rr::{Name, RecordType};

use crate::client::{exchange, QuerySpec};

/// A running server process with its captured stdout and stderr.
pub struct ServerProcess {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
}

/// Fills `{corefile}` and `{port}` into a command template.
pub fn render_command(template: &str, corefile: &str, port: u16) -> String {
    template.replace("{corefile}", corefile).replace("{port}", &port.to_string())
}

impl ServerProcess {
    /// Runs `sh -c "exec COMMAND"` so the child's pid is the server's.
    pub fn spawn(command: &str, env: &BTreeMap<String, String>, cwd: &std::path::Path) -> Result<Self, String> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .envs(env)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(pump(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(pump(err, output.clone()));
        }
        Ok(Self { child, output, readers })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far (stdout and stderr interleaved by arrival).
    pub fn output(&self) -> String {
        self.output.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for the process to end.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                self.join_readers();
                return Some(s);
            }
            thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// Sends a signal by name (`USR1`, `SIGTERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) -> Result<(), String> {
        let sig = signal_number(name).ok_or_else(|| format!("unknown signal {name:?}"))?;
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid with a valid signal number has no memory effects.
        let rc = unsafe { libc::kill(pid, sig) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("kill({pid}, {name}) failed"))
        }
    }

    /// Polls with an opcode-STATUS query until any reply arrives, the process exits, or `limit` passes.
    pub fn wait_ready(&mut self, addr: SocketAddr, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let mut probe = QuerySpec::parse(". A", "").map_err(|e| e.to_string())?;
        probe.name = Name::root();
        probe.qtype = RecordType::A;
        probe.opcode = OpCode::Status;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                thread::sleep(Duration::from_millis(100));
                return Err(format!("server exited during start ({status})"));
            }
            if let Ok(Some(_)) = exchange(addr, &probe, Duration::from_millis(250)) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(format!("server did not answer on {addr} within {}s", limit.as_secs()))
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.join_readers();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pump(mut src: impl Read + Send + 'static, sink: Arc<Mutex<String>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = src.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    })
}

/// Maps a signal name (with or without `SIG`) to its number.
pub fn signal_number(name: &str) -> Option<i32> {
    let up = name.trim().to_ascii_uppercase();
    let n = up.strip_prefix("SIG").unwrap_or(&up);
    Some(match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        _ => return None,
    })
}
