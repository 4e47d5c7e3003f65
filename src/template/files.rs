//! Template files, as the `template` module and the `template` lookup render them (Ansible's
//! `template` action and lookup):
//! - options: `trim_blocks` (on), `lstrip_blocks` (off), `keep_trailing_newline` (off),
//!   `newline_sequence` (`\n`), the block/variable/comment delimiters and the line
//!   statement/comment prefixes, from the task's arguments and then from a `#jinja2:` first
//!   line (`#jinja2: lstrip_blocks: True, trim_blocks: False`), which is dropped;
//! - newlines: every newline of the template's own text (and of the templates it includes)
//!   becomes `newline_sequence`, as Jinja's lexer does; what expressions output is left as is;
//!   the trailing newlines of the source that rendering dropped are added back (Ansible's
//!   `preserve_trailing_newlines`), but not those of included templates;
//! - `{% include %}`, `{% import %}`, `{% from %}` and `{% extends %}` find their templates on
//!   Ansible's search path ([`module_search_path`], [`lookup_search_path`]);
//! - the variables Ansible adds ([`template_vars`]).

use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind};
use serde_json::{json, Value as Json};

use super::Vars;

/// The first line that sets a template's options.
pub const HEADER: &str = "#jinja2:";

/// How a template file is read: Ansible's `TemplateOverrides`, with its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateOptions {
    pub block_start_string: String,
    pub block_end_string: String,
    pub variable_start_string: String,
    pub variable_end_string: String,
    pub comment_start_string: String,
    pub comment_end_string: String,
    pub line_statement_prefix: Option<String>,
    pub line_comment_prefix: Option<String>,
    pub trim_blocks: bool,
    pub lstrip_blocks: bool,
    /// `\n`, `\r\n` or `\r`.
    pub newline_sequence: String,
    pub keep_trailing_newline: bool,
}

impl Default for TemplateOptions {
    fn default() -> Self {
        TemplateOptions {
            block_start_string: "{%".into(),
            block_end_string: "%}".into(),
            variable_start_string: "{{".into(),
            variable_end_string: "}}".into(),
            comment_start_string: "{#".into(),
            comment_end_string: "#}".into(),
            line_statement_prefix: None,
            line_comment_prefix: None,
            trim_blocks: true,
            lstrip_blocks: false,
            newline_sequence: "\n".into(),
            keep_trailing_newline: false,
        }
    }
}

/// A value of an option: a boolean, a string or none (Python's `True`, `'x'`, `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    Bool(bool),
    Str(String),
    None,
}

/// `\n`, `\r\n`, `\r`, also written with backslashes (`"\\r\\n"`, as YAML's single quotes
/// leave it): the sequence, or `None` for anything else.
pub fn newline_sequence(s: &str) -> Option<&'static str> {
    match s {
        "\n" | "\\n" => Some("\n"),
        "\r\n" | "\\r\\n" => Some("\r\n"),
        "\r" | "\\r" => Some("\r"),
        _ => None,
    }
}

impl TemplateOptions {
    /// Set option `key` (an argument of the `template` module, or a `#jinja2:` pair).
    pub fn set(&mut self, key: &str, value: OptionValue) -> Result<(), String> {
        let text = |v: OptionValue| match v {
            OptionValue::Str(s) if !s.is_empty() => Ok(s),
            other => Err(format!("{key} must be a non-empty string, got {other:?}")),
        };
        match key {
            "block_start_string" => self.block_start_string = text(value)?,
            "block_end_string" => self.block_end_string = text(value)?,
            "variable_start_string" => self.variable_start_string = text(value)?,
            "variable_end_string" => self.variable_end_string = text(value)?,
            "comment_start_string" => self.comment_start_string = text(value)?,
            "comment_end_string" => self.comment_end_string = text(value)?,
            "line_statement_prefix" | "line_comment_prefix" => {
                let v = match value {
                    OptionValue::None => None,
                    v => Some(text(v)?),
                };
                if key == "line_statement_prefix" {
                    self.line_statement_prefix = v;
                } else {
                    self.line_comment_prefix = v;
                }
            }
            "trim_blocks" | "lstrip_blocks" | "keep_trailing_newline" => {
                let OptionValue::Bool(b) = value else {
                    return Err(format!("{key} must be a boolean, got {value:?}"));
                };
                match key {
                    "trim_blocks" => self.trim_blocks = b,
                    "lstrip_blocks" => self.lstrip_blocks = b,
                    _ => self.keep_trailing_newline = b,
                }
            }
            "newline_sequence" => {
                let s = match &value {
                    OptionValue::Str(s) => newline_sequence(s),
                    _ => None,
                };
                self.newline_sequence = s.ok_or_else(|| format!("newline_sequence must be one of \\n, \\r or \\r\\n, got {value:?}"))?.into();
            }
            _ => return Err(format!("invalid {HEADER:?} override key {key:?}")),
        }
        Ok(())
    }

