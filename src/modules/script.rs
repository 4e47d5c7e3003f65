//! `script`: run a controller script on the host, as Ansible's `script` action does, without
//! Python there. The first word of the free-form text (or `cmd`) names the script, found like
//! `copy`'s `src` (the role's `files/`, the role, the playbook's `files/`, the playbook's
//! folder); the rest of the text is handed to the host's shell untouched, so its quoting,
//! variables and redirections work as in Ansible. One action sends the script on stdin, writes
//! it into a fresh private directory (under `~/.ansible/tmp` as Ansible's remote tmp, else
//! `mktemp -d`: `/tmp` may be mounted noexec), runs it (through `executable` if given, else by
//! its shebang) from `chdir`, removes it and exits with its code. The result is `command`'s
//! (`rc`, `stdout`, `stderr` and their `_lines`; always changed; a non-zero `rc` fails the
//! task), with the output kept as the script printed it (Ansible strips nothing here).
//!
//! As in Ansible, `creates`/`removes` are literal paths tested with `test -e` (no globs, no
//! `~`; relative to the login directory) and, when they say so, the task is *skipped* (not ok)
//! with Ansible's message; they are checked before anything else, so a missing script or a
//! relative `chdir` only fails a task that would run. In check mode a task with
//! `creates`/`removes` that would run reports changed; without them it is skipped ("Check
//! mode is not supported for this task."). A vault-encrypted script is decrypted with the
//! run's vault passwords, as Ansible always does (its argument spec refuses `decrypt`, so it
//! can't be turned off). Not supported: `async` with `poll: 0`, Windows hosts.

use super::args::{self, opt_string};
use super::command::fill_result;
use super::{
    sh_quote, Action, ActionOutput, CheckSupport, Module, ModuleError, ModuleTask, Plan,
    PrepareContext, Probe, ProbeResult, Scope,
};
use serde::Deserialize;
use serde_json::{Map, Value};

pub struct ScriptModule;

const PARAMS: &[&str] = &["_raw_params", "cmd", "creates", "removes", "chdir", "executable"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    _raw_params: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    cmd: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    creates: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    removes: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    chdir: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    executable: Option<String>,
}

/// Why a task that would run cannot: Ansible finds these only after `creates`/`removes`
/// said the script runs, so they are kept until then.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// A relative `chdir` would depend on the login directory.
    Chdir(String),
    /// The script is not on the controller (or can't be read).
    Source(String),
}

#[derive(Debug)]
struct ScriptTask {
    /// The command line as written (`deploy.sh --fast`), for the action's summary.
    line: String,
    /// The script's file name on the host (its basename, as Ansible keeps it: `$0`).
    base: String,
    /// The text after the script's word, verbatim (shell words for the host's shell).
    rest: String,
    /// The script, or why the task can't run it.
    content: Result<Vec<u8>, Refusal>,
    executable: Option<String>,
    chdir: Option<String>,
    creates: Option<String>,
    removes: Option<String>,
}

impl Module for ScriptModule {
    fn name(&self) -> &'static str {
        "script"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn free_form(&self) -> Option<&'static str> {
        Some("_raw_params")
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build(args, ctx)?))
    }
}

/// Split a command line after its first shell word: (the word as written, the rest as
/// written). Quotes and backslashes are followed so `'my script.sh' a` splits after the
/// closing quote.
fn split_first_word(line: &str) -> (&str, &str) {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            _ if escaped => escaped = false,
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => escaped = true,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c.is_whitespace() => return (&line[..i], &line[i..]),
            (None, _) => {}
        }
    }
    (line, "")
}

fn build(args: &Map<String, Value>, ctx: &PrepareContext) -> Result<ScriptTask, ModuleError> {
    let a: Args = args::parse("script", PARAMS, args)?;
    let given = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let line = match (given(a._raw_params), given(a.cmd)) {
        (Some(_), Some(_)) => {
            return Err(ModuleError::Args(
                "script: a free-form script and cmd are mutually exclusive".into(),
            ))
        }
        (None, None) => {
            return Err(ModuleError::Args(
                "script: no script given (a free-form script path or cmd is required)".into(),
            ))
        }
        (r, c) => r.or(c).unwrap_or_default().trim().to_string(),
    };
    let source = shlex::split(&line)
        .and_then(|words| words.into_iter().next())
        .ok_or_else(|| {
            ModuleError::Args(format!(
                "script: cannot split '{line}' into words (unbalanced quotes?)"
            ))
        })?;
    let rest = split_first_word(&line).1.to_string();
    let base = std::path::Path::new(&source)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "script".into());
    let chdir = given(a.chdir);
    let content = match &chdir {
        Some(d) if !d.starts_with('/') => Err(Refusal::Chdir(format!(
            "chdir {d} must be an absolute path for a Unix-aware remote node"
        ))),
        _ => read_source(ctx, &source),
    };
    Ok(ScriptTask {
        line,
        base,
        rest,
        content,
        executable: given(a.executable),
        chdir,
        creates: given(a.creates),
        removes: given(a.removes),
    })
}

