//! OpenSSH `known_hosts` verification, for the in-process (russh) transport and for checks the
//! system `ssh` does not make on its own.
//!
//! Supported: plain names, `[host]:port`, comma lists, wildcards `*` / `?`, negation `!`,
//! hashed names (`|1|salt|hash`, HMAC-SHA1), `@revoked` (refused), `@cert-authority` (skipped:
//! we never ask servers for host certificates). Hosts are matched case-insensitively, as ssh does.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What known_hosts says about the key a host offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// A matching line holds exactly this key.
    Known,
    /// No line for this host and key type.
    Unknown,
    /// The host is known with a different key of the same type.
    Changed {
        /// Fingerprint (`SHA256:...`) of the key on record.
        stored_fingerprint: String,
        /// Where the key on record is (`file:line`).
        location: String,
    },
    /// The offered key is marked `@revoked`.
    Revoked { location: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    patterns: String,
    key_type: String,
    /// Wire-format key blob (base64-decoded).
    blob: Vec<u8>,
    location: String,
}

/// Parsed known_hosts lines from one or more files, in order.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// The name ssh looks up: `host` on port 22, `[host]:port` otherwise.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...` fingerprint of a wire-format public key blob, as `ssh-keygen -l` prints it.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

impl KnownHosts {
    /// Read the files; missing or unreadable files count as empty (like ssh).
    pub fn load(files: &[PathBuf]) -> Self {
        let mut kh = KnownHosts::default();
        for f in files {
            match std::fs::read_to_string(f) {
                Ok(text) => kh.add_text(&text, f),
                Err(e) => tracing::debug!("known_hosts {}: {e}", f.display()),
            }
        }
        kh
    }

    pub fn parse(text: &str, source: &Path) -> Self {
        let mut kh = KnownHosts::default();
        kh.add_text(text, source);
        kh
    }

    fn add_text(&mut self, text: &str, source: &Path) {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let mut first = words.next().unwrap_or_default();
            let marker = match first {
                "@revoked" => Marker::Revoked,
                "@cert-authority" => Marker::CertAuthority,
                m if m.starts_with('@') => {
                    tracing::debug!("{}:{}: unknown marker {m}", source.display(), i + 1);
                    continue;
                }
                _ => Marker::None,
            };
            if marker != Marker::None {
                first = match words.next() {
                    Some(w) => w,
                    None => continue,
                };
            }
            let (Some(key_type), Some(b64)) = (words.next(), words.next()) else {
                tracing::debug!("{}:{}: malformed known_hosts line", source.display(), i + 1);
                continue;
            };
            let Ok(blob) = STANDARD.decode(b64) else {
                tracing::debug!("{}:{}: bad base64 key", source.display(), i + 1);
                continue;
            };
            self.entries.push(Entry {
                marker,
                patterns: first.to_string(),
                key_type: key_type.to_string(),
                blob,
                location: format!("{}:{}", source.display(), i + 1),
            });
        }
    }

    fn matching(&self, host: &str, port: u16) -> impl Iterator<Item = &Entry> {
        let name = lookup_name(host, port).to_ascii_lowercase();
        self.entries.iter().filter(move |e| e.marker != Marker::CertAuthority && host_matches(&e.patterns, &name))
    }

    /// Verify `blob` (wire-format key of type `key_type`, e.g. `ssh-ed25519`) offered by `host:port`.
    pub fn check(&self, host: &str, port: u16, key_type: &str, blob: &[u8]) -> HostKeyStatus {
        let mut changed = None;
        let mut known = false;
        for e in self.matching(host, port) {
            if e.marker == Marker::Revoked {
                if e.blob == blob {
                    return HostKeyStatus::Revoked { location: e.location.clone() };
                }
                continue;
            }
            if e.blob == blob {
                known = true;
            } else if e.key_type == key_type && changed.is_none() {
                changed = Some(HostKeyStatus::Changed { stored_fingerprint: fingerprint(&e.blob), location: e.location.clone() });
            }
        }
        // ssh accepts a key found on any matching line, even if another line disagrees.
        if known {
            HostKeyStatus::Known
        } else {
            changed.unwrap_or(HostKeyStatus::Unknown)
        }
    }

    /// Key types on record for the host (to prefer them in key exchange, as ssh does).
    pub fn known_key_types(&self, host: &str, port: u16) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for e in self.matching(host, port) {
            if e.marker == Marker::None && !v.contains(&e.key_type) {
                v.push(e.key_type.clone());
            }
        }
        v
    }
}