    /// `text` without its `#jinja2:` first line, whose options are applied (they win over
    /// those already set, as in Ansible). Text without the header is returned as is.
    pub fn apply_header<'a>(&mut self, text: &'a str) -> Result<&'a str, String> {
        let Some(rest) = text.strip_prefix(HEADER) else {
            return Ok(text);
        };
        let eol = rest.find('\n').ok_or_else(|| format!("missing newline after {HEADER:?} override"))?;
        let (line, body) = (&rest[..eol], &rest[eol + 1..]);
        let line = line.strip_suffix('\r').unwrap_or(line);
        for pair in line.split(',') {
            if pair.trim().is_empty() {
                return Err(format!("empty {HEADER:?} override pair not allowed"));
            }
            let (key, value) = pair
                .split_once(':')
                .ok_or_else(|| format!("missing key-value separator ':' in {HEADER:?} override pair {:?}", pair.trim()))?;
            let value = python_literal(value.trim()).ok_or_else(|| format!("{HEADER:?} override {}: not a Python literal: {}", key.trim(), value.trim()))?;
            self.set(key.trim(), value)?;
        }
        Ok(body)
    }

    /// Are the delimiters Jinja's own (no line statements or comments either)?
    fn default_syntax(&self) -> bool {
        let d = TemplateOptions::default();
        self.block_start_string == d.block_start_string
            && self.block_end_string == d.block_end_string
            && self.variable_start_string == d.variable_start_string
            && self.variable_end_string == d.variable_end_string
            && self.comment_start_string == d.comment_start_string
            && self.comment_end_string == d.comment_end_string
            && self.line_statement_prefix.is_none()
            && self.line_comment_prefix.is_none()
    }

    fn syntax(&self) -> Result<SyntaxConfig, Error> {
        if self.block_start_string == self.variable_start_string
            || self.variable_start_string == self.comment_start_string
            || self.block_start_string == self.comment_start_string
        {
            return Err(Error::new(ErrorKind::SyntaxError, "block, variable and comment start strings must be different"));
        }
        let mut b = SyntaxConfig::builder();
        b.block_delimiters(self.block_start_string.clone(), self.block_end_string.clone())
            .variable_delimiters(self.variable_start_string.clone(), self.variable_end_string.clone())
            .comment_delimiters(self.comment_start_string.clone(), self.comment_end_string.clone())
            .trim_blocks(self.trim_blocks)
            .lstrip_blocks(self.lstrip_blocks)
            .keep_trailing_newline(self.keep_trailing_newline);
        if let Some(p) = &self.line_statement_prefix {
            b.line_statement_prefix(p.clone());
        }
        if let Some(p) = &self.line_comment_prefix {
            b.line_comment_prefix(p.clone());
        }
        b.build()
    }
}

/// A `#jinja2:` value as Python's `ast.literal_eval` reads the few kinds options take:
/// `True`/`False`, `None`, and a quoted string with Python's escapes.
fn python_literal(s: &str) -> Option<OptionValue> {
    match s {
        "True" => return Some(OptionValue::Bool(true)),
        "False" => return Some(OptionValue::Bool(false)),
        "None" => return Some(OptionValue::None),
        _ => {}
    }
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = s.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == q {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '0' => out.push('\0'),
            c @ ('\\' | '\'' | '"') => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    Some(OptionValue::Str(out))
}

/// A template file ready to render: the environment for its options and search path, and
/// its source as that environment compiles it.
pub(crate) struct FileTemplate {
    pub env: Environment<'static>,
    pub source: String,
    newline: String,
}

impl FileTemplate {
    /// `text` (a whole template file) with `opts` (then its `#jinja2:` header) in an
    /// environment like `base` whose includes and imports are looked up in `search`.
    pub fn new(base: &Environment<'static>, text: &str, opts: &TemplateOptions, search: Vec<PathBuf>) -> Result<FileTemplate, Error> {
        let mut opts = opts.clone();
        let body = opts.apply_header(text).map_err(|e| Error::new(ErrorKind::SyntaxError, e))?;
        let mut env = base.clone();
        env.clear_templates();
        env.set_syntax(opts.syntax()?);
        let rewrite = opts.default_syntax();
        let newline = opts.newline_sequence.clone();
        let nl = newline.clone();
        env.set_loader(move |name| load(&search, name, rewrite, &nl));
        Ok(FileTemplate { env, source: source_text(body, rewrite, &newline), newline })
    }

    /// The rendered `out` of the template file `text`, with the trailing newlines of `text`
    /// that rendering dropped added back (as `newline_sequence`).
    pub fn finish(&self, text: &str, mut out: String) -> String {
        let trailing = |s: &str| s.len() - s.trim_end_matches('\n').len();
        for _ in trailing(&out)..trailing(text) {
            out.push_str(&self.newline);
        }
        out
    }
}

/// A template's source as minijinja compiles it: its newlines made `newline` (Jinja turns
/// those of the template's text into `newline_sequence`), and with Jinja's own delimiters
/// the rewrites of [`super::prepared`] (with other delimiters, `{{` may be text to keep).
fn source_text(text: &str, rewrite: bool, newline: &str) -> String {
    let text = if rewrite { super::prepared(text) } else { std::borrow::Cow::Borrowed(text) };
    if newline == "\n" && !text.contains('\r') {
        return text.into_owned();
    }
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str(newline);
            }
            '\n' => out.push_str(newline),
            c => out.push(c),
        }
    }
    out
}