/// The script's bytes, found as `copy`'s `src` is, decrypted if vault-encrypted.
fn read_source(ctx: &PrepareContext, source: &str) -> Result<Vec<u8>, Refusal> {
    let path = ctx.find_local("files", source).ok_or_else(|| {
        Refusal::Source(format!(
            "Could not find or access '{source}' (searched files/ of the role and the playbook directory)"
        ))
    })?;
    crate::vault::read_file(&path)
        .map_err(|e| Refusal::Source(format!("Could not read '{}': {e}", path.display())))
}

impl ScriptTask {
    /// The action's shell script: the script arrives on stdin; everything after reads
    /// /dev/null. The private directory goes however the shell ends (signals included).
    fn action_script(&self) -> String {
        let file = format!("\"$d\"/{}", sh_quote(&self.base));
        let mut s = String::from(
            "d=$( (umask 077; mkdir -p \"$HOME/.ansible/tmp\" && mktemp -d \"$HOME/.ansible/tmp/ansible-tmp-XXXXXXXXXX\") 2>/dev/null || mktemp -d) || exit 1\n\
             trap 'rm -rf \"$d\"' EXIT\n\
             trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM\n",
        );
        s.push_str(&format!("cat >{file} && chmod 700 {file} || exit 1\nexec </dev/null\n"));
        if let Some(d) = &self.chdir {
            s.push_str(&format!("cd -- {} || exit\n", sh_quote(d)));
        }
        if let Some(e) = &self.executable {
            // As Ansible does: the executable is shell text (`/usr/bin/env python3` works).
            s.push_str(e);
            s.push(' ');
        }
        s.push_str(&file);
        s.push_str(&self.rest);
        s.push('\n');
        s
    }
}

impl ModuleTask for ScriptTask {
    fn probes(&self) -> Vec<Probe> {
        let checks: Vec<(&str, &String)> = [("creates", &self.creates), ("removes", &self.removes)]
            .into_iter()
            .filter_map(|(k, p)| p.as_ref().map(|p| (k, p)))
            .collect();
        if checks.is_empty() {
            return vec![];
        }
        let mut s = String::new();
        for (key, path) in &checks {
            s.push_str(&format!("if test -e {}; then echo '{key}|yes'; fi\n", sh_quote(path)));
        }
        s.push_str("true\n");
        let reads = checks.iter().map(|(_, p)| p.to_string()).collect();
        vec![Probe::new(s, Scope::Paths(reads))]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        if let Some(r) = probes.first() {
            if r.rc != 0 {
                return Err(ModuleError::Failed(format!(
                    "cannot check creates/removes: {}",
                    r.stderr.trim()
                )));
            }
            let has = |k: &str| r.stdout.lines().any(|l| l.trim() == format!("{k}|yes"));
            let skip = match (&self.creates, &self.removes) {
                (Some(c), _) if has("creates") => Some(format!("{c} exists, matching creates option")),
                (_, Some(rm)) if !has("removes") => {
                    Some(format!("{rm} does not exist, matching removes option"))
                }
                _ => None,
            };
            if let Some(msg) = skip {
                plan.skipped = Some(msg.clone());
                plan.msg = Some(msg);
                return Ok(plan);
            }
        }
        let content = match &self.content {
            Ok(c) => c,
            Err(Refusal::Chdir(m)) => return Err(ModuleError::Args(m.clone())),
            Err(Refusal::Source(m)) => return Err(ModuleError::LocalFile(m.clone())),
        };
        let action = Action::new(format!("run script {}", self.line), self.action_script(), Scope::Host)
            .with_stdin(content.clone())
            .may_fail();
        plan.actions.push(action);
        plan.changed = Some(true);
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        if let Some(o) = outputs.first() {
            fill_result(&mut plan, false, o.exit_code, &o.stdout_str(), &o.stderr_str());
            // Ansible's script result has a `msg` only when it failed.
            if o.exit_code == 0 {
                plan.result.remove("msg");
            }
        }
        Ok(plan)
    }

