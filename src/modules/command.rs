//! `command` and `shell`: run something on the host. Always "changed" when it runs (use
//! `changed_when`); `creates`/`removes` (globs allowed) make it idempotent: a probe checks them
//! and a satisfied condition means no action. In check mode a command that would run is
//! skipped ([`CheckSupport::SkipIfActions`]), like Ansible, unless it has `creates`/`removes`:
//! then it reports the change (Ansible's "Command would have run if not in check mode").
//!
//! `command` runs no shell features: the words are split like a shell would (shlex) and each is
//! quoted, except that `$VAR`/`${VAR}` and a leading `~` are expanded as Ansible does
//! (`expand_argument_vars`, default true). `shell` hands the string to `executable -c`.
//!
//! `start`, `end` and `delta` are timed on the host: the action prints `date` on a line before
//! the command's output and on one after it (after a newline of its own, so output without a
//! final newline stays as it is), and `finish` takes both lines off before anything else sees
//! the output. No extra round trip; the price is that the command runs as the script shell's
//! child instead of replacing it with `exec`.

use super::args::{self, opt_boolish, opt_list, opt_string};
use super::{
    sh_quote, Action, ActionOutput, CheckSupport, Module, ModuleError, ModuleTask, Plan,
    PrepareContext, Probe, ProbeResult, Scope,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct CommandModule;
pub struct ShellModule;

const COMMAND_PARAMS: &[&str] = &[
    "_raw_params",
    "cmd",
    "argv",
    "chdir",
    "creates",
    "removes",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
    "expand_argument_vars",
    "warn",
];
const SHELL_PARAMS: &[&str] = &[
    "_raw_params",
    "cmd",
    "chdir",
    "creates",
    "removes",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
    "executable",
    "warn",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    _raw_params: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    cmd: Option<String>,
    #[serde(default, deserialize_with = "opt_list")]
    argv: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    chdir: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    creates: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    removes: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    stdin: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    stdin_add_newline: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    strip_empty_ends: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    expand_argument_vars: Option<bool>,
    #[serde(default)]
    executable: Option<String>,
    #[serde(default)]
    warn: Option<Value>,
}

#[derive(Debug)]
struct CommandTask {
    /// The command line to execute (already quoted for sh).
    exec_line: String,
    /// `cmd` in the result: argv list (command) or the string (shell).
    cmd: Value,
    chdir: Option<String>,
    creates: Option<String>,
    removes: Option<String>,
    stdin: Option<Vec<u8>>,
    strip_empty_ends: bool,
}

impl Module for CommandModule {
    fn name(&self) -> &'static str {
        "command"
    }
    fn params(&self) -> &'static [&'static str] {
        COMMAND_PARAMS
    }
    fn free_form(&self) -> Option<&'static str> {
        Some("_raw_params")
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        _ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build(false, args)?))
    }
}

impl Module for ShellModule {
    fn name(&self) -> &'static str {
        "shell"
    }
    fn params(&self) -> &'static [&'static str] {
        SHELL_PARAMS
    }
    fn free_form(&self) -> Option<&'static str> {
        Some("_raw_params")
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        _ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        Ok(Box::new(build(true, args)?))
    }
}

/// Quote one argv word for sh, expanding `$VAR`, `${VAR}` (left as is when unset, like
/// Python's `os.path.expandvars`) and a leading `~`/`~user` (like `os.path.expanduser`).
fn expand_word(w: &str) -> String {
    let mut out = String::new();
    let mut lit = String::new();
    let mut rest = w;
    if let Some(after) = rest.strip_prefix('~') {
        let end = after.find('/').unwrap_or(after.len());
        let user = &after[..end];
        if user.is_empty() {
            out.push_str("\"$HOME\"");
            rest = &after[end..];
        } else if user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            && !user.starts_with('-')
        {
            out.push('~');
            out.push_str(user);
            rest = &after[end..];
        }
    }
    let flush = |lit: &mut String, out: &mut String| {
        if !lit.is_empty() {
            out.push_str(&sh_quote(lit));
            lit.clear();
        }
    };
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('$') {
            let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(e) => (&braced[..e], e + 2),
                    None => ("", 0),
                }
            } else {
                let e = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..e], e)
            };
            if consumed > 0 && crate::template::is_identifier(name) {
                flush(&mut lit, &mut out);
                let original = &rest[..consumed + 1];
                out.push_str(&format!(
                    "\"${{{name}-{}}}\"",
                    original
                        .replace('\\', "\\\\")
                        .replace('$', "\\$")
                        .replace('}', "\\}")
                        .replace('"', "\\\"")
                ));
                rest = &after[consumed..];
                continue;
            }
        }
        let c = rest.chars().next().unwrap();
        lit.push(c);
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut lit, &mut out);
    if out.is_empty() {
        out.push_str("''");
    }
    out
}

