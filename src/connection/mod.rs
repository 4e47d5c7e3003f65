//! Talking to hosts. One [`Transport`] per host for the whole run; every probe batch, action and
//! file write goes through `exec` on it (new channel/session, same connection).

use async_trait::async_trait;
use std::path::PathBuf;
use std::time::Duration;

pub mod local;
pub mod openssh;
pub mod russh;
pub mod known_hosts;

/// What a finished remote command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

impl ExecOutput {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("cannot connect to {host}:{port}: {reason}")]
    Unreachable { host: String, port: u16, reason: String },
    #[error("HOST KEY MISMATCH for {host}: the key offered ({fingerprint}) differs from the one in {known_hosts}; refusing to connect (possible man-in-the-middle)")]
    HostKeyChanged { host: String, fingerprint: String, known_hosts: String },
    #[error("host key for {host} is not in {known_hosts} ({fingerprint}); add it, or use --host-key-checking accept-new")]
    HostKeyUnknown { host: String, fingerprint: String, known_hosts: String },
    #[error("authentication failed for {user}@{host}: {reason}")]
    Auth { user: String, host: String, reason: String },
    #[error("connection to {host} lost: {reason}")]
    Lost { host: String, reason: String },
}

impl ConnectionError {
    /// A host that we never got a working shell on (connecting, host key or login failed).
    /// `Lost` is a connection that worked and then broke.
    pub fn is_unreachable(&self) -> bool {
        !matches!(self, ConnectionError::Lost { .. })
    }
}

/// How strictly host keys are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyChecking {
    /// Unknown or changed keys are refused (OpenSSH `StrictHostKeyChecking=yes`). The default.
    #[default]
    Strict,
    /// Unknown keys are recorded in known_hosts and accepted; changed keys are refused.
    AcceptNew,
    /// Unknown keys accepted without recording; changed keys are STILL refused.
    Off,
}

/// Which SSH implementation to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    /// The system `ssh` with a multiplexed master connection (honours ~/.ssh/config).
    #[default]
    OpenSsh,
    /// In-process SSH (russh): no `ssh` process per host.
    Russh,
}

/// Everything needed to open a connection, from inventory variables and CLI flags.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    /// Inventory name (for messages).
    pub name: String,
    /// `ansible_host` or the inventory name.
    pub address: String,
    /// `ansible_port`, default 22.
    pub port: u16,
    /// `ansible_user`; `None` means the current local user / ssh config.
    pub user: Option<String>,
    /// `ansible_ssh_private_key_file`.
    pub private_key: Option<PathBuf>,
    /// `ansible_ssh_common_args` split into words (e.g. `-o UserKnownHostsFile=/x`).
    pub ssh_args: Vec<String>,
    pub host_key_checking: HostKeyChecking,
    pub connect_timeout: Duration,
    /// `ansible_connection: local`.
    pub local: bool,
}

impl ConnectionSpec {
    /// Value of an `-o Key=Value` option given in `ssh_args` (case-insensitive key).
    pub fn ssh_option(&self, key: &str) -> Option<String> {
        let mut it = self.ssh_args.iter();
        while let Some(a) = it.next() {
            let opt = if a == "-o" { it.next().cloned() } else { a.strip_prefix("-o").map(str::to_string) };
            if let Some(opt) = opt {
                let (k, v) = match opt.split_once('=') {
                    Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                    None => match opt.split_once(' ') {
                        Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                        None => continue,
                    },
                };
                if k.eq_ignore_ascii_case(key) {
                    return Some(v);
                }
            }
        }
        None
    }

    /// Host key checking after `-o StrictHostKeyChecking=...` in `ssh_args` (the more specific,
    /// per-host setting) overrides the run-wide one. Changed keys are refused in every mode.
    pub fn effective_host_key_checking(&self) -> HostKeyChecking {
        match self.ssh_option("StrictHostKeyChecking").map(|v| v.to_ascii_lowercase()) {
            Some(v) if v == "yes" || v == "ask" => HostKeyChecking::Strict,
            Some(v) if v == "accept-new" => HostKeyChecking::AcceptNew,
            Some(v) if v == "no" || v == "off" => HostKeyChecking::Off,
            _ => self.host_key_checking,
        }
    }