    /// Ansible: with `creates`/`removes` (already found not to skip it) the task reports the
    /// change it would make; without them it can't tell and is skipped.
    fn check_support(&self) -> CheckSupport {
        if self.creates.is_some() || self.removes.is_some() {
            CheckSupport::Full
        } else {
            CheckSupport::SkipIfActions
        }
    }

    fn check_skip_reason(&self) -> &'static str {
        "Check mode is not supported for this task."
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::{assert_sh_syntax, ok, sh};
    use crate::template::{Templar, Vars};
    use serde_json::json;
    use std::path::Path;

    /// A project folder with `files/` scripts, and a task prepared in it.
    fn task_in(dir: &Path, args: Value) -> Result<ScriptTask, ModuleError> {
        let (templar, vars) = (Templar::new(), Vars::new());
        let ctx = PrepareContext { templar: &templar, vars: &vars, host: "h", role_path: None, playbook_dir: dir, run_as: "root" };
        build(args.as_object().unwrap(), &ctx)
    }

    /// Plan, run the action locally with `home` as HOME (so the test's ~/.ansible/tmp is its
    /// own), finish.
    fn run_here(t: &ScriptTask, home: &Path) -> Plan {
        let p = t.plan(&[]).unwrap();
        let a = &p.actions[0];
        let script = format!("HOME={}\n{}", sh_quote(&home.display().to_string()), a.script);
        let (rc, stdout, stderr) = sh(&script, a.stdin.as_deref());
        let out = ActionOutput { stdout: stdout.into_bytes(), stderr: stderr.into_bytes(), exit_code: rc };
        t.finish(p, &[out]).unwrap()
    }

