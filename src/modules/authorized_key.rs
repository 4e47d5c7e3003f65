//! `authorized_key` (ansible.posix): SSH public keys in a user's `authorized_keys` file.
//!
//! One probe looks the user up in the passwd database (failing the task when there is no such
//! user), works out the file (`path`, default `<home>/.ssh/authorized_keys`) and reads its
//! directory, the file and, for a symlink, its target. The new content is computed here and
//! written atomically, 0600 and owned by the user (and the user's primary group); with
//! `manage_dir` (default) the file's directory is created 0700 and owned by the user.
//!
//! Keys are matched as Ansible does: by their base64 blob. A key that is present with another
//! type, options or comment than wanted (the key line's own, replaced by `key_options` and
//! `comment` when given) is rewritten; `state: absent` removes every line holding the blob.
//! Options are compared as Ansible does (order between names does not count); quoted
//! values (`command="a,b"`) are kept whole.
//!
//! Differences from Ansible:
//! - `key` as a URL (Ansible fetches it) fails: fetching keys from a URL is not supported, so
//!   `validate_certs` (accepted) has no effect. `key` may also be a list of keys.
//! - Lines the task is not about stay byte for byte, and a changed key is rewritten in place.
//!   Ansible rewrites every key line on a write (whitespace and options normalised, a trailing
//!   space after keys without comment, duplicate lines collapsed) and moves a changed key to
//!   the end of the file. `exclusive` removes every other line (comments and blank lines too),
//!   as Ansible does.
//! - With `state: present` the file's mode and owner (and, with `manage_dir`, its directory's)
//!   are corrected even when no key changes; Ansible only sets them when it writes the file.
//!   A symlink that is not followed (`follow: false`) is left alone then, and replaced by a
//!   regular file when the content changes (as Ansible does).
//! - `key_options: ""` means no options (Ansible then reports a change on every run).
//!   `key_options` that would put unquoted whitespace into the options fail the task, as would
//!   a key line that is not a public key (Ansible's "invalid key specified").
//! - `path` starting with `~` is expanded on the host (`~` the task user's home, `~name`
//!   that user's); other relative paths are refused.

use super::args::{self, opt_boolish, opt_string, Mode};
use super::common::{self, FileKind, FileState};
use super::lineinfile::{self, FileArgs};
use super::{sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct AuthorizedKeyModule;

const PARAMS: &[&str] = &[
    "user",
    "key",
    "path",
    "manage_dir",
    "state",
    "key_options",
    "exclusive",
    "comment",
    "follow",
    "validate_certs",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "opt_string")]
    user: Option<String>,
    #[serde(default)]
    key: Option<Value>,
    #[serde(default, deserialize_with = "opt_string")]
    path: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    manage_dir: Option<bool>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    key_options: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    exclusive: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    comment: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    follow: Option<bool>,
    /// Only matters for keys fetched from a URL, which are refused.
    #[serde(default, deserialize_with = "opt_boolish")]
    validate_certs: Option<bool>,
}

/// Key types Ansible's `parsekey` knows.
const KEY_TYPES: &[&str] = &[
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ssh-ed25519",
    "ssh-dss",
    "ssh-rsa",
    "ssh-xmss@openssh.com",
    "ssh-xmss-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
];

/// An ssh key option: `no-pty` (no value) or `command="..."` (value as written, quotes kept).
type KeyOption = (String, Option<String>);

/// One key line of an `authorized_keys` file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyLine {
    options: Vec<KeyOption>,
    key_type: String,
    blob: String,
    /// Words after the blob, joined by single spaces (Ansible compares them so).
    comment: String,
}

impl KeyLine {
    fn render(&self) -> String {
        let mut s = render_options(&self.options);
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&self.key_type);
        s.push(' ');
        s.push_str(&self.blob);
        if !self.comment.is_empty() {
            s.push(' ');
            s.push_str(&self.comment);
        }
        s
    }

    /// Ansible's match: type, blob, comment and options equal, the options as a dict of lists
    /// (the order of one name's values counts, the order between names does not).
    fn same(&self, other: &KeyLine) -> bool {
        let sorted = |o: &[KeyOption]| {
            let mut v = o.to_vec();
            v.sort_by(|a, b| a.0.cmp(&b.0)); // stable: keeps each name's values in order
            v
        };
        self.key_type == other.key_type
            && self.blob == other.blob
            && self.comment == other.comment
            && sorted(&self.options) == sorted(&other.options)
    }
}

fn render_options(o: &[KeyOption]) -> String {
    o.iter()
        .map(|(n, v)| match v {
            Some(v) => format!("{n}={v}"),
            None => n.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// sshd's options scan: up to the first whitespace outside double quotes (`\"` escapes one).
/// Returns (options, rest).
fn split_options_prefix(s: &str) -> (&str, &str) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < b.len() && (quoted || (b[i] != b' ' && b[i] != b'\t')) {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'"') {
            i += 1;
        } else if b[i] == b'"' {
            quoted = !quoted;
        }
        i += 1;
    }
    (&s[..i], &s[i..])
}

/// Split an options string at the commas outside double quotes; blank parts are dropped
/// (`a, b` is `a,b`). Fails on an unterminated quote.
fn parse_options(s: &str) -> Result<Vec<KeyOption>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'"') => {
                cur.push(c);
                cur.push(chars.next().unwrap_or('"'));
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("unterminated quote in key options '{s}'"));
    }
    parts.push(cur);
    Ok(parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
            None => (p.to_string(), None),
        })
        .collect())
}

