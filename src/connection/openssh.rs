//! The system `ssh` with one multiplexed master per host; commands run as mux sessions on it
//! (`openssh` crate, native mux: no `ssh` process per command).
//!
//! We start the master ourselves (`ssh -M -N` in the foreground, as our child) instead of
//! `SessionBuilder::connect_mux`, which forks it away (`-f`): that way every `-o` option of
//! `ansible_ssh_common_args` reaches ssh, a connect that times out kills the half-open ssh, and
//! `close()` (or dropping the transport) always ends the master. Users' `~/.ssh/config`,
//! ProxyJump, agent and certificates keep working because it is the real ssh.

use super::*;
use ::openssh::{Session, Stdio};
use std::path::Path;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, Semaphore};

/// Channels per connection at once (sshd's MaxSessions defaults to 10).
pub const MAX_SESSIONS: usize = 8;

pub struct OpenSshTransport {
    host: String,
    session: Session,
    master: Mutex<Option<tokio::process::Child>>,
    dir: PathBuf,
    slots: Semaphore,
}

/// Options that take a value, and whether we pass them on to the master.
const WITH_VALUE: &[(&str, bool)] = &[
    ("-o", true),
    ("-J", true),
    ("-F", true),
    ("-i", true),
    ("-c", true),
    ("-m", true),
    ("-b", true),
    ("-B", true),
    ("-L", true),
    ("-R", true),
    ("-D", true),
    ("-l", true),
    ("-p", true),
    ("-S", false),
    ("-E", false),
    ("-O", false),
    ("-W", false),
    ("-w", false),
    ("-e", false),
    ("-Q", false),
    ("-I", false),
];
/// Flags passed on; anything else (-f, -N, -M, -t, -n, -s, -G, ...) would break the master.
const PASSED_FLAGS: &[char] = &['4', '6', 'A', 'a', 'C', 'g', 'K', 'k', 'q', 'v', 'X', 'x', 'Y', 'y', 'T'];

/// The words of `ansible_ssh_common_args` that are safe to give the master process.
pub fn master_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some((opt, pass)) = WITH_VALUE.iter().find(|(o, _)| a.starts_with(o)) {
            let attached = a.len() > opt.len();
            let value = if attached { None } else { it.next() };
            if *pass {
                out.push(a.clone());
                out.extend(value.cloned());
            } else {
                tracing::debug!("ssh argument {a} {} ignored: it would break the control master", value.map(String::as_str).unwrap_or(""));
            }
        } else if a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| PASSED_FLAGS.contains(&c)) {
            out.push(a.clone());
        } else {
            tracing::debug!("ssh argument {a} ignored");
        }
    }
    out
}

fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|p| p.is_dir()).unwrap_or_else(std::env::temp_dir);
    for _ in 0..10 {
        let dir = base.join(format!("provision-ssh-{:016x}", rand::random::<u64>()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("cannot create a private control directory"))
}

/// Turn what ssh printed when the master failed into our error.
pub fn classify_failure(spec: &ConnectionSpec, log: &str) -> ConnectionError {
    let host = spec.name.clone();
    let known_hosts = || spec.known_hosts_files().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
    let fingerprint = log
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(|w| w.trim_end_matches('.').to_string())
        .unwrap_or_else(|| "fingerprint not shown by ssh".to_string());
    if log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || log.contains("has changed and you have requested strict checking") {
        // "Offending ED25519 key in /path/known_hosts:3"
        let location = log
            .lines()
            .find_map(|l| l.split_once("Offending ").and_then(|(_, r)| r.split_once(" key in ")).map(|(_, loc)| loc.trim().to_string()))
            .unwrap_or_else(known_hosts);
        return ConnectionError::HostKeyChanged { host, fingerprint, known_hosts: location };
    }
    if log.contains("REVOKED HOST KEY") || log.contains("revoked") && log.contains("Host key verification failed") {
        return ConnectionError::HostKeyChanged { host, fingerprint, known_hosts: format!("{} (key marked @revoked)", known_hosts()) };
    }
    if log.contains("Host key verification failed") || log.contains("host key is known for") {
        return ConnectionError::HostKeyUnknown { host, fingerprint, known_hosts: known_hosts() };
    }
    let reason = log
        .lines()
        .map(str::trim)
        .rev()
        .find(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .unwrap_or("ssh failed without a message")
        .to_string();
    if log.contains("Permission denied") || log.contains("Too many authentication failures") || log.contains("No more authentication methods") {
        return ConnectionError::Auth { user: spec.login_user(), host, reason };
    }
    ConnectionError::Unreachable { host: spec.address.clone(), port: spec.port, reason }
}

impl OpenSshTransport {
    pub async fn connect(spec: &ConnectionSpec) -> Result<Self, ConnectionError> {
        let unreachable = |reason: String| ConnectionError::Unreachable { host: spec.address.clone(), port: spec.port, reason };
        let dir = private_dir().map_err(|e| unreachable(format!("control directory: {e}")))?;
        let result = Self::start(spec, &dir).await;
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    async fn start(spec: &ConnectionSpec, dir: &Path) -> Result<Self, ConnectionError> {
        let unreachable = |reason: String| ConnectionError::Unreachable { host: spec.address.clone(), port: spec.port, reason };
        let ctl = dir.join("master");
        let log = dir.join("log");
        let stderr_path = dir.join("stderr");
        let secs = spec.connect_timeout.as_secs_f64().ceil().max(1.0) as u64;

        let mut cmd = tokio::process::Command::new("ssh");
        // Ours come first: for -o options ssh keeps the first value it sees.
        cmd.arg("-M").arg("-N").arg("-S").arg(&ctl).arg("-E").arg(&log);
        for o in ["ControlMaster=yes", "ControlPersist=no", "BatchMode=yes", "ServerAliveInterval=15", "ServerAliveCountMax=4"] {
            cmd.arg("-o").arg(o);
        }
        cmd.arg("-o").arg(format!("ConnectTimeout={secs}"));
        match spec.effective_host_key_checking() {
            HostKeyChecking::Strict => {
                cmd.arg("-o").arg("StrictHostKeyChecking=yes");
            }
            HostKeyChecking::AcceptNew => {
                cmd.arg("-o").arg("StrictHostKeyChecking=accept-new");
            }
            HostKeyChecking::Off => {
                // ssh's "no" would log in despite a CHANGED key. accept-new refuses changed keys
                // and records new ones in the first file, which here is a throw-away one.
                let originals = spec.ssh_option("UserKnownHostsFile").unwrap_or_else(|| "~/.ssh/known_hosts ~/.ssh/known_hosts2".to_string());
                cmd.arg("-o").arg("StrictHostKeyChecking=accept-new");
                cmd.arg("-o").arg(format!("UserKnownHostsFile={} {originals}", dir.join("accepted_hosts").display()));
            }
        }
        cmd.arg("-p").arg(spec.port.to_string());
        if let Some(u) = &spec.user {
            cmd.arg("-l").arg(u);
        }
        if let Some(k) = &spec.private_key {
            cmd.arg("-o").arg("IdentitiesOnly=yes").arg("-i").arg(k);
        }
        cmd.args(master_args(&spec.ssh_args));
        cmd.arg("--").arg(&spec.address);
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| unreachable(format!("{}: {e}", stderr_path.display())))?;
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(stderr).kill_on_drop(true);
        tracing::debug!(host = %spec.name, "starting ssh master: {:?}", cmd.as_std());
        let mut child = cmd.spawn().map_err(|e| unreachable(format!("cannot run ssh: {e}")))?;

        let session = Session::resume_mux(ctl.clone().into_boxed_path(), Some(log.clone().into_boxed_path()));
        // The socket appears once ssh has logged in; ConnectTimeout bounds the TCP connect and
        // the banner, the extra seconds cover key exchange and authentication.
        let deadline = Instant::now() + Duration::from_secs(secs) + Duration::from_secs(3);
        loop {
            if let Ok(Some(_status)) = child.try_wait() {
                let mut text = std::fs::read_to_string(&log).unwrap_or_default();
                text.push_str(&std::fs::read_to_string(&stderr_path).unwrap_or_default());
                tracing::debug!(host = %spec.name, "ssh master failed: {text}");
                return Err(classify_failure(spec, &text));
            }
            if ctl.exists() && session.check().await.is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill().await;
                return Err(unreachable(format!("timed out after {secs}s")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(OpenSshTransport { host: spec.name.clone(), session, master: Mutex::new(Some(child)), dir: dir.to_path_buf(), slots: Semaphore::new(MAX_SESSIONS) })
    }

    fn lost(&self, reason: impl std::fmt::Display) -> ConnectionError {
        ConnectionError::Lost { host: self.host.clone(), reason: reason.to_string() }
    }

    /// The master's control socket (for tests and diagnostics).
    pub fn control_socket(&self) -> &Path {
        self.session.control_socket()
    }

    /// Process id of the master `ssh`, while it runs.
    pub async fn master_pid(&self) -> Option<u32> {
        self.master.lock().await.as_ref().and_then(|c| c.id())
    }
}

#[async_trait]
impl Transport for OpenSshTransport {
    async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, ConnectionError> {
        let _slot = self.slots.acquire().await.map_err(|_| self.lost("transport closed"))?;
        let mut child = self
            .session
            .raw_command(command)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.lost(e))?;
        let mut child_in = child.stdin().take();
        let mut child_out = child.stdout().take().ok_or_else(|| self.lost("no stdout pipe"))?;
        let mut child_err = child.stderr().take().ok_or_else(|| self.lost("no stderr pipe"))?;
        let write = async {
            if let (Some(w), Some(data)) = (child_in.as_mut(), stdin) {
                // The command may exit without reading everything; that is its business.
                let _ = w.write_all(data).await;
                let _ = w.flush().await;
                let _ = w.shutdown().await;
            }
            drop(child_in.take());
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (_, r1, r2) = tokio::join!(write, child_out.read_to_end(&mut out), child_err.read_to_end(&mut err));
        r1.map_err(|e| self.lost(e))?;
        r2.map_err(|e| self.lost(e))?;
        let exit_code = match child.wait().await {
            Ok(status) => super::local::exit_code(status),
            // The crate turns exit status 127 into an error.
            Err(::openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => 127,
            // No exit status: killed by a signal, or the connection died. Only the master knows.
            Err(::openssh::Error::RemoteProcessTerminated) => match self.session.check().await {
                Ok(()) => 255,
                Err(e) => return Err(self.lost(e)),
            },
            Err(e) => return Err(self.lost(e)),
        };
        Ok(ExecOutput { stdout: out, stderr: err, exit_code })
    }

    fn is_closed(&self) -> bool {
        match self.master.try_lock() {
            Ok(mut m) => match m.as_mut() {
                Some(child) => matches!(child.try_wait(), Ok(Some(_))),
                None => true,
            },
            Err(_) => false,
        }
    }

    async fn close(&self) {
        self.slots.close();
        if let Some(mut master) = self.master.lock().await.take() {
            let _ = master.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), master.wait()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for OpenSshTransport {
    fn drop(&mut self) {
        // The master child is killed on drop (kill_on_drop); the socket directory goes here.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn passes_options_and_drops_what_breaks_the_master() {
        assert_eq!(
            master_args(&words("-o UserKnownHostsFile=/k -oProxyJump=bastion -J jump -f -N -tt -S /x -C -vv -E log junk -p2222 -O exit")),
            words("-o UserKnownHostsFile=/k -oProxyJump=bastion -J jump -C -vv -p2222")
        );
    }

    fn spec() -> ConnectionSpec {
        ConnectionSpec {
            name: "web1".into(),
            address: "127.0.0.1".into(),
            port: 2301,
            user: Some("root".into()),
            private_key: None,
            ssh_args: words("-o UserKnownHostsFile=/kh"),
            host_key_checking: HostKeyChecking::Strict,
            connect_timeout: Duration::from_secs(5),
            local: false,
        }
    }

    #[test]
    fn classifies_ssh_failures() {
        let changed = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\nIT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\nThe fingerprint for the ED25519 key sent by the remote host is\nSHA256:abcDEF.\r\nPlease contact your system administrator.\r\nAdd correct host key in /kh to get rid of this message.\r\nOffending ED25519 key in /kh:1\r\nHost key for [127.0.0.1]:2301 has changed and you have requested strict checking.\r\nHost key verification failed.\r\n";
        match classify_failure(&spec(), changed) {
            ConnectionError::HostKeyChanged { fingerprint, known_hosts, .. } => {
                assert_eq!(fingerprint, "SHA256:abcDEF");
                assert_eq!(known_hosts, "/kh:1");
            }
            e => panic!("{e:?}"),
        }
        let unknown = "No ED25519 host key is known for [127.0.0.1]:2301 and you have requested strict checking.\r\nHost key verification failed.\r\n";
        assert!(matches!(classify_failure(&spec(), unknown), ConnectionError::HostKeyUnknown { .. }));
        let auth = "root@127.0.0.1: Permission denied (publickey,password).\r\n";
        assert!(matches!(classify_failure(&spec(), auth), ConnectionError::Auth { .. }));
        let refused = "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n";
        match classify_failure(&spec(), refused) {
            ConnectionError::Unreachable { reason, .. } => assert!(reason.contains("Connection refused")),
            e => panic!("{e:?}"),
        }
    }
}
