//! Both SSH transports against real test hosts (`scripts/testbed`, needs root).
//!
//! Hosts: `tr-web1` on 127.0.0.1:2301 and `tr-search1` on 127.0.0.1:2302 (prefix `tr`, so other
//! test suites' hosts are left alone). They are brought up once per test binary if not running.

use provision::connection::known_hosts::{HostKeyStatus, KnownHosts};
use provision::connection::{self, ConnectionError, ConnectionSpec, HostKeyChecking, Transport, TransportKind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const DIR: &str = "/tmp/provision-transport-test";
const KEY: &str = "/var/cache/provision-testbed/id_ed25519";
const WEB1: u16 = 2301;
const SEARCH1: u16 = 2302;
const KINDS: [TransportKind; 2] = [TransportKind::OpenSsh, TransportKind::Russh];

fn known_hosts() -> PathBuf {
    Path::new(DIR).join("known_hosts")
}

fn hosts_running() -> bool {
    let Ok(out) = Command::new(testbed_script()).arg("status").output() else { return false };
    let status = String::from_utf8_lossy(&out.stdout);
    let running = |name: &str| status.lines().any(|l| l.split_whitespace().next() == Some(name) && l.contains(" running"));
    running("tr-web1")
        && running("tr-search1")
        && known_hosts().exists()
        && [WEB1, SEARCH1].iter().all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
}

fn testbed_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed")
}

/// True when the hosts are up; false (after saying why) when this machine cannot run them.
fn testbed() -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    *UP.get_or_init(|| {
        let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
        if uid != "0" {
            eprintln!("SKIPPED: transport tests need root to run scripts/testbed (test hosts are systemd-nspawn containers)");
            return false;
        }
        if hosts_running() {
            return true;
        }
        let status = Command::new(testbed_script())
            .args(["up", "2", "--prefix", "tr", "--port-base", "2300", "--inventory"])
            .arg(Path::new(DIR).join("hosts.yml"))
            .status()
            .expect("run scripts/testbed");
        assert!(status.success(), "scripts/testbed up failed");
        true
    })
}

