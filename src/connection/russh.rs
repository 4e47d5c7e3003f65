//! In-process SSH (russh): one TCP connection per host, one channel per command.
//!
//! Host keys are verified here against the spec's known_hosts files ([`super::known_hosts`]);
//! russh's own checking knows no wildcards, negation or markers.

use super::known_hosts::{self, HostKeyStatus, KnownHosts};
use super::*;
use ::russh::client::{self, AuthResult, Handle};
use ::russh::keys::{Algorithm, HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use ::russh::{ChannelMsg, Disconnect, Preferred, Sig};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Channels per connection at once (sshd's MaxSessions defaults to 10).
pub const MAX_SESSIONS: usize = 8;

pub struct RusshTransport {
    host: String,
    handle: Handle<HostKeyVerifier>,
    slots: Semaphore,
}

/// `check_server_key`: decides on the server's key and remembers why it said no.
pub struct HostKeyVerifier {
    name: String,
    host: String,
    port: u16,
    files: Vec<PathBuf>,
    checking: HostKeyChecking,
    rejection: Arc<Mutex<Option<ConnectionError>>>,
}

impl HostKeyVerifier {
    fn decide(&self, key: &PublicKeyOrCertificate) -> Result<(), ConnectionError> {
        let known_hosts = || self.files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            // We never advertise certificate host key algorithms; a certificate here is odd.
            PublicKeyOrCertificate::Certificate(_) => {
                return Err(ConnectionError::HostKeyUnknown { host: self.name.clone(), fingerprint: "(host certificate)".into(), known_hosts: known_hosts() })
            }
        };
        let key_type = key.algorithm().as_str().to_string();
        let blob = key.to_bytes().map_err(|e| ConnectionError::Unreachable { host: self.host.clone(), port: self.port, reason: format!("bad host key: {e}") })?;
        let fingerprint = known_hosts::fingerprint(&blob);
        match KnownHosts::load(&self.files).check(&self.host, self.port, &key_type, &blob) {
            HostKeyStatus::Known => Ok(()),
            HostKeyStatus::Changed { location, stored_fingerprint } => {
                tracing::error!(host = %self.name, "host key changed: offered {fingerprint}, {location} has {stored_fingerprint}");
                Err(ConnectionError::HostKeyChanged { host: self.name.clone(), fingerprint, known_hosts: location })
            }
            HostKeyStatus::Revoked { location } => Err(ConnectionError::HostKeyChanged { host: self.name.clone(), fingerprint, known_hosts: format!("{location} (key marked @revoked)") }),
            HostKeyStatus::Unknown => match self.checking {
                HostKeyChecking::Strict => Err(ConnectionError::HostKeyUnknown { host: self.name.clone(), fingerprint, known_hosts: known_hosts() }),
                HostKeyChecking::AcceptNew => {
                    match self.files.first() {
                        Some(f) => match known_hosts::append(f, &self.host, self.port, &key_type, &blob) {
                            Ok(()) => tracing::info!(host = %self.name, "permanently added {} ({key_type} {fingerprint}) to {}", known_hosts::lookup_name(&self.host, self.port), f.display()),
                            Err(e) => tracing::warn!(host = %self.name, "cannot record host key in {}: {e}", f.display()),
                        },
                        None => tracing::warn!(host = %self.name, "no known_hosts file to record {fingerprint} in"),
                    }
                    Ok(())
                }
                HostKeyChecking::Off => {
                    tracing::debug!(host = %self.name, "accepting unknown host key {fingerprint} (host key checking off)");
                    Ok(())
                }
            },
        }
    }
}

impl client::Handler for HostKeyVerifier {
    type Error = ::russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        match self.decide(key) {
            Ok(()) => Ok(true),
            Err(e) => {
                *self.rejection.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                Ok(false)
            }
        }
    }
}

fn key_type(a: &Algorithm) -> &str {
    match a {
        Algorithm::Rsa { .. } => "ssh-rsa",
        a => a.as_str(),
    }
}

/// Exit code for a command killed by `sig`, as a shell would report it.
fn signal_exit_code(sig: &Sig) -> i32 {
    let n = match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => return 255,
    };
    128 + n
}