/// A path pattern as a shell word: glob characters stay active, everything else is escaped.
fn glob_word(p: &str) -> String {
    let mut s = String::new();
    for c in p.chars() {
        if c.is_ascii_alphanumeric() || "/._-*?[]!^,+=:@%".contains(c) {
            s.push(c);
        } else {
            s.push('\\');
            s.push(c);
        }
    }
    s
}

fn build(shell: bool, args: &Map<String, Value>) -> Result<CommandTask, ModuleError> {
    let module = if shell { "shell" } else { "command" };
    let a: Args = args::parse(
        module,
        if shell { SHELL_PARAMS } else { COMMAND_PARAMS },
        args,
    )?;
    let _ = a.warn;
    let raw = match (
        a._raw_params.filter(|s| !s.trim().is_empty()),
        a.cmd.filter(|s| !s.trim().is_empty()),
    ) {
        (Some(_), Some(_)) => {
            return Err(ModuleError::Args(format!(
                "{module}: a free-form command and cmd are mutually exclusive"
            )))
        }
        (r, c) => r.or(c),
    };
    let (exec_line, cmd) = if shell {
        let raw = raw.ok_or_else(|| ModuleError::Args("shell: no command given".into()))?;
        let exe = a
            .executable
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        (
            format!("{} -c {}", sh_quote(&exe), sh_quote(&raw)),
            json!(raw),
        )
    } else {
        let words = match (raw, a.argv.filter(|v| !v.is_empty())) {
            (Some(_), Some(_)) => {
                return Err(ModuleError::Args(
                    "command: only one of a free-form command, cmd or argv can be given".into(),
                ))
            }
            (Some(r), None) => shlex::split(&r).ok_or_else(|| {
                ModuleError::Args(format!(
                    "command: cannot split '{r}' into words (unbalanced quotes?)"
                ))
            })?,
            (None, Some(v)) => v,
            (None, None) => return Err(ModuleError::Args("command: no command given".into())),
        };
        if words.is_empty() {
            return Err(ModuleError::Args("command: no command given".into()));
        }
        let expand = a.expand_argument_vars.unwrap_or(true);
        let quoted: Vec<String> = words
            .iter()
            .map(|w| if expand { expand_word(w) } else { sh_quote(w) })
            .collect();
        (quoted.join(" "), json!(words))
    };
    let join = |p: Option<String>| -> Option<String> {
        let p = p.filter(|p| !p.trim().is_empty())?;
        match &a.chdir {
            Some(d) if !p.starts_with('/') && !p.starts_with('~') => {
                Some(format!("{}/{p}", d.trim_end_matches('/')))
            }
            _ => Some(p),
        }
    };
    let stdin = a.stdin.map(|s| {
        let mut b = s.into_bytes();
        if a.stdin_add_newline.unwrap_or(true) {
            b.push(b'\n');
        }
        b
    });
    Ok(CommandTask {
        exec_line,
        cmd,
        creates: join(a.creates),
        removes: join(a.removes),
        chdir: a.chdir.filter(|d| !d.trim().is_empty()),
        stdin,
        strip_empty_ends: a.strip_empty_ends.unwrap_or(true),
    })
}

/// Probe lines `KEY|yes` when a path matching `pattern` exists.
fn exists_script(key: &str, pattern: &str) -> String {
    let word = if pattern.contains(['*', '?', '[']) {
        glob_word(pattern)
    } else if let Some(rest) = pattern.strip_prefix("~/") {
        format!("\"$HOME\"/{}", sh_quote(rest))
    } else {
        sh_quote(pattern)
    };
    format!("for f in {word}; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then echo '{key}|yes'; break; fi; done\n")
}

/// The directory a pattern lives in, up to the first glob character (for the probe's Scope).
fn pattern_scope(p: &str) -> String {
    match p.find(['*', '?', '[']) {
        Some(i) => match p[..i].rfind('/') {
            Some(0) => "/".into(),
            Some(j) => p[..j].to_string(),
            None => ".".into(),
        },
        None => p.to_string(),
    }
}