    /// Private key files to offer: `private_key`, else `-i FILE` / `-o IdentityFile=` in
    /// `ssh_args`, else the usual `~/.ssh/id_*` that exist.
    pub fn identity_files(&self) -> Vec<PathBuf> {
        if let Some(k) = &self.private_key {
            return vec![k.clone()];
        }
        let mut v = Vec::new();
        let mut it = self.ssh_args.iter();
        while let Some(a) = it.next() {
            if a == "-i" {
                v.extend(it.next().map(|p| expand_tilde(p)));
            } else if let Some(p) = a.strip_prefix("-i").filter(|p| !p.is_empty()) {
                v.push(expand_tilde(p));
            }
        }
        if let Some(p) = self.ssh_option("IdentityFile") {
            v.push(expand_tilde(&p));
        }
        if v.is_empty() {
            if let Some(h) = dirs::home_dir() {
                v.extend(["id_ed25519", "id_ecdsa", "id_rsa"].iter().map(|n| h.join(".ssh").join(n)).filter(|p| p.exists()));
            }
        }
        v
    }

    /// The login user: `user`, else `-l USER` / `-o User=` in `ssh_args`, else `$USER`.
    pub fn login_user(&self) -> String {
        if let Some(u) = &self.user {
            return u.clone();
        }
        let mut it = self.ssh_args.iter();
        while let Some(a) = it.next() {
            if a == "-l" {
                if let Some(u) = it.next() {
                    return u.clone();
                }
            }
        }
        self.ssh_option("User")
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_else(|| "root".to_string())
    }

    /// known_hosts files to check, in order (UserKnownHostsFile may list several).
    pub fn known_hosts_files(&self) -> Vec<PathBuf> {
        if let Some(v) = self.ssh_option("UserKnownHostsFile") {
            return v.split_whitespace().map(expand_tilde).collect();
        }
        match dirs::home_dir() {
            Some(h) => vec![h.join(".ssh/known_hosts")],
            None => vec![],
        }
    }
}

pub fn expand_tilde(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => dirs::home_dir().map(|h| h.join(rest)).unwrap_or_else(|| PathBuf::from(p)),
        None => PathBuf::from(p),
    }
}

/// A live connection to one host.
#[async_trait]
pub trait Transport: Send + Sync {
    /// Run `command` with `sh -c` semantics on the host (as the login user), feed `stdin` and
    /// close it, and wait for the exit status. Concurrent calls are allowed.
    async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, ConnectionError>;
    /// Close the connection (master process, session). Errors are ignored by callers.
    async fn close(&self);
    /// Log in again (after a reboot, or for `meta: reset_connection`): later `exec`s use a new
    /// connection, opened within `connect_timeout` (the spec's when `None`). A transport with
    /// nothing to reopen (local) succeeds at once.
    async fn reconnect(&self, _connect_timeout: Option<Duration>) -> Result<(), ConnectionError> {
        Ok(())
    }
    /// Known to be over (the master `ssh` exited, the session closed): nothing sent on it
    /// could run. `false` when it can't tell.
    fn is_closed(&self) -> bool {
        false
    }
}

/// An SSH connection that can be opened again: the transport of the moment, replaced by
/// [`Transport::reconnect`] while everyone holding this keeps holding the same connection.
pub struct Redial {
    kind: TransportKind,
    spec: ConnectionSpec,
    current: std::sync::RwLock<std::sync::Arc<dyn Transport>>,
    /// Closed on purpose: stays closed.
    closed: std::sync::atomic::AtomicBool,
}

impl Redial {
    fn now(&self) -> std::sync::Arc<dyn Transport> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl Transport for Redial {
    async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, ConnectionError> {
        let now = self.now();
        if now.is_closed() && !self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            // Gone since its last use (the host rebooted, its sshd restarted): nothing was sent
            // on it, so logging in again first is safe, as Ansible opens a connection per task.
            tracing::debug!("connection closed since its last use; logging in again");
            self.reconnect(None).await?;
            return self.now().exec(command, stdin).await;
        }
        now.exec(command, stdin).await
    }
    async fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::Relaxed);
        self.now().close().await
    }
    fn is_closed(&self) -> bool {
        self.now().is_closed()
    }
    async fn reconnect(&self, connect_timeout: Option<Duration>) -> Result<(), ConnectionError> {
        let mut spec = self.spec.clone();
        if let Some(t) = connect_timeout {
            spec.connect_timeout = t;
        }
        let fresh = dial(self.kind, &spec).await?;
        let old = std::mem::replace(&mut *self.current.write().unwrap_or_else(|e| e.into_inner()), std::sync::Arc::from(fresh));
        old.close().await;
        Ok(())
    }
}

