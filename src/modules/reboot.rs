//! `reboot`: reboot the host, wait for it to come back, and go on with the play.
//!
//! As Ansible's action does it: read the boot id (`boot_time_command`), run
//! `shutdown -r <pre_reboot_delay in whole minutes> "<msg>"` (the `shutdown` found first in
//! `search_paths`, or `reboot_command`), then, after `post_reboot_delay`, log in again until
//! the boot id differs from the one read before and `test_command` succeeds, within
//! `reboot_timeout`. The result has `rebooted` and `elapsed`; the task is changed. In check
//! mode nothing runs and the task reports the change (`rebooted: true`, `elapsed: 0`).
//!
//! The waiting is the executor's (see [`super::Wait`]): the module gives it the test, one
//! script that fails while the boot id is the old one and then runs `test_command`. Tries
//! come every second (Ansible backs off exponentially up to 12 s), each within
//! `connect_timeout` (default: the connection's). A host that is the controller itself
//! (`ansible_connection: local`, `localhost`) is refused, as in Ansible.

use super::args::{self, opt_string};
use super::{sh_quote, Action, ActionOutput, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope, Wait};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub struct RebootModule;

const PARAMS: &[&str] = &[
    "msg",
    "pre_reboot_delay",
    "pre_reboot_delay_sec",
    "post_reboot_delay",
    "post_reboot_delay_sec",
    "reboot_timeout",
    "reboot_timeout_sec",
    "connect_timeout",
    "connect_timeout_sec",
    "test_command",
    "boot_time_command",
    "reboot_command",
    "search_paths",
];

const DEFAULT_MSG: &str = "Reboot initiated by Ansible";
const DEFAULT_BOOT_TIME_COMMAND: &str = "cat /proc/sys/kernel/random/boot_id";
const DEFAULT_SEARCH_PATHS: &[&str] = &["/sbin", "/bin", "/usr/sbin", "/usr/bin", "/usr/local/sbin"];
/// The exit status of the wait's test while the boot id is still the old one.
const SAME_BOOT: i32 = 97;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    msg: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pre_reboot_delay: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pre_reboot_delay_sec: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    post_reboot_delay: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    post_reboot_delay_sec: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    reboot_timeout: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    reboot_timeout_sec: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    connect_timeout: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    connect_timeout_sec: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    test_command: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    boot_time_command: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    reboot_command: Option<String>,
    #[serde(default, deserialize_with = "args::opt_list")]
    search_paths: Option<Vec<String>>,
}

#[derive(Debug)]
struct RebootTask {
    /// The program (absolute, or looked up in `search_paths`) and its arguments (shell words).
    program: String,
    arguments: String,
    search_paths: Vec<String>,
    boot_time_command: String,
    test_command: String,
    post_reboot_delay: u64,
    reboot_timeout: u64,
    connect_timeout: Option<u64>,
    /// The controller itself: refused.
    local: bool,
}

impl super::Module for RebootModule {
    fn name(&self) -> &'static str {
        "reboot"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(&self, args: &Map<String, Value>, ctx: &super::PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let connection = ctx.vars.get("ansible_connection").and_then(Value::as_str);
        let local = connection == Some("local") || (connection.is_none() && matches!(ctx.host, "localhost" | "127.0.0.1" | "::1") && ctx.vars.get("ansible_host").is_none());
        Ok(Box::new(build(args, local)?))
    }
}

/// Whole seconds, as Ansible's `int()` reads them; negative delays are 0.
fn seconds(name: &str, v: Option<&str>, default: u64) -> Result<u64, ModuleError> {
    match v {
        None => Ok(default),
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) => Ok(n.max(0) as u64),
            Err(_) => Err(ModuleError::Args(format!("reboot: {name} must be a whole number of seconds, got '{s}'"))),
        },
    }
}