fn is_base64(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
}

/// A key line, or None for comments, blank lines and anything else that is not a key.
fn parse_key_line(line: &str) -> Option<KeyLine> {
    let s = line.trim();
    if s.is_empty() || s.starts_with('#') {
        return None;
    }
    let first = s.split_whitespace().next()?;
    let (opts, rest) = if KEY_TYPES.contains(&first) {
        ("", s)
    } else {
        split_options_prefix(s)
    };
    let mut words = rest.split_whitespace();
    let key_type = words.next().filter(|t| KEY_TYPES.contains(t))?;
    let blob = words.next().filter(|b| is_base64(b))?;
    Some(KeyLine {
        options: parse_options(opts).ok()?,
        key_type: key_type.to_string(),
        blob: blob.to_string(),
        comment: words.collect::<Vec<_>>().join(" "),
    })
}

/// `path` as given: absolute, or `~`/`~/x` (the task user's home) or `~name/x`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPath {
    /// `<user's home>/.ssh/authorized_keys`
    Default,
    Absolute(String),
    /// (`Some(name)` for `~name`, None for `~`; the rest, empty or starting with `/`).
    Tilde(Option<String>, String),
}

#[derive(Debug)]
struct AuthorizedKeyTask {
    user: String,
    /// The `key` argument as given (for the registered result).
    key_arg: Value,
    keys: Vec<KeyLine>,
    path: KeyPath,
    path_arg: Option<String>,
    present: bool,
    manage_dir: bool,
    key_options: Option<String>,
    exclusive: bool,
    comment: Option<String>,
    follow: bool,
    validate_certs: bool,
}

module_impl!(AuthorizedKeyModule, "authorized_key");

fn arg_err(msg: impl std::fmt::Display) -> ModuleError {
    ModuleError::Args(format!("authorized_key: {msg}"))
}

fn build(args: &Map<String, Value>) -> Result<AuthorizedKeyTask, ModuleError> {
    let a: Args = args::parse("authorized_key", PARAMS, args)?;
    let user = a.user.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).ok_or_else(|| arg_err("user is required"))?;
    let key_arg = a.key.ok_or_else(|| arg_err("key is required"))?;
    let key_text = match &key_arg {
        Value::Array(items) => items.iter().map(args::scalar_string).collect::<Result<Vec<_>, _>>().map_err(arg_err)?.join("\n"),
        v => args::scalar_string(v).map_err(|e| arg_err(format!("key: {e}")))?,
    };
    let present = args::present_state("authorized_key", a.state.as_deref())?;
    let key_options = match &a.key_options {
        None => None,
        Some(o) if o.contains(['\n', '\r']) => return Err(arg_err("key_options must be one line")),
        Some(o) => {
            let parsed = parse_options(o).map_err(arg_err)?;
            let rendered = render_options(&parsed);
            if parsed.iter().any(|(n, _)| n.is_empty()) || !split_options_prefix(&rendered).1.is_empty() {
                return Err(arg_err(format!(
                    "invalid key_options '{o}': whitespace is only allowed inside double quotes"
                )));
            }
            Some(parsed)
        }
    };
    let comment = a.comment.as_deref().map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "));
    let mut keys: Vec<KeyLine> = Vec::new();
    for line in key_text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Err(arg_err(format!("fetching keys from a URL is not supported ({l}); give the keys themselves (e.g. with a lookup)")));
        }
        if l.contains("PRIVATE KEY") {
            return Err(arg_err("key looks like a private key; give the public key"));
        }
        // Ansible removes YAML's comment escapes.
        let l = l.replace("\\#", "#");
        let mut k = parse_key_line(&l).ok_or_else(|| arg_err(format!("invalid key specified: {l}")))?;
        if let Some(o) = &key_options {
            k.options = o.clone();
        }
        if let Some(c) = &comment {
            k.comment = c.clone();
        }
        // One blob once: the last line given for it wins, as in Ansible.
        match keys.iter().position(|x| x.blob == k.blob) {
            Some(i) => keys[i] = k,
            None => keys.push(k),
        }
    }
    let path = match a.path.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => KeyPath::Default,
        Some(p) if p.contains('\n') => return Err(arg_err("path must not contain a newline")),
        Some(p) if p.starts_with('/') => KeyPath::Absolute(p.to_string()),
        Some(p) if p.starts_with('~') => {
            let (name, rest) = match p[1..].find('/') {
                Some(i) => (&p[1..1 + i], &p[1 + i..]),
                None => (&p[1..], ""),
            };
            KeyPath::Tilde((!name.is_empty()).then(|| name.to_string()), rest.to_string())
        }
        Some(p) => return Err(arg_err(format!("path must be absolute (or start with ~), got '{p}'"))),
    };
    Ok(AuthorizedKeyTask {
        user,
        key_arg,
        keys,
        path,
        path_arg: a.path,
        present,
        manage_dir: a.manage_dir.unwrap_or(true),
        key_options: a.key_options,
        exclusive: a.exclusive.unwrap_or(false),
        comment: a.comment,
        follow: a.follow.unwrap_or(false),
        validate_certs: a.validate_certs.unwrap_or(true),
    })
}

/// What the probe found.
#[derive(Debug)]
struct Observed {
    /// The user has a passwd entry.
    found: bool,
    /// Name of the user's primary group (its gid when the group has no entry).
    group: String,
    keyfile: String,
    dir: String,
    dir_st: FileState,
    file_st: FileState,
    /// For a symlink: the path it resolves to and what is there.
    target: Option<(String, FileState)>,
}