/// Does a known_hosts host field (comma list, maybe hashed) match `name` (already lowercased,
/// in [`lookup_name`] form)? A matching negated pattern vetoes the line.
pub fn host_matches(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_matches(hashed, name);
    }
    let mut positive = false;
    for p in patterns.split(',') {
        let (negated, p) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p),
        };
        if wildcard_match(&p.to_ascii_lowercase(), name) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

fn hashed_matches(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else { return false };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else { return false };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else { return false };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// ssh's `match_pattern`: `*` any run of characters, `?` exactly one.
pub fn wildcard_match(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

static APPEND_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Record a host key (AcceptNew): appends `name key_type base64` to `file`, creating it (and
/// its directory, mode 0700) if needed.
pub fn append(file: &Path, host: &str, port: u16, key_type: &str, blob: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let _guard = APPEND_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let needs_newline = match std::fs::read(file) {
        Ok(b) => !b.is_empty() && !b.ends_with(b"\n"),
        Err(_) => false,
    };
    let line = format!("{}{} {} {}\n", if needs_newline { "\n" } else { "" }, lookup_name(host, port), key_type, STANDARD.encode(blob));
    let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(file)?;
    f.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6GdOzbxWa/4E4BuCQ+FJXqBFhrJXrhNKcFYHVGZ0AC";
    const RSA_A: &str = "AAAAB3NzaC1yc2EAAAADAQABAAAAAgDl";

    fn blob(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).unwrap()
    }
    fn kh(text: &str) -> KnownHosts {
        KnownHosts::parse(text, Path::new("kh"))
    }

    #[test]
    fn plain_and_bracketed_port_forms() {
        let k = kh(&format!("example.org ssh-ed25519 {ED_A}\n[127.0.0.1]:2301 ssh-ed25519 {ED_A}\n"));
        assert_eq!(k.check("example.org", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
        assert_eq!(k.check("EXAMPLE.org", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
        // A plain entry does not cover a non-standard port.
        assert_eq!(k.check("example.org", 2222, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Unknown);
        assert_eq!(k.check("127.0.0.1", 2301, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
        assert_eq!(k.check("127.0.0.1", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Unknown);
    }

    #[test]
    fn changed_key_reports_the_stored_fingerprint() {
        let k = kh(&format!("# comment\n\nweb1,10.0.0.1 ssh-ed25519 {ED_A} root@x\n"));
        match k.check("web1", 22, "ssh-ed25519", &blob(ED_B)) {
            HostKeyStatus::Changed { stored_fingerprint, location } => {
                assert_eq!(stored_fingerprint, fingerprint(&blob(ED_A)));
                assert_eq!(location, "kh:3");
            }
            other => panic!("{other:?}"),
        }
        // Another key type on record is not a change (ssh treats it as a new key).
        assert_eq!(k.check("web1", 22, "ssh-rsa", &blob(RSA_A)), HostKeyStatus::Unknown);
        assert_eq!(k.known_key_types("web1", 22), vec!["ssh-ed25519".to_string()]);
    }

    #[test]
    fn a_matching_line_wins_over_a_conflicting_one() {
        let k = kh(&format!("web1 ssh-ed25519 {ED_B}\nweb1 ssh-ed25519 {ED_A}\n"));
        assert_eq!(k.check("web1", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
    }

    #[test]
    fn wildcards_and_negation() {
        let k = kh(&format!("*.example.org,!bad.example.org ssh-ed25519 {ED_A}\nweb? ssh-ed25519 {ED_A}\n[10.1.*]:2222 ssh-ed25519 {ED_A}\n"));
        assert_eq!(k.check("a.example.org", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
        assert_eq!(k.check("bad.example.org", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Unknown);
        assert_eq!(k.check("web7", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
        assert_eq!(k.check("web17", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Unknown);
        assert_eq!(k.check("10.1.2.3", 2222, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b", "aXXbc"));
    }

    #[test]
    fn hashed_entries() {
        // Made with `ssh-keygen -H` semantics: HMAC-SHA1(key = salt, data = name).
        let salt = b"0123456789abcdefghij";
        for (name, port) in [("web1.example.org", 22u16), ("127.0.0.1", 2301)] {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
            mac.update(lookup_name(name, port).as_bytes());
            let hash = mac.finalize().into_bytes();
            let line = format!("|1|{}|{} ssh-ed25519 {ED_A}\n", STANDARD.encode(salt), STANDARD.encode(hash));
            let k = kh(&line);
            assert_eq!(k.check(name, port, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
            assert!(matches!(k.check(name, port, "ssh-ed25519", &blob(ED_B)), HostKeyStatus::Changed { .. }));
            assert_eq!(k.check("other", port, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Unknown);
        }
    }

    #[test]
    fn real_ssh_keygen_hash() {
        // HMAC-SHA1 of "[127.0.0.1]:2301" computed independently (Python's hmac), as `ssh-keygen -H` writes it.
        let salt = STANDARD.encode(b"saltsaltsaltsaltsalt");
        let hash = "IUcbFYO4Rf6WP6uZpey2nlx3Jas=";
        let line = format!("|1|{salt}|{hash} ssh-ed25519 {ED_A}");
        let k = kh(&line);
        assert_eq!(k.check("127.0.0.1", 2301, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
    }

    #[test]
    fn markers() {
        let k = kh(&format!("@cert-authority *.example.org ssh-ed25519 {ED_B}\n@revoked * ssh-ed25519 {ED_B}\nweb1 ssh-ed25519 {ED_A}\n"));
        // cert-authority lines are not host keys: no "changed".
        assert_eq!(k.check("a.example.org", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Unknown);
        assert_eq!(k.check("web1", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
        assert!(matches!(k.check("web1", 22, "ssh-ed25519", &blob(ED_B)), HostKeyStatus::Revoked { .. }));
        assert!(matches!(k.check("anything", 22, "ssh-ed25519", &blob(ED_B)), HostKeyStatus::Revoked { .. }));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let k = kh(&format!("web1\nweb1 ssh-ed25519 !!notbase64\n@bogus web1 ssh-ed25519 {ED_B}\nweb1 ssh-ed25519 {ED_A}\n"));
        assert_eq!(k.check("web1", 22, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
        assert_eq!(k.entries.len(), 1);
    }

    #[test]
    fn append_creates_and_extends() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/known_hosts");
        append(&f, "127.0.0.1", 2301, "ssh-ed25519", &blob(ED_A)).unwrap();
        std::fs::write(&f, std::fs::read_to_string(&f).unwrap().trim_end()).unwrap();
        append(&f, "web1", 22, "ssh-ed25519", &blob(ED_B)).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(text, format!("[127.0.0.1]:2301 ssh-ed25519 {ED_A}\nweb1 ssh-ed25519 {ED_B}\n"));
        let k = KnownHosts::load(&[f, dir.path().join("missing")]);
        assert_eq!(k.check("127.0.0.1", 2301, "ssh-ed25519", &blob(ED_A)), HostKeyStatus::Known);
        assert_eq!(k.check("web1", 22, "ssh-ed25519", &blob(ED_B)), HostKeyStatus::Known);
    }
}
