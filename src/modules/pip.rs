//! `pip`: Python packages, optionally in a virtualenv (created when missing).
//!
//! One probe reads whether the virtualenv exists, what is installed
//! (`python -m pip list --format=freeze`) and the requirements file(s) (`-r` includes one level
//! deep). The plan decides per requirement: exact pins compare versions, ranges use a PEP 440-ish
//! comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`, `~=`, `===`, `==1.2.*`), a bare name is
//! satisfied when installed. Only unsatisfied requirements cause an install, so a converged host
//! makes no changes.
//!
//! Lines the plan cannot judge (editable installs, URLs or paths without `#egg=`) make it run
//! `pip install -r` anyway and report `changed` only if `pip list` differs afterwards (check mode
//! predicts a change). Environment markers (`; python_version < "3.8"`) are not evaluated: such
//! a requirement only counts as unsatisfied when installed at a non-matching version.
//!
//! `state: latest` asks pip itself (`pip install --dry-run --upgrade --report -`, read-only,
//! with `extra_args`) what an upgrade would install. `forcereinstall` always reinstalls.
//! `virtualenv_command` defaults to `python3 -m venv`; with `-m venv` commands,
//! `virtualenv_python` replaces the interpreter (`python3.11 -m venv`).

use super::args::{self, opt_boolish, opt_list, opt_string};
use super::{
    sh_quote, Action, ActionOutput, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope,
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;

pub struct PipModule;

const PARAMS: &[&str] = &[
    "name",
    "version",
    "requirements",
    "virtualenv",
    "virtualenv_command",
    "virtualenv_python",
    "virtualenv_site_packages",
    "extra_args",
    "state",
    "chdir",
    "executable",
    "editable",
    "umask",
    "break_system_packages",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_list")]
    name: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    version: Option<String>,
    #[serde(default)]
    requirements: Option<String>,
    #[serde(default)]
    virtualenv: Option<String>,
    #[serde(default)]
    virtualenv_command: Option<String>,
    #[serde(default)]
    virtualenv_python: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    virtualenv_site_packages: Option<bool>,
    #[serde(default)]
    extra_args: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    chdir: Option<String>,
    #[serde(default)]
    executable: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    editable: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    umask: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    break_system_packages: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Present,
    Absent,
    Latest,
    ForceReinstall,
}

#[derive(Debug)]
struct PipTask {
    names: Vec<String>,
    requirements: Option<String>,
    virtualenv: Option<String>,
    venv_cmd: String,
    site_packages: bool,
    extra_args: Option<String>,
    state: State,
    chdir: Option<String>,
    executable: Option<String>,
    editable: bool,
    umask: Option<String>,
}

module_impl!(PipModule, "pip");

fn build(args: &Map<String, Value>) -> Result<PipTask, ModuleError> {
    let a: Args = args::parse("pip", PARAMS, args)?;
    let state = match a.state.as_deref().unwrap_or("present") {
        "present" => State::Present,
        "absent" => State::Absent,
        "latest" => State::Latest,
        "forcereinstall" => State::ForceReinstall,
        s => {
            return Err(ModuleError::Args(format!(
                "pip: state must be present, absent, latest or forcereinstall, got '{s}'"
            )))
        }
    };
    let mut names = a.name.unwrap_or_default();
    if names.is_empty() && a.requirements.is_none() {
        return Err(ModuleError::Args(
            "pip: one of name or requirements is required".into(),
        ));
    }
    if !names.is_empty() && a.requirements.is_some() {
        return Err(ModuleError::Args(
            "pip: name and requirements are mutually exclusive".into(),
        ));
    }
    if a.executable.is_some() && a.virtualenv.is_some() {
        return Err(ModuleError::Args(
            "pip: executable and virtualenv are mutually exclusive".into(),
        ));
    }
    if let Some(v) = &a.version {
        if names.len() != 1 {
            return Err(ModuleError::Args(
                "pip: version requires exactly one name".into(),
            ));
        }
        if Requirement::parse(&names[0])
            .map(|r| !r.specs.is_empty())
            .unwrap_or(false)
        {
            return Err(ModuleError::Args(
                "pip: version cannot be combined with a version specifier in name".into(),
            ));
        }
        names[0] = format!("{}=={}", names[0], v.trim());
    }
    let mut venv_cmd = a
        .virtualenv_command
        .unwrap_or_else(|| "python3 -m venv".into());
    if let Some(py) = &a.virtualenv_python {
        if venv_cmd.contains("-m venv") {
            venv_cmd = format!("{} -m venv", sh_quote(py));
        } else {
            venv_cmd = format!("{venv_cmd} -p {}", sh_quote(py));
        }
    }
    let mut extra = a.extra_args.filter(|e| !e.trim().is_empty());
    if a.break_system_packages.unwrap_or(false) {
        extra = Some(
            format!("{} --break-system-packages", extra.unwrap_or_default())
                .trim()
                .to_string(),
        );
    }
    if let Some(u) = &a.umask {
        if !u.trim().bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(ModuleError::Args(format!(
                "pip: umask must be octal, got '{u}'"
            )));
        }
    }
    Ok(PipTask {
        names,
        requirements: a.requirements,
        virtualenv: a.virtualenv.map(|v| v.trim_end_matches('/').to_string()),
        venv_cmd,
        site_packages: a.virtualenv_site_packages.unwrap_or(false),
        extra_args: extra,
        state,
        chdir: a.chdir,
        executable: a.executable,
        editable: a.editable.unwrap_or(false),
        umask: a.umask.map(|u| u.trim().to_string()),
    })
}