fn build(args: &Map<String, Value>, local: bool) -> Result<RebootTask, ModuleError> {
    let a: Args = args::parse("reboot", PARAMS, args)?;
    let pre = seconds("pre_reboot_delay", a.pre_reboot_delay.as_deref().or(a.pre_reboot_delay_sec.as_deref()), 0)?;
    let msg = a.msg.unwrap_or_else(|| DEFAULT_MSG.into());
    let (program, arguments) = match a.reboot_command.as_deref() {
        Some(c) if c.trim().is_empty() => return Err(ModuleError::Args("reboot: reboot_command is empty".into())),
        // As Ansible splits it: the program up to the first space, the rest for the shell.
        Some(c) => match c.split_once(' ') {
            Some((p, rest)) => (p.to_string(), rest.to_string()),
            None => (c.to_string(), String::new()),
        },
        None => ("shutdown".to_string(), format!("-r {} {}", pre / 60, sh_quote(&msg))),
    };
    let connect_timeout = match a.connect_timeout.as_deref().or(a.connect_timeout_sec.as_deref()) {
        None => None,
        Some(s) => Some(seconds("connect_timeout", Some(s), 0)?.max(1)),
    };
    Ok(RebootTask {
        program,
        arguments,
        search_paths: a.search_paths.unwrap_or_else(|| DEFAULT_SEARCH_PATHS.iter().map(|s| s.to_string()).collect()),
        boot_time_command: a.boot_time_command.unwrap_or_else(|| DEFAULT_BOOT_TIME_COMMAND.into()),
        test_command: a.test_command.unwrap_or_else(|| "whoami".into()),
        post_reboot_delay: seconds("post_reboot_delay", a.post_reboot_delay.as_deref().or(a.post_reboot_delay_sec.as_deref()), 0)?,
        reboot_timeout: seconds("reboot_timeout", a.reboot_timeout.as_deref().or(a.reboot_timeout_sec.as_deref()), 600)?,
        connect_timeout,
        local,
    })
}

/// Separates the boot id from the program's path in the probe's output.
const MARK: &str = "@@provision-reboot-program@@";

impl RebootTask {
    /// The wait's test: fails with [`SAME_BOOT`] while the boot id is `before`, then runs the
    /// test command.
    fn test(&self, before: &str) -> String {
        format!(
            "b=$({boot}) || {{ echo \"boot time check failed (exit $?)\" >&2; exit {SAME_BOOT}; }}\nb=$(printf '%s' \"$b\" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')\nif [ -z \"$b\" ] || [ \"$b\" = {before} ]; then echo 'boot time has not changed' >&2; exit {SAME_BOOT}; fi\n{test}",
            boot = self.boot_time_command,
            before = sh_quote(before),
            test = self.test_command,
        )
    }
}

