//! `lineinfile`: ensure one line is (not) in a text file, with Ansible's semantics for
//! `regexp`/`search_string`/`insertafter`/`insertbefore`/`firstmatch`/`backrefs`. The new
//! content is computed here from the probed content (the probe follows a final symlink, like
//! Ansible edits the link's target) and written atomically, validated first when asked.
//!
//! Also holds the text-file editing helpers `blockinfile` shares.

use super::args::{self, opt_boolish, opt_mode, opt_string, Mode};
use super::common::{self, FileKind, FileState};
use super::{sh_quote, Action, ActionOutput, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct LineinfileModule;

const PARAMS: &[&str] = &[
    "path",
    "dest",
    "destfile",
    "name",
    "regexp",
    "regex",
    "search_string",
    "line",
    "value",
    "state",
    "insertafter",
    "insertbefore",
    "create",
    "backup",
    "backrefs",
    "firstmatch",
    "owner",
    "group",
    "mode",
    "validate",
    "unsafe_writes",
    "attributes",
    "attr",
    "seuser",
    "serole",
    "setype",
    "selevel",
    "follow",
];

// No deny_unknown_fields: serde does not support it with `flatten`; args::parse checks names.
#[derive(Deserialize, Debug)]
struct Args {
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    path: String,
    #[serde(default, alias = "regex")]
    regexp: Option<String>,
    #[serde(default)]
    search_string: Option<String>,
    #[serde(default, alias = "value", deserialize_with = "opt_string")]
    line: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    insertafter: Option<String>,
    #[serde(default)]
    insertbefore: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    create: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backup: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backrefs: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    firstmatch: Option<bool>,
    #[serde(flatten)]
    file: FileArgs,
}

/// File attribute arguments shared by the text-editing modules.
/// SELinux contexts, `unsafe_writes` and `follow` are accepted and ignored (writes are always
/// atomic; symlinks are always followed).
#[allow(dead_code)]
#[derive(Deserialize, Debug, Default)]
pub(crate) struct FileArgs {
    #[serde(default, deserialize_with = "opt_string")]
    pub owner: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub group: Option<String>,
    #[serde(default, deserialize_with = "opt_mode")]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub validate: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    pub unsafe_writes: Option<bool>,
    #[serde(default, alias = "attr")]
    pub attributes: Option<String>,
    #[serde(default)]
    pub seuser: Option<String>,
    #[serde(default)]
    pub serole: Option<String>,
    #[serde(default)]
    pub setype: Option<String>,
    #[serde(default)]
    pub selevel: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    pub follow: Option<bool>,
}

impl FileArgs {
    pub(crate) fn check(&self, module: &str) -> Result<(), ModuleError> {
        if let Some(v) = &self.validate {
            if !v.contains("%s") {
                return Err(ModuleError::Args(format!("{module}: validate must contain %s: {v}")));
            }
        }
        if self.attributes.as_deref().is_some_and(|a| !a.is_empty()) {
            return Err(ModuleError::Args(format!("{module}: attributes (chattr) are not supported")));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insert {
    None,
    Bof,
    Eof,
    After,
    Before,
}

#[derive(Debug)]
struct LineTask {
    path: String,
    present: bool,
    regexp: Option<regex::Regex>,
    search_string: Option<String>,
    line: Option<String>,
    insert: Insert,
    insert_re: Option<regex::Regex>,
    create: bool,
    backup: bool,
    backrefs: bool,
    firstmatch: bool,
    file: FileArgs,
}

module_impl!(LineinfileModule, "lineinfile");

/// Compile a Python `re` pattern with the `regex` crate (no look-around or backreferences).
pub(crate) fn py_regex(module: &str, what: &str, pattern: &str) -> Result<regex::Regex, ModuleError> {
    let p = pattern.replace("\\Z", "\\z");
    regex::Regex::new(&p).map_err(|e| ModuleError::Args(format!("{module}: invalid {what} '{pattern}': {e}")))
}

fn build(args: &Map<String, Value>) -> Result<LineTask, ModuleError> {
    let a: Args = args::parse("lineinfile", PARAMS, args)?;
    a.file.check("lineinfile")?;
    let present = args::present_state("lineinfile", a.state.as_deref())?;
    if a.regexp.is_some() && a.search_string.is_some() {
        return Err(ModuleError::Args(
            "lineinfile: parameters are mutually exclusive: regexp, search_string".into(),
        ));
    }
    if a.insertafter.is_some() && a.insertbefore.is_some() {
        return Err(ModuleError::Args(
            "lineinfile: parameters are mutually exclusive: insertafter, insertbefore".into(),
        ));
    }
    let backrefs = a.backrefs.unwrap_or(false);
    if present {
        if a.line.is_none() {
            return Err(ModuleError::Args("lineinfile: line is required with state=present".into()));
        }
        if backrefs && a.regexp.is_none() {
            return Err(ModuleError::Args("lineinfile: regexp is required with backrefs=true".into()));
        }
    } else if a.regexp.is_none() && a.search_string.is_none() && a.line.is_none() {
        return Err(ModuleError::Args(
            "lineinfile: one of line, regexp or search_string is required with state=absent".into(),
        ));
    }
    let (insert, insert_re) = match (a.insertafter.as_deref(), a.insertbefore.as_deref()) {
        (Some("EOF"), _) => (Insert::Eof, None),
        (Some("BOF"), _) => (Insert::Bof, None), // accepted by Ansible for insertafter too
        (Some(r), _) => (Insert::After, Some(py_regex("lineinfile", "insertafter", r)?)),
        (None, Some("BOF")) => (Insert::Bof, None),
        (None, Some(r)) => (Insert::Before, Some(py_regex("lineinfile", "insertbefore", r)?)),
        (None, None) => (Insert::None, None),
    };
    Ok(LineTask {
        path: a.path,
        present,
        regexp: a.regexp.as_deref().map(|r| py_regex("lineinfile", "regexp", r)).transpose()?,
        search_string: a.search_string,
        line: a.line,
        insert,
        insert_re,
        create: a.create.unwrap_or(false),
        backup: a.backup.unwrap_or(false),
        backrefs,
        firstmatch: a.firstmatch.unwrap_or(false),
        file: a.file,
    })
}

/// Probe a text file, following a final symlink. Output: `real|<path>` then [`common::file_probe`].
pub(crate) fn text_file_probe(path: &str) -> Probe {
    let inner = format!("p=\"$r\"\n{}", common::stat_lines(true));
    let q = sh_quote(path);
    let s = format!("r=$(readlink -f -- {q} 2>/dev/null) || r={q}; [ -n \"$r\" ] || r={q}\nprintf 'real|%s\\n' \"$r\"\n{inner}");
    Probe::new(s, Scope::path(path)).with_stat(path)
}

/// Parse [`text_file_probe`] output: (path to write, state).
pub(crate) fn parse_text_file(path: &str, r: &ProbeResult) -> Result<(String, FileState), ModuleError> {
    let (first, rest) = r.stdout.split_once('\n').unwrap_or((r.stdout.as_str(), ""));
    let real = first.strip_prefix("real|").map(str::to_string).unwrap_or_else(|| path.to_string());
    let st = common::parse_file_state(&ProbeResult {
        stdout: rest.to_string(),
        stderr: r.stderr.clone(),
        rc: r.rc,
    })?;
    Ok((real, st))
}

/// The probed file's text (None if absent), failing for directories, binaries and huge files.
pub(crate) fn current_text(module: &str, path: &str, st: &FileState) -> Result<Option<String>, ModuleError> {
    match st.kind {
        FileKind::Absent => Ok(None),
        FileKind::Directory => Err(ModuleError::Failed(format!("Path {path} is a directory !"))),
        FileKind::File => match &st.content {
            None => Err(ModuleError::Failed(format!(
                "{module}: {path} is larger than {} bytes; not supported",
                common::MAX_DIFF_BYTES
            ))),
            Some(c) => String::from_utf8(c.clone())
                .map(Some)
                .map_err(|_| ModuleError::Failed(format!("{module}: {path} is not UTF-8 text"))),
        },
        _ => Err(ModuleError::Failed(format!("{module}: {path} is not a regular file"))),
    }
}

/// Diffs and actions to put `new` (None = content unchanged) in place at `real` with the
/// requested attributes; plus a backup first when asked and the file changes.
pub(crate) fn edit_plan(
    path: &str,
    real: &str,
    st: &FileState,
    new: Option<&str>,
    file: &FileArgs,
    backup: bool,
) -> (Vec<Diff>, Vec<Action>) {
    let mut diffs = Vec::new();
    let mut actions = Vec::new();
    match new {
        Some(content) => {
            diffs.push(common::content_diff(path, st, content.as_bytes()));
            if backup && st.exists() {
                actions.push(backup_action(real));
            }
            let existing = st.exists();
            // Keep the existing owner/group unless asked otherwise (the temp file is ours).
            let owner = file.owner.clone().or_else(|| existing.then(|| st.owner.clone()));
            let group = file.group.clone().or_else(|| existing.then(|| st.group.clone()));
            let base = if existing { st.mode } else { 0o644 };
            let mode = file.mode.as_ref().map(|m| m.resolve(base, false));
            if existing {
                for (name, before, after) in [
                    ("owner", st.owner.clone(), file.owner.clone()),
                    ("group", st.group.clone(), file.group.clone()),
                ] {
                    if let Some(a) = after.filter(|a| *a != before && *a != (if name == "owner" { st.uid } else { st.gid }).to_string()) {
                        diffs.push(Diff::Field {
                            name: name.into(),
                            before,
                            after: a,
                        });
                    }
                }
                if let Some(m) = mode.filter(|m| *m != st.mode) {
                    diffs.push(Diff::Field {
                        name: "mode".into(),
                        before: st.mode_str(),
                        after: format!("{m:04o}"),
                    });
                }
            }
            let mut a = common::write_file_validated_action(
                real,
                content.as_bytes(),
                owner.as_deref(),
                group.as_deref(),
                mode,
                existing.then_some(st.mode),
                file.validate.as_deref(),
            );
            if !existing {
                // a new file (`create: true`): its missing folders too, as Ansible makes them
                common::create_parent_dirs(&mut a, real);
            }
            a.touches = Scope::Paths(vec![path.to_string(), real.to_string()]);
            actions.push(a);
        }
        None => {
            if st.exists() {
                let (d, a) = common::attributes_plan(real, st, file.owner.as_deref(), file.group.as_deref(), file.mode.as_ref(), false);
                diffs.extend(d);
                actions.extend(a);
            }
        }
    }
    (diffs, actions)
}

/// Copy the file beside itself as Ansible names backups (`file.PID.YYYY-MM-DD@HH:MM:SS~`) and
/// print the backup's path.
pub(crate) fn backup_action(real: &str) -> Action {
    let q = sh_quote(real);
    Action::new(
        format!("back up {real}"),
        format!("b={q}.$$.$(date +%Y-%m-%d@%H:%M:%S~)\ncp -p -- {q} \"$b\"\nprintf 'backup|%s\\n' \"$b\""),
        Scope::path(real),
    )
}

/// `backup_file` result from a [`backup_action`]'s output.
pub(crate) fn record_backup(plan: &mut Plan, outputs: &[ActionOutput]) {
    for o in outputs {
        if let Some(b) = o.stdout_str().lines().find_map(|l| l.strip_prefix("backup|").map(str::to_string)) {
            plan.result.insert("backup_file".into(), json!(b));
        }
    }
}

/// Python's `match.expand(template)` (`\1`, `\g<1>`, `\g<name>`, escapes; an unknown group
/// is an error, as in Python), through `replace`'s translation of Python templates.
fn expand(caps: &regex::Captures, re: &regex::Regex, template: &str) -> Result<String, ModuleError> {
    let t = super::replace::py_template(template, re).map_err(|e| ModuleError::Failed(format!("lineinfile: backrefs: {e}")))?;
    let mut out = String::new();
    caps.expand(&t, &mut out);
    Ok(out)
}

/// Split keeping line endings (Python `splitlines(True)` for `\n`).
pub(crate) fn split_lines(s: &str) -> Vec<String> {
    s.split_inclusive('\n').map(str::to_string).collect()
}

fn chomp(l: &str) -> &str {
    l.trim_end_matches(['\r', '\n'])
}

/// For regex search: a line without its final `\n` (Python's `$` also matches before it).
fn body(l: &str) -> &str {
    l.strip_suffix('\n').unwrap_or(l)
}

impl LineTask {
    /// Ansible's `present`: new lines, or None when nothing changes.
    fn present(&self, mut lines: Vec<String>) -> Result<(Option<Vec<String>>, &'static str), ModuleError> {
        let line = self.line.as_deref().unwrap_or("");
        let mut index = [-1isize, -1isize];
        let mut matched: Option<Option<regex::Captures>> = None;
        let mut exact = false;
        if let Some(re) = &self.regexp {
            for (i, l) in lines.iter().enumerate() {
                if let Some(c) = re.captures(body(l)) {
                    index[0] = i as isize;
                    matched = Some(Some(c));
                    if self.firstmatch {
                        break;
                    }
                }
            }
        }
        if let Some(s) = &self.search_string {
            for (i, l) in lines.iter().enumerate() {
                if l.contains(s.as_str()) {
                    index[0] = i as isize;
                    matched = Some(None);
                    if self.firstmatch {
                        break;
                    }
                }
            }
        }
        if matched.is_none() {
            for (i, l) in lines.iter().enumerate() {
                if chomp(l) == line {
                    index[0] = i as isize;
                    exact = true;
                } else if let Some(re) = &self.insert_re {
                    if re.is_match(body(l)) {
                        index[1] = if self.insert == Insert::After { i as isize + 1 } else { i as isize };
                        if self.firstmatch {
                            break;
                        }
                    }
                }
            }
        }
        let nl = |s: &str| format!("{s}\n");
        let ends_nl = |l: &String| l.ends_with('\n') || l.ends_with('\r');
        if index[0] != -1 {
            let new_line = match (&matched, &self.regexp, self.backrefs) {
                (Some(Some(c)), Some(re), true) => expand(c, re, line)?,
                _ => line.to_string(),
            };
            let new_line = if new_line.ends_with('\n') { new_line } else { nl(&new_line) };
            let _ = exact;
            let i = index[0] as usize;
            if lines[i] != new_line {
                lines[i] = new_line;
                return Ok((Some(lines), "line replaced"));
            }
            return Ok((None, ""));
        }
        if self.backrefs {
            // Not safe to build the line without a match to fill the backrefs.
            return Ok((None, ""));
        }
        if self.insert == Insert::Bof {
            lines.insert(0, nl(line));
            return Ok((Some(lines), "line added"));
        }
        if self.insert == Insert::Eof || index[1] == -1 {
            if let Some(last) = lines.last_mut() {
                if !ends_nl(last) {
                    last.push('\n');
                }
            }
            lines.push(nl(line));
            return Ok((Some(lines), "line added"));
        }
        let at = index[1] as usize;
        if self.insert == Insert::After {
            if lines.len() == at {
                if chomp(&lines[at - 1]) != line {
                    if !ends_nl(&lines[at - 1]) {
                        lines[at - 1].push('\n');
                    }
                    lines.push(nl(line));
                    return Ok((Some(lines), "line added"));
                }
                return Ok((None, ""));
            } else if chomp(&lines[at]) != line {
                lines.insert(at, nl(line));
                return Ok((Some(lines), "line added"));
            }
            return Ok((None, ""));
        }
        lines.insert(at, nl(line));
        Ok((Some(lines), "line added"))
    }

    fn absent(&self, lines: Vec<String>) -> (Option<Vec<String>>, usize) {
        let line = self.line.as_deref().unwrap_or("");
        let before = lines.len();
        let kept: Vec<String> = lines
            .into_iter()
            .filter(|l| {
                let hit = if let Some(re) = &self.regexp {
                    re.is_match(body(l))
                } else if let Some(s) = &self.search_string {
                    l.contains(s.as_str())
                } else {
                    chomp(l) == line
                };
                !hit
            })
            .collect();
        let found = before - kept.len();
        ((found > 0).then_some(kept), found)
    }
}

impl ModuleTask for LineTask {
    fn probes(&self) -> Vec<Probe> {
        vec![text_file_probe(&self.path)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let (real, st) = parse_text_file(
            &self.path,
            probes.first().ok_or_else(|| ModuleError::Probe("missing file probe".into()))?,
        )?;
        let text = current_text("lineinfile", &self.path, &st)?;
        let mut plan = Plan::ok();
        let new = if self.present {
            let lines = match &text {
                Some(t) => split_lines(t),
                None if self.create => Vec::new(),
                None => return Err(ModuleError::Failed(format!("Destination {} does not exist !", self.path))),
            };
            let (new, msg) = self.present(lines)?;
            plan.msg = (!msg.is_empty()).then(|| msg.to_string());
            new.map(|l| l.concat())
        } else {
            let Some(t) = &text else {
                plan.result.insert("msg".into(), json!("file not present"));
                return Ok(plan);
            };
            let (new, found) = self.absent(split_lines(t));
            plan.result.insert("found".into(), json!(found));
            if found > 0 {
                plan.msg = Some(format!("{found} line(s) removed"));
            }
            new.map(|l| l.concat())
        };
        let (diffs, actions) = edit_plan(&self.path, &real, &st, new.as_deref(), &self.file, self.backup);
        plan.diffs = diffs;
        plan.actions = actions;
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        record_backup(&mut plan, outputs);
        Ok(plan)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::testutil::{self, ok, run_probe};
    use super::*;

    /// Text-file probe output for `/etc/x.conf` holding `content`.
    pub(crate) fn file(content: &str) -> ProbeResult {
        ok(&format!("real|/etc/x.conf\n{}", testutil::file(content).stdout))
    }
    pub(crate) fn absent() -> ProbeResult {
        ok("real|/etc/x.conf\nabsent\n")
    }
    fn t(v: Value) -> LineTask {
        let mut v = v;
        v.as_object_mut().unwrap().insert("path".into(), json!("/etc/x.conf"));
        build(v.as_object().unwrap()).unwrap()
    }
    /// Resulting file content (None = no change).
    fn run(v: Value, content: &str) -> Option<String> {
        let p = t(v).plan(&[file(content)]).unwrap();
        p.actions
            .iter()
            .find(|a| a.summary.starts_with("write"))
            .map(|a| String::from_utf8(a.stdin.clone().unwrap()).unwrap())
    }

    #[test]
    fn regexp_replaces_last_match_or_appends() {
        let c = "a=1\n#PermitRootLogin yes\nb=2\nPermitRootLogin yes\n";
        assert_eq!(
            run(json!({"regexp": "^#?PermitRootLogin", "line": "PermitRootLogin no"}), c).unwrap(),
            "a=1\n#PermitRootLogin yes\nb=2\nPermitRootLogin no\n"
        );
        assert_eq!(
            run(
                json!({"regexp": "^#?PermitRootLogin", "line": "PermitRootLogin no", "firstmatch": true}),
                c
            )
            .unwrap(),
            "a=1\nPermitRootLogin no\nb=2\nPermitRootLogin yes\n"
        );
        assert_eq!(run(json!({"regexp": "^c=", "line": "c=3"}), "a=1\nb=2").unwrap(), "a=1\nb=2\nc=3\n");
        assert_eq!(run(json!({"regexp": "^a=", "line": "a=1"}), "a=1\nb=2\n"), None);
        // exact line present but regexp not matching: no change (Ansible)
        assert_eq!(run(json!({"regexp": "^zzz", "line": "a=1"}), "a=1\n"), None);
    }

    #[test]
    fn insertafter_insertbefore() {
        let c = "[main]\nx=1\n[other]\n";
        assert_eq!(
            run(json!({"line": "y=2", "insertafter": "^\\[main\\]"}), c).unwrap(),
            "[main]\ny=2\nx=1\n[other]\n"
        );
        assert_eq!(
            run(json!({"line": "y=2", "insertbefore": "^\\[other\\]"}), c).unwrap(),
            "[main]\nx=1\ny=2\n[other]\n"
        );
        assert_eq!(
            run(json!({"line": "y=2", "insertbefore": "BOF"}), c).unwrap(),
            "y=2\n[main]\nx=1\n[other]\n"
        );
        assert_eq!(
            run(json!({"line": "y=2", "insertafter": "^nomatch"}), c).unwrap(),
            "[main]\nx=1\n[other]\ny=2\n"
        );
        // regexp matched: insertafter ignored
        assert_eq!(
            run(json!({"regexp": "^x=", "line": "x=5", "insertafter": "^\\[other\\]"}), c).unwrap(),
            "[main]\nx=5\n[other]\n"
        );
        // line already there: no change
        assert_eq!(run(json!({"line": "x=1", "insertafter": "^\\[other\\]"}), c), None);
    }

    #[test]
    fn backrefs_and_absent() {
        let c = "listen_addresses = 'localhost'\n";
        assert_eq!(
            run(
                json!({"regexp": "^(listen_addresses) = .*", "line": "\\1 = '*'", "backrefs": true}),
                c
            )
            .unwrap(),
            "listen_addresses = '*'\n"
        );
        assert_eq!(run(json!({"regexp": "^nomatch(.*)", "line": "\\1", "backrefs": true}), c), None);
        // Python's template rules (checked with Python 3.11's `re`): named groups, `$` as
        // text, escaped backslashes, an unmatched optional group as nothing.
        let line = "\\g<key> = $HOME\\\\\\2\\t\\g<1>\\3";
        assert_eq!(
            run(json!({"regexp": "^(?P<key>listen_addresses)( =)? (x)?", "line": line, "backrefs": true}), c).unwrap(),
            "listen_addresses = $HOME\\ =\tlisten_addresses\n"
        );
        let bad = t(json!({"regexp": "^(listen)", "line": "\\2", "backrefs": true})).plan(&[file(c)]).unwrap_err();
        assert!(bad.to_string().contains("invalid group reference 2"), "{bad}");
        assert_eq!(run(json!({"regexp": "^listen", "state": "absent"}), c).unwrap(), "");
        assert_eq!(run(json!({"line": "nope", "state": "absent"}), c), None);
        assert_eq!(run(json!({"search_string": "localhost", "line": "x"}), c).unwrap(), "x\n");
    }

    #[test]
    fn create_missing_file_and_validate() {
        let task = t(json!({"line": "x", "create": true, "mode": "0600", "validate": "visudo -cf %s"}));
        let p = task.plan(&[absent()]).unwrap();
        assert_eq!(
            p.diffs[0],
            Diff::Text {
                path: "/etc/x.conf".into(),
                before: None,
                after: Some("x\n".into())
            }
        );
        assert!(p.actions[0].script.contains("visudo -cf \"$tmp\""));
        assert!(p.actions[0].script.contains("chmod 0600"));
        assert!(p.actions[0].script.starts_with("mkdir -p -- /etc\n"), "{}", p.actions[0].script);
        assert!(t(json!({"line": "x"}))
            .plan(&[absent()])
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        // content fine, mode differs: attribute change only
        let p = t(json!({"line": "x", "mode": "0600"})).plan(&[file("x\n")]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].script, "chmod 0600 /etc/x.conf");
    }

    #[test]
    fn probe_follows_symlinks_here() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("real.conf");
        std::fs::write(&target, "hello\n").unwrap();
        let link = d.path().join("link.conf");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let p = text_file_probe(link.to_str().unwrap());
        let r = run_probe(&p.script);
        let (real, st) = parse_text_file(link.to_str().unwrap(), &r).unwrap();
        assert_eq!(real, target.to_str().unwrap());
        assert_eq!(st.text().as_deref(), Some("hello\n"));
        let missing = d.path().join("nope/x");
        let p = text_file_probe(missing.to_str().unwrap());
        let r = run_probe(&p.script);
        let (_, st) = parse_text_file(missing.to_str().unwrap(), &r).unwrap();
        assert!(!st.exists());
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn lineinfile_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        testhost::run(
            "rm -f /tmp/ms-lif*; printf 'a=1\\n#b=2\\n' > /tmp/ms-lif.conf; ln -s /tmp/ms-lif.conf /tmp/ms-lif-link",
            None,
        );
        let t = build(json!({"path": "/tmp/ms-lif-link", "regexp": "^#?b=", "line": "b=3", "mode": "0640", "backup": true, "validate": "grep -q b=3 %s"}).as_object().unwrap()).unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && first.result.contains_key("backup_file"), "{:?}", first.result);
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        let o = testhost::run(
            "cat /tmp/ms-lif.conf; stat -c %a /tmp/ms-lif.conf; [ -L /tmp/ms-lif-link ] && echo link",
            None,
        );
        assert_eq!(o.stdout_str(), "a=1\nb=3\n640\nlink\n");
        // validation failure leaves the file alone
        let t = build(
            json!({"path": "/tmp/ms-lif.conf", "line": "c=4", "validate": "false %s"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = testhost::plan(&t);
        let o = testhost::run(&p.actions[0].script, p.actions[0].stdin.as_deref());
        assert_ne!(o.exit_code, 0);
        assert_eq!(testhost::run("cat /tmp/ms-lif.conf", None).stdout_str(), "a=1\nb=3\n");
    }
}