impl RusshTransport {
    pub async fn connect(spec: &ConnectionSpec) -> Result<Self, ConnectionError> {
        let secs = spec.connect_timeout.as_secs_f64();
        match tokio::time::timeout(spec.connect_timeout, Self::connect_inner(spec)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectionError::Unreachable { host: spec.address.clone(), port: spec.port, reason: format!("timed out after {secs:.0}s") }),
        }
    }

    async fn connect_inner(spec: &ConnectionSpec) -> Result<Self, ConnectionError> {
        let unreachable = |reason: String| ConnectionError::Unreachable { host: spec.address.clone(), port: spec.port, reason };
        // Connecting directly when a jump host was asked for could reach the wrong machine.
        let proxied = spec.ssh_option("ProxyJump").or_else(|| spec.ssh_option("ProxyCommand")).filter(|v| !v.eq_ignore_ascii_case("none")).is_some()
            || spec.ssh_args.iter().any(|a| a.starts_with("-J"));
        if proxied {
            return Err(unreachable("ProxyJump/ProxyCommand are not supported by the russh transport; use the openssh transport".into()));
        }
        let files = spec.known_hosts_files();

        // Ask for the key types known_hosts has for this host first (as ssh does), so a server
        // with several host keys shows the one we can verify.
        let known_types = KnownHosts::load(&files).known_key_types(&spec.address, spec.port);
        let mut algs: Vec<Algorithm> = Preferred::DEFAULT.key.to_vec();
        algs.sort_by_key(|a| !known_types.iter().any(|t| t == key_type(a)));
        let config = client::Config {
            nodelay: true,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 4,
            preferred: Preferred { key: Cow::Owned(algs), ..Preferred::DEFAULT },
            ..Default::default()
        };

        let rejection = Arc::new(Mutex::new(None));
        let verifier = HostKeyVerifier {
            name: spec.name.clone(),
            host: spec.address.clone(),
            port: spec.port,
            files,
            checking: spec.effective_host_key_checking(),
            rejection: rejection.clone(),
        };
        let stream = tokio::net::TcpStream::connect((spec.address.as_str(), spec.port)).await.map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut handle = match client::connect_stream(Arc::new(config), stream, verifier).await {
            Ok(h) => h,
            Err(e) => {
                if let Some(rejected) = rejection.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    return Err(rejected);
                }
                return Err(unreachable(format!("ssh handshake failed: {e}")));
            }
        };

        let user = spec.login_user();
        let auth_err = |reason: String| ConnectionError::Auth { user: user.clone(), host: spec.name.clone(), reason };
        let identities = spec.identity_files();
        if identities.is_empty() {
            return Err(auth_err("no private key (set ansible_ssh_private_key_file)".into()));
        }
        let mut problems = Vec::new();
        for path in &identities {
            let key = match ::russh::keys::load_secret_key(path, None) {
                Ok(k) => k,
                Err(e) => {
                    problems.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            let hash = if key.algorithm().is_rsa() {
                match handle.best_supported_rsa_hash().await {
                    Ok(Some(h)) => h,
                    // Server did not say: every sshd of the last decade takes rsa-sha2-256.
                    _ => Some(HashAlg::Sha256),
                }
            } else {
                None
            };
            match handle.authenticate_publickey(user.clone(), PrivateKeyWithHashAlg::new(Arc::new(key), hash)).await {
                Ok(AuthResult::Success) => {
                    return Ok(RusshTransport { host: spec.name.clone(), handle, slots: Semaphore::new(MAX_SESSIONS) });
                }
                Ok(AuthResult::Failure { remaining_methods, .. }) => {
                    problems.push(format!("{}: key refused (server accepts: {})", path.display(), remaining_methods.iter().map(<&str>::from).collect::<Vec<_>>().join(",")));
                }
                Err(e) => return Err(ConnectionError::Lost { host: spec.name.clone(), reason: format!("during authentication: {e}") }),
            }
        }
        let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
        Err(auth_err(format!("Permission denied ({})", problems.join("; "))))
    }

    fn lost(&self, reason: impl std::fmt::Display) -> ConnectionError {
        ConnectionError::Lost { host: self.host.clone(), reason: reason.to_string() }
    }
}

#[async_trait]
impl Transport for RusshTransport {
    async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, ConnectionError> {
        let _slot = self.slots.acquire().await.map_err(|_| self.lost("transport closed"))?;
        let channel = self.handle.channel_open_session().await.map_err(|e| self.lost(format!("cannot open a channel: {e}")))?;
        channel.exec(true, command.as_bytes()).await.map_err(|e| self.lost(e))?;
        let (mut reader, writer) = channel.split();

        let write = async {
            if let Some(data) = stdin {
                writer.data(data).await?;
            }
            writer.eof().await
        };
        let read = async {
            let mut out = ExecOutput { exit_code: -1, ..Default::default() };
            let mut refused = false;
            while let Some(msg) = reader.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => out.exit_code = exit_status as i32,
                    ChannelMsg::ExitSignal { signal_name, .. } => out.exit_code = signal_exit_code(&signal_name),
                    ChannelMsg::Failure => refused = true,
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            (out, refused)
        };
        tokio::pin!(write, read);
        let mut written = false;
        let (mut out, refused) = loop {
            tokio::select! {
                r = &mut write, if !written => {
                    written = true;
                    // The command may exit before reading all of stdin; the read side tells.
                    if let Err(e) = r { tracing::debug!(host = %self.host, "stdin: {e}"); }
                }
                r = &mut read => break r,
            }
        };
        // Close explicitly so the server frees the session slot now.
        let _ = writer.close().await;
        if out.exit_code < 0 {
            if self.handle.is_closed() {
                return Err(self.lost("connection closed while a command ran"));
            }
            if refused {
                return Err(self.lost("the server refused to run the command"));
            }
            // No status and no signal (like ssh, report 255).
            out.exit_code = 255;
        }
        Ok(out)
    }

    fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    async fn close(&self) {
        self.slots.close();
        let _ = self.handle.disconnect(Disconnect::ByApplication, "", "en").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_codes_follow_the_shell() {
        assert_eq!(signal_exit_code(&Sig::KILL), 137);
        assert_eq!(signal_exit_code(&Sig::TERM), 143);
        assert_eq!(signal_exit_code(&Sig::Custom("WINCH".into())), 255);
    }

    #[test]
    fn rsa_algorithms_share_one_key_type() {
        assert_eq!(key_type(&Algorithm::Rsa { hash: Some(HashAlg::Sha512) }), "ssh-rsa");
        assert_eq!(key_type(&Algorithm::Ed25519), "ssh-ed25519");
    }
}