/// The template `name` (`{% include name %}`) from the first folder of `search` that has
/// it. As Jinja's file loader: `/`-separated, `..` refused, empty and `.` parts skipped.
fn load(search: &[PathBuf], name: &str, rewrite: bool, newline: &str) -> Result<Option<String>, Error> {
    let mut rel = PathBuf::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Ok(None),
            p => rel.push(p),
        }
    }
    if rel.as_os_str().is_empty() {
        return Ok(None);
    }
    for dir in search {
        let path = dir.join(&rel);
        if path.is_file() {
            let text = crate::vault::read_to_string(&path)
                .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("could not read template {}: {e}", path.display())))?;
            return Ok(Some(source_text(&text, rewrite, newline)));
        }
    }
    Ok(None)
}

fn push_dir(out: &mut Vec<PathBuf>, dir: PathBuf) {
    if !out.contains(&dir) {
        out.push(dir);
    }
}

/// The search path of the `template` module's includes (Ansible's action): the role, the
/// playbook's folder (each its `templates/` first, then itself), then the template's own folder.
pub fn module_search_path(role_path: Option<&Path>, playbook_dir: Option<&Path>, template: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in [role_path, playbook_dir, template.parent()].into_iter().flatten() {
        push_dir(&mut out, d.join("templates"));
        push_dir(&mut out, d.to_path_buf());
    }
    out
}

/// The search path of the `template` lookup's includes (Ansible's lookup): the template's own
/// folder, then the role and the playbook's folder (each its `templates/`, then itself).
pub fn lookup_search_path(role_path: Option<&Path>, playbook_dir: Option<&Path>, template: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(d) = template.parent() {
        push_dir(&mut out, d.to_path_buf());
    }
    for d in [role_path, playbook_dir].into_iter().flatten() {
        push_dir(&mut out, d.join("templates"));
        push_dir(&mut out, d.to_path_buf());
    }
    out
}

/// Default `ansible_managed` string (when neither the variables nor `ansible.cfg` define
/// one): Ansible's own, so a template that prints it comes out the same with either tool
/// (moving a fleet from Ansible to provision rewrites no file and restarts nothing).
pub const ANSIBLE_MANAGED: &str = "Ansible managed";

static MANAGED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `ansible_managed` under `[defaults]` in `ansible.cfg`: the string templates get for
/// `{{ ansible_managed }}` in this run (set once, at start).
pub fn set_ansible_managed(text: String) {
    let _ = MANAGED.set(text);
}

/// `ansible_managed` for a template, as Ansible makes it: `%`-codes are the template's
/// modification time (`strftime`), then `{host}`, `{uid}` and `{file}` the values of
/// `template_host`, `template_uid` and `template_path` (`vars`).
fn ansible_managed(mtime: Option<chrono::DateTime<chrono::Local>>, vars: &Vars) -> String {
    managed_text(MANAGED.get().map(String::as_str).unwrap_or(ANSIBLE_MANAGED), mtime, vars)
}

fn managed_text(s: &str, mtime: Option<chrono::DateTime<chrono::Local>>, vars: &Vars) -> String {
    let s = match mtime {
        Some(t) if s.contains('%') => strftime(&t, s).unwrap_or_else(|| s.to_string()),
        _ => s.to_string(),
    };
    let var = |name: &str| vars.get(name).and_then(Json::as_str).unwrap_or_default().to_string();
    s.replace("{host}", &var("template_host")).replace("{uid}", &var("template_uid")).replace("{file}", &var("template_path"))
}