impl ModuleTask for RebootTask {
    fn probes(&self) -> Vec<Probe> {
        if self.local {
            return vec![];
        }
        // The boot id now, and where the program is (Ansible finds it with `find`).
        let find = if self.program.starts_with('/') {
            format!("echo {}", sh_quote(&self.program))
        } else {
            let paths: Vec<String> = self.search_paths.iter().map(|p| sh_quote(&format!("{}/{}", p.trim_end_matches('/'), self.program))).collect();
            format!("for p in {}; do if [ -e \"$p\" ]; then echo \"$p\"; break; fi; done", paths.join(" "))
        };
        vec![Probe::new(format!("{}\nrc=$?\necho {MARK}\n{find}\nexit $rc", self.boot_time_command), Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        plan.result.insert("elapsed".into(), json!(0));
        if self.local {
            plan.result.insert("rebooted".into(), json!(false));
            plan.failed = Some("Running reboot with local connection would reboot the control node.".into());
            return Ok(plan);
        }
        let p = probes.first().ok_or_else(|| ModuleError::Probe("reboot: no probe result".into()))?;
        let (boot, program) = p.stdout.split_once(&format!("{MARK}\n")).unwrap_or((p.stdout.as_str(), ""));
        let boot = boot.trim();
        if p.rc != 0 || boot.is_empty() {
            plan.result.insert("rebooted".into(), json!(false));
            let err = if p.stderr.trim().is_empty() { format!("'{}' printed nothing (exit {})", self.boot_time_command, p.rc) } else { p.stderr.trim().to_string() };
            plan.failed = Some(format!("Failed to get system boot time: {err}"));
            return Ok(plan);
        }
        let program = program.trim();
        if program.is_empty() {
            plan.result.insert("rebooted".into(), json!(false));
            plan.failed = Some(format!("Unable to find command \"{}\" in search paths: {:?}", self.program, self.search_paths));
            return Ok(plan);
        }
        let script = if self.arguments.is_empty() { sh_quote(program) } else { format!("{} {}", sh_quote(program), self.arguments) };
        let wait = Wait {
            delay: Duration::from_secs(self.post_reboot_delay),
            sleep: Duration::from_secs(1),
            timeout: Duration::from_secs(self.reboot_timeout),
            connect_timeout: self.connect_timeout.map(Duration::from_secs),
            test: self.test(boot),
            what: "last boot time check and post-reboot test command".into(),
        };
        let summary = if self.arguments.is_empty() { format!("reboot ({program})") } else { format!("reboot ({program} {})", self.arguments) };
        plan.actions.push(Action::new(summary, script, Scope::Host).may_fail().then_wait(wait));
        plan.result.insert("rebooted".into(), json!(true));
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        if let Some(out) = outputs.first().filter(|o| o.exit_code != 0) {
            plan.result.insert("rebooted".into(), json!(false));
            plan.failed = Some(format!("Reboot command failed. Error was: '{}, {}'", out.stdout_str().trim(), out.stderr_str().trim()));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(args: Value) -> RebootTask {
        build(args.as_object().unwrap(), false).unwrap()
    }

    fn probe(out: &str) -> ProbeResult {
        ProbeResult { stdout: out.into(), stderr: String::new(), rc: 0 }
    }

    #[test]
    fn reboots_with_shutdown_and_waits_for_a_new_boot_id() {
        let t = task(json!({"msg": "kernel 6.1", "pre_reboot_delay": 150, "post_reboot_delay": 5, "reboot_timeout": 300, "connect_timeout": 7}));
        let probes = t.probes();
        assert_eq!(probes.len(), 1);
        assert!(probes[0].script.contains("cat /proc/sys/kernel/random/boot_id"));
        assert!(probes[0].script.contains("for p in /sbin/shutdown /bin/shutdown /usr/sbin/shutdown /usr/bin/shutdown /usr/local/sbin/shutdown;"));
        let plan = t.plan(&[probe(&format!("1234-abcd\n{MARK}\n/sbin/shutdown\n"))]).unwrap();
        assert!(plan.failed.is_none() && plan.changed());
        assert_eq!(plan.result["rebooted"], json!(true));
        assert_eq!(plan.result["elapsed"], json!(0));
        let a = &plan.actions[0];
        // 150 s before the reboot: shutdown counts whole minutes, as Ansible passes it.
        assert_eq!(a.script, "/sbin/shutdown -r 2 'kernel 6.1'");
        assert!(a.may_fail);
        assert_eq!(a.touches, Scope::Host);
        let w = a.wait.as_ref().unwrap();
        assert_eq!((w.delay, w.timeout, w.connect_timeout), (Duration::from_secs(5), Duration::from_secs(300), Some(Duration::from_secs(7))));
        assert!(w.test.contains("[ \"$b\" = 1234-abcd ]"), "{}", w.test);
        assert!(w.test.ends_with("\nwhoami"));
    }

    #[test]
    fn the_wait_test_fails_until_the_boot_id_changes_then_runs_the_test_command() {
        let t = task(json!({"test_command": "systemctl is-system-running --wait >/dev/null; true", "boot_time_command": "echo \"  $BOOT  \""}));
        let test = t.test("old");
        let run = |boot: &str| std::process::Command::new("sh").arg("-c").arg(&test).env("BOOT", boot).output().unwrap();
        let same = run("old");
        assert_eq!(same.status.code(), Some(SAME_BOOT));
        assert_eq!(String::from_utf8_lossy(&same.stderr).trim(), "boot time has not changed");
        assert_eq!(run("").status.code(), Some(SAME_BOOT));
        assert_eq!(run("new").status.code(), Some(0));
        let failing = task(json!({"test_command": "exit 3", "boot_time_command": "echo new"})).test("old");
        assert_eq!(std::process::Command::new("sh").arg("-c").arg(&failing).status().unwrap().code(), Some(3));
    }

    #[test]
    fn reboot_command_and_its_program_lookup() {
        let t = task(json!({"reboot_command": "systemctl reboot --message='done'", "search_paths": ["/opt/bin", "/usr/bin/"]}));
        assert!(t.probes()[0].script.contains("for p in /opt/bin/systemctl /usr/bin/systemctl;"));
        let plan = t.plan(&[probe(&format!("b1\n{MARK}\n/usr/bin/systemctl\n"))]).unwrap();
        assert_eq!(plan.actions[0].script, "/usr/bin/systemctl reboot --message='done'");
        let abs = task(json!({"reboot_command": "/usr/sbin/reboot"}));
        assert!(abs.probes()[0].script.ends_with("echo /usr/sbin/reboot\nexit $rc"));
        assert_eq!(abs.plan(&[probe(&format!("b1\n{MARK}\n/usr/sbin/reboot\n"))]).unwrap().actions[0].script, "/usr/sbin/reboot");
    }

    #[test]
    fn fails_without_a_boot_id_a_program_or_on_the_controller() {
        let t = task(json!({}));
        let plan = t.plan(&[ProbeResult { stdout: format!("{MARK}\n/sbin/shutdown\n"), stderr: "cat: no such file".into(), rc: 1 }]).unwrap();
        assert_eq!(plan.failed.as_deref(), Some("Failed to get system boot time: cat: no such file"));
        assert!(plan.actions.is_empty());
        let plan = t.plan(&[probe(&format!("b1\n{MARK}\n"))]).unwrap();
        assert!(plan.failed.unwrap().starts_with("Unable to find command \"shutdown\" in search paths"));
        let local = build(json!({}).as_object().unwrap(), true).unwrap();
        assert!(local.probes().is_empty());
        let plan = local.plan(&[]).unwrap();
        assert_eq!(plan.failed.as_deref(), Some("Running reboot with local connection would reboot the control node."));
        assert_eq!(plan.result["rebooted"], json!(false));
    }

    #[test]
    fn a_failed_reboot_command_is_reported_as_ansible_does() {
        let t = task(json!({}));
        let plan = t.plan(&[probe(&format!("b1\n{MARK}\n/sbin/shutdown\n"))]).unwrap();
        let out = ActionOutput { stdout: b"".to_vec(), stderr: b"Failed to talk to init daemon.\n".to_vec(), exit_code: 1 };
        let plan = t.finish(plan, &[out]).unwrap();
        assert_eq!(plan.failed.as_deref(), Some("Reboot command failed. Error was: ', Failed to talk to init daemon.'"));
        assert_eq!(plan.result["rebooted"], json!(false));
    }

    #[test]
    fn rejects_bad_numbers_and_unknown_options() {
        assert!(build(json!({"reboot_timeout": "soon"}).as_object().unwrap(), false).is_err());
        assert!(build(json!({"reboot_after": 1}).as_object().unwrap(), false).is_err());
        assert_eq!(task(json!({"pre_reboot_delay": -5})).arguments, "-r 0 'Reboot initiated by Ansible'");
    }
}
