//! `async_status`, and the background jobs it reads: a task with `async: N` and `poll: 0`
//! starts its command on the host and goes on; `async_status` tells whether the job has
//! finished and, once it has, gives the task's result (exit code, output, failure) as the task
//! would have registered it. `mode: cleanup` removes the job's files.
//!
//! A job lives in `~/.ansible_async/<jid>/` of the user the task runs as, as in Ansible (the
//! job id is Ansible's shape, `j<digits>.<digits>`; the results are a directory, not a JSON
//! file, and no Python runs): `job` (the command's script), `stdin`, `spec.json` (what the
//! module needs to build its result), `stdout`, `stderr`, and `rc` once the job has ended. The
//! job runs in its own session (`setsid`), so it outlives the SSH connection, and within its
//! time limit (`timeout`, TERM then KILL 5 s later), past which its result is Ansible's
//! "Timeout exceeded". A task that had nothing to run (`creates` satisfied) leaves its final
//! result in `result.json`.
//!
//! Reading a job's state is an action, not a probe: it must be read when the task runs (and on
//! every `until` attempt), never ahead or from a cache. So, like a command, `async_status` is
//! skipped in check mode, where the job was not started either.

use super::args::{self, opt_string};
use super::{command, sh_quote, Action, ActionOutput, CheckSupport, ModuleError, ModuleTask, Plan, Scope};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct AsyncStatusModule;

const PARAMS: &[&str] = &["jid", "mode"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    jid: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    mode: Option<String>,
}

#[derive(Debug)]
struct AsyncStatusTask {
    jid: String,
    cleanup: bool,
}

module_impl!(AsyncStatusModule, "async_status");

fn build(args: &Map<String, Value>) -> Result<AsyncStatusTask, ModuleError> {
    let a: Args = args::parse("async_status", PARAMS, args)?;
    let jid = a.jid.filter(|j| !j.trim().is_empty()).ok_or_else(|| ModuleError::Args("async_status: missing required argument: jid".into()))?;
    check_jid(&jid)?;
    let cleanup = match a.mode.as_deref().unwrap_or("status") {
        "status" => false,
        "cleanup" => true,
        other => return Err(ModuleError::Args(format!("async_status: value of mode must be one of: cleanup, status, got: {other}"))),
    };
    Ok(AsyncStatusTask { jid, cleanup })
}

/// A job id names a directory under `~/.ansible_async`: no path in it.
fn check_jid(jid: &str) -> Result<(), ModuleError> {
    if jid.contains('/') || jid == "." || jid == ".." || jid.contains('\0') || jid.contains('\n') {
        return Err(ModuleError::Args(format!("async_status: '{jid}' is not a job id")));
    }
    Ok(())
}

/// A new job id, in Ansible's shape (`j` + random digits, `.` + the controller's pid).
pub fn new_jid() -> String {
    format!("j{}.{}", rand::random_range(0..999_999_999_999u64), std::process::id())
}

/// The job's directory, as a shell word (`$HOME` expanded by the shell).
fn job_dir(jid: &str) -> String {
    format!("d=\"$HOME/.ansible_async/\"{}\n", sh_quote(jid))
}

/// [`job_dir`], created readable by the job's user only.
fn new_job_dir(jid: &str) -> String {
    job_dir(jid) + "(umask 077; mkdir -p \"$d\") || exit 1\n"
}

/// The script that starts `job` (a task's action script) as background job `jid`, limited to
/// `limit` seconds, with `spec` kept for [`AsyncStatusTask`]; the action's stdin, if
/// `has_stdin`, comes on the script's own stdin. It prints the job's directory.
pub fn launch_script(jid: &str, limit: u64, job: &str, spec: &Value, has_stdin: bool) -> String {
    let mut s = new_job_dir(jid);
    s.push_str(&format!("printf '%s' {} > \"$d/spec.json\" || exit 1\n", sh_quote(&spec.to_string())));
    s.push_str(&format!("printf '%s\\n' {} > \"$d/job\" || exit 1\n", sh_quote(job)));
    s.push_str(if has_stdin { "cat > \"$d/stdin\" || exit 1\n" } else { ": > \"$d/stdin\" || exit 1\n" });
    // The job's own session, every descriptor away from the SSH channel: the connection
    // returns at once and may close while the job runs. `rc` appears when it has ended.
    s.push_str("cd / || exit 1\n");
    s.push_str(&format!(
        "setsid sh -c 'timeout -k 5 \"$1\" sh \"$2/job\" < \"$2/stdin\" > \"$2/stdout\" 2> \"$2/stderr\"; echo $? > \"$2/rc.tmp\" && mv \"$2/rc.tmp\" \"$2/rc\"' async-job {limit} \"$d\" < /dev/null > /dev/null 2>&1 &\n"
    ));
    s.push_str("printf '%s\\n' \"$d\"\n");
    s
}

