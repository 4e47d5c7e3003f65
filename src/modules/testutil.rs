//! Shared fixtures for the modules' unit tests: probe output builders, a local `sh` runner, and
//! [`testhost`] for the `#[ignore]`d tests against a real test host.

use super::{ActionOutput, ModuleTask, Plan, ProbeResult};
use base64::Engine as _;

/// A successful probe (rc 0, no stderr) printing `s`.
pub(crate) fn ok(s: &str) -> ProbeResult {
    ProbeResult {
        stdout: s.into(),
        stderr: String::new(),
        rc: 0,
    }
}

/// A successful action's output (exit 0, no stderr) printing `s`.
pub(crate) fn out(s: &str) -> ActionOutput {
    ActionOutput { stdout: s.as_bytes().to_vec(), stderr: Vec::new(), exit_code: 0 }
}

/// File-state probe output (see `common::parse_file_state`) for a root-owned regular file with
/// the given octal `mode` and `content`.
pub(crate) fn file_with_mode(mode: &str, content: &str) -> ProbeResult {
    ok(&format!(
        "file|root|root|0|0|{mode}|{}|1\nsha256|0\ncontent\n{}\n",
        content.len(),
        base64::engine::general_purpose::STANDARD.encode(content)
    ))
}

/// [`file_with_mode`] with mode 644.
pub(crate) fn file(content: &str) -> ProbeResult {
    file_with_mode("644", content)
}

/// Assert that `script` parses as POSIX sh (`sh -n`).
pub(crate) fn assert_sh_syntax(script: &str) {
    let o = std::process::Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{script}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Run `script` with `sh -c` locally, feeding `stdin`; returns (rc, stdout, stderr).
pub(crate) fn sh(script: &str, stdin: Option<&[u8]>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A script that doesn't read its stdin may be gone before the write: not an error.
    if let Err(e) = input.write_all(stdin.unwrap_or_default()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing the script's stdin: {e}");
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Run a probe `script` on the local machine.
pub(crate) fn run_probe(script: &str) -> ProbeResult {
    let (rc, stdout, stderr) = sh(script, None);
    ProbeResult { stdout, stderr, rc }
}

/// Run all of `t`'s probes on the local machine.
pub(crate) fn local_probes(t: &dyn ModuleTask) -> Vec<ProbeResult> {
    t.probes().iter().map(|p| run_probe(&p.script)).collect()
}

/// Probe, plan, run the actions and finish, all on the local machine.
pub(crate) fn apply(t: &dyn ModuleTask) -> Plan {
    let plan = t.plan(&local_probes(t)).unwrap();
    let mut outs = Vec::new();
    for a in &plan.actions {
        let (rc, stdout, stderr) = sh(&a.script, a.stdin.as_deref());
        assert!(rc == 0 || a.may_fail, "{}: {stderr}", a.script);
        outs.push(ActionOutput {
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
            exit_code: rc,
        });
    }
    t.finish(plan, &outs).unwrap()
}

/// Run a task's probes, plan, actions and a second plan against a real test host
/// (`MS_TESTHOST=<port>`, `MS_KNOWN_HOSTS=<file>`, see testbed/README.md). Tests using it are
/// `#[ignore]`d so `cargo test` alone never needs a host; `scripts/test` boots one, installs
/// what they drive (git, python3-venv, iptables, postgresql, ufw, curl) and runs them.
pub(crate) mod testhost {
    use super::super::{sh_quote, ActionOutput, ModuleTask, Plan, ProbeResult};
    use std::io::Write;
    use std::process::{Command, Stdio};

    pub fn port() -> Option<String> {
        std::env::var("MS_TESTHOST").ok()
    }

    pub fn run(script: &str, stdin: Option<&[u8]>) -> ActionOutput {
        let port = port().expect("MS_TESTHOST");
        let known =
            std::env::var("MS_KNOWN_HOSTS").unwrap_or_else(|_| "/tmp/ms/known_hosts".into());
        let mut c = Command::new("ssh")
            .args([
                "-i",
                "/var/cache/provision-testbed/id_ed25519",
                "-o",
                &format!("UserKnownHostsFile={known}"),
                "-p",
                &port,
                "root@127.0.0.1",
            ])
            .arg(format!("sh -c {}", sh_quote(script)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut i = c.stdin.take().unwrap();
            if let Some(d) = stdin {
                i.write_all(d).unwrap();
            }
        }
        let o = c.wait_with_output().unwrap();
        ActionOutput {
            stdout: o.stdout,
            stderr: o.stderr,
            exit_code: o.status.code().unwrap_or(-1),
        }
    }

    pub fn plan(t: &dyn ModuleTask) -> Plan {
        let res: Vec<ProbeResult> = t
            .probes()
            .iter()
            .map(|p| {
                let o = run(&p.script, None);
                ProbeResult {
                    stdout: o.stdout_str(),
                    stderr: o.stderr_str(),
                    rc: o.exit_code,
                }
            })
            .collect();
        t.plan(&res).unwrap()
    }

    /// Plan, apply, finish; returns (first plan after finish, plan of a second run).
    pub fn converge(t: &dyn ModuleTask) -> (Plan, Plan) {
        let p = plan(t);
        let mut outs = Vec::new();
        for a in &p.actions {
            let o = run(&a.script, a.stdin.as_deref());
            let rc = o.exit_code;
            if rc != 0 && !a.may_fail {
                panic!(
                    "action '{}' failed rc={rc}: {}\n{}",
                    a.summary,
                    o.stderr_str(),
                    a.script
                );
            }
            outs.push(o);
        }
        let done = t.finish(p, &outs).unwrap();
        (done, plan(t))
    }
}

/// Prepare `module`'s task from `args` as the executor would, for host `h` of a playbook in
/// `playbook_dir` (no role, no variables, running as root).
pub(crate) fn prepare(module: &dyn super::Module, args: serde_json::Value, playbook_dir: &std::path::Path) -> Result<Box<dyn ModuleTask>, super::ModuleError> {
    let (templar, vars) = (crate::template::Templar::new(), crate::template::Vars::new());
    let ctx = super::PrepareContext { templar: &templar, vars: &vars, host: "h", role_path: None, playbook_dir, run_as: "root" };
    module.prepare(args.as_object().expect("arguments are a map"), &ctx)
}