    fn project() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("files")).unwrap();
        let script = "#!/bin/sh\necho \"args $# [$1] [$2] $(basename \"$0\")\"\necho oops >&2\npwd\nexit \"${EXIT:-0}\"\n";
        std::fs::write(d.path().join("files/hello.sh"), script).unwrap();
        std::fs::write(d.path().join("top.py"), "import sys\nprint('py', sys.argv[1:])\n").unwrap();
        d
    }

    #[test]
    fn first_word_splits_after_quotes() {
        assert_eq!(split_first_word("a.sh x y"), ("a.sh", " x y"));
        assert_eq!(split_first_word("'my s.sh' 'a b'"), ("'my s.sh'", " 'a b'"));
        assert_eq!(split_first_word("my\\ s.sh \"q\""), ("my\\ s.sh", " \"q\""));
        assert_eq!(split_first_word("\"a \\\" b\".sh"), ("\"a \\\" b\".sh", ""));
        assert_eq!(split_first_word("x.sh"), ("x.sh", ""));
    }

    #[test]
    fn runs_the_script_with_its_words_and_keeps_output_as_printed() {
        let d = project();
        let t = task_in(d.path(), json!({"_raw_params": "hello.sh one 'two words' > /dev/stdout", "chdir": "/tmp"})).unwrap();
        assert!(t.probes().is_empty());
        let p = t.plan(&[]).unwrap();
        assert_eq!(p.actions.len(), 1);
        let a = &p.actions[0];
        assert_eq!(a.summary, "run script hello.sh one 'two words' > /dev/stdout");
        assert!(a.may_fail && a.touches == Scope::Host && p.changed());
        assert_eq!(a.stdin.as_deref(), Some(std::fs::read(d.path().join("files/hello.sh")).unwrap().as_slice()));
        assert_sh_syntax(&a.script);
        let home = tempfile::tempdir().unwrap();
        let done = run_here(&t, home.path());
        assert_eq!(done.result["rc"], 0);
        assert_eq!(done.result["stdout"], "args 2 [one] [two words] hello.sh\n/tmp\n");
        assert_eq!(done.result["stdout_lines"], json!(["args 2 [one] [two words] hello.sh", "/tmp"]));
        assert_eq!(done.result["stderr"], "oops\n");
        assert!(done.failed.is_none() && done.changed());
        assert!(!done.result.contains_key("msg"), "no msg on success, as Ansible");
        // The private directory was made under ~/.ansible/tmp and is gone.
        assert_eq!(std::fs::read_dir(home.path().join(".ansible/tmp")).unwrap().count(), 0);
    }

    #[test]
    fn failing_script_fails_with_its_code_and_executable_runs_it() {
        let d = project();
        let t = task_in(d.path(), json!({"cmd": "files/hello.sh", "executable": "EXIT=3 sh"})).unwrap();
        let p = run_here(&t, d.path());
        assert_eq!(p.result["rc"], 3);
        assert_eq!(p.failed.as_deref(), Some("non-zero return code"));
        assert_eq!(p.result["stdout_lines"][0], "args 0 [] [] hello.sh");
        let t = task_in(d.path(), json!({"_raw_params": "top.py a", "executable": "python3"})).unwrap();
        let p = run_here(&t, d.path());
        assert_eq!(p.result["stdout"], "py ['a']\n");
    }

    #[test]
    fn creates_and_removes_skip_before_anything_else() {
        let d = project();
        let t = task_in(d.path(), json!({"_raw_params": "missing.sh", "creates": "/etc/x y", "removes": "~/z", "chdir": "rel"})).unwrap();
        let probe = &t.probes()[0];
        assert_eq!(probe.reads, Scope::Paths(vec!["/etc/x y".into(), "~/z".into()]));
        assert_sh_syntax(&probe.script);
        // Literal paths, as Ansible's `test -e`: neither globbed nor `~`-expanded.
        assert!(probe.script.contains("test -e '/etc/x y'") && probe.script.contains("test -e '~/z'"));
        let p = t.plan(&[ok("creates|yes\nremoves|yes\n")]).unwrap();
        assert_eq!(p.skipped.as_deref(), Some("/etc/x y exists, matching creates option"));
        assert_eq!(p.msg, p.skipped);
        assert!(p.actions.is_empty() && !p.changed());
        let p = t.plan(&[ok("")]).unwrap();
        assert_eq!(p.skipped.as_deref(), Some("~/z does not exist, matching removes option"));
        // Would run: now the relative chdir is refused (before the missing script).
        let e = t.plan(&[ok("removes|yes\n")]).unwrap_err();
        assert!(matches!(&e, ModuleError::Args(m) if m == "chdir rel must be an absolute path for a Unix-aware remote node"), "{e}");
        let t = task_in(d.path(), json!({"_raw_params": "missing.sh", "removes": "/x"})).unwrap();
        assert!(matches!(t.plan(&[ok("removes|yes\n")]).unwrap_err(), ModuleError::LocalFile(m) if m.contains("'missing.sh'")));
        assert!(t.plan(&[ProbeResult { rc: 1, stderr: "boom".into(), ..Default::default() }]).is_err());
        // The probe itself, locally.
        let t = task_in(d.path(), json!({"_raw_params": "hello.sh", "creates": d.path().join("files/*").display().to_string()})).unwrap();
        assert_eq!(sh(&t.probes()[0].script, None), (0, String::new(), String::new()));
        let t = task_in(d.path(), json!({"_raw_params": "hello.sh", "creates": d.path().join("files").display().to_string()})).unwrap();
        assert_eq!(sh(&t.probes()[0].script, None).1, "creates|yes\n");
    }

    #[test]
    fn check_mode_reports_a_change_only_with_creates_or_removes() {
        let d = project();
        let t = task_in(d.path(), json!({"_raw_params": "hello.sh"})).unwrap();
        assert_eq!(t.check_support(), CheckSupport::SkipIfActions);
        assert_eq!(t.check_skip_reason(), "Check mode is not supported for this task.");
        let t = task_in(d.path(), json!({"_raw_params": "hello.sh", "removes": "/x"})).unwrap();
        assert_eq!(t.check_support(), CheckSupport::Full);
        let p = t.plan(&[ok("removes|yes\n")]).unwrap();
        assert!(p.changed() && p.result.is_empty(), "check mode registers changed alone, as Ansible");
    }

    #[test]
    fn argument_errors() {
        let d = project();
        for args in [json!({}), json!({"_raw_params": "a.sh", "cmd": "b.sh"}), json!({"_raw_params": "'a.sh"}), json!({"_raw_params": "hello.sh", "decrypt": false})] {
            assert!(matches!(task_in(d.path(), args.clone()), Err(ModuleError::Args(_))), "{args}");
        }
    }
}