/// The first line of a command action's stdout: when the command started, as the host tells
/// (`date`: epoch seconds, nanoseconds, local date and time).
const START_MARK: &str = "@@provision-command-start ";
/// The last line, after a newline of its own: when it ended.
const END_MARK: &str = "\n@@provision-command-end ";
const DATE_NOW: &str = "\"$(date '+%s %N %Y-%m-%d %H:%M:%S')\"";

/// A time from a marker line: (microseconds since the epoch, Python's `str(datetime.now())`
/// of it in the host's local time).
fn parse_mark(line: &str) -> Option<(i64, String)> {
    let mut f = line.split_whitespace();
    let (secs, nanos, day, time) = (f.next()?.parse::<i64>().ok()?, f.next()?, f.next()?, f.next()?);
    // (%N is 9 digits, zero-padded on the left)
    let micros: i64 = format!("{nanos:0>9}").get(..6)?.parse().ok()?;
    let shown = if micros == 0 { format!("{day} {time}") } else { format!("{day} {time}.{micros:06}") };
    Some((secs * 1_000_000 + micros, shown))
}

/// Python's `str(timedelta)`: `H:MM:SS[.ffffff]`, with `N day(s), ` in front when it's that long.
pub(crate) fn python_timedelta(micros: i64) -> String {
    let (days, rest) = (micros.div_euclid(86_400_000_000), micros.rem_euclid(86_400_000_000));
    let (secs, us) = (rest / 1_000_000, rest % 1_000_000);
    let mut s = format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if us != 0 {
        s.push_str(&format!(".{us:06}"));
    }
    if days != 0 {
        s = format!("{days} day{}, {s}", if days.abs() != 1 { "s" } else { "" });
    }
    s
}

/// The command's own stdout, without the timing lines the action printed around it, and its
/// `start`, `end` and `delta` as Ansible registers them (null when not known).
fn split_timing(stdout: &str) -> (String, [Value; 3]) {
    let mut out = stdout;
    let mut start = None;
    if let Some(rest) = out.strip_prefix(START_MARK) {
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        start = parse_mark(line);
        out = after;
    }
    let mut end = None;
    let mut clean = out.to_string();
    if let Some(i) = out.rfind(END_MARK) {
        let rest = &out[i + END_MARK.len()..];
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        end = parse_mark(line);
        // (anything printed after it: by a process the command left behind)
        clean = format!("{}{after}", &out[..i]);
    }
    let times = match (start, end) {
        (Some((s, shown_s)), Some((e, shown_e))) => [json!(shown_s), json!(shown_e), json!(python_timedelta(e - s))],
        (Some((_, shown_s)), None) => [json!(shown_s), Value::Null, Value::Null],
        _ => [Value::Null, Value::Null, Value::Null],
    };
    (clean, times)
}

fn insert_times(plan: &mut Plan, times: [Value; 3]) {
    for (k, v) in ["start", "end", "delta"].into_iter().zip(times) {
        plan.result.insert(k.into(), v);
    }
}

/// A run's exit code and output in the result, as Ansible's command module returns them.
pub(crate) fn fill_result(plan: &mut Plan, strip_empty_ends: bool, rc: i32, stdout: &str, stderr: &str) {
    let clean = |s: &str| if strip_empty_ends { s.trim_end_matches(['\r', '\n']).to_string() } else { s.to_string() };
    let (stdout, stderr) = (clean(stdout), clean(stderr));
    plan.result.insert("rc".into(), json!(rc));
    plan.result.insert("stdout_lines".into(), json!(stdout.lines().collect::<Vec<_>>()));
    plan.result.insert("stderr_lines".into(), json!(stderr.lines().collect::<Vec<_>>()));
    plan.result.insert("stdout".into(), json!(stdout));
    plan.result.insert("stderr".into(), json!(stderr));
    if rc != 0 {
        plan.failed = Some("non-zero return code".into());
    } else {
        plan.result.insert("msg".into(), json!(""));
    }
}