/// The script that records `result` as job `jid`'s final result, for a task with nothing to
/// run in the background (`creates` satisfied). It prints the job's directory.
pub fn finished_script(jid: &str, result: &Map<String, Value>) -> String {
    let mut s = new_job_dir(jid);
    s.push_str(&format!("printf '%s' {} > \"$d/result.json\" || exit 1\n", sh_quote(&Value::Object(result.clone()).to_string())));
    s.push_str("printf '%s\\n' \"$d\"\n");
    s
}

/// What the task that started job `jid` registers (the launch script printed `dir`).
pub fn started_result(jid: &str, dir: &str) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("ansible_job_id".into(), json!(jid));
    r.insert("started".into(), json!(true));
    r.insert("finished".into(), json!(false));
    r.insert("results_file".into(), json!(dir));
    r
}

fn empty_output(r: &mut Map<String, Value>) {
    r.insert("stdout".into(), json!(""));
    r.insert("stderr".into(), json!(""));
    r.insert("stdout_lines".into(), json!([]));
    r.insert("stderr_lines".into(), json!([]));
}

impl ModuleTask for AsyncStatusTask {
    fn plan(&self, _probes: &[super::ProbeResult]) -> Result<Plan, ModuleError> {
        let mut s = job_dir(&self.jid);
        s.push_str("if [ ! -d \"$d\" ]; then printf 'missing|%s\\n' \"$d\"; exit 0; fi\n");
        if self.cleanup {
            s.push_str("rm -rf -- \"$d\" || exit 1\nprintf 'erased|%s\\n' \"$d\"\n");
        } else {
            s.push_str("printf 'dir|%s\\n' \"$d\"\n");
            s.push_str("if [ -f \"$d/result.json\" ]; then printf 'result|'; base64 -w0 < \"$d/result.json\"; echo; exit 0; fi\n");
            s.push_str("[ -f \"$d/rc\" ] || exit 0\nprintf 'rc|%s\\n' \"$(cat \"$d/rc\")\"\n");
            s.push_str("for f in spec.json stdout stderr; do printf '%s|' \"$f\"; base64 -w0 < \"$d/$f\" 2>/dev/null; echo; done\n");
        }
        let summary = if self.cleanup { format!("remove async job {}", self.jid) } else { format!("read async job {}", self.jid) };
        let touches = if self.cleanup { Scope::path("~/.ansible_async") } else { Scope::Nothing };
        let mut plan = Plan::ok();
        plan.actions.push(Action::new(summary, s, touches));
        plan.changed = Some(false);
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let Some(o) = outputs.first() else { return Ok(plan) };
        let mut fields: Map<String, Value> = Map::new();
        for line in o.stdout_str().lines() {
            if let Some((k, v)) = line.split_once('|') {
                fields.insert(k.to_string(), json!(v));
            }
        }
        let field = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_string);
        let decode = |k: &str| -> Result<Vec<u8>, ModuleError> {
            base64::engine::general_purpose::STANDARD.decode(field(k).unwrap_or_default().trim()).map_err(|e| ModuleError::Probe(format!("async job's {k}: {e}")))
        };
        let mut r = Map::new();
        r.insert("ansible_job_id".into(), json!(self.jid));
        if let Some(dir) = field("missing") {
            r.insert("started".into(), json!(true));
            r.insert("finished".into(), json!(true));
            r.insert("results_file".into(), json!(dir));
            empty_output(&mut r);
            plan.failed = Some("could not find job".into());
        } else if let Some(dir) = field("erased") {
            r.insert("erased".into(), json!(dir));
            r.insert("started".into(), json!(false));
            r.insert("finished".into(), json!(false));
            empty_output(&mut r);
        } else if let Some(dir) = field("dir") {
            r.insert("results_file".into(), json!(dir));
            r.insert("started".into(), json!(true));
            if fields.contains_key("result") {
                // Nothing ran in the background: the task's result as it was.
                let saved: Value = serde_json::from_slice(&decode("result")?).map_err(|e| ModuleError::Probe(format!("async job's result: {e}")))?;
                let Value::Object(saved) = saved else { return Err(ModuleError::Probe("async job's result is not a mapping".into())) };
                plan.changed = saved.get("changed").and_then(Value::as_bool);
                plan.msg = saved.get("msg").and_then(Value::as_str).filter(|m| !m.is_empty()).map(str::to_string);
                for (k, v) in saved {
                    if k != "changed" && k != "failed" {
                        r.insert(k, v);
                    }
                }
                r.insert("finished".into(), json!(true));
            } else if let Some(rc) = field("rc") {
                let rc: i32 = rc.trim().parse().map_err(|_| ModuleError::Probe(format!("async job's exit code '{rc}'")))?;
                r.insert("finished".into(), json!(true));
                if rc == 124 || rc == 137 {
                    // Stopped by its time limit (`timeout`: 124 after TERM, 137 after KILL).
                    plan.failed = Some("Timeout exceeded".into());
                    empty_output(&mut r);
                } else {
                    let spec: Value = serde_json::from_slice(&decode("spec.json")?).unwrap_or(Value::Null);
                    let (stdout, stderr) = (decode("stdout")?, decode("stderr")?);
                    let job = command::job_result(&spec, rc, &String::from_utf8_lossy(&stdout), &String::from_utf8_lossy(&stderr));
                    r.extend(job.result);
                    plan.failed = job.failed;
                    plan.changed = job.changed;
                }
            } else {
                r.insert("finished".into(), json!(false));
                empty_output(&mut r);
            }
        } else {
            return Err(ModuleError::Failed(format!("async_status: cannot read the job: {}", o.stderr_str().trim())));
        }
        plan.result.extend(r);
        Ok(plan)
    }

    fn check_support(&self) -> CheckSupport {
        CheckSupport::SkipIfActions
    }

    fn check_skip_reason(&self) -> &'static str {
        "skipped in check mode: no async job was started"
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::assert_sh_syntax;
    use super::*;
    use crate::connection::ExecOutput;

    fn task(v: Value) -> AsyncStatusTask {
        build(v.as_object().unwrap()).unwrap()
    }

    fn out(stdout: &str) -> ExecOutput {
        ExecOutput { stdout: stdout.as_bytes().to_vec(), stderr: vec![], exit_code: 0 }
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn finish(t: &AsyncStatusTask, stdout: &str) -> Plan {
        let plan = t.plan(&[]).unwrap();
        t.finish(plan, &[out(stdout)]).unwrap()
    }

    #[test]
    fn arguments_as_ansible_takes_them() {
        assert!(build(json!({}).as_object().unwrap()).unwrap_err().to_string().contains("missing required argument: jid"));
        assert!(build(json!({"jid": "j1", "mode": "kill"}).as_object().unwrap()).unwrap_err().to_string().contains("one of: cleanup, status"));
        assert!(build(json!({"jid": "../x"}).as_object().unwrap()).is_err(), "no path in a job id");
        assert!(task(json!({"jid": "j1.2", "mode": "cleanup"})).cleanup);
        assert!(new_jid().starts_with('j') && new_jid().contains('.'));
        for t in [task(json!({"jid": "j1.2"})), task(json!({"jid": "it's", "mode": "cleanup"}))] {
            assert_sh_syntax(&t.plan(&[]).unwrap().actions[0].script);
        }
        assert_sh_syntax(&launch_script("j1.2", 10, "exec sh -c 'echo hi'", &json!({"cmd": "echo 'hi'"}), true));
        assert_sh_syntax(&finished_script("j1.2", &Map::new()));
    }

    #[test]
    fn results_of_a_running_a_finished_a_timed_out_and_a_missing_job() {
        let t = task(json!({"jid": "j7.1"}));
        let running = finish(&t, "dir|/root/.ansible_async/j7.1\n");
        assert_eq!(running.result["finished"], json!(false));
        assert_eq!(running.result["started"], json!(true));
        assert_eq!(running.result["results_file"], json!("/root/.ansible_async/j7.1"));
        assert!(running.failed.is_none() && !running.changed());

        let spec = json!({"cmd": "echo hi; exit 3", "strip_empty_ends": true}).to_string();
        let done = finish(&t, &format!("dir|/d\nrc|3\nspec.json|{}\nstdout|{}\nstderr|{}\n", b64(&spec), b64("hi\n"), b64("")));
        assert_eq!(done.result["finished"], json!(true));
        assert_eq!((done.result["rc"].clone(), done.result["stdout"].clone(), done.result["cmd"].clone()), (json!(3), json!("hi"), json!("echo hi; exit 3")));
        assert_eq!(done.failed.as_deref(), Some("non-zero return code"));
        assert!(done.changed(), "a command that ran changed something, as Ansible says");

        let ok = finish(&t, &format!("dir|/d\nrc|0\nspec.json|{}\nstdout|\nstderr|\n", b64(&spec)));
        assert!(ok.failed.is_none() && ok.changed());
        assert_eq!(ok.result["stdout_lines"], json!([]));

        let late = finish(&t, "dir|/d\nrc|124\nspec.json|\nstdout|\nstderr|\n");
        assert_eq!(late.failed.as_deref(), Some("Timeout exceeded"));
        assert_eq!(late.result["finished"], json!(true));

        let missing = finish(&t, "missing|/root/.ansible_async/j7.1\n");
        assert_eq!(missing.failed.as_deref(), Some("could not find job"));

        let saved = json!({"rc": 0, "stdout": "skipped, since /x exists", "changed": false, "msg": "skipped, since /x exists"}).to_string();
        let nothing = finish(&t, &format!("dir|/d\nresult|{}\n", b64(&saved)));
        assert_eq!(nothing.result["finished"], json!(true));
        assert_eq!(nothing.result["stdout"], json!("skipped, since /x exists"));
        assert!(!nothing.changed() && nothing.failed.is_none());

        let c = task(json!({"jid": "j7.1", "mode": "cleanup"}));
        let erased = finish(&c, "erased|/root/.ansible_async/j7.1\n");
        assert_eq!(erased.result["erased"], json!("/root/.ansible_async/j7.1"));
        assert_eq!(erased.result["finished"], json!(false));
        assert!(erased.failed.is_none() && !erased.changed());
    }

    /// The launch and the status scripts, run here as the job's user would run them: the job
    /// runs on after the launch returns, and its result arrives when it has ended.
    #[test]
    fn a_job_runs_in_the_background_and_its_result_is_read_later() {
        let home = tempfile::tempdir().unwrap();
        let run = |script: &str, stdin: &[u8]| -> ExecOutput {
            use std::io::Write;
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("HOME", home.path())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(stdin).unwrap();
            let o = child.wait_with_output().unwrap();
            ExecOutput { stdout: o.stdout, stderr: o.stderr, exit_code: o.status.code().unwrap_or(-1) }
        };
        let flag = home.path().join("go");
        let job = format!("while [ ! -e {} ]; do sleep 0.05; done; cat; echo oops >&2; exit 2", flag.display());
        let started = std::time::Instant::now();
        let launched = run(&launch_script("j1.1", 30, &job, &json!({"cmd": job, "strip_empty_ends": true}), true), b"from stdin\n");
        assert_eq!(launched.exit_code, 0, "{}", launched.stderr_str());
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the launch doesn't wait for the job");
        let dir = launched.stdout_str().trim().to_string();
        assert_eq!(dir, format!("{}/.ansible_async/j1.1", home.path().display()));

        let t = task(json!({"jid": "j1.1"}));
        let status = |t: &AsyncStatusTask| {
            let plan = t.plan(&[]).unwrap();
            let o = run(&plan.actions[0].script, b"");
            t.finish(plan, &[o]).unwrap()
        };
        // Asked again until it has finished (10 s at most), as `until: r is finished` does.
        let finished = |t: &AsyncStatusTask| {
            for _ in 0..200 {
                let p = status(t);
                if p.result["finished"] == json!(true) {
                    return p;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            panic!("the job never finished");
        };
        assert_eq!(status(&t).result["finished"], json!(false), "still waiting for its flag");
        std::fs::write(&flag, "").unwrap();
        let done = finished(&t);
        assert_eq!((done.result["rc"].clone(), done.result["stdout"].clone(), done.result["stderr"].clone()), (json!(2), json!("from stdin"), json!("oops")));
        assert_eq!(done.failed.as_deref(), Some("non-zero return code"));

        let slow = run(&launch_script("j2.1", 1, "sleep 20", &json!({"cmd": "sleep 20"}), false), b"");
        assert_eq!(slow.exit_code, 0);
        let late = finished(&task(json!({"jid": "j2.1"})));
        assert_eq!(late.failed.as_deref(), Some("Timeout exceeded"));

        let c = task(json!({"jid": "j1.1", "mode": "cleanup"}));
        assert!(status(&c).failed.is_none());
        assert!(!std::path::Path::new(&dir).exists());
        assert_eq!(status(&t).failed.as_deref(), Some("could not find job"));
    }
}