fn parse_probe(r: &ProbeResult) -> Result<Observed, ModuleError> {
    if r.rc != 0 {
        return Err(ModuleError::Failed(format!("authorized_key: cannot read the keys file: {}", r.stderr.trim())));
    }
    let mut o = Observed {
        found: false,
        group: String::new(),
        keyfile: String::new(),
        dir: String::new(),
        dir_st: FileState::absent(),
        file_st: FileState::absent(),
        target: None,
    };
    // Marker lines start with '@'; a state section runs up to the next marker.
    let mut section: Option<&str> = None;
    let mut body = String::new();
    let mut real = String::new();
    let flush = |section: Option<&str>, body: &mut String, o: &mut Observed, real: &str| -> Result<(), ModuleError> {
        if let Some(s) = section {
            let st = common::parse_file_state(&ProbeResult { stdout: std::mem::take(body), stderr: String::new(), rc: 0 })?;
            match s {
                "@dirstate" => o.dir_st = st,
                "@filestate" => o.file_st = st,
                _ => o.target = Some((real.to_string(), st)),
            }
        }
        Ok(())
    };
    for line in r.stdout.lines() {
        if !line.starts_with('@') {
            body.push_str(line);
            body.push('\n');
            continue;
        }
        flush(section.take(), &mut body, &mut o, &real)?;
        if line == "@nouser" {
            return Ok(o);
        } else if let Some(e) = line.strip_prefix("@passwd|") {
            let f: Vec<&str> = e.split(':').collect();
            if f.len() < 7 {
                return Err(ModuleError::Probe(format!("passwd line '{e}'")));
            }
            o.found = true;
            o.group = f[3].to_string();
        } else if let Some(g) = line.strip_prefix("@group|") {
            o.group = g.to_string();
        } else if let Some(k) = line.strip_prefix("@keyfile|") {
            o.keyfile = k.to_string();
        } else if let Some(d) = line.strip_prefix("@dir|") {
            o.dir = d.to_string();
        } else if let Some(t) = line.strip_prefix("@real|") {
            real = t.to_string();
        } else if matches!(line, "@dirstate" | "@filestate" | "@targetstate") {
            section = Some(line);
        } else {
            return Err(ModuleError::Probe(format!("authorized_key: line '{line}'")));
        }
    }
    flush(section, &mut body, &mut o, &real)?;
    if o.found && (o.keyfile.is_empty() || o.dir.is_empty()) {
        return Err(ModuleError::Probe("authorized_key: no keys file in the probe output".into()));
    }
    Ok(o)
}

impl AuthorizedKeyTask {
    fn state_name(&self) -> &'static str {
        if self.present {
            "present"
        } else {
            "absent"
        }
    }

    /// The file's new content from its current content.
    fn edit(&self, old: &str) -> String {
        let mut lines = lineinfile::split_lines(old);
        let parsed: Vec<Option<KeyLine>> = lines.iter().map(|l| parse_key_line(l)).collect();
        let has_blob = |i: usize, blob: &str| parsed[i].as_ref().is_some_and(|p| p.blob == blob);
        let mut keep = vec![true; lines.len()];
        let mut append = Vec::new();
        if self.present {
            for k in &self.keys {
                let at: Vec<usize> = (0..lines.len()).filter(|&i| has_blob(i, &k.blob)).collect();
                let Some(&first) = at.first() else {
                    append.push(k.render());
                    continue;
                };
                if at.iter().all(|&i| parsed[i].as_ref().is_some_and(|p| p.same(k))) {
                    continue;
                }
                let l = &lines[first];
                let ending = l[l.trim_end_matches(['\r', '\n']).len()..].to_string();
                lines[first] = k.render() + &ending;
                for &i in &at[1..] {
                    keep[i] = false;
                }
            }
            if self.exclusive {
                for (i, kp) in keep.iter_mut().enumerate() {
                    if !self.keys.iter().any(|k| has_blob(i, &k.blob)) {
                        *kp = false;
                    }
                }
            }
        } else {
            for (i, kp) in keep.iter_mut().enumerate() {
                if self.keys.iter().any(|k| has_blob(i, &k.blob)) {
                    *kp = false;
                }
            }
        }
        let mut out: String = lines.into_iter().zip(keep).filter(|(_, k)| *k).map(|(l, _)| l).collect();
        if !append.is_empty() && !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        for a in append {
            out.push_str(&a);
            out.push('\n');
        }
        out
    }
}