/// `t` formatted with `fmt`'s `%`-codes, or `None` when `fmt` has one chrono doesn't know.
fn strftime(t: &chrono::DateTime<chrono::Local>, fmt: &str) -> Option<String> {
    use chrono::format::{Item, StrftimeItems};
    let items: Vec<Item<'_>> = StrftimeItems::new(fmt).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return None;
    }
    Some(t.format_with_items(items.into_iter()).to_string())
}

/// A time as Python's `str(datetime)` writes it (`2024-05-01 12:34:56.789012`).
fn python_datetime(t: &chrono::DateTime<chrono::Local>) -> String {
    let micros = t.timestamp_subsec_micros();
    if micros == 0 {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        format!("{}.{micros:06}", t.format("%Y-%m-%d %H:%M:%S"))
    }
}

/// The variables Ansible adds for a template file at `path` (its name as the task or lookup
/// gave it: `src`): `template_host`, `template_path`, `template_fullpath`, `template_uid`,
/// `template_mtime`, `template_run_date`, `template_destpath` (the module's `dest`, none
/// for the lookup), and `ansible_managed` when `managed` (the variables don't set it).
pub fn template_vars(src: &str, path: &Path, dest: Option<&str>, managed: bool) -> Vars {
    let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok().map(chrono::DateTime::<chrono::Local>::from);
    let mut vars = Vars::new();
    vars.insert("template_host".into(), json!(local_hostname()));
    vars.insert("template_path".into(), json!(src));
    vars.insert("template_fullpath".into(), json!(full.display().to_string()));
    vars.insert("template_uid".into(), json!(local_owner(path)));
    vars.insert("template_mtime".into(), mtime.as_ref().map(python_datetime).map_or(Json::Null, Json::String));
    vars.insert("template_run_date".into(), json!(python_datetime(&chrono::Local::now())));
    vars.insert("template_destpath".into(), dest.map_or(Json::Null, |d| json!(d)));
    if managed {
        let managed = ansible_managed(mtime, &vars);
        vars.insert("ansible_managed".into(), json!(managed));
    }
    vars
}

/// The controller's host name (read once per process).
fn local_hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
    .clone()
}

/// The name of the local user owning `path` (its uid when /etc/passwd doesn't name it).
/// Names are looked up once per uid and process: every host renders the same templates.
fn local_owner(path: &Path) -> String {
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;
    static NAMES: std::sync::Mutex<BTreeMap<u32, String>> = std::sync::Mutex::new(BTreeMap::new());
    let Ok(uid) = std::fs::metadata(path).map(|m| m.uid()) else {
        return String::new();
    };
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    names
        .entry(uid)
        .or_insert_with(|| {
            std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|p| {
                    p.lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
                    })
                })
                .unwrap_or_else(|| uid.to_string())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansible_managed_names_the_template_and_its_time() {
        let t = chrono::DateTime::parse_from_rfc3339("2024-05-01T12:34:56Z").unwrap().with_timezone(&chrono::Local);
        let day = t.format("%Y-%m-%d").to_string();
        let vars: Vars = serde_json::from_value(json!({"template_path": "a%d.j2", "template_host": "ctl", "template_uid": "me"})).unwrap();
        assert_eq!(managed_text("Ansible managed", Some(t), &vars), "Ansible managed");
        // the file's name is not read for %-codes
        assert_eq!(managed_text("{file} on {host} by {uid}, %Y-%m-%d", Some(t), &vars), format!("a%d.j2 on ctl by me, {day}"));
        // a `%` chrono doesn't know: the text as it is
        assert_eq!(managed_text("100% {file}", Some(t), &vars), "100% a%d.j2");
        assert_eq!(python_datetime(&t).len(), "2024-05-01 12:34:56".len());
    }

    #[test]
    fn search_paths() {
        let (role, pb) = (Path::new("/p/roles/r"), Path::new("/p"));
        let p = |v: Vec<PathBuf>| v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ");
        assert_eq!(
            p(module_search_path(Some(role), Some(pb), Path::new("/p/roles/r/templates/sub/a.j2"))),
            "/p/roles/r/templates /p/roles/r /p/templates /p /p/roles/r/templates/sub/templates /p/roles/r/templates/sub"
        );
        assert_eq!(p(lookup_search_path(None, Some(pb), Path::new("/p/templates/a.j2"))), "/p/templates /p");
    }
}