// ---------------------------------------------------------------- versions and requirements

/// PEP 503 normalized project name.
pub fn normalize_name(n: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in n.trim().chars() {
        if c == '-' || c == '_' || c == '.' {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// A PEP 440 version, enough to order common releases (`1.2`, `1.2.3rc1`, `2.0.post1`, `1!3.0`).
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    /// (rank, number): dev = 0, a = 1, b = 2, rc = 3, final = 4; post adds a second key.
    pre: (u8, u64),
    post: Option<u64>,
    dev: Option<u64>,
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix('v').unwrap_or(&s);
        let s = s.split('+').next().unwrap_or("");
        let (epoch, rest) = match s.split_once('!') {
            Some((e, r)) => (e.parse().ok()?, r),
            None => (0, s),
        };
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let rel = rest[..end].trim_end_matches('.');
        if rel.is_empty() {
            return None;
        }
        let release: Vec<u64> = rel
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let mut tail = rest[end..].trim_start_matches(['.', '-', '_']).to_string();
        let mut pre = (4u8, 0u64);
        let mut post = None;
        let mut dev = None;
        let take_num = |t: &mut String| -> u64 {
            let t2 = t.trim_start_matches(['.', '-', '_']).to_string();
            let n: String = t2.chars().take_while(|c| c.is_ascii_digit()).collect();
            *t = t2[n.len()..]
                .trim_start_matches(['.', '-', '_'])
                .to_string();
            n.parse().unwrap_or(0)
        };
        for (words, rank) in [
            (&["alpha", "a"][..], 1u8),
            (&["beta", "b"][..], 2),
            (&["rc", "c", "pre", "preview"][..], 3),
        ] {
            if let Some(w) = words.iter().find(|w| tail.starts_with(**w)) {
                tail = tail[w.len()..].to_string();
                pre = (rank, take_num(&mut tail));
                break;
            }
        }
        for w in ["post", "rev", "r"] {
            if tail.starts_with(w) {
                tail = tail[w.len()..].to_string();
                post = Some(take_num(&mut tail));
                break;
            }
        }
        if tail.starts_with("dev") {
            tail = tail[3..].to_string();
            dev = Some(take_num(&mut tail));
        }
        if !tail.is_empty() {
            return None;
        }
        // 1.0.dev1 sorts before 1.0a1.
        if dev.is_some() && pre.0 == 4 && post.is_none() {
            pre = (0, 0);
        }
        Some(Version {
            epoch,
            release,
            pre,
            post,
            dev,
        })
    }

    fn is_prerelease(&self) -> bool {
        self.pre.0 < 4 || self.dev.is_some()
    }
}

impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        let n = self.release.len().max(o.release.len());
        let pad = |r: &Vec<u64>| {
            (0..n)
                .map(|i| r.get(i).copied().unwrap_or(0))
                .collect::<Vec<_>>()
        };
        self.epoch
            .cmp(&o.epoch)
            .then_with(|| pad(&self.release).cmp(&pad(&o.release)))
            .then_with(|| self.pre.cmp(&o.pre))
            .then_with(|| {
                self.post
                    .map(|p| p as i128)
                    .unwrap_or(-1)
                    .cmp(&o.post.map(|p| p as i128).unwrap_or(-1))
            })
            .then_with(|| {
                self.dev
                    .map(|d| d as i128)
                    .unwrap_or(i128::MAX)
                    .cmp(&o.dev.map(|d| d as i128).unwrap_or(i128::MAX))
            })
    }
}

impl PartialEq for Version {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Does `installed` satisfy `op want`?
pub fn spec_matches(op: &str, want: &str, installed: &str) -> bool {
    if op == "===" {
        return installed.trim() == want.trim();
    }
    if let Some(prefix) = want.strip_suffix(".*") {
        let (Some(p), Some(i)) = (Version::parse(prefix), Version::parse(installed)) else {
            return false;
        };
        let prefix_match = p.epoch == i.epoch
            && i.release.len() >= p.release.len()
            && i.release[..p.release.len()] == p.release[..]
            || p.epoch == i.epoch
                && p.release
                    .iter()
                    .enumerate()
                    .all(|(k, v)| i.release.get(k).copied().unwrap_or(0) == *v);
        return match op {
            "==" => prefix_match,
            "!=" => !prefix_match,
            _ => false,
        };
    }
    let (Some(w), Some(i)) = (Version::parse(want), Version::parse(installed)) else {
        return op == "==" && want.trim() == installed.trim();
    };
    match op {
        "==" => i == w,
        "!=" => i != w,
        "<" => i < w && !(i.is_prerelease() && !w.is_prerelease() && i.release == w.release),
        "<=" => i <= w,
        ">" => i > w && !(i.post.is_some() && w.post.is_none() && i.release == w.release),
        ">=" => i >= w,
        "~=" => {
            if w.release.len() < 2 {
                return false;
            }
            let upper: Vec<u64> = w.release[..w.release.len() - 1].to_vec();
            i >= w && i.release.len() >= upper.len() && i.release[..upper.len()] == upper[..]
                || i >= w
                    && upper
                        .iter()
                        .enumerate()
                        .all(|(k, v)| i.release.get(k).copied().unwrap_or(0) == *v)
        }
        _ => false,
    }
}

/// One requirement line (`Django>=4.2,<5`, `psycopg2-binary==2.9.13`, `pkg[extra] @ url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// As written (for the command line).
    pub raw: String,
    /// Normalized name.
    pub name: String,
    pub specs: Vec<(String, String)>,
    /// Has an environment marker (not evaluated).
    pub marker: bool,
    /// A direct reference (`name @ url`): satisfied when installed.
    pub direct: bool,
}