impl ModuleTask for AuthorizedKeyTask {
    fn probes(&self) -> Vec<Probe> {
        let mut s = format!(
            "u={}\n\
             if ! e=$(getent passwd -- \"$u\"); then echo '@nouser'; exit 0; fi\n\
             printf '@passwd|%s\\n' \"$e\"\n\
             g=${{e#*:*:*:}}; g=${{g%%:*}}\n\
             if ge=$(getent group -- \"$g\"); then printf '@group|%s\\n' \"${{ge%%:*}}\"; fi\n",
            sh_quote(&self.user)
        );
        match &self.path {
            KeyPath::Default => s.push_str("h=${e#*:*:*:*:*:}; h=${h%%:*}\nk=\"$h/.ssh/authorized_keys\"\n"),
            KeyPath::Absolute(p) => s.push_str(&format!("k={}\n", sh_quote(p))),
            KeyPath::Tilde(None, rest) => s.push_str(&format!("k=\"$HOME\"{}\n", sh_quote(rest))),
            KeyPath::Tilde(Some(n), rest) => s.push_str(&format!(
                "if ! th=$(getent passwd -- {q}); then echo \"no such user: \"{q} >&2; exit 1; fi\n\
                 th=${{th#*:*:*:*:*:}}; th=${{th%%:*}}\nk=\"$th\"{}\n",
                sh_quote(rest),
                q = sh_quote(n)
            )),
        }
        s.push_str(&format!(
            "d=$(dirname -- \"$k\")\n\
             printf '@keyfile|%s\\n@dir|%s\\n' \"$k\" \"$d\"\n\
             if [ -e \"$k\" ] && [ ! -r \"$k\" ]; then echo \"cannot read $k\" >&2; exit 1; fi\n\
             echo '@dirstate'\n\
             (\np=$(readlink -f -- \"$d\" 2>/dev/null) || p=$d; [ -n \"$p\" ] || p=$d\n{dir}) || exit 1\n\
             echo '@filestate'\n\
             (\np=$k\n{file}) || exit 1\n\
             if [ -L \"$k\" ]; then\n\
             r=$(readlink -f -- \"$k\" 2>/dev/null) || r=\n\
             printf '@real|%s\\n' \"$r\"\n\
             echo '@targetstate'\n\
             (\np=$r\n{file}) || exit 1\n\
             fi\n",
            dir = common::stat_lines(false),
            file = common::stat_lines(true),
        ));
        let mut probe = Probe::new(s, Scope::Host);
        if let KeyPath::Absolute(p) = &self.path {
            if let Some(d) = std::path::Path::new(p).parent() {
                probe = probe.with_stat(p.clone()).with_stat(d.display().to_string());
            }
        }
        vec![probe]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes.first().ok_or_else(|| ModuleError::Probe("authorized_key: missing probe".into()))?;
        let o = parse_probe(r)?;
        if !o.found {
            return Err(ModuleError::Failed(format!(
                "authorized_key: failed to look up user '{}': no such user in the passwd database",
                self.user
            )));
        }
        let mut plan = Plan::ok();
        for (k, v) in [
            ("user", json!(self.user)),
            ("key", self.key_arg.clone()),
            ("key_options", json!(self.key_options)),
            ("keyfile", json!(o.keyfile)),
            ("path", json!(self.path_arg)),
            ("exclusive", json!(self.exclusive)),
            ("manage_dir", json!(self.manage_dir)),
            ("state", json!(self.state_name())),
            ("comment", json!(self.comment)),
            ("follow", json!(self.follow)),
            ("validate_certs", json!(self.validate_certs)),
        ] {
            plan.result.insert(k.into(), v);
        }

        // Where the content is read from, and the path written (and whose attributes count).
        let is_link = matches!(o.file_st.kind, FileKind::Link { .. });
        let (content_st, write_path) = match (&o.target, is_link) {
            (Some((real, st)), true) if self.follow && !real.is_empty() => (st.clone(), real.clone()),
            (Some((_, st)), true) => (st.clone(), o.keyfile.clone()),
            _ => (o.file_st.clone(), o.keyfile.clone()),
        };
        let old = lineinfile::current_text("authorized_key", &o.keyfile, &content_st)?;
        let new = self.edit(old.as_deref().unwrap_or(""));
        let write = match &old {
            None => !new.is_empty(),
            Some(old) => *old != new,
        };
        if !write && !self.present {
            return Ok(plan);
        }

        let owner = self.user.clone();
        let group = o.group.clone();
        let dir = o.dir.clone();
        if o.dir_st.exists() && o.dir_st.kind != FileKind::Directory {
            return Err(ModuleError::Failed(format!("authorized_key: {dir} exists and is not a directory")));
        }
        if !o.dir_st.exists() && write {
            let (summary, script) = if self.manage_dir {
                (
                    format!("create directory {dir}"),
                    format!("mkdir -m 0700 -- {d}\nchown {} {d}\nchgrp {} {d}", sh_quote(&owner), sh_quote(&group), d = sh_quote(&dir)),
                )
            } else {
                (format!("create directory {dir}"), format!("mkdir -p -- {}", sh_quote(&dir)))
            };
            plan.actions.push(Action::new(summary, format!("set -e\n{script}"), Scope::path(&dir)));
        } else if o.dir_st.exists() && self.manage_dir {
            let (diffs, action) = common::attributes_plan(&dir, &o.dir_st, Some(&owner), Some(&group), Some(&Mode::Octal(0o700)), false);
            // Told apart from the file's own owner/group/mode.
            plan.diffs.extend(diffs.into_iter().map(|d| match d {
                Diff::Field { name, before, after } => Diff::Field { name: format!("{name} of {dir}"), before, after },
                d => d,
            }));
            plan.actions.extend(action);
        }

        let attrs = FileArgs { owner: Some(owner), group: Some(group), mode: Some(Mode::Octal(0o600)), ..Default::default() };
        // A symlink not followed is replaced when written, else left as it is.
        if write || !is_link || self.follow {
            let (diffs, actions) = lineinfile::edit_plan(&o.keyfile, &write_path, &content_st, write.then_some(new.as_str()), &attrs, false);
            plan.diffs.extend(diffs);
            plan.actions.extend(actions);
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_sh_syntax, ok, run_probe};
    use super::*;
    use base64::Engine as _;

    pub(super) const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILu3Cb0kKTpdMDtOweT3q5s7fb2p7IRIBfm/AFMOJxt4 one@example";
    const B1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILu3Cb0kKTpdMDtOweT3q5s7fb2p7IRIBfm/AFMOJxt4";
    pub(super) const K2: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBO127FqOC029hbxktD07YVMu/lRC/8BjqCRYBvA5OlxU59bBHZgYTvrvVvoKmVi3pn8pjG98kcq6mP3hZVyRLMg= two@example";
    pub(super) const K3: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJl3tsYZnhgEOMGvqRaedrYKAxGerDuCS3dw2CfMzRZ3 three";

    fn task(v: Value) -> AuthorizedKeyTask {
        build(v.as_object().unwrap()).unwrap()
    }

    fn build_err(v: Value) -> String {
        build(v.as_object().unwrap()).unwrap_err().to_string()
    }

    fn state(kind_mode_owner: &str, content: Option<&str>) -> String {
        match content {
            None => format!("{kind_mode_owner}\n"),
            Some(c) => format!(
                "{kind_mode_owner}\ncontent\n{}\n",
                base64::engine::general_purpose::STANDARD.encode(c)
            ),
        }
    }

    /// Probe output for user `ak` (uid/gid 1001) with its `.ssh` in place (0700, ak) and
    /// `authorized_keys` holding `content` (0600, ak), or absent.
    fn probe_out(content: Option<&str>) -> ProbeResult {
        probe_out_with("directory|ak|ak|1001|1001|700|4096|1", content.map(|c| ("file|ak|ak|1001|1001|600|1|1", c)))
    }

    fn probe_out_with(dir: &str, file: Option<(&str, &str)>) -> ProbeResult {
        let file = match file {
            Some((head, c)) => state(head, Some(c)),
            None => "absent\n".into(),
        };
        let dir = if dir == "absent" { "absent\n".into() } else { state(dir, None) };
        ok(&format!(
            "@passwd|ak:x:1001:1001::/home/ak:/bin/sh\n@group|ak\n@keyfile|/home/ak/.ssh/authorized_keys\n@dir|/home/ak/.ssh\n@dirstate\n{dir}@filestate\n{file}"
        ))
    }

    fn new_content(p: &Plan) -> String {
        match p.diffs.iter().find(|d| matches!(d, Diff::Text { .. })) {
            Some(Diff::Text { after: Some(a), .. }) => a.clone(),
            other => panic!("no text diff: {other:?}"),
        }
    }

    #[test]
    fn parses_key_lines_with_quoted_options() {
        let k = parse_key_line(&format!("command=\"a,b\",no-pty {K1}")).unwrap();
        assert_eq!(k.options, vec![("command".to_string(), Some("\"a,b\"".to_string())), ("no-pty".to_string(), None)]);
        assert_eq!((k.key_type.as_str(), k.blob.as_str(), k.comment.as_str()), ("ssh-ed25519", B1, "one@example"));
        // spaces and escaped quotes inside quotes; a comment of several words
        let k = parse_key_line(&format!("from=\"10.0.0.1\",command=\"echo \\\"hi, there\\\"\" {}  my   key\n", &K1[..K1.len() - 12])).unwrap();
        assert_eq!(k.options[1], ("command".into(), Some("\"echo \\\"hi, there\\\"\"".into())));
        assert_eq!(k.comment, "my key");
        assert_eq!(k.render(), format!("from=\"10.0.0.1\",command=\"echo \\\"hi, there\\\"\" ssh-ed25519 {B1} my key"));
        // no comment; not keys
        assert_eq!(parse_key_line(&format!("ssh-ed25519 {B1}")).unwrap().comment, "");
        for l in ["", "  ", "# ssh-ed25519 AAAA", "#ssh-ed25519 AAAA x", "garbage", "ssh-ed25519", "no-pty ssh-foo AAAA", "ssh-ed25519 not!base64"] {
            assert_eq!(parse_key_line(l), None, "{l}");
        }
        // options compare as a dict: order between names does not count
        let a = parse_key_line(&format!("no-pty,from=\"x\" {K1}")).unwrap();
        let b = parse_key_line(&format!("from=\"x\",no-pty {K1}")).unwrap();
        assert!(a.same(&b));
        assert!(!a.same(&parse_key_line(K1).unwrap()));
        assert_eq!(parse_options("a, b ,c=\"x, y\"").unwrap().len(), 3);
        assert!(parse_options("command=\"open").is_err());
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(build_err(json!({"user": "ak", "key": "https://github.com/ak.keys"})).contains("fetching keys from a URL is not supported"));
        assert!(build_err(json!({"user": "ak", "key": "ssh-ed25519"})).contains("invalid key specified"));
        assert!(build_err(json!({"user": "ak", "key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n"})).contains("private key"));
        assert!(build_err(json!({"key": K1})).contains("user is required"));
        assert!(build_err(json!({"user": "ak"})).contains("key is required"));
        assert!(build_err(json!({"user": "ak", "key": K1, "state": "gone"})).contains("present or absent"));
        assert!(build_err(json!({"user": "ak", "key": K1, "key_options": "command=echo hi"})).contains("invalid key_options"));
        assert!(build_err(json!({"user": "ak", "key": K1, "key_options": "no-pty\nssh-ed25519 AAAA"})).contains("one line"));
        assert!(build_err(json!({"user": "ak", "key": K1, "path": "keys"})).contains("must be absolute"));
        assert!(build_err(json!({"user": "ak", "key": K1, "bogus": 1})).contains("unsupported parameter"));
        // validate_certs is harmless (URLs are refused); a list of keys is fine
        let t = task(json!({"user": "ak", "key": [K1, K2], "validate_certs": false}));
        assert_eq!(t.keys.len(), 2);
        assert_eq!(task(json!({"user": "ak", "key": K1, "path": "~ak/keys"})).path, KeyPath::Tilde(Some("ak".into()), "/keys".into()));
        assert_eq!(task(json!({"user": "ak", "key": K1, "path": "~"})).path, KeyPath::Tilde(None, "".into()));
    }

    #[test]
    fn adds_keys_to_a_new_file_and_creates_the_directory() {
        let t = task(json!({"user": "ak", "key": format!("{K1}\n\n# a comment\n{K2}\n"), "key_options": "no-pty,command=\"a,b\""}));
        let p = t.plan(&[probe_out_with("absent", None)]).unwrap();
        assert_eq!(p.actions.len(), 2, "{:?}", p.actions);
        assert_eq!(p.actions[0].script, "set -e\nmkdir -m 0700 -- /home/ak/.ssh\nchown ak /home/ak/.ssh\nchgrp ak /home/ak/.ssh");
        let w = &p.actions[1];
        assert!(w.script.contains("chown ak") && w.script.contains("chgrp ak") && w.script.contains("chmod 0600"), "{}", w.script);
        assert!(w.script.contains("mv -f \"$tmp\" /home/ak/.ssh/authorized_keys"));
        let want = format!("no-pty,command=\"a,b\" {K1}\nno-pty,command=\"a,b\" {K2}\n");
        assert_eq!(String::from_utf8(w.stdin.clone().unwrap()).unwrap(), want);
        assert_eq!(p.diffs, vec![Diff::Text { path: "/home/ak/.ssh/authorized_keys".into(), before: None, after: Some(want.clone()) }]);
        for a in &p.actions {
            assert_sh_syntax(&a.script);
        }
        assert_eq!(p.result["keyfile"], json!("/home/ak/.ssh/authorized_keys"));
        assert_eq!(p.result["key_options"], json!("no-pty,command=\"a,b\""));
        assert_eq!((p.result["exclusive"].clone(), p.result["manage_dir"].clone(), p.result["state"].clone()), (json!(false), json!(true), json!("present")));
        // the second run sees the file written: nothing to do
        assert!(t.plan(&[probe_out(Some(&want))]).unwrap().actions.is_empty());
        // without manage_dir the directory is made as a plain mkdir -p
        let t = task(json!({"user": "ak", "key": K1, "manage_dir": "no"}));
        let p = t.plan(&[probe_out_with("absent", None)]).unwrap();
        assert_eq!(p.actions[0].script, "set -e\nmkdir -p -- /home/ak/.ssh");
    }

    #[test]
    fn keeps_other_lines_and_appends() {
        let t = task(json!({"user": "ak", "key": K1}));
        let old = format!("# managed by hand\n\n{K2}\n{K3}"); // no final newline
        let p = t.plan(&[probe_out(Some(&old))]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_eq!(new_content(&p), format!("# managed by hand\n\n{K2}\n{K3}\n{K1}\n"));
        // already present (with other spacing in the comment-free part): no change
        let old = format!("{K2}\n{K1}\n");
        assert!(t.plan(&[probe_out(Some(&old))]).unwrap().actions.is_empty());
        let spaced = format!("{K2}\nssh-ed25519   {B1}   one@example\n");
        assert!(t.plan(&[probe_out(Some(&spaced))]).unwrap().actions.is_empty());
    }

    #[test]
    fn rewrites_a_key_whose_options_or_comment_differ_in_place() {
        let old = format!("{K2}\nno-pty {K1}\n{K3}\n");
        // the key line without options: the options go (Ansible's rule)
        let t = task(json!({"user": "ak", "key": K1}));
        assert_eq!(new_content(&t.plan(&[probe_out(Some(&old))]).unwrap()), format!("{K2}\n{K1}\n{K3}\n"));
        // other options
        let t = task(json!({"user": "ak", "key": K1, "key_options": "from=\"10.0.0.0/8\""}));
        let p = t.plan(&[probe_out(Some(&old))]).unwrap();
        assert_eq!(new_content(&p), format!("{K2}\nfrom=\"10.0.0.0/8\" {K1}\n{K3}\n"));
        // the same options: nothing
        let t = task(json!({"user": "ak", "key": K1, "key_options": "no-pty"}));
        assert!(t.plan(&[probe_out(Some(&old))]).unwrap().actions.is_empty());
        // comment replaced
        let t = task(json!({"user": "ak", "key": K1, "key_options": "no-pty", "comment": "new  comment"}));
        let p = t.plan(&[probe_out(Some(&old))]).unwrap();
        assert_eq!(new_content(&p), format!("{K2}\nno-pty ssh-ed25519 {B1} new comment\n{K3}\n"));
        assert!(t.plan(&[probe_out(Some(&new_content(&p)))]).unwrap().actions.is_empty());
        // duplicates of the key collapse into the rewritten line
        let t = task(json!({"user": "ak", "key": K1}));
        let dup = format!("no-pty {K1}\n{K2}\n{K1}\n");
        assert_eq!(new_content(&t.plan(&[probe_out(Some(&dup))]).unwrap()), format!("{K1}\n{K2}\n"));
    }

    #[test]
    fn absent_removes_every_line_of_the_key() {
        let t = task(json!({"user": "ak", "key": K1, "state": "absent"}));
        let old = format!("# keep\n{K2}\ncommand=\"x\" {K1}\n{K1}\n");
        let p = t.plan(&[probe_out(Some(&old))]).unwrap();
        assert_eq!(new_content(&p), format!("# keep\n{K2}\n"));
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.result["state"], json!("absent"));
        // not there, or no file: nothing (the directory is not created either)
        assert!(t.plan(&[probe_out(Some(&format!("{K2}\n")))]).unwrap().actions.is_empty());
        assert!(t.plan(&[probe_out_with("absent", None)]).unwrap().actions.is_empty());
    }

    #[test]
    fn exclusive_keeps_only_the_given_keys() {
        let t = task(json!({"user": "ak", "key": format!("{K1}\n{K3}"), "exclusive": true}));
        let old = format!("# hand-made\n{K2}\n\n{K3}\n");
        let p = t.plan(&[probe_out(Some(&old))]).unwrap();
        assert_eq!(new_content(&p), format!("{K3}\n{K1}\n"));
        assert!(t.plan(&[probe_out(Some(&new_content(&p)))]).unwrap().actions.is_empty());
        // exclusive with absent is plain absent
        let t = task(json!({"user": "ak", "key": K3, "exclusive": true, "state": "absent"}));
        assert_eq!(new_content(&t.plan(&[probe_out(Some(&old))]).unwrap()), format!("# hand-made\n{K2}\n\n"));
    }

    #[test]
    fn corrects_modes_and_owners() {
        let t = task(json!({"user": "ak", "key": K1}));
        let p = t
            .plan(&[probe_out_with("directory|root|root|0|0|755|4096|1", Some(("file|root|root|0|0|644|1|1", &format!("{K1}\n"))))])
            .unwrap();
        let scripts: Vec<&str> = p.actions.iter().map(|a| a.script.as_str()).collect();
        assert_eq!(
            scripts,
            ["chown ak /home/ak/.ssh && chgrp ak /home/ak/.ssh && chmod 0700 /home/ak/.ssh", "chown ak /home/ak/.ssh/authorized_keys && chgrp ak /home/ak/.ssh/authorized_keys && chmod 0600 /home/ak/.ssh/authorized_keys"]
        );
        assert_eq!(p.diffs.len(), 6);
        assert_eq!(p.diffs[2], Diff::Field { name: "mode of /home/ak/.ssh".into(), before: "0755".into(), after: "0700".into() });
        assert_eq!(p.diffs[5], Diff::Field { name: "mode".into(), before: "0644".into(), after: "0600".into() });
        // without manage_dir the directory is not ours
        let t = task(json!({"user": "ak", "key": K1, "manage_dir": false}));
        let p = t.plan(&[probe_out_with("directory|root|root|0|0|755|4096|1", Some(("file|ak|ak|1001|1001|600|1|1", &format!("{K1}\n"))))]).unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        // a directory where the directory should be
        let p = t.plan(&[probe_out_with("file|root|root|0|0|644|1|1", None)]);
        assert!(p.unwrap_err().to_string().contains("is not a directory"));
    }

    #[test]
    fn missing_user_fails() {
        let t = task(json!({"user": "nobody-here", "key": K1}));
        let e = t.plan(&[ok("@nouser\n")]).unwrap_err().to_string();
        assert!(e.contains("failed to look up user 'nobody-here'"), "{e}");
    }

    #[test]
    fn symlinks_are_replaced_or_followed() {
        let link = |follow: bool, content: &str| {
            let t = task(json!({"user": "ak", "key": K1, "follow": follow}));
            let out = format!(
                "@passwd|ak:x:1001:1001::/home/ak:/bin/sh\n@group|ak\n@keyfile|/home/ak/.ssh/authorized_keys\n@dir|/home/ak/.ssh\n@dirstate\ndirectory|ak|ak|1001|1001|700|4096|1\n@filestate\nlink|root|root|0|0|777|10|1\ntarget|/srv/keys/ak\n@real|/srv/keys/ak\n@targetstate\n{}",
                state("file|root|root|0|0|644|1|1", Some(content))
            );
            t.plan(&[ok(&out)]).unwrap()
        };
        let p = link(true, "");
        assert!(p.actions.last().unwrap().script.contains("mv -f \"$tmp\" /srv/keys/ak"));
        assert_eq!(new_content(&p), format!("{K1}\n"));
        let p = link(false, "");
        assert!(p.actions.last().unwrap().script.contains("mv -f \"$tmp\" /home/ak/.ssh/authorized_keys"));
        // content already right: a link not followed is left be, a followed one gets its mode
        assert!(link(false, &format!("{K1}\n")).actions.is_empty());
        assert_eq!(link(true, &format!("{K1}\n")).actions[0].script, "chown ak /srv/keys/ak && chgrp ak /srv/keys/ak && chmod 0600 /srv/keys/ak");
    }

    fn me() -> (String, String) {
        let id = |a: &str| String::from_utf8(std::process::Command::new("id").arg(a).output().unwrap().stdout).unwrap().trim().to_string();
        (id("-un"), id("-gn"))
    }

    #[test]
    fn probe_and_actions_run_here() {
        let (user, group) = me();
        let d = tempfile::tempdir().unwrap();
        let keys = d.path().join("ssh/authorized_keys");
        let t = task(json!({"user": user, "key": format!("{K1}\n{K2}"), "key_options": "no-pty,command=\"a,b\"", "path": keys.display().to_string()}));
        let p = super::super::testutil::apply(&t);
        assert_eq!(p.actions.len(), 2, "{:?}", p.actions);
        assert_eq!(std::fs::read_to_string(&keys).unwrap(), format!("no-pty,command=\"a,b\" {K1}\nno-pty,command=\"a,b\" {K2}\n"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o7777, 0o600);
        assert_eq!(std::fs::metadata(keys.parent().unwrap()).unwrap().permissions().mode() & 0o7777, 0o700);
        let again = t.plan(&super::super::testutil::local_probes(&t)).unwrap();
        assert!(again.actions.is_empty(), "{:?}", again.diffs);
        // a symlink, followed: the target is written, the link stays
        let target = d.path().join("target");
        std::fs::write(&target, format!("# hand-made\n{K3}\n")).unwrap();
        let link = d.path().join("ssh/linked");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let t = task(json!({"user": user, "key": K1, "path": link.display().to_string(), "follow": true}));
        super::super::testutil::apply(&t);
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), format!("# hand-made\n{K3}\n{K1}\n"));
        assert!(t.plan(&super::super::testutil::local_probes(&t)).unwrap().actions.is_empty());
        // `~` is the running user's home; the probe reports the group by name
        let t = task(json!({"user": user, "key": K1, "path": "~/.provision-ak-none/keys", "state": "absent"}));
        let r = run_probe(&t.probes()[0].script);
        let o = parse_probe(&r).unwrap();
        assert_eq!(o.keyfile, format!("{}/.provision-ak-none/keys", std::env::var("HOME").unwrap()));
        assert_eq!(o.group, group);
        assert!(t.plan(&[r]).unwrap().actions.is_empty());
        // no such user
        let t = task(json!({"user": "provision-no-such-user", "key": K1}));
        assert!(t.plan(&[run_probe(&t.probes()[0].script)]).unwrap_err().to_string().contains("failed to look up user"));
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::tests::{K1, K2, K3};
    use super::*;

    fn task(v: Value) -> AuthorizedKeyTask {
        build(v.as_object().unwrap()).unwrap()
    }

    #[test]
    #[ignore]
    fn authorized_key_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        let o = testhost::run("id ak_t >/dev/null 2>&1 || useradd -m -s /bin/sh ak_t; rm -rf /home/ak_t/.ssh", None);
        assert_eq!(o.exit_code, 0, "{}", o.stderr_str());
        // two keys with options: .ssh and the file are created, owned by the user
        let t = task(json!({"user": "ak_t", "key": format!("{K1}\n{K2}\n"), "key_options": "no-pty,command=\"echo a,b\""}));
        let (first, second) = testhost::converge(&t);
        assert!(first.changed());
        assert!(second.actions.is_empty(), "{:?}", second.diffs);
        assert_eq!(first.result["keyfile"], json!("/home/ak_t/.ssh/authorized_keys"));
        let o = testhost::run("stat -c '%U:%G %a' /home/ak_t/.ssh /home/ak_t/.ssh/authorized_keys; cat /home/ak_t/.ssh/authorized_keys", None);
        assert_eq!(
            o.stdout_str(),
            format!("ak_t:ak_t 700\nak_t:ak_t 600\nno-pty,command=\"echo a,b\" {K1}\nno-pty,command=\"echo a,b\" {K2}\n")
        );
        // sshd reads the file as the user would have it
        let o = testhost::run("ssh-keygen -l -f /home/ak_t/.ssh/authorized_keys | wc -l", None);
        assert_eq!(o.stdout_str().trim(), "2", "{}", o.stderr_str());
        // a hand-made line and a wrong mode; then exclusive keeps K2 only
        testhost::run(&format!("printf '# by hand\\n{K3}\\n' >> /home/ak_t/.ssh/authorized_keys; chmod 644 /home/ak_t/.ssh/authorized_keys"), None);
        let t = task(json!({"user": "ak_t", "key": K2, "exclusive": true}));
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty(), "{:?}", second.diffs);
        let o = testhost::run("stat -c '%U:%G %a' /home/ak_t/.ssh/authorized_keys; cat /home/ak_t/.ssh/authorized_keys", None);
        assert_eq!(o.stdout_str(), format!("ak_t:ak_t 600\n{K2}\n"));
        // absent
        let t = task(json!({"user": "ak_t", "key": K2, "state": "absent"}));
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty());
        assert_eq!(testhost::run("cat /home/ak_t/.ssh/authorized_keys", None).stdout_str(), "");
        // sshd takes the file: the testbed's key logs in as the user, its forced command runs
        let testbed_key = "/var/cache/provision-testbed/id_ed25519";
        let public = std::fs::read_to_string(format!("{testbed_key}.pub")).unwrap();
        testhost::run("usermod -p '*' ak_t", None); // not locked, no password
        let t = task(json!({"user": "ak_t", "key": public, "key_options": "command=\"echo forced, ok\",no-pty", "exclusive": true}));
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty());
        let known = std::env::var("MS_KNOWN_HOSTS").unwrap_or_else(|_| "/tmp/ms/known_hosts".into());
        let o = std::process::Command::new("ssh")
            .args(["-i", testbed_key, "-o", &format!("UserKnownHostsFile={known}"), "-o", "BatchMode=yes", "-p"])
            .arg(testhost::port().unwrap())
            .args(["ak_t@127.0.0.1", "true"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), "forced, ok\n", "{}", String::from_utf8_lossy(&o.stderr));
        // a user that does not exist
        let t = task(json!({"user": "ak_nobody", "key": K1}));
        let r = testhost::run(&t.probes()[0].script, None);
        let e = t
            .plan(&[ProbeResult { stdout: r.stdout_str(), stderr: r.stderr_str(), rc: r.exit_code }])
            .unwrap_err();
        assert!(e.to_string().contains("failed to look up user 'ak_nobody'"), "{e}");
    }
}