fn spec(port: u16, known_hosts: &Path, checking: HostKeyChecking) -> ConnectionSpec {
    ConnectionSpec {
        name: format!("tr-{port}"),
        address: "127.0.0.1".into(),
        port,
        user: Some("root".into()),
        private_key: Some(KEY.into()),
        ssh_args: vec!["-o".into(), format!("UserKnownHostsFile={}", known_hosts.display())],
        host_key_checking: checking,
        connect_timeout: Duration::from_secs(10),
        local: false,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn connect(kind: TransportKind, spec: &ConnectionSpec) -> Result<Box<dyn Transport>, ConnectionError> {
    connection::connect(kind, spec).await
}

/// The testbed's host key line (all test hosts share one host key).
fn host_key() -> (String, String) {
    let text = std::fs::read_to_string(known_hosts()).unwrap();
    let mut w = text.lines().next().unwrap().split_whitespace().skip(1);
    (w.next().unwrap().to_string(), w.next().unwrap().to_string())
}

fn temp_known_hosts(content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("known_hosts");
    std::fs::write(&f, content).unwrap();
    (dir, f)
}

#[test]
fn exec_output_exit_codes_and_stderr() {
    if !testbed() {
        return;
    }
    rt().block_on(async {
        for kind in KINDS {
            let t = connect(kind, &spec(WEB1, &known_hosts(), HostKeyChecking::Strict)).await.unwrap();
            let o = t.exec("echo hello; echo oops >&2; exit 3", None).await.unwrap();
            assert_eq!((o.stdout_str().as_str(), o.stderr_str().as_str(), o.exit_code), ("hello\n", "oops\n", 3), "{kind:?}");
            // The command string reaches the remote shell as is.
            let o = t.exec("sh -c 'printf \"%s|\" \"$0\" \"a b\"' 'x y'", None).await.unwrap();
            assert_eq!(o.stdout_str(), "x y|a b|", "{kind:?}");
            let o = t.exec("id -un; hostname", None).await.unwrap();
            assert_eq!(o.stdout_str(), "root\ntr-web1\n", "{kind:?}");
            assert_eq!(t.exec("true", None).await.unwrap().exit_code, 0);
            assert_eq!(t.exec("no-such-command-xyz", None).await.unwrap().exit_code, 127, "{kind:?}");
            // No stdin: the command sees EOF at once instead of hanging.
            let o = t.exec("cat; echo done", None).await.unwrap();
            assert_eq!(o.stdout_str(), "done\n");
            // Killed by a signal: a code, not a hang.
            let started = Instant::now();
            let o = t.exec("kill -9 $$", None).await.unwrap();
            assert!(o.exit_code == 255 || o.exit_code == 137, "{kind:?}: {o:?}");
            assert!(started.elapsed() < Duration::from_secs(5));
            // Stdin a command does not read.
            assert_eq!(t.exec("exit 0", Some(&vec![b'x'; 1 << 20])).await.unwrap().exit_code, 0, "{kind:?}");
            t.close().await;
        }
    });
}

#[test]
fn stdin_round_trip_of_5_mb_binary() {
    if !testbed() {
        return;
    }
    let data: Vec<u8> = {
        let mut x: u64 = 0x9E3779B97F4A7C15;
        (0..5 * 1024 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    };
    rt().block_on(async {
        for kind in KINDS {
            let t = connect(kind, &spec(SEARCH1, &known_hosts(), HostKeyChecking::Strict)).await.unwrap();
            let started = Instant::now();
            let o = t.exec("cat", Some(&data)).await.unwrap();
            assert_eq!(o.exit_code, 0);
            assert!(o.stdout == data, "{kind:?}: {} bytes back", o.stdout.len());
            // Written on the host intact.
            let o = t.exec("cat > /tmp/blob && wc -c < /tmp/blob && rm /tmp/blob", Some(&data)).await.unwrap();
            assert_eq!(o.stdout_str().trim(), data.len().to_string(), "{kind:?}");
            eprintln!("{kind:?}: 5 MB up, 5 MB down and 5 MB up in {:?}", started.elapsed());
            t.close().await;
        }
    });
}

#[test]
fn twenty_concurrent_execs_on_one_connection() {
    if !testbed() {
        return;
    }
    rt().block_on(async {
        for kind in KINDS {
            let t: Arc<dyn Transport> = Arc::from(connect(kind, &spec(WEB1, &known_hosts(), HostKeyChecking::Strict)).await.unwrap());
            let started = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for i in 0..20 {
                let t = t.clone();
                set.spawn(async move {
                    let input = format!("input {i}\n").repeat(1000);
                    let o = t.exec(&format!("sleep 0.3; echo {i}; wc -l"), Some(input.as_bytes())).await.unwrap();
                    assert_eq!(o.stdout_str(), format!("{i}\n1000\n"));
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
            // 8 channels at a time: three rounds of 0.3 s, far from 20 sequential ones.
            let took = started.elapsed();
            assert!(took < Duration::from_secs(4), "{kind:?}: {took:?}");
            // Still one SSH connection to this port from us (plus other tests' ones at most).
            t.close().await;
        }
    });
}

#[test]
fn strict_refuses_an_unknown_host_key() {
    if !testbed() {
        return;
    }
    rt().block_on(async {
        for kind in KINDS {
            let (_d, kh) = temp_known_hosts("");
            match connect(kind, &spec(WEB1, &kh, HostKeyChecking::Strict)).await {
                Err(e @ ConnectionError::HostKeyUnknown { .. }) => assert!(e.is_unreachable()),
                Err(e) => panic!("{kind:?}: {e}"),
                Ok(_) => panic!("{kind:?}: connected with an unknown host key"),
            }
            assert_eq!(std::fs::read_to_string(&kh).unwrap(), "", "{kind:?}");
        }
    });
}

#[test]
fn accept_new_records_the_key_and_off_does_not() {
    if !testbed() {
        return;
    }
    let (key_type, key) = host_key();
    let blob = base64_decode(&key);
    rt().block_on(async {
        for kind in KINDS {
            let (_d, kh) = temp_known_hosts("");
            let t = connect(kind, &spec(WEB1, &kh, HostKeyChecking::AcceptNew)).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(t.exec("echo ok", None).await.unwrap().stdout_str(), "ok\n");
            t.close().await;
            let recorded = KnownHosts::load(std::slice::from_ref(&kh));
            assert_eq!(recorded.check("127.0.0.1", WEB1, &key_type, &blob), HostKeyStatus::Known, "{kind:?}: {}", std::fs::read_to_string(&kh).unwrap());
            // Now Strict works with the recorded key.
            let t = connect(kind, &spec(WEB1, &kh, HostKeyChecking::Strict)).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            t.close().await;

            let (_d, kh) = temp_known_hosts("");
            let t = connect(kind, &spec(WEB1, &kh, HostKeyChecking::Off)).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(t.exec("echo ok", None).await.unwrap().stdout_str(), "ok\n");
            t.close().await;
            assert_eq!(std::fs::read_to_string(&kh).unwrap(), "", "{kind:?}: Off must not record keys");

            // StrictHostKeyChecking in ansible_ssh_common_args overrides the run-wide mode.
            let mut s = spec(WEB1, &kh, HostKeyChecking::Strict);
            s.ssh_args.extend(["-o".to_string(), "StrictHostKeyChecking=no".to_string()]);
            let t = connect(kind, &s).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            t.close().await;
        }
    });
}

#[test]
fn a_changed_host_key_is_refused_in_every_mode() {
    if !testbed() {
        return;
    }
    // Some other valid ed25519 key.
    let wrong = "[127.0.0.1]:2301 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n";
    rt().block_on(async {
        for kind in KINDS {
            for mode in [HostKeyChecking::Strict, HostKeyChecking::AcceptNew, HostKeyChecking::Off] {
                let (_d, kh) = temp_known_hosts(wrong);
                match connect(kind, &spec(WEB1, &kh, mode)).await {
                    Err(ConnectionError::HostKeyChanged { fingerprint, known_hosts, .. }) => {
                        assert!(fingerprint.starts_with("SHA256:"), "{kind:?} {mode:?}: {fingerprint}");
                        assert!(known_hosts.contains(&kh.display().to_string()), "{kind:?} {mode:?}: {known_hosts}");
                    }
                    Err(e) => panic!("{kind:?} {mode:?}: {e}"),
                    Ok(_) => panic!("{kind:?} {mode:?}: connected despite a changed host key"),
                }
                assert_eq!(std::fs::read_to_string(&kh).unwrap(), wrong, "{kind:?} {mode:?}: known_hosts was modified");
            }
        }
    });
}

#[test]
fn hashed_known_hosts_entries_work() {
    if !testbed() {
        return;
    }
    let (_d, kh) = temp_known_hosts(&std::fs::read_to_string(known_hosts()).unwrap());
    let st = Command::new("ssh-keygen").arg("-H").arg("-f").arg(&kh).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    assert!(std::fs::read_to_string(&kh).unwrap().starts_with("|1|"));
    rt().block_on(async {
        for kind in KINDS {
            let t = connect(kind, &spec(SEARCH1, &kh, HostKeyChecking::Strict)).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            t.close().await;
        }
    });
}

#[test]
fn unreachable_port_fails_fast() {
    if !testbed() {
        return;
    }
    rt().block_on(async {
        for kind in KINDS {
            let mut s = spec(1, &known_hosts(), HostKeyChecking::Strict);
            s.connect_timeout = Duration::from_secs(3);
            let started = Instant::now();
            match connect(kind, &s).await {
                Err(e @ ConnectionError::Unreachable { .. }) => assert!(e.is_unreachable()),
                Err(e) => panic!("{kind:?}: {e}"),
                Ok(_) => panic!("{kind:?}: connected to port 1?"),
            }
            assert!(started.elapsed() < Duration::from_secs(4), "{kind:?}: {:?}", started.elapsed());
        }
    });
}

#[test]
fn a_silent_server_times_out_within_the_connect_timeout() {
    if !testbed() {
        return;
    }
    // Accepts TCP and never says a word (no SSH banner).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    rt().block_on(async {
        for kind in KINDS {
            let mut s = spec(port, &known_hosts(), HostKeyChecking::Off);
            s.connect_timeout = Duration::from_secs(2);
            let started = Instant::now();
            match connect(kind, &s).await {
                Err(ConnectionError::Unreachable { .. }) => {}
                Err(e) => panic!("{kind:?}: {e}"),
                Ok(_) => panic!("{kind:?}: connected to a silent server?"),
            }
            let took = started.elapsed();
            assert!(took < Duration::from_secs(7), "{kind:?}: {took:?}");
        }
    });
}

fn keygen(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let key = dir.join(name);
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-N", "", "-C", name, "-t", kind]);
    if kind == "rsa" {
        c.args(["-b", "3072"]);
    }
    let st = c.arg("-f").arg(&key).status().unwrap();
    assert!(st.success());
    key
}

#[test]
fn a_key_the_host_does_not_know_is_an_auth_failure() {
    if !testbed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stranger = keygen(dir.path(), "stranger", "ed25519");
    rt().block_on(async {
        for kind in KINDS {
            let mut s = spec(WEB1, &known_hosts(), HostKeyChecking::Strict);
            s.private_key = Some(stranger.clone());
            match connect(kind, &s).await {
                Err(ConnectionError::Auth { user, reason, .. }) => {
                    assert_eq!(user, "root");
                    assert!(reason.contains("Permission denied"), "{kind:?}: {reason}");
                }
                Err(e) => panic!("{kind:?}: {e}"),
                Ok(_) => panic!("{kind:?}: logged in with a stranger's key"),
            }
        }
    });
}

#[test]
fn rsa_keys_log_in() {
    if !testbed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rsa = keygen(dir.path(), "rsa", "rsa");
    let public = std::fs::read(rsa.with_extension("pub")).unwrap();
    rt().block_on(async {
        let t = connect(TransportKind::Russh, &spec(SEARCH1, &known_hosts(), HostKeyChecking::Strict)).await.unwrap();
        let o = t.exec("cat >> /root/.ssh/authorized_keys", Some(&public)).await.unwrap();
        assert_eq!(o.exit_code, 0);
        t.close().await;
        for kind in KINDS {
            let mut s = spec(SEARCH1, &known_hosts(), HostKeyChecking::Strict);
            s.private_key = Some(rsa.clone());
            let t = connect(kind, &s).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(t.exec("echo rsa", None).await.unwrap().stdout_str(), "rsa\n");
            t.close().await;
        }
    });
}

#[test]
fn openssh_close_ends_the_master_and_removes_its_directory() {
    if !testbed() {
        return;
    }
    rt().block_on(async {
        let t = connection::openssh::OpenSshTransport::connect(&spec(WEB1, &known_hosts(), HostKeyChecking::Strict)).await.unwrap();
        let pid = t.master_pid().await.expect("master runs");
        let dir = t.control_socket().parent().unwrap().to_path_buf();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        assert!(dir.exists());
        t.exec("true", None).await.unwrap();
        t.close().await;
        assert!(!dir.exists(), "control directory left behind");
        // Reaped, so the pid is gone (not even a zombie).
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "ssh master {pid} still running");
        // Using a closed transport is an error, not a hang.
        assert!(t.exec("true", None).await.is_err());

        // Dropping without close() also ends it.
        let t = connection::openssh::OpenSshTransport::connect(&spec(WEB1, &known_hosts(), HostKeyChecking::Strict)).await.unwrap();
        let pid = t.master_pid().await.unwrap();
        let dir = t.control_socket().parent().unwrap().to_path_buf();
        drop(t);
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z "), "ssh master {pid} survived drop: {stat}");
        assert!(!dir.exists());
    });
}

#[test]
fn local_connection_runs_on_the_controller() {
    rt().block_on(async {
        let mut s = spec(WEB1, &known_hosts(), HostKeyChecking::Strict);
        s.local = true;
        let t = connect(TransportKind::OpenSsh, &s).await.unwrap();
        let o = t.exec("printf '%s' \"$(cat)\"; exit 4", Some(b"from stdin")).await.unwrap();
        assert_eq!((o.stdout_str().as_str(), o.exit_code), ("from stdin", 4));
    });
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}


#[test]
fn ssh_options_from_the_inventory_reach_openssh() {
    if !testbed() {
        return;
    }
    rt().block_on(async {
        // ProxyCommand sends the "search1" connection to web1: proof that -o options get through.
        let mut s = spec(SEARCH1, &known_hosts(), HostKeyChecking::Strict);
        s.ssh_args.extend(["-o".to_string(), format!("ProxyCommand=socat - TCP:127.0.0.1:{WEB1}"), "-o".into(), "ControlPersist=600".into(), "-f".into()]);
        let t = connect(TransportKind::OpenSsh, &s).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.exec("hostname", None).await.unwrap().stdout_str(), "tr-web1\n");
        t.close().await;
        // russh cannot proxy: it says so instead of connecting directly.
        match connect(TransportKind::Russh, &s).await {
            Err(ConnectionError::Unreachable { reason, .. }) => assert!(reason.contains("not supported"), "{reason}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("russh ignored ProxyCommand"),
        }
    });
}

#[test]
fn a_dead_connection_is_an_error_not_a_hang() {
    if !testbed() {
        return;
    }
    rt().block_on(async {
        for kind in KINDS {
            let t = connect(kind, &spec(SEARCH1, &known_hosts(), HostKeyChecking::Strict)).await.unwrap();
            // Kill this connection's sshd process from inside.
            let first = tokio::time::timeout(Duration::from_secs(20), t.exec("kill -9 $PPID", None)).await.expect("hung");
            match first {
                Ok(o) => assert!(o.exit_code == 255 || o.exit_code == 137, "{kind:?}: {o:?}"),
                Err(ConnectionError::Lost { .. }) => {}
                Err(e) => panic!("{kind:?}: {e}"),
            }
            // The next command: an error if the end of the connection went unnoticed so far,
            // else it logs in again first (nothing had been sent on the dead connection).
            let next = tokio::time::timeout(Duration::from_secs(20), t.exec("true", None)).await.expect("hung");
            match next {
                Err(e @ ConnectionError::Lost { .. }) => assert!(!e.is_unreachable()),
                Ok(o) => assert_eq!(o.exit_code, 0, "{kind:?}: {o:?}"),
                other => panic!("{kind:?}: {other:?}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let again = tokio::time::timeout(Duration::from_secs(20), t.exec("echo again", None)).await.expect("hung");
            assert_eq!(again.unwrap_or_else(|e| panic!("{kind:?}: not logged in again: {e}")).stdout_str(), "again\n");
            t.close().await;
        }
    });
}