impl Requirement {
    /// None for lines the plan cannot judge (bare URLs, paths).
    pub fn parse(line: &str) -> Option<Requirement> {
        let raw = line.trim().to_string();
        let (body, marker) = match raw.split_once(';') {
            Some((b, _)) => (b.trim(), true),
            None => (raw.as_str(), false),
        };
        if let Some((n, _url)) = body.split_once(" @ ").or_else(|| {
            body.split_once('@')
                .filter(|(n, _)| !n.contains('/') && !n.contains(':'))
        }) {
            let n = n.split('[').next().unwrap_or("").trim();
            if valid_name(n) {
                return Some(Requirement {
                    raw: raw.clone(),
                    name: normalize_name(n),
                    specs: vec![],
                    marker,
                    direct: true,
                });
            }
            return None;
        }
        let end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .unwrap_or(body.len());
        let name = &body[..end];
        if !valid_name(name) {
            return None;
        }
        let mut rest = body[end..].trim();
        if rest.starts_with('[') {
            rest = rest.split_once(']').map(|(_, r)| r.trim()).unwrap_or("");
        }
        let rest = rest.trim_start_matches('(').trim_end_matches(')');
        let mut specs = Vec::new();
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let op_len = part
                .find(|c: char| !"<>=!~".contains(c))
                .unwrap_or(part.len());
            let (op, v) = part.split_at(op_len);
            if !["==", "!=", "<", "<=", ">", ">=", "~=", "==="].contains(&op) || v.trim().is_empty()
            {
                return None;
            }
            specs.push((op.to_string(), v.trim().to_string()));
        }
        let name = normalize_name(name);
        Some(Requirement {
            raw: raw.clone(),
            name,
            specs,
            marker,
            direct: false,
        })
    }

    pub fn satisfied_by(&self, installed: Option<&str>) -> bool {
        match installed {
            None => self.marker,
            Some(v) => self.specs.iter().all(|(op, w)| spec_matches(op, w, v)),
        }
    }

    /// What the diff shows as the wanted state.
    fn wanted(&self) -> String {
        match self.specs.as_slice() {
            [] => "present".into(),
            [(op, v)] if op == "==" || op == "===" => v.clone(),
            s => s
                .iter()
                .map(|(o, v)| format!("{o}{v}"))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A requirements file's lines: judged requirements, lines the plan can't judge, `-r` includes.
#[derive(Debug, Default, PartialEq)]
struct ReqFile {
    reqs: Vec<Requirement>,
    unknown: Vec<String>,
    includes: Vec<String>,
}

fn parse_requirements(text: &str) -> ReqFile {
    let mut out = ReqFile::default();
    let mut joined = String::new();
    let mut lines = Vec::new();
    for l in text.lines() {
        if let Some(s) = l.strip_suffix('\\') {
            joined.push_str(s);
            joined.push(' ');
            continue;
        }
        joined.push_str(l);
        lines.push(std::mem::take(&mut joined));
    }
    if !joined.is_empty() {
        lines.push(joined);
    }
    for l in lines {
        // Comments: `#` at the start or after whitespace (not in `#egg=` of a URL).
        let mut line = l.as_str();
        if let Some(i) = line.find(" #").or(if line.trim_start().starts_with('#') {
            Some(0)
        } else {
            None
        }) {
            line = &line[..i];
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('-') {
            let (opt, val) = match line.split_once([' ', '=', '\t']) {
                Some((o, v)) => (o, v.trim()),
                None => (line, ""),
            };
            match opt {
                "-r" | "--requirement" => out.includes.push(val.to_string()),
                "-e" | "--editable" => out.unknown.push(line.to_string()),
                _ => {} // index options, constraints: pip reads them from the file itself
            }
            continue;
        }
        // Per-requirement options (`--hash=...`) follow the requirement.
        let req = line.split(" --").next().unwrap_or(line).trim();
        match Requirement::parse(req) {
            Some(r) => out.reqs.push(r),
            None => {
                // URL or path with #egg=name: judged by name.
                if let Some(egg) = req.split("#egg=").nth(1) {
                    let n = egg.split('&').next().unwrap_or("");
                    if valid_name(n) {
                        out.reqs.push(Requirement {
                            raw: req.into(),
                            name: normalize_name(n),
                            specs: vec![],
                            marker: false,
                            direct: true,
                        });
                        continue;
                    }
                }
                out.unknown.push(req.to_string());
            }
        }
    }
    out
}

// ---------------------------------------------------------------- probe

#[derive(Debug, Default)]
struct Observed {
    venv: Option<bool>,
    python_missing: bool,
    installed: BTreeMap<String, (String, String)>, // normalized -> (display name, version)
    req_files: Vec<(String, Option<String>)>,
    /// From the dry-run report (state latest): name -> version pip would install.
    upgrades: Option<Vec<(String, String)>>,
    dry_run_error: Option<String>,
}

impl PipTask {
    fn pip(&self) -> String {
        match (&self.virtualenv, &self.executable) {
            (Some(_), _) => "\"$venv/bin/python\" -m pip".into(),
            (None, Some(e)) => sh_quote(e),
            (None, None) => "python3 -m pip".into(),
        }
    }

    fn prelude(&self) -> String {
        let mut s = String::from("PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_NO_COLOR=1; export PIP_DISABLE_PIP_VERSION_CHECK PIP_NO_INPUT PIP_NO_COLOR\n");
        if let Some(c) = &self.chdir {
            s.push_str(&format!("cd {} || exit 1\n", sh_quote(c)));
        }
        if let Some(v) = &self.virtualenv {
            // Relative venv paths are relative to chdir (or the home directory).
            s.push_str(&format!("venv={}\n", sh_quote(v)));
        }
        s
    }

    fn probe_script(&self) -> String {
        let mut s = self.prelude();
        let pip = self.pip();
        if self.virtualenv.is_some() {
            s.push_str("if [ -x \"$venv/bin/python\" ]; then echo 'venv|present'; else echo 'venv|absent'; fi\n");
            s.push_str("if [ -x \"$venv/bin/python\" ]; then\n");
        } else {
            let first = match &self.executable {
                Some(e) => sh_quote(e),
                None => "python3".into(),
            };
            s.push_str(&format!("if ! command -v {first} >/dev/null 2>&1; then echo 'python|missing'; fi\nif command -v {first} >/dev/null 2>&1; then\n"));
        }
        let python = match (&self.virtualenv, &self.executable) {
            (Some(_), _) => Some("\"$venv/bin/python\""),
            (None, None) => Some("python3"),
            (None, Some(_)) => None, // a pip executable: its interpreter is its own business
        };
        match python {
            // What `pip list` reports, without importing pip (≈10 ms instead of ≈300 ms).
            Some(py) => s.push_str(&format!("  {py} -c {}\n", sh_quote(LIST_DISTRIBUTIONS))),
            None => s.push_str(&format!("  {pip} list --format=freeze 2>/dev/null | sed 's/^/pkg|/'\n")),
        }
        if self.state == State::Latest {
            let extra = self.extra_args.clone().unwrap_or_default();
            let what = self.install_targets_all();
            s.push_str(&format!(
                "  if out=$({pip} install --dry-run --quiet --upgrade --report - {extra} {what} 2>&1); then printf '%s\\n' \"$out\" | base64 -w0 | sed 's/^/report|/'; echo; else printf '%s\\n' \"$out\" | tail -n 5 | sed 's/^/dryerr|/'; fi\n"
            ));
        }
        s.push_str("fi\n");
        if let Some(r) = &self.requirements {
            s.push_str(&format!("r={}\n", sh_quote(r)));
            s.push_str(
                "emit() { if [ -r \"$1\" ]; then printf 'req|%s\\n' \"$1\"; base64 -w0 < \"$1\"; echo; else printf 'reqmissing|%s\\n' \"$1\"; fi; }\n\
                 emit \"$r\"\n\
                 if [ -r \"$r\" ]; then sed -n 's/^[[:space:]]*\\(-r\\|--requirement\\)[[:space:]=]*\\([^[:space:]]*\\).*/\\2/p' \"$r\" | while IFS= read -r inc; do\n\
                 \x20 case $inc in /*) emit \"$inc\" ;; *) emit \"$(dirname -- \"$r\")/$inc\" ;; esac\n\
                 done; fi\n",
            );
        }
        s
    }

    fn install_targets_all(&self) -> String {
        match &self.requirements {
            Some(r) => format!("-r {}", sh_quote(r)),
            None => self
                .names
                .iter()
                .map(|n| sh_quote(n))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Python (3.x, standard library only) printing `pkg|Name==Version` for every distribution the
/// interpreter can import, as `pip list` does: the metadata of each `*.dist-info` / `*.egg-info`
/// / `*.egg` on `sys.path`, the first one found of a name winning.
const LIST_DISTRIBUTIONS: &str = r#"import os, sys
seen = set()
def meta(f):
    name = ver = None
    try:
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break
                if line.startswith("Name:"):
                    name = line[5:].strip()
                elif line.startswith("Version:"):
                    ver = line[8:].strip()
    except OSError:
        pass
    return name, ver
for p in sys.path:
    if p.endswith(".egg") and os.path.isdir(p):
        found = [os.path.join(p, "EGG-INFO", "PKG-INFO")]
    else:
        try:
            names = sorted(os.listdir(p or "."))
        except OSError:
            continue
        found = []
        for n in names:
            f = os.path.join(p, n)
            if n.endswith(".dist-info"):
                found.append(os.path.join(f, "METADATA"))
            elif n.endswith(".egg-info"):
                found.append(os.path.join(f, "PKG-INFO") if os.path.isdir(f) else f)
    for f in found:
        name, ver = meta(f)
        key = name.lower().replace("_", "-").replace(".", "-") if name else None
        if key and ver and key not in seen:
            seen.add(key)
            print("pkg|%s==%s" % (name, ver))
"#;

fn observe(r: &ProbeResult) -> Result<Observed, ModuleError> {
    if r.rc != 0 {
        return Err(ModuleError::Failed(format!(
            "pip: cannot probe: {}",
            r.stderr.trim()
        )));
    }
    let mut o = Observed::default();
    let mut lines = r.stdout.lines();
    let mut dry_err = Vec::new();
    while let Some(line) = lines.next() {
        let Some((k, v)) = line.split_once('|') else {
            continue;
        };
        match k {
            "venv" => o.venv = Some(v == "present"),
            "python" => o.python_missing = true,
            "pkg" => {
                if let Some((n, ver)) = v.split_once("==") {
                    o.installed
                        .insert(normalize_name(n), (n.to_string(), ver.trim().to_string()));
                }
            }
            "req" => {
                let b64 = lines.next().unwrap_or("").trim();
                let text = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| ModuleError::Probe(format!("pip: requirements content: {e}")))?;
                o.req_files.push((
                    v.to_string(),
                    Some(String::from_utf8_lossy(&text).into_owned()),
                ));
            }
            "reqmissing" => o.req_files.push((v.to_string(), None)),
            "report" => {
                let json = base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .unwrap_or_default();
                let rep: Value = serde_json::from_slice(&json)
                    .map_err(|e| ModuleError::Probe(format!("pip: dry-run report: {e}")))?;
                let mut ups = Vec::new();
                for item in rep["install"].as_array().into_iter().flatten() {
                    let n = item["metadata"]["name"].as_str().unwrap_or("").to_string();
                    let ver = item["metadata"]["version"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    ups.push((n, ver));
                }
                o.upgrades = Some(ups);
            }
            "dryerr" => dry_err.push(v.to_string()),
            _ => {}
        }
    }
    if !dry_err.is_empty() {
        o.dry_run_error = Some(dry_err.join("\n"));
    }
    Ok(o)
}

// ---------------------------------------------------------------- plan

impl ModuleTask for PipTask {
    fn probes(&self) -> Vec<Probe> {
        let reads = match &self.virtualenv {
            // The venv and the requirements file; relative paths depend on chdir/home: be safe.
            Some(v)
                if v.starts_with('/')
                    && self
                        .requirements
                        .as_deref()
                        .is_none_or(|r| r.starts_with('/')) =>
            {
                let mut p = vec![v.clone()];
                p.extend(self.requirements.clone());
                Scope::Paths(p)
            }
            _ => Scope::Host,
        };
        vec![Probe::new(self.probe_script(), reads)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let o = observe(
            probes
                .first()
                .ok_or_else(|| ModuleError::Probe("pip: no probe output".into()))?,
        )?;
        let mut plan = Plan::ok();
        plan.result.insert("name".into(), json!(self.names));
        plan.result
            .insert("requirements".into(), json!(self.requirements));
        plan.result
            .insert("virtualenv".into(), json!(self.virtualenv));
        plan.result.insert(
            "state".into(),
            json!(format!("{:?}", self.state).to_lowercase()),
        );
        if o.python_missing {
            return Err(ModuleError::Failed(format!(
                "pip: {} not found on the host",
                self.executable.as_deref().unwrap_or("python3")
            )));
        }
        let venv_missing = o.venv == Some(false);

        // Requirements to judge.
        let mut reqs: Vec<Requirement> = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        if self.requirements.is_some() {
            for (path, text) in &o.req_files {
                match text {
                    Some(t) => {
                        let f = parse_requirements(t);
                        reqs.extend(f.reqs);
                        unknown.extend(f.unknown);
                    }
                    None => {
                        return Err(ModuleError::Failed(format!(
                            "pip: requirements file {path} not found on the host"
                        )))
                    }
                }
            }
        } else {
            for n in &self.names {
                match Requirement::parse(n) {
                    Some(r) if !self.editable => reqs.push(r),
                    _ => unknown.push(n.clone()),
                }
            }
        }

        let mut actions = Vec::new();
        if venv_missing {
            if self.state == State::Absent {
                plan.msg = Some("virtualenv does not exist: nothing to remove".into());
                return Ok(plan);
            }
            let v = self.virtualenv.as_deref().unwrap_or_default();
            plan.diffs.push(Diff::Field {
                name: "virtualenv".into(),
                before: "absent".into(),
                after: v.to_string(),
            });
            let mut s = String::from("set -e\n");
            s.push_str(&self.prelude());
            if let Some(u) = &self.umask {
                s.push_str(&format!("umask {u}\n"));
            }
            let site = if self.site_packages {
                " --system-site-packages"
            } else {
                ""
            };
            s.push_str(&format!("{}{site} \"$venv\"\n", self.venv_cmd));
            actions.push(Action::new(
                format!("create virtualenv {v}"),
                s,
                self.touches(),
            ));
        }

        let installed = |r: &Requirement| o.installed.get(&r.name).map(|(_, v)| v.as_str());
        let show = |r: &Requirement| {
            installed(r)
                .map(str::to_string)
                .unwrap_or_else(|| "absent".into())
        };
        let mut to_change: Vec<&Requirement> = Vec::new();
        let mut uncertain = false;
        let cmd_targets: String;
        let verb: &str;
        match self.state {
            State::Present => {
                for r in &reqs {
                    if venv_missing || !r.satisfied_by(installed(r)) {
                        plan.diffs.push(Diff::Field {
                            name: r.name.clone(),
                            before: show(r),
                            after: r.wanted(),
                        });
                        to_change.push(r);
                    }
                }
                uncertain = !unknown.is_empty();
                if uncertain {
                    plan.diffs.push(Diff::Field {
                        name: "unversioned requirements".into(),
                        before: "?".into(),
                        after: unknown.join(", "),
                    });
                }
                cmd_targets = match &self.requirements {
                    Some(r) => format!("-r {}", sh_quote(r)),
                    None => to_change
                        .iter()
                        .map(|r| sh_quote(&r.raw))
                        .chain(unknown.iter().map(|u| sh_quote(u)))
                        .collect::<Vec<_>>()
                        .join(" "),
                };
                verb = "install";
            }
            State::ForceReinstall => {
                for r in &reqs {
                    plan.diffs.push(Diff::Field {
                        name: r.name.clone(),
                        before: show(r),
                        after: format!("{} (reinstalled)", r.wanted()),
                    });
                }
                cmd_targets = format!("--force-reinstall {}", self.install_targets_all());
                verb = "install";
                to_change = reqs.iter().collect();
                uncertain = false;
            }
            State::Latest => {
                if venv_missing {
                    for r in &reqs {
                        plan.diffs.push(Diff::Field {
                            name: r.name.clone(),
                            before: "absent".into(),
                            after: "latest".into(),
                        });
                    }
                    to_change = reqs.iter().collect();
                } else {
                    match (&o.upgrades, &o.dry_run_error) {
                        (Some(ups), _) => {
                            for (n, v) in ups {
                                let before = o
                                    .installed
                                    .get(&normalize_name(n))
                                    .map(|(_, v)| v.clone())
                                    .unwrap_or_else(|| "absent".into());
                                plan.diffs.push(Diff::Field {
                                    name: normalize_name(n),
                                    before,
                                    after: v.clone(),
                                });
                            }
                            if !ups.is_empty() {
                                to_change = reqs.iter().collect();
                                if to_change.is_empty() {
                                    uncertain = true;
                                }
                            }
                        }
                        (None, Some(e)) => {
                            return Err(ModuleError::Failed(format!(
                                "pip: cannot determine latest versions: {e}"
                            )))
                        }
                        (None, None) => {
                            uncertain = true;
                        }
                    }
                }
                cmd_targets = format!("--upgrade {}", self.install_targets_all());
                verb = "install";
            }
            State::Absent => {
                for r in &reqs {
                    if let Some(v) = installed(r) {
                        if r.specs.is_empty() || r.satisfied_by(Some(v)) {
                            plan.diffs.push(Diff::Field {
                                name: r.name.clone(),
                                before: v.to_string(),
                                after: "absent".into(),
                            });
                            to_change.push(r);
                        }
                    }
                }
                cmd_targets = to_change
                    .iter()
                    .map(|r| sh_quote(&r.name))
                    .collect::<Vec<_>>()
                    .join(" ");
                verb = "uninstall";
            }
        }

        if !to_change.is_empty() || uncertain {
            let mut s = String::from("set -e\n");
            s.push_str(&self.prelude());
            if let Some(u) = &self.umask {
                s.push_str(&format!("umask {u}\n"));
            }
            let pip = self.pip();
            if uncertain {
                s.push_str(&format!(
                    "{pip} list --format=freeze 2>/dev/null | sed 's/^/before|/'\n"
                ));
            }
            let extra = if verb == "install" {
                self.extra_args
                    .clone()
                    .map(|e| format!(" {e}"))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let edit = if self.editable && self.requirements.is_none() && verb == "install" {
                " -e"
            } else {
                ""
            };
            let flags = if verb == "uninstall" { " -y" } else { "" };
            let cmd = format!("{pip} {verb}{flags}{extra}{edit} {cmd_targets}");
            s.push_str(&format!("{cmd}\n"));
            if uncertain {
                s.push_str(&format!(
                    "{pip} list --format=freeze 2>/dev/null | sed 's/^/after|/'\n"
                ));
            }
            let shown = cmd.replace(
                "\"$venv/bin/python\"",
                &format!("{}/bin/python", self.virtualenv.as_deref().unwrap_or("")),
            );
            plan.result.insert("cmd".into(), json!(shown));
            let mut a = Action::new(
                format!(
                    "pip {verb} {}",
                    if cmd_targets.len() > 80 {
                        format!("{}...", &cmd_targets[..77])
                    } else {
                        cmd_targets.clone()
                    }
                ),
                s,
                self.touches(),
            );
            if uncertain {
                a.summary.push_str(" (changed if the package list differs)");
            }
            actions.push(a);
        }
        plan.actions = actions;
        if uncertain {
            plan.result.insert("uncertain".into(), json!(true));
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        if let Some(last) = outputs.last() {
            let text = String::from_utf8_lossy(&last.stdout);
            let before: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("before|"))
                .collect();
            let after: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("after|"))
                .collect();
            let clean = |t: &str| {
                t.lines()
                    .filter(|l| !l.starts_with("before|") && !l.starts_with("after|"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            plan.result.insert("stdout".into(), json!(clean(&text)));
            plan.result
                .insert("stderr".into(), json!(last.stderr_str()));
            if plan.result.remove("uncertain").is_some() {
                let venv_created = plan
                    .diffs
                    .iter()
                    .any(|d| matches!(d, Diff::Field { name, .. } if name == "virtualenv"));
                // Replace the guessed diffs by what actually changed.
                let bmap: BTreeMap<String, String> = before
                    .iter()
                    .filter_map(|l| l.split_once("=="))
                    .map(|(n, v)| (normalize_name(n), v.to_string()))
                    .collect();
                let amap: BTreeMap<String, String> = after
                    .iter()
                    .filter_map(|l| l.split_once("=="))
                    .map(|(n, v)| (normalize_name(n), v.to_string()))
                    .collect();
                let mut diffs: Vec<Diff> = plan
                    .diffs
                    .iter()
                    .filter(|d| matches!(d, Diff::Field { name, .. } if name == "virtualenv"))
                    .cloned()
                    .collect();
                for k in bmap
                    .keys()
                    .chain(amap.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                {
                    let b = bmap.get(k).cloned().unwrap_or_else(|| "absent".into());
                    let a = amap.get(k).cloned().unwrap_or_else(|| "absent".into());
                    if a != b {
                        diffs.push(Diff::Field {
                            name: k.clone(),
                            before: b,
                            after: a,
                        });
                    }
                }
                plan.changed = Some(
                    venv_created
                        || diffs.iter().any(
                            |d| !matches!(d, Diff::Field { name, .. } if name == "virtualenv"),
                        ),
                );
                plan.diffs = diffs;
            }
        }
        plan.result.remove("uncertain");
        Ok(plan)
    }
}

impl PipTask {
    fn touches(&self) -> Scope {
        match &self.virtualenv {
            Some(v) if v.starts_with('/') => Scope::path(v.clone()),
            _ => Scope::Host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::ok as res;
    use super::*;

    fn task(a: Value) -> PipTask {
        build(a.as_object().unwrap()).unwrap()
    }
    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }
    const REQS: &str = "# app\nDjango==4.2.30\ngunicorn==27.0.1\npsycopg2-binary==2.9.13  # db\ndjango-environ>=0.10,<1\n--find-links /srv/wheels\nsqlparse\n";

    #[test]
    fn versions_compare_like_pep440() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("4.2.10") > v("4.2.9"));
        assert!(v("1.0") == v("1.0.0"));
        assert!(v("1.0rc1") < v("1.0"));
        assert!(v("1.0.dev1") < v("1.0a1"));
        assert!(v("1.0.post1") > v("1.0"));
        assert!(v("1!0.1") > v("2.0"));
        assert!(spec_matches("~=", "2.2", "2.9.1"));
        assert!(!spec_matches("~=", "2.2", "3.0"));
        assert!(spec_matches("~=", "1.4.5", "1.4.9"));
        assert!(!spec_matches("~=", "1.4.5", "1.5.0"));
        assert!(spec_matches("==", "4.2.*", "4.2.30"));
        assert!(!spec_matches("==", "4.2.*", "4.3"));
        assert!(spec_matches("!=", "1.0", "1.1"));
        assert!(spec_matches("<", "5", "4.2.30"));
        assert!(!spec_matches("<", "5.0", "5.0rc1"));
    }

    #[test]
    fn parses_requirement_lines() {
        let r = Requirement::parse("Django[argon2]>=4.2,<5").unwrap();
        assert_eq!(r.name, "django");
        assert_eq!(
            r.specs,
            vec![(">=".into(), "4.2".into()), ("<".into(), "5".into())]
        );
        assert_eq!(
            Requirement::parse("zope.interface").unwrap().name,
            "zope-interface"
        );
        assert!(Requirement::parse("pkg @ https://x/y.whl").unwrap().direct);
        assert!(Requirement::parse("./local/path").is_none());
        let f = parse_requirements(
            "a==1 \\\n  --hash=sha256:abc\n-r base.txt\n-e .\ngit+https://x/y.git#egg=foo\n",
        );
        assert_eq!(
            f.reqs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "foo"]
        );
        assert_eq!(f.includes, vec!["base.txt"]);
        assert_eq!(f.unknown, vec!["-e ."]);
    }

    #[test]
    fn fresh_venv_installs_requirements() {
        let t = task(
            json!({"requirements": "/srv/app/requirements.txt", "virtualenv": "/srv/venv", "extra_args": "--no-index --find-links /srv/wheels"}),
        );
        let out = format!(
            "venv|absent\nreq|/srv/app/requirements.txt\n{}\n",
            b64(REQS)
        );
        let p = t.plan(&[res(&out)]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert!(p.actions[0].script.contains("python3 -m venv \"$venv\""));
        assert!(p.actions[1].script.contains("\"$venv/bin/python\" -m pip install --no-index --find-links /srv/wheels -r /srv/app/requirements.txt"), "{}", p.actions[1].script);
        assert!(p.diffs.contains(&Diff::Field {
            name: "django".into(),
            before: "absent".into(),
            after: "4.2.30".into()
        }));
        assert!(p.diffs.contains(&Diff::Field {
            name: "django-environ".into(),
            before: "absent".into(),
            after: ">=0.10,<1".into()
        }));
    }

    #[test]
    fn converged_venv_is_ok_and_drift_is_detected() {
        let t =
            task(json!({"requirements": "/srv/app/requirements.txt", "virtualenv": "/srv/venv"}));
        let installed = "pkg|Django==4.2.30\npkg|gunicorn==27.0.1\npkg|psycopg2-binary==2.9.13\npkg|django-environ==0.14.0\npkg|sqlparse==0.6.1\npkg|pip==23.0.1\n";
        let out = format!(
            "venv|present\n{installed}req|/srv/app/requirements.txt\n{}\n",
            b64(REQS)
        );
        let p = t.plan(&[res(&out)]).unwrap();
        assert!(p.actions.is_empty() && p.diffs.is_empty(), "{p:?}");
        let out = out.replace("Django==4.2.30", "Django==4.2.11");
        let p = t.plan(&[res(&out)]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "django".into(),
                before: "4.2.11".into(),
                after: "4.2.30".into()
            }]
        );
    }

    #[test]
    fn names_absent_and_version() {
        let t =
            task(json!({"name": ["gunicorn", "Django"], "state": "absent", "virtualenv": "/v"}));
        let p = t
            .plan(&[res("venv|present\npkg|Django==4.2.30\n")])
            .unwrap();
        assert!(
            p.actions[0].script.contains("-m pip uninstall -y django\n"),
            "{}",
            p.actions[0].script
        );
        let t = task(json!({"name": "django", "version": "4.2.30", "virtualenv": "/v"}));
        assert!(t
            .plan(&[res("venv|present\npkg|Django==4.2.30\n")])
            .unwrap()
            .actions
            .is_empty());
        assert_eq!(
            t.plan(&[res("venv|present\npkg|Django==4.2.1\n")])
                .unwrap()
                .actions
                .len(),
            1
        );
    }

    #[test]
    fn latest_uses_the_dry_run_report() {
        let t = task(json!({"name": "pip", "state": "latest", "virtualenv": "/v"}));
        assert!(t.probe_script().contains("--dry-run"));
        let rep = r#"{"version":"1","install":[{"metadata":{"name":"pip","version":"26.3"}}]}"#;
        let p = t
            .plan(&[res(&format!(
                "venv|present\npkg|pip==23.0.1\nreport|{}\n",
                b64(rep)
            ))])
            .unwrap();
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "pip".into(),
                before: "23.0.1".into(),
                after: "26.3".into()
            }]
        );
        let rep = r#"{"version":"1","install":[]}"#;
        assert!(t
            .plan(&[res(&format!(
                "venv|present\npkg|pip==26.3\nreport|{}\n",
                b64(rep)
            ))])
            .unwrap()
            .actions
            .is_empty());
    }

    #[test]
    fn unknown_lines_decide_after_running() {
        let t = task(json!({"requirements": "r.txt", "virtualenv": "/v"}));
        let p = t
            .plan(&[res(&format!(
                "venv|present\npkg|a==1\nreq|r.txt\n{}\n",
                b64("a==1\n-e .\n")
            ))])
            .unwrap();
        assert_eq!(p.actions.len(), 1);
        let out = ActionOutput {
            stdout: b"before|a==1\nafter|a==1\n".to_vec(),
            stderr: vec![],
            exit_code: 0,
        };
        let done = t.finish(p, &[out]).unwrap();
        assert!(!done.changed());
    }

    #[test]
    fn probe_runs_locally() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path().join("req.txt");
        std::fs::write(&r, "-r base.txt\nfoo==1\n").unwrap();
        std::fs::write(tmp.path().join("base.txt"), "bar\n").unwrap();
        let t = task(
            json!({"requirements": r.to_str().unwrap(), "virtualenv": tmp.path().join("venv").to_str().unwrap()}),
        );
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(t.probe_script())
            .output()
            .unwrap();
        assert!(o.status.success());
        let obs = observe(&res(&String::from_utf8_lossy(&o.stdout))).unwrap();
        assert_eq!(obs.venv, Some(false));
        assert_eq!(
            obs.req_files.len(),
            2,
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        let p = t.plan(&[res(&String::from_utf8_lossy(&o.stdout))]).unwrap();
        assert!(p.diffs.contains(&Diff::Field {
            name: "bar".into(),
            before: "absent".into(),
            after: "present".into()
        }));
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn pip_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        testhost::run("rm -rf /tmp/pipt && mkdir -p /tmp/pipt && git -C /srv/sample-app.git show main:requirements.txt > /tmp/pipt/requirements.txt", None);
        let mk = |v: Value| build(v.as_object().unwrap()).unwrap();
        let extra = "--no-index --find-links /srv/wheels";
        let t = mk(
            json!({"requirements": "/tmp/pipt/requirements.txt", "virtualenv": "/tmp/pipt/venv", "extra_args": extra}),
        );
        let (first, second) = testhost::converge(&t);
        eprintln!("{:?}", first.diffs);
        assert!(first.changed());
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        let t = mk(
            json!({"name": "pip", "state": "latest", "virtualenv": "/tmp/pipt/venv", "extra_args": extra}),
        );
        let (first, second) = testhost::converge(&t);
        eprintln!("{:?}", first.diffs);
        assert!(
            first.changed() && second.actions.is_empty(),
            "{:?}",
            second.diffs
        );
        let t =
            mk(json!({"name": ["sqlparse"], "state": "absent", "virtualenv": "/tmp/pipt/venv"}));
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty());
        let t = mk(
            json!({"name": "sqlparse==0.6.1", "virtualenv": "/tmp/pipt/venv", "extra_args": extra}),
        );
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty());
    }

    #[test]
    fn distribution_listing_matches_pip_list_here() {
        // The controller's own python3, when it has pip: the fast listing must say what
        // `pip list` says (same names, same versions).
        let Ok(pip) = std::process::Command::new("python3").args(["-m", "pip", "list", "--format=freeze"]).output() else { return };
        if !pip.status.success() {
            return;
        }
        let o = std::process::Command::new("python3").args(["-c", LIST_DISTRIBUTIONS]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ours = observe(&super::super::testutil::ok(&String::from_utf8_lossy(&o.stdout))).unwrap().installed;
        let theirs = observe(&super::super::testutil::ok(&String::from_utf8_lossy(&pip.stdout).lines().map(|l| format!("pkg|{l}\n")).collect::<String>())).unwrap().installed;
        assert!(!theirs.is_empty());
        assert_eq!(ours, theirs);
    }
}
