//! `file`: a path's type (file, directory, symlink, hard link, absent, touched) and its
//! owner/group/mode, optionally recursively for directories.
//!
//! One probe reads the path (following a final symlink when `follow`, the default, and the
//! state is not `link`/`hard`/`absent`), whether `src` exists (links), and for `recurse` the
//! first entry of the tree whose owner/group/mode differ (`find ... -print -quit`), so a
//! converged tree costs one `find` and no action. As in Ansible, `recurse` gives the tree's
//! symbolic links the owner/group and, with `follow` (default), what they point to all the
//! attributes (a linked folder recursively; a dangling link is left alone).
//!
//! Differences from Ansible: `mode` on a symlink is ignored (Linux has no link modes; Ansible
//! reports a `recurse` with `mode` over a tree holding links as changed on every run);
//! owner/group of `state: link` apply to the link itself (`chown -h`); `attributes`, SELinux
//! and timestamp formats other than `now`/`preserve`/`touch -t` stamps are not supported.

use super::args::{self, opt_boolish, opt_mode, opt_string, Mode};
use super::common::{attributes_plan, parse_file_state, stat_lines, FileKind, FileState};
use super::{sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct FileModule;

const PARAMS: &[&str] = &[
    "path",
    "dest",
    "name",
    "state",
    "src",
    "owner",
    "group",
    "mode",
    "recurse",
    "force",
    "follow",
    "access_time",
    "modification_time",
    "access_time_format",
    "modification_time_format",
    "unsafe_writes",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "dest", alias = "name")]
    path: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    src: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    owner: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group: Option<String>,
    #[serde(default, deserialize_with = "opt_mode")]
    mode: Option<Mode>,
    #[serde(default, deserialize_with = "opt_boolish")]
    recurse: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    follow: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    access_time: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    modification_time: Option<String>,
    #[serde(default)]
    access_time_format: Option<String>,
    #[serde(default)]
    modification_time_format: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    unsafe_writes: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    File,
    Directory,
    Link,
    Hard,
    Absent,
    Touch,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::File => "file",
            State::Directory => "directory",
            State::Link => "link",
            State::Hard => "hard",
            State::Absent => "absent",
            State::Touch => "touch",
        }
    }
}

#[derive(Debug)]
struct FileTask {
    path: String,
    state: Option<State>,
    src: Option<String>,
    owner: Option<String>,
    group: Option<String>,
    mode: Option<Mode>,
    recurse: bool,
    force: bool,
    follow: bool,
    /// `touch -t` stamp, or None for "now"; `preserve` for both times means: don't touch.
    touch_stamp: Option<String>,
    touch_times: bool,
}

module_impl!(FileModule, "file");

/// A `file` task from its arguments, for modules made of several (`copy` of a directory).
pub(crate) fn task(args: &Map<String, Value>) -> Result<Box<dyn ModuleTask>, ModuleError> {
    Ok(Box::new(build(args)?))
}

fn build(args: &Map<String, Value>) -> Result<FileTask, ModuleError> {
    let a: Args = args::parse("file", PARAMS, args)?;
    let path = a.path.trim_end_matches('/').to_string();
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let state = match a.state.as_deref() {
        None => None,
        Some("file") => Some(State::File),
        Some("directory") => Some(State::Directory),
        Some("link") => Some(State::Link),
        Some("hard") => Some(State::Hard),
        Some("absent") => Some(State::Absent),
        Some("touch") => Some(State::Touch),
        Some(s) => {
            return Err(ModuleError::Args(format!(
                "file: state must be one of absent, directory, file, hard, link, touch; got '{s}'"
            )))
        }
    };
    let recurse = a.recurse.unwrap_or(false);
    if recurse && !matches!(state, None | Some(State::Directory)) {
        return Err(ModuleError::Args(
            "file: recurse option requires state to be 'directory'".into(),
        ));
    }
    if state == Some(State::Hard) && a.src.is_none() {
        return Err(ModuleError::Args(
            "file: src is required for creating hard links".into(),
        ));
    }
    let _ = (
        a.access_time_format,
        a.modification_time_format,
        a.unsafe_writes,
    );
    let mut touch_stamp = None;
    let mut preserve = 0;
    for t in [&a.access_time, &a.modification_time] {
        match t.as_deref() {
            None if state == Some(State::Touch) => {}
            None => preserve += 1,
            Some("preserve") => preserve += 1,
            Some("now") => {}
            Some(stamp) => {
                // Ansible's default format %Y%m%d%H%M.%S is exactly `touch -t`'s.
                let well_formed = stamp.len() >= 12
                    && stamp.as_bytes()[..12].iter().all(u8::is_ascii_digit)
                    && (stamp.len() == 12 || (stamp.len() == 15 && stamp.as_bytes()[12] == b'.' && stamp.as_bytes()[13..].iter().all(u8::is_ascii_digit)));
                if !well_formed {
                    return Err(ModuleError::Args(format!(
                        "file: unsupported time '{stamp}' (use now, preserve or YYYYMMDDHHMM.SS)"
                    )));
                }
                touch_stamp = Some(stamp.to_string());
            }
        }
    }
    Ok(FileTask {
        path,
        state,
        src: a.src,
        owner: a.owner.filter(|s| !s.is_empty()),
        group: a.group.filter(|s| !s.is_empty()),
        mode: a.mode,
        recurse,
        force: a.force.unwrap_or(false),
        follow: a.follow.unwrap_or(true),
        touch_stamp,
        touch_times: preserve < 2,
    })
}