/// Open a connection of the given kind (one that [`Transport::reconnect`] can open again).
pub async fn connect(kind: TransportKind, spec: &ConnectionSpec) -> Result<Box<dyn Transport>, ConnectionError> {
    if spec.local {
        return Ok(Box::new(local::LocalTransport::new()));
    }
    let first = dial(kind, spec).await?;
    Ok(Box::new(Redial { kind, spec: spec.clone(), current: std::sync::RwLock::new(std::sync::Arc::from(first)), closed: Default::default() }))
}

/// A connection not opened yet (the host is still coming up): every `exec` fails as a lost
/// connection until [`Transport::reconnect`] opens it (`wait_for_connection` does).
pub fn not_yet_connected(kind: TransportKind, spec: &ConnectionSpec) -> Box<dyn Transport> {
    Box::new(Redial { kind, spec: spec.clone(), current: std::sync::RwLock::new(std::sync::Arc::new(NotConnected { host: spec.name.clone() })), closed: Default::default() })
}

struct NotConnected {
    host: String,
}

#[async_trait]
impl Transport for NotConnected {
    async fn exec(&self, _command: &str, _stdin: Option<&[u8]>) -> Result<ExecOutput, ConnectionError> {
        Err(ConnectionError::Lost { host: self.host.clone(), reason: "not connected yet".into() })
    }
    async fn close(&self) {}
}

/// Log in over SSH. Each transport bounds its own connect by the spec's timeout; this bounds
/// whatever hangs past it (5 s more).
async fn dial(kind: TransportKind, spec: &ConnectionSpec) -> Result<Box<dyn Transport>, ConnectionError> {
    let open = async {
        Ok::<Box<dyn Transport>, ConnectionError>(match kind {
            TransportKind::OpenSsh => Box::new(openssh::OpenSshTransport::connect(spec).await?),
            TransportKind::Russh => Box::new(russh::RusshTransport::connect(spec).await?),
        })
    };
    match tokio::time::timeout(spec.connect_timeout + Duration::from_secs(5), open).await {
        Ok(r) => r,
        Err(_) => Err(ConnectionError::Unreachable { host: spec.address.clone(), port: spec.port, reason: format!("timed out after {}s", spec.connect_timeout.as_secs()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(args: &[&str]) -> ConnectionSpec {
        ConnectionSpec {
            name: "h".into(),
            address: "h".into(),
            port: 22,
            user: None,
            private_key: None,
            ssh_args: args.iter().map(|s| s.to_string()).collect(),
            host_key_checking: HostKeyChecking::Strict,
            connect_timeout: Duration::from_secs(10),
            local: false,
        }
    }

    #[test]
    fn reads_ssh_options_in_all_spellings() {
        assert_eq!(spec(&["-o", "UserKnownHostsFile=/a b"]).known_hosts_files(), vec![PathBuf::from("/a"), PathBuf::from("b")]);
        assert_eq!(spec(&["-oUserKnownHostsFile=/k"]).ssh_option("userknownhostsfile").as_deref(), Some("/k"));
        assert_eq!(spec(&["-o", "StrictHostKeyChecking no"]).ssh_option("StrictHostKeyChecking").as_deref(), Some("no"));
    }

    #[test]
    fn strict_host_key_checking_in_args_overrides_the_run_setting() {
        assert_eq!(spec(&[]).effective_host_key_checking(), HostKeyChecking::Strict);
        assert_eq!(spec(&["-o", "StrictHostKeyChecking=no"]).effective_host_key_checking(), HostKeyChecking::Off);
        assert_eq!(spec(&["-oStrictHostKeyChecking=accept-new"]).effective_host_key_checking(), HostKeyChecking::AcceptNew);
        let mut s = spec(&["-o", "StrictHostKeyChecking=yes"]);
        s.host_key_checking = HostKeyChecking::Off;
        assert_eq!(s.effective_host_key_checking(), HostKeyChecking::Strict);
    }

    #[test]
    fn identity_and_user_from_args() {
        assert_eq!(spec(&["-i", "/k1", "-o", "IdentityFile=/k2"]).identity_files(), vec![PathBuf::from("/k1"), PathBuf::from("/k2")]);
        let mut s = spec(&["-i", "/k1"]);
        s.private_key = Some("/main".into());
        assert_eq!(s.identity_files(), vec![PathBuf::from("/main")]);
        assert_eq!(spec(&["-l", "deploy"]).login_user(), "deploy");
        assert_eq!(spec(&["-o", "User=ops"]).login_user(), "ops");
    }

    #[test]
    fn only_connection_failures_are_unreachable() {
        assert!(ConnectionError::Auth { user: "u".into(), host: "h".into(), reason: "r".into() }.is_unreachable());
        assert!(!ConnectionError::Lost { host: "h".into(), reason: "r".into() }.is_unreachable());
    }
}
