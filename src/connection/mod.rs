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
    /// A host that we never got a working shell on.
    pub fn is_unreachable(&self) -> bool {
        true
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
}

/// Open a connection of the given kind.
pub async fn connect(kind: TransportKind, spec: &ConnectionSpec) -> Result<Box<dyn Transport>, ConnectionError> {
    if spec.local {
        return Ok(Box::new(local::LocalTransport::new()));
    }
    match kind {
        TransportKind::OpenSsh => Ok(Box::new(openssh::OpenSshTransport::connect(spec).await?)),
        TransportKind::Russh => Ok(Box::new(russh::RusshTransport::connect(spec).await?)),
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
}
