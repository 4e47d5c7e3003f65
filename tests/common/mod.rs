//! Integration test support: real test hosts (scripts/testbed) and running the `provision` binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Does this `ssh` error say the connection failed before any session (and command) started?
/// Only messages `ssh` prints before authentication: "Connection reset by peer" or
/// "Connection closed by" alone may also end a session whose command already ran.
fn never_connected(stderr: &str) -> bool {
    ["kex_exchange_identification", "banner exchange", "ssh: connect to host"]
        .iter()
        .any(|m| stderr.contains(m))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A set of test hosts with their own name prefix, ports and inventory.
pub struct Testbed {
    pub prefix: String,
    pub dir: PathBuf,
    pub n: usize,
}

impl Testbed {
    /// Boot `n` pristine hosts (`P-web1`.., `P-search1`) on ports `port_base+1..`.
    /// Panics with the script's output if it fails; panics if not root.
    pub fn up(prefix: &str, port_base: u16, n: usize) -> Testbed {
        assert!(is_root(), "integration tests need root (test hosts are systemd-nspawn containers)");
        let dir = std::env::temp_dir().join(format!("provision-test-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(repo().join("scripts/testbed"))
            .args(["up", &n.to_string(), "--prefix", prefix, "--port-base", &port_base.to_string(), "--inventory"])
            .arg(dir.join("hosts.yml"))
            .output()
            .expect("run scripts/testbed");
        assert!(out.status.success(), "testbed up failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Testbed { prefix: prefix.to_string(), dir, n }
    }

    pub fn inventory(&self) -> PathBuf {
        self.dir.join("hosts.yml")
    }

    /// Full inventory name of a host (`web1` -> `P-web1`).
    pub fn host(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    pub fn reset(&self, shorts: &[&str]) {
        let names: Vec<String> = shorts.iter().map(|s| self.host(s)).collect();
        let out = Command::new(repo().join("scripts/testbed")).arg("reset").args(&names).output().unwrap();
        assert!(out.status.success(), "testbed reset failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Run a shell command on a host as root; returns (exit code, stdout).
    pub fn ssh(&self, short: &str, cmd: &str) -> (i32, String) {
        let (code, out, _) = self.ssh_full(short, cmd);
        (code, out)
    }

    /// [`Testbed::ssh`] with stderr too.
    ///
    /// The harness's own `ssh` is no subject of the tests: when it fails before a session
    /// exists (exit 255 with a connection-level message, so the command never ran), it is
    /// tried again, twice at most, and the failure is reported on stderr.
    pub fn ssh_full(&self, short: &str, cmd: &str) -> (i32, String, String) {
        let mut attempt = 0;
        loop {
            let out = Command::new(repo().join("scripts/testbed")).args(["ssh", &self.host(short), cmd]).output().unwrap();
            let (code, stdout, stderr) = (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
            attempt += 1;
            if code == 255 && attempt < 3 && never_connected(&stderr) {
                eprintln!("test harness: ssh to {short} failed before a session existed (attempt {attempt}), trying again: {}", stderr.trim());
                std::thread::sleep(std::time::Duration::from_millis(500));
                continue;
            }
            return (code, stdout, stderr);
        }
    }

    pub fn ssh_ok(&self, short: &str, cmd: &str) -> String {
        let (code, out, err) = self.ssh_full(short, cmd);
        assert_eq!(code, 0, "`{cmd}` on {short} failed: {out}\nstderr: {err}");
        out
    }

    /// A fingerprint of everything provisioning could change on a host: every file's type,
    /// mode, owner, size, mtime and content hash outside volatile trees, plus installed
    /// packages, users and unit states.
    pub fn snapshot(&self, short: &str) -> String {
        // One labelled hash per aspect, so a failure says which one moved. Data directories of
        // running databases change on their own (checkpoints); their logical content is
        // compared through psql instead. Transient units are left out: login scopes, and the
        // daemons `timedatectl`, `hostnamectl` and `localectl` start on demand, which exit
        // when idle (a test that just used one sees it stop during the next one's check run).
        let prune = "\\( -path /proc -o -path /sys -o -path /run -o -path /tmp -o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/systemd -o -path /dev -o -path /var/lib/postgresql \\) -prune";
        self.ssh_ok(
            short,
            &format!(
                "echo \"meta $(find / -xdev {prune} -o -printf '%p %y %m %u %g %s %T@\\n' | sort | sha256sum)\"; \
                 echo \"content $(find / -xdev {prune} -o -type f -size -2M -print0 | sort -z | xargs -0 sha256sum 2>/dev/null | sha256sum)\"; \
                 echo \"packages $(dpkg-query -W -f='${{Package}} ${{Version}} ${{Status}}\\n' | sha256sum)\"; \
                 echo \"users $(getent passwd | sha256sum) $(getent group | sha256sum) $(getent shadow | sha256sum)\"; \
                 echo \"unit-files $(systemctl list-unit-files --no-legend --no-pager | sha256sum)\"; \
                 echo \"units $(systemctl list-units --no-legend --no-pager --state=active | grep -v -e '\\.scope' -e 'user@' -e 'user-runtime-dir@' -e 'systemd-timedated' -e 'systemd-hostnamed' -e 'systemd-localed' | sort | sha256sum)\"; \
                 echo \"firewall $(iptables-save 2>/dev/null | grep -v '^[#:]' | sed 's/\\[[0-9:]*\\]//' | sha256sum)\"; \
                 if command -v psql >/dev/null && [ -d /var/run/postgresql ]; then echo \"postgres $(runuser -u postgres -- psql -XAtc 'select datname, datacl from pg_database order by 1; select rolname, rolpassword, rolcanlogin from pg_authid order by 1' 2>&1 | sha256sum)\"; fi",
            ),
        )
    }

    pub fn down(&self) {
        let _ = Command::new(repo().join("scripts/testbed")).args(["down", "--prefix", &self.prefix]).output();
    }
}

pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Result of one `provision` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recap {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub ignored: u32,
    /// SSH commands the host was sent (printed with `-v`).
    pub round_trips: Option<u32>,
}

impl Run {
    /// PLAY RECAP per host.
    pub fn recap(&self) -> BTreeMap<String, Recap> {
        let mut out = BTreeMap::new();
        let mut in_recap = false;
        for line in self.stdout.lines() {
            if line.starts_with("PLAY RECAP") {
                in_recap = true;
                continue;
            }
            if !in_recap || !line.contains(" : ") {
                continue;
            }
            let (host, rest) = line.split_once(" : ").unwrap();
            let mut r = Recap::default();
            for kv in rest.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    let v: u32 = v.parse().unwrap_or(0);
                    match k {
                        "ok" => r.ok = v,
                        "changed" => r.changed = v,
                        "unreachable" => r.unreachable = v,
                        "failed" => r.failed = v,
                        "skipped" => r.skipped = v,
                        "ignored" => r.ignored = v,
                        "round_trips" => r.round_trips = Some(v),
                        _ => {}
                    }
                }
            }
            out.insert(host.trim().to_string(), r);
        }
        out
    }

    pub fn total_changed(&self) -> u32 {
        self.recap().values().map(|r| r.changed).sum()
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "provision failed (exit {}):\n{}\n{}", self.code, self.stdout, self.stderr);
        self
    }

    pub fn assert_no_changes(&self) -> &Self {
        self.assert_ok();
        let recap = self.recap();
        assert!(!recap.is_empty(), "no PLAY RECAP in output:\n{}", self.stdout);
        for (h, r) in &recap {
            assert_eq!(r.changed, 0, "host {h} changed on a run that should change nothing:\n{}", self.stdout);
        }
        self
    }

    /// Names of tasks that reported `changed` for a host.
    pub fn changed_tasks(&self, host: &str) -> Vec<String> {
        let mut current = String::new();
        let mut out = Vec::new();
        for line in self.stdout.lines() {
            if let Some(rest) = line.strip_prefix("TASK [").or_else(|| line.strip_prefix("RUNNING HANDLER [")) {
                current = rest.rsplit_once(']').map(|(a, _)| a.to_string()).unwrap_or_default();
            } else if line.starts_with(&format!("changed: [{host}]")) && !out.contains(&current) {
                out.push(current.clone());
            }
        }
        out
    }
}

/// Run the provision binary in `cwd` with `args` (colour off).
pub fn provision(cwd: &Path, args: &[&str]) -> Run {
    provision_env(cwd, args, &[])
}

/// [`provision`] with extra environment variables.
pub fn provision_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(cwd)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("ANSIBLE_HOST_KEY_CHECKING")
        .envs(env.iter().copied())
        .output()
        .expect("run provision");
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// Write files of a small project (playbook, roles) into a temp dir.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let p = d.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    d
}