/// Leading `@key|value` lines (our own extras), then the file state.
pub(crate) fn parse_with_extras(
    r: &ProbeResult,
) -> Result<(Vec<(String, String)>, FileState), ModuleError> {
    if r.rc != 0 {
        return Err(ModuleError::Failed(format!(
            "cannot read file state: {}",
            r.stderr.trim()
        )));
    }
    let mut extras = Vec::new();
    let mut rest = r.stdout.as_str();
    while let Some(after_at) = rest.strip_prefix('@') {
        let (line, next) = after_at.split_once('\n').unwrap_or((after_at, ""));
        let (k, v) = line.split_once('|').unwrap_or((line, ""));
        extras.push((k.to_string(), v.to_string()));
        rest = next;
    }
    let st = parse_file_state(&ProbeResult {
        stdout: rest.to_string(),
        stderr: String::new(),
        rc: 0,
    })?;
    Ok((extras, st))
}

pub(crate) fn extra<'a>(extras: &'a [(String, String)], key: &str) -> Option<&'a str> {
    extras
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The argument for `chmod`: 4-digit octal, or the symbolic mode with an explicit `a` where the
/// "who" is empty (`+x` under chmod would honour the umask; Ansible applies it to all).
pub(crate) fn chmod_arg(m: &Mode) -> String {
    match m {
        Mode::Octal(o) => format!("{o:04o}"),
        Mode::Symbolic(s) => s
            .split(',')
            .map(|c| {
                if c.starts_with(['+', '-', '=']) {
                    format!("a{c}")
                } else {
                    c.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// For a symbolic mode: the bits that must be set and the bits that must be clear after applying
/// it (bits depending on the current mode, like `X` on files, are in neither).
fn symbolic_requirements(s: &str, is_dir: bool) -> (u32, u32) {
    // 0 = keep, 1 = set, 2 = clear; index = bit number.
    let mut want = [0u8; 12];
    for clause in s.split(',') {
        let op_pos = clause.find(['+', '-', '=']).unwrap_or(clause.len());
        let (who, rest) = clause.split_at(op_pos);
        let op = rest.chars().next().unwrap_or('=');
        let perms = rest.get(1..).unwrap_or("");
        let who: Vec<char> = if who.is_empty() || who.contains('a') {
            vec!['u', 'g', 'o']
        } else {
            who.chars().collect()
        };
        for w in who {
            let shift = match w {
                'u' => 6,
                'g' => 3,
                _ => 0,
            };
            let special = match w {
                'u' => 11,
                'g' => 10,
                _ => 9,
            };
            let mut bits = Vec::new();
            let mut unknown = Vec::new();
            for p in perms.chars() {
                match p {
                    'r' => bits.push(shift + 2),
                    'w' => bits.push(shift + 1),
                    'x' => bits.push(shift),
                    'X' if is_dir => bits.push(shift),
                    'X' => unknown.push(shift),
                    's' if w != 'o' => bits.push(special),
                    't' if w == 'o' => bits.push(special),
                    _ => {}
                }
            }
            match op {
                '+' => bits.iter().for_each(|&b| want[b] = 1),
                '-' => bits.iter().for_each(|&b| want[b] = 2),
                _ => {
                    for b in [shift, shift + 1, shift + 2] {
                        want[b] = 2;
                    }
                    // chmod keeps a directory's setuid/setgid unless named explicitly.
                    if !is_dir {
                        want[special] = 2;
                    }
                    bits.iter().for_each(|&b| want[b] = 1);
                    unknown.iter().for_each(|&b| want[b] = 0);
                }
            }
        }
    }
    let mut set = 0;
    let mut clear = 0;
    for (b, w) in want.iter().enumerate() {
        match w {
            1 => set |= 1 << b,
            2 => clear |= 1 << b,
            _ => {}
        }
    }
    (set, clear)
}

/// A `find` predicate true for entries whose permission bits differ from `m`.
fn mode_differs_pred(m: &Mode, is_dir: bool) -> Option<String> {
    match m {
        Mode::Octal(o) => Some(format!("! -perm {o:04o}")),
        Mode::Symbolic(s) => {
            let (set, clear) = symbolic_requirements(s, is_dir);
            let mut parts = Vec::new();
            if set != 0 {
                parts.push(format!("! -perm -{set:04o}"));
            }
            if clear != 0 {
                parts.push(format!("-perm /{clear:04o}"));
            }
            (!parts.is_empty()).then(|| parts.join(" -o "))
        }
    }
}

fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl FileTask {
    fn src_abs(&self) -> Option<String> {
        let src = self.src.as_ref()?;
        if src.starts_with('/') {
            return Some(src.clone());
        }
        // A relative symlink target is relative to the link's directory.
        let dir = match self.path.rfind('/') {
            Some(0) => "/",
            Some(i) => &self.path[..i],
            None => ".",
        };
        Some(format!("{dir}/{src}"))
    }

    fn follows(&self) -> bool {
        self.follow && !matches!(self.state, Some(State::Link | State::Hard | State::Absent))
    }

    fn recurse_script(&self) -> Option<String> {
        if !self.recurse || (self.owner.is_none() && self.group.is_none() && self.mode.is_none()) {
            return None;
        }
        let mut guards = Vec::new();
        let mut preds = Vec::new();
        if let Some(o) = &self.owner {
            if !is_numeric(o) {
                guards.push(format!(
                    "getent passwd {} >/dev/null || {{ echo '@recurse|unknown user {}'; ok=; }}",
                    sh_quote(o),
                    o.replace('\'', "")
                ));
            }
            preds.push(format!("! -user {}", sh_quote(o)));
        }
        if let Some(g) = &self.group {
            if !is_numeric(g) {
                guards.push(format!(
                    "getent group {} >/dev/null || {{ echo '@recurse|unknown group {}'; ok=; }}",
                    sh_quote(g),
                    g.replace('\'', "")
                ));
            }
            preds.push(format!("! -group {}", sh_quote(g)));
        }
        if let Some(m) = &self.mode {
            let d = mode_differs_pred(m, true).map(|p| format!("\\( -type d \\( {p} \\) \\)"));
            let f = mode_differs_pred(m, false).map(|p| format!("\\( ! -type d \\( {p} \\) \\)"));
            let both: Vec<String> = d.into_iter().chain(f).collect();
            if !both.is_empty() {
                preds.push(format!("\\( ! -type l \\( {} \\) \\)", both.join(" -o ")));
            }
        }
        if preds.is_empty() {
            return None;
        }
        let preds = preds.join(" -o ");
        // `follow` (default): as Ansible, what the tree's symbolic links point to (outside the
        // tree too, and into linked folders) gets the attributes as well; a dangling link is
        // left alone.
        let (followed, links) = if self.follow {
            (
                format!("; find -L \"$p\" ! -type l \\( {preds} \\) -print -quit 2>/dev/null"),
                "[ -z \"$(find \"$p\" -type l -print -quit)\" ] || echo '@links|yes'\n",
            )
        } else {
            (String::new(), "")
        };
        Some(format!(
            "if [ -d \"$p\" ]; then\nok=1\n{}\nif [ -n \"$ok\" ]; then printf '@recurse|%s\\n' \"$({{ find \"$p\" \\( {preds} \\) -print -quit{followed}; }} | head -n 1)\"; fi\n{links}fi\n",
            guards.join("\n"),
        ))
    }

    /// Commands giving a freshly created path (in shell variable `$x`) the requested attributes.
    fn new_path_attrs(&self, link: bool) -> Vec<String> {
        let h = if link { "-h " } else { "" };
        let mut c = Vec::new();
        if let Some(o) = &self.owner {
            c.push(format!("chown {h}{} -- \"$x\"", sh_quote(o)));
        }
        if let Some(g) = &self.group {
            c.push(format!("chgrp {h}{} -- \"$x\"", sh_quote(g)));
        }
        if let (Some(m), false) = (&self.mode, link) {
            c.push(format!("chmod {} -- \"$x\"", chmod_arg(m)));
        }
        c
    }

    fn new_path_script(&self, create: &str, link: bool) -> String {
        let attrs = self.new_path_attrs(link);
        let mut s = format!("set -e\nx={}\n{create}\n", sh_quote(&self.path));
        for a in attrs {
            s.push_str(&a);
            s.push('\n');
        }
        s
    }
}

fn fail(plan: &mut Plan, msg: String) -> Result<Plan, ModuleError> {
    plan.failed = Some(msg);
    Ok(std::mem::take(plan))
}

impl ModuleTask for FileTask {
    fn probes(&self) -> Vec<Probe> {
        let mut s = format!("p={}\n", sh_quote(&self.path));
        if self.follows() {
            s.push_str("if [ -L \"$p\" ] && [ -e \"$p\" ]; then p=$(readlink -f -- \"$p\"); printf '@real|%s\\n' \"$p\"; fi\n");
        }
        let mut reads = vec![self.path.clone()];
        if let (Some(src), Some(State::Link | State::Hard)) = (self.src_abs(), self.state) {
            s.push_str(&format!(
                "s={}\nif [ -e \"$s\" ] || [ -L \"$s\" ]; then echo '@src|yes'; else echo '@src|no'; fi\n",
                sh_quote(&src)
            ));
            if self.state == Some(State::Hard) {
                s.push_str("if [ \"$p\" -ef \"$s\" ]; then echo '@same|yes'; fi\n");
            }
            reads.push(src);
        }
        if let Some(r) = self.recurse_script() {
            s.push_str(&r);
        }
        s.push_str(&stat_lines(false));
        // A followed symlink may point anywhere: the path itself is what earlier tasks change.
        vec![Probe::new(s, Scope::Paths(reads)).with_stat(&self.path)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes
            .first()
            .ok_or_else(|| ModuleError::Probe("file: missing probe".into()))?;
        let (extras, st) = parse_with_extras(r)?;
        let target = extra(&extras, "real").unwrap_or(&self.path).to_string();
        let mut plan = Plan::ok();
        plan.result.insert("path".into(), json!(self.path));
        let state = match self.state {
            Some(s) => s,
            None if self.recurse => State::Directory,
            None => match st.kind {
                FileKind::Directory => State::Directory,
                FileKind::Link { .. } => State::Link,
                _ => State::File,
            },
        };
        plan.result.insert("state".into(), json!(state.name()));
        let p = sh_quote(&self.path);
        let state_diff = |before: &str, after: &str| Diff::Field {
            name: "state".into(),
            before: before.into(),
            after: after.into(),
        };

        match state {
            State::Absent => {
                if st.exists() {
                    let (summary, cmd) = if st.kind == FileKind::Directory {
                        (
                            format!("remove directory {}", self.path),
                            format!("rm -rf -- {p}"),
                        )
                    } else {
                        (format!("remove {}", self.path), format!("rm -f -- {p}"))
                    };
                    plan.diffs.push(state_diff(st.kind.name(), "absent"));
                    plan.actions
                        .push(Action::new(summary, cmd, Scope::path(&self.path)));
                }
                return Ok(plan);
            }
            State::Directory if !st.exists() => {
                plan.diffs.push(state_diff("absent", "directory"));
                let attrs = self.new_path_attrs(false);
                let mut s = format!("set -e\np={p}\n");
                if attrs.is_empty() {
                    s.push_str("mkdir -p -- \"$p\"\n");
                } else {
                    // Like Ansible, every directory created (parents too) gets the attributes.
                    s.push_str("new=''\nd=$p\nwhile [ ! -e \"$d\" ] && [ ! -L \"$d\" ]; do new=\"$d\n$new\"; d=$(dirname -- \"$d\"); done\nmkdir -p -- \"$p\"\n");
                    s.push_str(&format!("printf '%s' \"$new\" | while IFS= read -r x; do\n  [ -n \"$x\" ] || continue\n  {}\ndone\n", attrs.join("\n  ")));
                }
                plan.actions.push(Action::new(
                    format!("create directory {}", self.path),
                    s,
                    Scope::path(&self.path),
                ));
                self.result_attrs(&mut plan, None);
                return Ok(plan);
            }
            State::Directory if st.kind != FileKind::Directory => {
                return fail(
                    &mut plan,
                    format!("{} already exists as a {}", self.path, st.kind.name()),
                );
            }
            State::File if !st.exists() => {
                return fail(
                    &mut plan,
                    format!("file ({}) is absent, cannot continue", self.path),
                );
            }
            State::File if st.kind != FileKind::File => {
                return fail(
                    &mut plan,
                    format!(
                        "file ({}) is {}, cannot continue",
                        self.path,
                        st.kind.name()
                    ),
                );
            }
            State::Touch if !st.exists() => {
                plan.diffs.push(state_diff("absent", "file"));
                let stamp = self
                    .touch_stamp
                    .as_ref()
                    .map(|t| format!("-t {t} "))
                    .unwrap_or_default();
                let attrs = self.new_path_attrs(false);
                let mut s = format!("set -e\nx={}\ntouch {stamp}-- \"$x\"\n", sh_quote(&self.path));
                if !attrs.is_empty() {
                    // attributes that can't be set (an unknown owner): the file made goes again,
                    // as Ansible removes it
                    s.push_str(&format!("if ! ( {} ); then rm -f -- \"$x\"; exit 1; fi\n", attrs.join(" && ")));
                }
                plan.actions.push(Action::new(
                    format!("create {}", self.path),
                    s,
                    Scope::path(&self.path),
                ));
                self.result_attrs(&mut plan, None);
                return Ok(plan);
            }
            State::Touch => {
                if self.touch_times {
                    plan.diffs.push(state_diff(st.kind.name(), "touch"));
                    let stamp = self
                        .touch_stamp
                        .as_ref()
                        .map(|t| format!("-t {t} "))
                        .unwrap_or_default();
                    plan.actions.push(Action::new(
                        format!("touch {target}"),
                        format!("touch {stamp}-- {}", sh_quote(&target)),
                        Scope::path(&target),
                    ));
                }
            }
            State::Link => {
                let current = match &st.kind {
                    FileKind::Link { target } => Some(target.clone()),
                    _ => None,
                };
                let Some(src) = &self.src else {
                    if current.is_none() {
                        return fail(
                            &mut plan,
                            format!("src is required for creating the symlink {}", self.path),
                        );
                    }
                    self.attrs(&mut plan, &st, &target);
                    return Ok(plan);
                };
                plan.result.insert("src".into(), json!(src));
                if current.as_deref() == Some(src.as_str()) {
                    self.attrs(&mut plan, &st, &target);
                    return Ok(plan);
                }
                if extra(&extras, "src") == Some("no") && !self.force {
                    return fail(
                        &mut plan,
                        format!("src file does not exist, use \"force=yes\" if you really want to create the link: {}", self.src_abs().unwrap_or_default()),
                    );
                }
                let s = sh_quote(src);
                let create = match &st.kind {
                    FileKind::Absent => format!("ln -s -- {s} \"$x\""),
                    FileKind::Link { .. } => format!(
                        "ln -s -- {s} \"$x.provision-tmp\"\nmv -Tf -- \"$x.provision-tmp\" \"$x\""
                    ),
                    FileKind::Directory if self.force => {
                        format!("rmdir -- \"$x\"\nln -s -- {s} \"$x\"")
                    }
                    _ if self.force => format!("rm -f -- \"$x\"\nln -s -- {s} \"$x\""),
                    k => {
                        return fail(
                            &mut plan,
                            format!(
                                "refusing to convert from {} to symlink for {}",
                                k.name(),
                                self.path
                            ),
                        )
                    }
                };
                match &current {
                    Some(cur) => plan.diffs.push(Diff::Field {
                        name: "src".into(),
                        before: cur.clone(),
                        after: src.clone(),
                    }),
                    None => plan.diffs.push(state_diff(st.kind.name(), "link")),
                }
                plan.actions.push(Action::new(
                    format!("link {} -> {src}", self.path),
                    self.new_path_script(&create, true),
                    Scope::path(&self.path),
                ));
                self.result_attrs(&mut plan, None);
                return Ok(plan);
            }
            State::Hard => {
                let src = self.src.clone().unwrap_or_default();
                plan.result.insert("src".into(), json!(src));
                if extra(&extras, "same") == Some("yes") {
                    self.attrs(&mut plan, &st, &target);
                    return Ok(plan);
                }
                if extra(&extras, "src") != Some("yes") {
                    return fail(
                        &mut plan,
                        format!("src does not exist: {}", self.src_abs().unwrap_or_default()),
                    );
                }
                let s = sh_quote(&self.src_abs().unwrap_or_default());
                let create = match &st.kind {
                    FileKind::Absent => format!("ln -- {s} \"$x\""),
                    FileKind::Directory => {
                        return fail(
                            &mut plan,
                            format!(
                                "Cannot link, directory exists at destination: {}",
                                self.path
                            ),
                        )
                    }
                    k if self.force || matches!(k, FileKind::Link { .. }) => format!(
                        "ln -- {s} \"$x.provision-tmp\"\nmv -f -- \"$x.provision-tmp\" \"$x\""
                    ),
                    k => {
                        return fail(
                            &mut plan,
                            format!(
                                "Cannot link, {} exists at destination: {}",
                                k.name(),
                                self.path
                            ),
                        )
                    }
                };
                plan.diffs.push(state_diff(st.kind.name(), "hard"));
                plan.actions.push(Action::new(
                    format!("hard link {} to {src}", self.path),
                    self.new_path_script(&create, false),
                    Scope::path(&self.path),
                ));
                self.result_attrs(&mut plan, None);
                return Ok(plan);
            }
            State::File | State::Directory => {}
        }
        // Existing path: attributes only.
        if state == State::Directory && self.recurse {
            if let Some(found) = extra(&extras, "recurse").filter(|f| !f.is_empty()) {
                let (diffs, _) = attributes_plan(
                    &target,
                    &st,
                    self.owner.as_deref(),
                    self.group.as_deref(),
                    self.mode.as_ref(),
                    false,
                );
                plan.diffs.extend(diffs);
                let t = found.trim_end_matches('/');
                if t != target.trim_end_matches('/') {
                    let mut want = Vec::new();
                    if let Some(o) = &self.owner {
                        want.push(format!("owner={o}"));
                    }
                    if let Some(g) = &self.group {
                        want.push(format!("group={g}"));
                    }
                    if let Some(m) = &self.mode {
                        want.push(format!("mode={}", chmod_arg(m)));
                    }
                    plan.diffs.push(Diff::Field {
                        name: "recurse".into(),
                        before: format!("{found} differs"),
                        after: want.join(" "),
                    });
                }
                let q = sh_quote(&target);
                // Symbolic links themselves get the owner/group (`-R` doesn't follow them)...
                let mut cmds = Vec::new();
                if let Some(o) = &self.owner {
                    cmds.push(format!("chown -R {} -- {q}", sh_quote(o)));
                }
                if let Some(g) = &self.group {
                    cmds.push(format!("chgrp -R {} -- {q}", sh_quote(g)));
                }
                if let Some(m) = &self.mode {
                    cmds.push(format!("chmod -R {} -- {q}", chmod_arg(m)));
                }
                // ...and with `follow`, what they point to (a dangling one is skipped)
                let links = self.follow && extra(&extras, "links").is_some();
                if links {
                    for (cmd, arg) in [("chown", self.owner.as_deref().map(sh_quote)), ("chgrp", self.group.as_deref().map(sh_quote)), ("chmod", self.mode.as_ref().map(chmod_arg))] {
                        if let Some(arg) = arg {
                            cmds.push(format!("find -L {q} ! -type l -exec {cmd} {arg} -- {{}} +"));
                        }
                    }
                }
                plan.actions.push(Action::new(
                    format!("set attributes of {target} recursively"),
                    cmds.join(" && "),
                    // a link's target may be anywhere
                    if links { Scope::Host } else { Scope::path(&target) },
                ));
                self.result_attrs(&mut plan, Some(&st));
                return Ok(plan);
            }
        }
        self.attrs(&mut plan, &st, &target);
        Ok(plan)
    }
}

impl FileTask {
    fn attrs(&self, plan: &mut Plan, st: &FileState, target: &str) {
        let (diffs, action) = attributes_plan(
            target,
            st,
            self.owner.as_deref(),
            self.group.as_deref(),
            self.mode.as_ref(),
            false,
        );
        plan.diffs.extend(diffs);
        plan.actions.extend(action);
        self.result_attrs(plan, Some(st));
    }

    fn result_attrs(&self, plan: &mut Plan, st: Option<&FileState>) {
        let owner = self.owner.clone().or_else(|| st.map(|s| s.owner.clone()));
        let group = self.group.clone().or_else(|| st.map(|s| s.group.clone()));
        let mode = match (&self.mode, st) {
            (Some(m), Some(s)) => Some(format!(
                "{:04o}",
                m.resolve(s.mode, s.kind == FileKind::Directory)
            )),
            (Some(Mode::Octal(o)), None) => Some(format!("{o:04o}")),
            (None, Some(s)) if s.exists() => Some(s.mode_str()),
            _ => None,
        };
        for (k, v) in [("owner", owner), ("group", group), ("mode", mode)] {
            if let Some(v) = v {
                plan.result.insert(k.into(), json!(v));
            }
        }
        if let Some(s) = st {
            if s.exists() {
                plan.result.insert("uid".into(), json!(s.uid));
                plan.result.insert("gid".into(), json!(s.gid));
                plan.result.insert("size".into(), json!(s.size));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{local_probes, ok, run_probe, sh};
    use super::*;

    fn task(v: Value) -> FileTask {
        build(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn touch_times_are_touch_stamps_now_or_preserve() {
        for ok in ["202401021530", "202401021530.59", "now", "preserve"] {
            assert!(build(json!({"path": "/t", "state": "touch", "modification_time": ok}).as_object().unwrap()).is_ok(), "{ok}");
        }
        for bad in ["2024010215", "202401021530.5", "202401021530:59", "20240102153a", "２０２４０１０２１５３０", "yesterday"] {
            let err = build(json!({"path": "/t", "state": "touch", "access_time": bad}).as_object().unwrap()).err().unwrap();
            assert!(err.to_string().contains("unsupported time"), "{bad}: {err}");
        }
    }
    fn apply(t: &FileTask) -> Plan {
        let plan = t.plan(&[run_probe(&t.probes()[0].script)]).unwrap();
        for a in &plan.actions {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&a.script)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                a.script,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        plan
    }

    const DIR: &str = "directory|root|root|0|0|755|4096|1700000000\n";

    #[test]
    fn directory_created_with_parents_and_attributes() {
        let t = task(
            json!({"path": "/srv/app/", "state": "directory", "owner": "www-data", "mode": "0750"}),
        );
        let p = t.plan(&[ok("absent\n")]).unwrap();
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "state".into(),
                before: "absent".into(),
                after: "directory".into()
            }]
        );
        assert!(p.actions[0].script.contains("mkdir -p -- \"$p\""));
        assert!(p.actions[0].script.contains("chown www-data -- \"$x\""));
        assert!(p.actions[0].script.contains("chmod 0750 -- \"$x\""));
        let p = t
            .plan(&[ok("directory|www-data|root|33|0|750|4096|1\n")])
            .unwrap();
        assert!(p.actions.is_empty() && p.diffs.is_empty());
        let p = t.plan(&[ok(DIR)]).unwrap();
        assert_eq!(p.diffs.len(), 2);
        assert_eq!(
            p.actions[0].script,
            "chown www-data /srv/app && chmod 0750 /srv/app"
        );
        let p = t.plan(&[ok("file|root|root|0|0|644|3|1\n")]).unwrap();
        assert_eq!(
            p.failed.as_deref(),
            Some("/srv/app already exists as a file")
        );
    }

    #[test]
    fn file_state_requires_existing_file() {
        let t = task(json!({"path": "/etc/x", "mode": "u=rw,g=r,o="}));
        assert_eq!(
            t.plan(&[ok("absent\n")]).unwrap().failed.as_deref(),
            Some("file (/etc/x) is absent, cannot continue")
        );
        let p = t.plan(&[ok("file|root|root|0|0|644|3|1\n")]).unwrap();
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "mode".into(),
                before: "0644".into(),
                after: "0640".into()
            }]
        );
        // state omitted on a directory: attributes of the directory.
        let p = t.plan(&[ok(DIR)]).unwrap();
        assert_eq!(p.result["state"], "directory");
        assert_eq!(p.actions[0].script, "chmod 0640 /etc/x");
    }

    #[test]
    fn absent_removes_directories_recursively() {
        let t = task(json!({"path": "/tmp/x", "state": "absent"}));
        assert!(t.plan(&[ok("absent\n")]).unwrap().actions.is_empty());
        let p = t.plan(&[ok(DIR)]).unwrap();
        assert_eq!(p.actions[0].script, "rm -rf -- /tmp/x");
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "state".into(),
                before: "directory".into(),
                after: "absent".into()
            }]
        );
        assert!(!t.probes()[0].script.contains("readlink -f"));
    }

    #[test]
    fn links() {
        let t = task(
            json!({"path": "/etc/nginx/sites-enabled/app", "src": "/etc/nginx/sites-available/app", "state": "link"}),
        );
        let p = t.plan(&[ok("@src|yes\nabsent\n")]).unwrap();
        assert!(p.actions[0]
            .script
            .contains("ln -s -- /etc/nginx/sites-available/app \"$x\""));
        let p = t
            .plan(&[ok(
                "@src|yes\nlink|root|root|0|0|777|30|1\ntarget|/etc/nginx/sites-available/app\n",
            )])
            .unwrap();
        assert!(p.actions.is_empty());
        let p = t
            .plan(&[ok("@src|yes\nlink|root|root|0|0|777|30|1\ntarget|/old\n")])
            .unwrap();
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "src".into(),
                before: "/old".into(),
                after: "/etc/nginx/sites-available/app".into()
            }]
        );
        assert!(p.actions[0].script.contains("mv -Tf"));
        let p = t.plan(&[ok("@src|no\nabsent\n")]).unwrap();
        assert!(p.failed.unwrap().contains("src file does not exist"));
        let p = t
            .plan(&[ok("@src|yes\nfile|root|root|0|0|644|3|1\n")])
            .unwrap();
        assert_eq!(
            p.failed.as_deref(),
            Some("refusing to convert from file to symlink for /etc/nginx/sites-enabled/app")
        );
        let t = task(json!({"path": "/a/b", "src": "../c", "state": "link"}));
        assert!(t.probes()[0].script.contains("s=/a/../c"));
    }

    #[test]
    fn symbolic_find_predicates() {
        assert_eq!(
            symbolic_requirements("u=rwX,g=rX,o=", true),
            (0o750, 0o027)
        );
        let (set, clear) = symbolic_requirements("u=rwX,g=rX,o=", false);
        assert_eq!(
            (set, clear),
            (0o640, 0o4000 | 0o2000 | 0o1000 | 0o020 | 0o007)
        );
        assert_eq!(symbolic_requirements("a+x", false), (0o111, 0));
        assert_eq!(symbolic_requirements("go-w", false), (0, 0o022));
        assert_eq!(chmod_arg(&Mode::Symbolic("+x,u=rw".into())), "a+x,u=rw");
    }

    #[test]
    fn real_host_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap().to_string();
        let me = String::from_utf8(
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_string();
        // directory with parents
        let t = task(
            json!({"path": format!("{base}/a/b/c"), "state": "directory", "mode": "0750", "owner": me}),
        );
        let p = apply(&t);
        assert_eq!(p.actions.len(), 1);
        assert!(apply(&t).actions.is_empty(), "second run must be ok");
        // parents got the mode too
        let m = std::fs::metadata(format!("{base}/a")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(m.permissions().mode() & 0o7777, 0o750);
        // recurse with symbolic mode
        std::fs::write(format!("{base}/a/b/f"), "x").unwrap();
        std::fs::set_permissions(
            format!("{base}/a/b/f"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let t = task(
            json!({"path": format!("{base}/a"), "recurse": true, "mode": "u=rwX,g=rX,o=", "owner": me}),
        );
        let p = apply(&t);
        assert_eq!(p.actions.len(), 1, "{:?}", p.diffs);
        assert_eq!(
            std::fs::metadata(format!("{base}/a/b/f"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o640
        );
        assert!(apply(&t).actions.is_empty(), "recurse converged");
        let t = task(json!({"path": format!("{base}/a"), "recurse": true, "mode": "0755"}));
        apply(&t);
        assert!(apply(&t).actions.is_empty());
        assert_eq!(
            std::fs::metadata(format!("{base}/a/b/f"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o755
        );
        // symbolic links in the tree: their targets too (follow, the default), not with follow: no
        use std::os::unix::fs::symlink;
        std::fs::create_dir_all(format!("{base}/out/d")).unwrap();
        for f in ["out/t.txt", "out/d/in.txt"] {
            std::fs::write(format!("{base}/{f}"), "x").unwrap();
            std::fs::set_permissions(format!("{base}/{f}"), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        symlink(format!("{base}/out/t.txt"), format!("{base}/a/b/link")).unwrap();
        symlink("../../out/d", format!("{base}/a/b/dlink")).unwrap();
        symlink("/nonexistent-xyz", format!("{base}/a/dangling")).unwrap();
        let mode_of = |f: &str| std::fs::metadata(format!("{base}/{f}")).unwrap().permissions().mode() & 0o7777;
        let t = task(json!({"path": format!("{base}/a"), "recurse": true, "mode": "0755", "follow": false}));
        assert!(apply(&t).actions.is_empty(), "follow: no looks at the tree only");
        assert_eq!(mode_of("out/t.txt"), 0o600);
        let t = task(json!({"path": format!("{base}/a"), "recurse": true, "mode": "u=rwX,g=rX,o="}));
        let p = t.plan(&[run_probe(&t.probes()[0].script)]).unwrap();
        assert_eq!(p.actions.len(), 1, "{:?}", p.diffs);
        assert!(p.actions[0].script.contains("find -L"), "{}", p.actions[0].script);
        assert_eq!(p.actions[0].touches, Scope::Host);
        apply(&t);
        assert_eq!((mode_of("out/t.txt"), mode_of("out/d/in.txt"), mode_of("out/d"), mode_of("a/b/f")), (0o640, 0o640, 0o750, 0o750));
        assert!(apply(&t).actions.is_empty(), "followed recurse converged");
        std::fs::remove_file(format!("{base}/a/b/link")).unwrap();
        std::fs::remove_file(format!("{base}/a/b/dlink")).unwrap();
        std::fs::remove_file(format!("{base}/a/dangling")).unwrap();
        // unknown owner: reported as differing, not a probe failure
        let t =
            task(json!({"path": format!("{base}/a"), "recurse": true, "owner": "nosuchuser-xyz"}));
        let r = run_probe(&t.probes()[0].script);
        assert_eq!(r.rc, 0, "{}", r.stderr);
        assert_eq!(t.plan(&[r]).unwrap().actions.len(), 1);
        // links, relative src, follow
        let t = task(json!({"path": format!("{base}/l"), "src": "a/b", "state": "link"}));
        assert_eq!(apply(&t).actions.len(), 1);
        assert!(apply(&t).actions.is_empty());
        let t = task(json!({"path": format!("{base}/l"), "state": "directory", "mode": "0700"}));
        let p = apply(&t);
        assert_eq!(p.actions[0].script, format!("chmod 0700 {base}/a/b"));
        assert!(apply(&t).actions.is_empty());
        let t = task(json!({"path": format!("{base}/l"), "src": "a", "state": "link"}));
        assert_eq!(apply(&t).diffs.len(), 1);
        assert_eq!(
            std::fs::read_link(format!("{base}/l")).unwrap().to_str(),
            Some("a")
        );
        // hard links
        let t = task(
            json!({"path": format!("{base}/h"), "src": format!("{base}/a/b/f"), "state": "hard"}),
        );
        assert_eq!(apply(&t).actions.len(), 1);
        assert!(apply(&t).actions.is_empty());
        // touch
        let t = task(json!({"path": format!("{base}/t"), "state": "touch", "mode": "0600"}));
        assert_eq!(
            apply(&t).diffs[0],
            Diff::Field {
                name: "state".into(),
                before: "absent".into(),
                after: "file".into()
            }
        );
        assert_eq!(apply(&t).actions.len(), 1, "touch always changes");
        let t = task(
            json!({"path": format!("{base}/t"), "state": "touch", "access_time": "preserve", "modification_time": "preserve"}),
        );
        assert!(apply(&t).actions.is_empty());
        // touch with an owner that doesn't exist: fails, and the file it made is gone again
        let t = task(json!({"path": format!("{base}/t2"), "state": "touch", "owner": "nosuchuser-xyz"}));
        let p = t.plan(&local_probes(&t)).unwrap();
        let (rc, _, _) = sh(&p.actions[0].script, None);
        assert_ne!(rc, 0);
        assert!(!std::path::Path::new(&format!("{base}/t2")).exists(), "the touched file was left behind");
        // absent
        let t = task(json!({"path": format!("{base}/a"), "state": "absent"}));
        assert_eq!(apply(&t).actions.len(), 1);
        assert!(apply(&t).actions.is_empty());
    }
}

/// Real-host checks: `MS_TESTHOST=<port> MS_KNOWN_HOSTS=<file> cargo test -- --ignored mc_`.
#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn mc_file_copy_command_stat_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        testhost::run("rm -rf /tmp/mc-t; mkdir -p /tmp/mc-t/tree/sub; echo x > /tmp/mc-t/tree/sub/f; chmod 600 /tmp/mc-t/tree/sub/f", None);
        // recursive ownership and symbolic mode
        let t = build(json!({"path": "/tmp/mc-t/tree", "recurse": true, "owner": "www-data", "group": "www-data", "mode": "u=rwX,g=rX,o="}).as_object().unwrap()).unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed(), "{:?}", first.diffs);
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        let o = testhost::run(
            "stat -c '%U:%G %a' /tmp/mc-t/tree /tmp/mc-t/tree/sub/f",
            None,
        );
        assert_eq!(
            o.stdout_str(),
            "www-data:www-data 750\nwww-data:www-data 640\n"
        );
        // directories with parents, a link to them, absent
        let t = build(json!({"path": "/tmp/mc-t/a/b", "state": "directory", "owner": "www-data", "mode": "0700"}).as_object().unwrap()).unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty());
        let t = build(
            json!({"path": "/tmp/mc-t/l", "src": "/tmp/mc-t/a", "state": "link"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty());
        // copy with owner, validate and backup; template-like content
        let c = crate::modules::copy::tests::build_for_tests(
            json!({"dest": "/tmp/mc-t/a/b/conf", "content": "k=v\n", "owner": "www-data", "mode": "0640", "validate": "grep -q k= %s"}),
        );
        let (first, second) = testhost::converge(&c);
        assert!(
            first.changed() && second.actions.is_empty(),
            "{:?}",
            second.diffs
        );
        let c = crate::modules::copy::tests::build_for_tests(
            json!({"dest": "/tmp/mc-t/a/b/conf", "content": "k=w\n", "backup": true}),
        );
        let (first, _) = testhost::converge(&c);
        assert!(first.result["backup_file"]
            .as_str()
            .unwrap()
            .starts_with("/tmp/mc-t/a/b/conf."));
        let o = testhost::run(
            "stat -c '%U %a' /tmp/mc-t/a/b/conf; cat /tmp/mc-t/a/b/conf",
            None,
        );
        assert_eq!(
            o.stdout_str(),
            "www-data 640\nk=w\n",
            "owner and mode kept on rewrite"
        );
        let t = build(
            json!({"path": "/tmp/mc-t", "state": "absent"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty());
    }
}