/// The result of a command or shell task that ran as a background job (`async` with
/// `poll: 0`), from its [`ModuleTask::background_spec`] and how the job ended.
pub fn job_result(spec: &Value, rc: i32, stdout: &str, stderr: &str) -> Plan {
    let mut plan = Plan::ok();
    if let Some(cmd) = spec.get("cmd") {
        plan.result.insert("cmd".into(), cmd.clone());
    }
    let strip = spec.get("strip_empty_ends").and_then(Value::as_bool).unwrap_or(true);
    let (stdout, times) = split_timing(stdout);
    insert_times(&mut plan, times);
    fill_result(&mut plan, strip, rc, &stdout, stderr);
    plan.changed = Some(true);
    plan
}

impl ModuleTask for CommandTask {
    fn probes(&self) -> Vec<Probe> {
        let mut s = String::new();
        let mut reads = Vec::new();
        if let Some(c) = &self.creates {
            s.push_str(&exists_script("creates", c));
            reads.push(pattern_scope(c));
        }
        if let Some(r) = &self.removes {
            s.push_str(&exists_script("removes", r));
            reads.push(pattern_scope(r));
        }
        if s.is_empty() {
            return vec![];
        }
        s.push_str("true\n");
        vec![Probe::new(s, Scope::Paths(reads))]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        plan.result.insert("cmd".into(), self.cmd.clone());
        // (not run: null, as Ansible's)
        insert_times(&mut plan, [Value::Null, Value::Null, Value::Null]);
        if let Some(r) = probes.first() {
            if r.rc != 0 {
                return Err(ModuleError::Failed(format!(
                    "cannot check creates/removes: {}",
                    r.stderr.trim()
                )));
            }
            let has = |k: &str| r.stdout.lines().any(|l| l.trim() == format!("{k}|yes"));
            let skip = match (&self.creates, &self.removes) {
                (Some(c), _) if has("creates") => Some(format!("skipped, since {c} exists")),
                (_, Some(rm)) if !has("removes") => {
                    Some(format!("skipped, since {rm} does not exist"))
                }
                _ => None,
            };
            if let Some(msg) = skip {
                plan.result.insert("rc".into(), json!(0));
                plan.result.insert("stdout".into(), json!(msg));
                plan.result.insert("stdout_lines".into(), json!([msg]));
                plan.result.insert("stderr".into(), json!(""));
                plan.result.insert("stderr_lines".into(), json!([]));
                plan.msg = Some(msg);
                return Ok(plan);
            }
        }
        // Timed on the host: a line before the command's output and one after it, which
        // `finish` takes off before anything else sees the output.
        let mut script = format!("printf '{START_MARK}%s\\n' {DATE_NOW}\n");
        if let Some(d) = &self.chdir {
            let q = sh_quote(d);
            script.push_str(&format!("cd -- {q} || {{ echo \"Unable to change directory before execution: \"{q} >&2; exit 1; }}\n"));
        }
        script.push_str(&self.exec_line);
        if self.stdin.is_none() {
            script.push_str(" </dev/null");
        }
        script.push_str(&format!("\nrc=$?\nprintf '{}%s\\n' {DATE_NOW}\nexit $rc\n", END_MARK.replace('\n', "\\n")));
        let summary = match &self.cmd {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        let mut action = Action::new(format!("run {summary}"), script, Scope::Host).may_fail();
        if let Some(i) = &self.stdin {
            action = action.with_stdin(i.clone());
        }
        plan.actions.push(action);
        plan.changed = Some(true);
        if self.creates.is_some() || self.removes.is_some() {
            // what check mode registers (a real run's output replaces it)
            plan.result.insert("rc".into(), json!(0));
            plan.result.insert("msg".into(), json!("Command would have run if not in check mode"));
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        if let Some(o) = outputs.first() {
            plan.result.remove("msg");
            let (stdout, times) = split_timing(&o.stdout_str());
            insert_times(&mut plan, times);
            fill_result(&mut plan, self.strip_empty_ends, o.exit_code, &stdout, &o.stderr_str());
        }
        Ok(plan)
    }

    fn background_spec(&self) -> Option<Value> {
        Some(json!({"cmd": self.cmd, "strip_empty_ends": self.strip_empty_ends}))
    }

    /// Ansible (2.19): with `creates`/`removes` (already found not to skip it) the task
    /// reports the change it would make; without them it can't tell and is skipped.
    fn check_support(&self) -> CheckSupport {
        if self.creates.is_some() || self.removes.is_some() {
            CheckSupport::Full
        } else {
            CheckSupport::SkipIfActions
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::{apply, ok, sh};

    fn task(shell: bool, v: Value) -> CommandTask {
        build(shell, v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn command_words_are_quoted_and_vars_expanded() {
        let t = task(
            false,
            json!({"_raw_params": "echo 'a b' $HOME ${NOPE_XYZ} \"x;y\" ~/z $"}),
        );
        let p = t.plan(&[]).unwrap();
        let (rc, out, _) = sh(&p.actions[0].script, None);
        assert_eq!(rc, 0);
        let out = split_timing(&out).0;
        let home = std::env::var("HOME").unwrap();
        assert_eq!(out, format!("a b {home} ${{NOPE_XYZ}} x;y {home}/z $\n"));
        assert_eq!(
            p.result["cmd"],
            json!(["echo", "a b", "$HOME", "${NOPE_XYZ}", "x;y", "~/z", "$"])
        );
        assert!(p.actions[0].may_fail);
        assert_eq!(p.actions[0].touches, Scope::Host);
        let t = task(
            false,
            json!({"argv": ["printf", "%s|", "$HOME"], "expand_argument_vars": false}),
        );
        let (_, out, _) = sh(&t.plan(&[]).unwrap().actions[0].script, None);
        assert_eq!(split_timing(&out).0, "$HOME|");
    }

    #[test]
    fn shell_and_results() {
        let t = task(
            true,
            json!({"cmd": "echo out; echo err >&2; printf '\\n\\n'; exit 3", "chdir": "/tmp"}),
        );
        let p = apply(&t);
        assert_eq!(p.result["rc"], 3);
        assert_eq!(p.result["stdout"], "out");
        assert_eq!(p.result["stderr"], "err");
        assert_eq!(p.result["stdout_lines"], json!(["out"]));
        assert_eq!(p.failed.as_deref(), Some("non-zero return code"));
        let t = task(
            true,
            json!({"_raw_params": "cat; pwd", "stdin": "hi", "chdir": "/tmp"}),
        );
        let p = apply(&t);
        assert_eq!(p.result["stdout"], "hi\n/tmp");
        assert!(p.failed.is_none() && p.changed());
        let t = task(
            true,
            json!({"_raw_params": "echo $0", "executable": "/bin/bash"}),
        );
        assert_eq!(apply(&t).result["stdout"], "/bin/bash");
    }

    #[test]
    fn creates_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap().to_string();
        let t = task(
            true,
            json!({"_raw_params": "touch done.flag", "chdir": base, "creates": "done.flag"}),
        );
        assert_eq!(
            t.probes()[0].reads,
            Scope::Paths(vec![format!("{base}/done.flag")])
        );
        let p = apply(&t);
        assert_eq!(p.actions.len(), 1);
        let p = apply(&t);
        assert!(p.actions.is_empty());
        assert_eq!(
            p.msg.as_deref(),
            Some(format!("skipped, since {base}/done.flag exists").as_str())
        );
        assert_eq!(p.result["rc"], 0);
        let t = task(
            false,
            json!({"_raw_params": "rm done.flag", "chdir": base, "removes": format!("{base}/*.flag")}),
        );
        assert_eq!(t.probes()[0].reads, Scope::Paths(vec![base.clone()]));
        assert_eq!(apply(&t).actions.len(), 1);
        assert!(apply(&t).actions.is_empty());
        let t = task(
            false,
            json!({"_raw_params": "true", "creates": "/nonexistent dir/*"}),
        );
        assert!(t.plan(&[ok("")]).unwrap().actions.len() == 1);
        let (rc, out, _) = sh(&t.probes()[0].script, None);
        assert_eq!((rc, out.as_str()), (0, ""));
    }

    #[test]
    fn check_mode_predicts_a_change_with_creates_or_removes() {
        // Ansible 2.19: a command that would run is `changed` in check mode when it has
        // creates/removes, skipped when it has neither
        let t = task(false, json!({"_raw_params": "make", "creates": "/opt/app/built"}));
        assert_eq!(t.check_support(), CheckSupport::Full);
        let p = t.plan(&[ok("")]).unwrap();
        assert!(p.changed());
        assert_eq!(p.result["msg"], "Command would have run if not in check mode");
        assert_eq!(p.result["rc"], 0);
        // ran for real: the command's own result
        let done = t.finish(p, &[crate::modules::testutil::out("built\n")]).unwrap();
        assert_eq!((done.result["msg"].as_str(), done.result["stdout"].as_str()), (Some(""), Some("built")));
        let t = task(true, json!({"_raw_params": "rm x", "removes": "/x"}));
        assert_eq!(t.check_support(), CheckSupport::Full);
        let t = task(true, json!({"_raw_params": "make"}));
        assert_eq!(t.check_support(), CheckSupport::SkipIfActions);
        assert!(!t.plan(&[]).unwrap().result.contains_key("msg"));
    }

    #[test]
    fn timed_on_the_host_in_ansibles_formats() {
        assert_eq!(python_timedelta(3_456), "0:00:00.003456");
        assert_eq!(python_timedelta(2_000_000), "0:00:02");
        assert_eq!(python_timedelta(3_723_000_001), "1:02:03.000001");
        assert_eq!(python_timedelta(90_000_000_000), "1 day, 1:00:00");
        assert_eq!(python_timedelta(-1), "-1 day, 23:59:59.999999");
        let out = "@@provision-command-start 1764032523 123456789 2026-11-25 01:02:03\nhello\n\n@@provision-command-end 1764032523 127000000 2026-11-25 01:02:03\n";
        let (clean, times) = split_timing(out);
        assert_eq!(clean, "hello\n");
        assert_eq!(times, [json!("2026-11-25 01:02:03.123456"), json!("2026-11-25 01:02:03.127000"), json!("0:00:00.003544")]);
        // output without a final newline, and output after the end (a process left behind)
        let (clean, times) = split_timing("@@provision-command-start 1 0 1970-01-01 00:00:01\nno newline\n@@provision-command-end 2 5000 1970-01-01 00:00:02\nlate\n");
        assert_eq!(clean, "no newlinelate\n");
        assert_eq!(times, [json!("1970-01-01 00:00:01"), json!("1970-01-01 00:00:02.000005"), json!("0:00:01.000005")]);
        // the shell ended before the end (`cd` failed): start only
        let (clean, times) = split_timing("@@provision-command-start 1 0 1970-01-01 00:00:01\n");
        assert_eq!((clean.as_str(), &times[1]), ("", &Value::Null));

        // run here: the command's output is its own, exactly
        let t = task(true, json!({"cmd": "sleep 0.05; printf 'a\\n\\n'", "strip_empty_ends": false}));
        let p = apply(&t);
        assert_eq!(p.result["stdout"], "a\n\n");
        let re = regex::Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$").unwrap();
        for k in ["start", "end"] {
            assert!(re.is_match(p.result[k].as_str().unwrap()), "{}", p.result[k]);
        }
        let delta = p.result["delta"].as_str().unwrap();
        assert!(regex::Regex::new(r"^0:00:00\.0[5-9]\d{4}$").unwrap().is_match(delta), "{delta}");
        let p = apply(&task(false, json!({"argv": ["printf", "x"], "stdin": "in"})));
        assert_eq!((&p.result["stdout"], &p.result["rc"]), (&json!("x"), &json!(0)));
        // exit code and stderr untouched
        let p = apply(&task(true, json!({"cmd": "echo e >&2; exit 7"})));
        assert_eq!((&p.result["rc"], &p.result["stderr"], &p.result["stdout"]), (&json!(7), &json!("e"), &json!("")));
        assert!(p.result["delta"].is_string());
        // not run: null
        let t = task(true, json!({"cmd": "x", "creates": "/"}));
        let p = t.plan(&[ok("creates|yes\n")]).unwrap();
        assert_eq!((&p.result["start"], &p.result["end"], &p.result["delta"]), (&Value::Null, &Value::Null, &Value::Null));
        // a background job's output
        let job = job_result(&json!({"cmd": "x"}), 0, "@@provision-command-start 1 0 1970-01-01 00:00:01\nok\n\n@@provision-command-end 3 0 1970-01-01 00:00:03\n", "");
        assert_eq!((&job.result["stdout"], &job.result["delta"]), (&json!("ok"), &json!("0:00:02")));
    }

    #[test]
    fn argument_errors() {
        assert!(build(
            false,
            json!({"_raw_params": "echo 'x"}).as_object().unwrap()
        )
        .is_err());
        assert!(build(false, json!({"chdir": "/tmp"}).as_object().unwrap()).is_err());
        assert!(build(true, json!({"argv": ["x"]}).as_object().unwrap()).is_err());
    }
}
