//! Ansible's lookup plugins (`lookup('file', ...)`, `query(...)`, and the loops
//! `with_<plugin>:` made of them), evaluated on the controller while templating.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value};
use rand::Rng;

use super::filters::{dict2items, err, iter_values, subelement_pairs};

/// Plugins that exist here (`lookup('x')`, `query('x')`, `with_x:`).
pub const PLUGINS: &[&str] = &[
    "env", "file", "fileglob", "vars", "items", "list", "flattened", "dict", "indexed_items", "sequence", "nested",
    "cartesian", "together", "subelements", "first_found", "template", "pipe", "lines", "password",
];

/// Is `name` (bare or `ansible.builtin.`) a lookup plugin provision has?
pub fn is_plugin(name: &str) -> bool {
    PLUGINS.contains(&name.strip_prefix("ansible.builtin.").unwrap_or(name))
}

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function("lookup", lookup);
    env.add_function("query", query);
    env.add_function("q", query);
}

/// The hidden keywords a `with_<plugin>:` loop passes ([`super::Templar::query_loop`]):
/// the terms as one list, and the folder `first_found` searches (by the task's module).
pub(crate) const TERMS_KW: &str = "__provision_terms";
pub(crate) const WITH_KW: &str = "__provision_with";

fn lookup_values(state: &State, plugin: &str, positional: &[Value], kwargs: &Kwargs) -> Result<Vec<Value>, Error> {
    let plugin = plugin.strip_prefix("ansible.builtin.").unwrap_or(plugin);
    let from_loop = kwargs.get::<Option<Value>>(TERMS_KW)?;
    let with_subdir = kwargs.get::<Option<String>>(WITH_KW)?;
    let terms: Vec<Value> = match &from_loop {
        Some(t) => iter_values(t)?,
        None => positional.to_vec(),
    };
    let terms = &terms[..];
    let mut out = Vec::new();
    match plugin {
        "env" => {
            let default = kwargs.get::<Option<Value>>("default")?;
            for t in terms {
                let name = t.as_str().ok_or_else(|| err("lookup('env'): names must be strings"))?;
                match std::env::var(name) {
                    Ok(v) => out.push(Value::from(v)),
                    Err(_) => out.push(default.clone().unwrap_or(Value::from(""))),
                }
            }
        }
        "file" => {
            let rstrip = kwargs.get::<Option<bool>>("rstrip")?.unwrap_or(true);
            // errors='ignore' / 'warn': a missing file gives nothing
            let lenient = kwargs.get::<Option<String>>("errors")?.is_some_and(|e| e == "ignore" || e == "warn");
            for t in terms {
                let term = t.as_str().ok_or_else(|| err("lookup('file'): paths must be strings"))?;
                let path = find_in_search_path(state, "files", term).unwrap_or_else(|| PathBuf::from(term));
                let content = match crate::vault::read_to_string(&path) {
                    Ok(c) => c,
                    Err(_) if lenient => continue,
                    Err(e) => return Err(err(format!("lookup('file'): could not read '{term}': {e}"))),
                };
                out.push(Value::from(if rstrip { content.trim_end().to_string() } else { content }));
            }
        }
        "fileglob" => {
            for t in terms {
                let term = t.as_str().ok_or_else(|| err("lookup('fileglob'): patterns must be strings"))?;
                out.extend(fileglob(state, term)?.into_iter().map(Value::from));
            }
        }
        "vars" => {
            let default = kwargs.get::<Option<Value>>("default")?;
            for t in terms {
                let name = t.as_str().ok_or_else(|| err("lookup('vars'): names must be strings"))?;
                match state.lookup(name).filter(|v| !v.is_undefined()) {
                    Some(v) => out.push(super::validate(v)?),
                    None => match &default {
                        Some(d) => out.push(d.clone()),
                        None => return Err(Error::new(ErrorKind::UndefinedError, format!("`{name}` is undefined"))),
                    },
                }
            }
        }
        "items" | "list" | "flattened" => {
            for t in terms {
                out.extend(listify(t)?);
            }
        }
        "dict" => {
            for t in terms {
                out.extend(iter_values(&dict2items(t, Kwargs::from_iter(Vec::<(&str, Value)>::new()))?)?);
            }
        }
        "indexed_items" => {
            let items: Vec<Value> = if terms.len() == 1 && terms[0].kind() == ValueKind::Seq { iter_values(&terms[0])? } else { terms.to_vec() };
            out.extend(items.into_iter().enumerate().map(|(i, x)| Value::from(vec![Value::from(i), x])));
        }
        "sequence" => {
            let from_kw = Sequence::from_kwargs(kwargs)?;
            if terms.is_empty() {
                out.extend(from_kw.clone().unwrap_or_default().values()?);
            }
            for t in terms {
                let term = t.as_str().ok_or_else(|| err("lookup('sequence'): each term must be a string such as 'start=1 end=10'"))?;
                let mut seq = from_kw.clone().unwrap_or_default();
                seq.parse(term)?;
                out.extend(seq.values()?);
            }
        }
        "nested" | "cartesian" => {
            let lists = terms.iter().map(listify).collect::<Result<Vec<_>, _>>()?;
            if lists.is_empty() {
                return Err(err(format!("lookup('{plugin}'): needs at least one list")));
            }
            let mut acc: Vec<Vec<Value>> = vec![vec![]];
            for l in &lists {
                let mut next = Vec::with_capacity(acc.len() * l.len());
                for prefix in &acc {
                    for x in l {
                        let mut p = prefix.clone();
                        p.push(x.clone());
                        next.push(p);
                    }
                }
                acc = next;
            }
            out.extend(acc.into_iter().map(Value::from));
        }
        "together" => {
            let lists = terms.iter().map(listify).collect::<Result<Vec<_>, _>>()?;
            if lists.is_empty() {
                return Err(err("lookup('together'): needs at least one list"));
            }
            let n = lists.iter().map(Vec::len).max().unwrap_or(0);
            for i in 0..n {
                out.push(Value::from(lists.iter().map(|l| l.get(i).cloned().unwrap_or(Value::from(()))).collect::<Vec<_>>()));
            }
        }
        "subelements" => {
            if !(2..=3).contains(&terms.len()) {
                return Err(err("lookup('subelements'): needs a list of mappings, a key, and optionally {skip_missing: true}"));
            }
            let key = terms[1].as_str().ok_or_else(|| err("lookup('subelements'): the key must be a string"))?;
            let skip = match terms.get(2) {
                Some(flags) if flags.kind() == ValueKind::Map => flags.get_attr("skip_missing").map(|v| v.is_true()).unwrap_or(false),
                Some(_) => return Err(err("lookup('subelements'): the third term must be a mapping such as {skip_missing: true}")),
                None => false,
            };
            let list = if terms[0].kind() == ValueKind::Map { Value::from(dict_values(&terms[0])?) } else { terms[0].clone() };
            out.extend(subelement_pairs(&list, key, skip, true)?);
        }
        "first_found" => {
            if let Some(found) = first_found(state, terms, kwargs, with_subdir.as_deref())? {
                out.push(Value::from(found.display().to_string()));
            }
        }
        "template" => {
            let template_vars = kwargs.get::<Option<Value>>("template_vars")?;
            for t in terms {
                let term = t.as_str().ok_or_else(|| err("lookup('template'): template names must be strings"))?;
                out.push(Value::from(render_template_file(state, term, template_vars.as_ref(), kwargs)?));
            }
        }
        "pipe" | "lines" => {
            for t in terms {
                let cmd = t.as_str().ok_or_else(|| err(format!("lookup('{plugin}'): commands must be strings")))?;
                let stdout = run_pipe(state, cmd)?;
                if plugin == "pipe" {
                    out.push(Value::from(stdout.trim_end().to_string()));
                } else {
                    out.extend(stdout.lines().map(Value::from));
                }
            }
        }
        "password" => {
            for t in terms {
                let term = t.as_str().ok_or_else(|| err("lookup('password'): each term must be a path (and options)"))?;
                out.push(Value::from(password(state, term, kwargs)?));
            }
        }
        other => {
            return Err(err(format!("lookup plugin '{other}' is not supported (these are: {})", PLUGINS.join(", "))));
        }
    }
    Ok(out)
}

/// A term that should be a list: a list as is, anything else as a list of itself.
fn listify(v: &Value) -> Result<Vec<Value>, Error> {
    if v.kind() == ValueKind::Seq {
        iter_values(v)
    } else {
        Ok(vec![v.clone()])
    }
}

fn dict_values(m: &Value) -> Result<Vec<Value>, Error> {
    m.try_iter()?.map(|k| m.get_item(&k)).collect()
}

fn var_path(state: &State, name: &str) -> Option<PathBuf> {
    state.lookup(name).and_then(|v| v.as_str().map(PathBuf::from))
}

/// Where a path named in a lookup is on the controller: searched from the task's role and
/// the playbook's folder ([`super::find_controller_file`], `<kind>/`). `None` if nowhere.
fn find_in_search_path(state: &State, kind: &str, term: &str) -> Option<PathBuf> {
    super::find_controller_file(var_path(state, "role_path").as_deref(), var_path(state, "playbook_dir").as_deref(), kind, term)
}

/// `lookup('fileglob', 'conf.d/*.conf')` / `with_fileglob`: the files (not directories) of
/// one controller folder whose names match, as absolute paths in name order. The folder is
/// searched like [`find_in_search_path`]; `*` doesn't match a leading dot (Python's glob).
fn fileglob(state: &State, pattern: &str) -> Result<Vec<String>, Error> {
    let (dir, name) = match pattern.rsplit_once('/') {
        Some(("", n)) => ("/", n),
        Some((d, n)) => (d, n),
        None => (".", pattern),
    };
    let glob = globset::GlobBuilder::new(name)
        .literal_separator(true)
        .build()
        .map_err(|e| err(format!("lookup('fileglob'): bad pattern '{pattern}': {e}")))?
        .compile_matcher();
    let Some(dir) = find_in_search_path(state, "files", dir).filter(|d| d.is_dir()) else {
        return Ok(Vec::new()); // Ansible: nothing, not an error
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| err(format!("lookup('fileglob'): cannot read {}: {e}", dir.display())))?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            (!n.starts_with('.') || name.starts_with('.')) && glob.is_match(n.as_ref()) && e.path().is_file()
        })
        .map(|e| e.path().display().to_string())
        .collect();
    found.sort();
    Ok(found)
}

/// `first_found`: the first of the candidate files that exists, as an absolute path.
/// Terms are names (a string may list several, split on `,` and `;`), lists of them, or
/// mappings `{files: [...], paths: [...], skip: true}`; `files`/`paths`/`skip` may also
/// be keywords. A name with `paths` is looked for under each path; relative names are
/// searched from the role and the playbook's folder, and in a `with_first_found` loop also
/// in their `templates/` (template tasks), `vars/` (include_vars) or `files/` subfolder.
/// None found: an error, or nothing with `skip`.
fn first_found(state: &State, terms: &[Value], kwargs: &Kwargs, subdir: Option<&str>) -> Result<Option<PathBuf>, Error> {
    let mut skip = kwargs.get::<Option<bool>>("skip")?.unwrap_or(false);
    let kw_files = kwargs.get::<Option<Value>>("files")?;
    let kw_paths = kwargs.get::<Option<Value>>("paths")?;
    let split = |v: &Value, seps: &[char]| -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for x in listify(v)? {
            let s = x.as_str().ok_or_else(|| err("lookup('first_found'): file names and paths must be strings"))?;
            out.extend(s.split(seps).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string));
        }
        Ok(out)
    };
    let mut candidates: Vec<String> = Vec::new();
    fn add(candidates: &mut Vec<String>, files: Vec<String>, paths: &[String]) {
        if paths.is_empty() {
            candidates.extend(files);
        } else {
            for p in paths {
                for f in &files {
                    candidates.push(Path::new(p).join(f).display().to_string());
                }
            }
        }
    }
    let default_paths = match &kw_paths {
        Some(p) => split(p, &[',', ':', ';'])?,
        None => Vec::new(),
    };
    let mut pending: Vec<Value> = terms.to_vec();
    if pending.is_empty() {
        if let Some(f) = &kw_files {
            pending.push(f.clone());
        }
    }
    let mut stack: Vec<Value> = pending.into_iter().rev().collect();
    while let Some(term) = stack.pop() {
        match term.kind() {
            ValueKind::Map => {
                let files = match term.get_attr("files") {
                    Ok(f) if !f.is_undefined() => split(&f, &[',', ';'])?,
                    _ => match &kw_files {
                        Some(f) => split(f, &[',', ';'])?,
                        None => Vec::new(),
                    },
                };
                let paths = match term.get_attr("paths") {
                    Ok(p) if !p.is_undefined() => split(&p, &[',', ':', ';'])?,
                    _ => default_paths.clone(),
                };
                if let Ok(s) = term.get_attr("skip") {
                    if !s.is_undefined() {
                        skip = s.is_true();
                    }
                }
                add(&mut candidates, files, &paths);
            }
            ValueKind::Seq => {
                let items: Vec<Value> = iter_values(&term)?;
                stack.extend(items.into_iter().rev());
            }
            ValueKind::Undefined if subdir.is_some() => {} // dropped in loops, as Ansible does
            _ => {
                let files = split(&term, &[',', ';'])?;
                add(&mut candidates, files, &default_paths);
            }
        }
    }
    for c in &candidates {
        // Without a subfolder (a lookup, not a loop), `<base>//name` is `<base>/name`.
        if let Some(f) = find_in_search_path(state, subdir.unwrap_or(""), c) {
            return Ok(Some(std::fs::canonicalize(&f).unwrap_or(f)));
        }
    }
    if skip {
        return Ok(None);
    }
    Err(err(format!("lookup('first_found'): no file was found (looked for: {})", candidates.join(", "))))
}

/// `lookup('template', 'x.j2')`: a controller template (the role's or the playbook's
/// `templates/`) rendered with the task's variables, the variables Ansible adds for templates
/// (`ansible_managed`, `template_path`...), then `template_vars`. Its `#jinja2:` header and
/// the lookup's `trim_blocks` and delimiter options apply; its includes are looked up in
/// its own folder, then as the `template` module's.
fn render_template_file(state: &State, name: &str, template_vars: Option<&Value>, kwargs: &Kwargs) -> Result<String, Error> {
    let path = find_in_search_path(state, "templates", name).ok_or_else(|| err(format!("lookup('template'): could not find template '{name}' (searched templates/ of the role and the playbook directory)")))?;
    let text = crate::vault::read_to_string(&path)
        .map_err(|e| err(format!("lookup('template'): could not read {}: {e}", path.display())))?;
    let root = super::lazy::current_root().ok_or_else(|| err("lookup('template'): no variables to render with"))?;
    let mut opts = super::TemplateOptions::default();
    for key in ["variable_start_string", "variable_end_string", "comment_start_string", "comment_end_string", "trim_blocks"] {
        let value = match kwargs.get::<Option<Value>>(key)? {
            Some(v) if v.kind() == ValueKind::Bool => super::OptionValue::Bool(v.is_true()),
            Some(v) => match v.as_str() {
                Some(s) => super::OptionValue::Str(s.to_string()),
                None => return Err(err(format!("lookup('template'): {key} must be a string"))),
            },
            None => continue,
        };
        opts.set(key, value).map_err(|e| err(format!("lookup('template'): {e}")))?;
    }
    let managed = root.get_attr("ansible_managed").map_or(true, |v| v.is_undefined());
    let added = Value::from(minijinja::value::Serde(super::template_vars(name, &path, None, managed)));
    let ctx = match template_vars {
        Some(extra) if extra.kind() == ValueKind::Map => minijinja::value::merge_maps([extra.clone(), added, root]),
        Some(_) => return Err(err("lookup('template'): template_vars must be a mapping")),
        None => minijinja::value::merge_maps([added, root]),
    };
    // A fresh environment as the calling render's (strict or lenient), not the caller's
    // own: it may have a template's options and search path.
    let base = if state.env().undefined_behavior() == minijinja::UndefinedBehavior::Strict { super::shared_env() } else { super::lenient_env() };
    let search = super::lookup_search_path(var_path(state, "role_path").as_deref(), var_path(state, "playbook_dir").as_deref(), &path);
    let described = |e: Error| {
        let at = match (e.name().filter(|n| *n != name), e.line()) {
            (Some(inner), Some(l)) => format!(" (in template {inner}, line {l}, included from {name})"),
            (_, Some(l)) => format!(" (in template {name}, line {l})"),
            (_, None) => format!(" (in template {name})"),
        };
        Error::new(e.kind(), format!("{}{at}", super::describe_error(&e, None)))
    };
    let file = super::files::FileTemplate::new(&base, &text, &opts, search).map_err(described)?;
    let env: &Environment<'_> = &file.env;
    env.render_named_str(name, &file.source, ctx).map(|out| file.finish(&text, out)).map_err(described)
}

/// `lookup('pipe', cmd)` / `lookup('lines', cmd)`: a command run by `sh` on the controller,
/// from the playbook's folder; its standard output. A failing command is an error.
fn run_pipe(state: &State, cmd: &str) -> Result<String, Error> {
    let mut c = std::process::Command::new("/bin/sh");
    c.arg("-c").arg(cmd).stdin(std::process::Stdio::null()).stderr(std::process::Stdio::inherit());
    if let Some(dir) = var_path(state, "playbook_dir").filter(|d| d.is_dir()) {
        c.current_dir(dir);
    }
    let out = c.output().map_err(|e| err(format!("lookup('pipe'): could not run sh: {e}")))?;
    if !out.status.success() {
        return Err(err(format!("lookup('pipe'): command '{cmd}' exited with {}", out.status.code().map(|c| c.to_string()).unwrap_or_else(|| "a signal".into()))));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Password files being read or written (hosts render at the same time: one value per file).
static PASSWORD_FILES: Mutex<()> = Mutex::new(());

/// `lookup('password', 'credentials/db length=24 chars=ascii_letters,digits')`: the
/// password kept in that controller file (relative to the playbook's folder), generated
/// and written there (mode 0600, folders created) the first time. `/dev/null` generates a
/// new one each time without keeping it. Options as `key=value` words or keywords:
/// `length` (20), `chars` (names `ascii_letters`, `ascii_lowercase`, `ascii_uppercase`,
/// `digits`, `hexdigits`, `octdigits`, `punctuation`, or literal characters; default
/// letters, digits and `.,:-_`).
fn password(state: &State, term: &str, kwargs: &Kwargs) -> Result<String, Error> {
    let mut words = term.split_whitespace();
    let path = words.next().ok_or_else(|| err("lookup('password'): needs a file path"))?;
    let mut length = kwargs.get::<Option<usize>>("length")?.unwrap_or(20);
    let mut chars_opt: Option<String> = match kwargs.get::<Option<Value>>("chars")? {
        Some(v) if v.kind() == ValueKind::Seq => Some(iter_values(&v)?.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect::<Vec<_>>().join(",")),
        Some(v) => v.as_str().map(str::to_string),
        None => None,
    };
    for w in words {
        match w.split_once('=') {
            Some(("length", n)) => length = n.parse().map_err(|_| err(format!("lookup('password'): bad length '{n}'")))?,
            Some(("chars", c)) => chars_opt = Some(c.to_string()),
            Some(("encrypt" | "ident" | "seed", _)) => return Err(err(format!("lookup('password'): option '{w}' is not supported"))),
            _ => return Err(err(format!("lookup('password'): unknown option '{w}' (length=, chars=)"))),
        }
    }
    let alphabet: Vec<char> = match chars_opt {
        None => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,:-_".chars().collect(),
        Some(spec) => {
            let mut a = String::new();
            // Ansible: ",," is a literal comma.
            for part in spec.replace(",,", "\u{0}").split(',') {
                a.push_str(match part {
                    "ascii_letters" | "letters" => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                    "ascii_lowercase" => "abcdefghijklmnopqrstuvwxyz",
                    "ascii_uppercase" => "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                    "digits" => "0123456789",
                    "hexdigits" => "0123456789abcdefABCDEF",
                    "octdigits" => "01234567",
                    "punctuation" => "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
                    lit => lit,
                });
            }
            let a = a.replace('\u{0}', ",");
            let mut seen = std::collections::HashSet::new();
            a.chars().filter(|c| seen.insert(*c)).collect()
        }
    };
    if alphabet.is_empty() || length == 0 {
        return Err(err("lookup('password'): needs a length above 0 and some characters"));
    }
    let generate = || -> String {
        let mut rng = rand::rng();
        (0..length).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect()
    };
    if path == "/dev/null" {
        return Ok(generate());
    }
    let mut file = PathBuf::from(path);
    if file.is_relative() {
        if let Some(dir) = var_path(state, "playbook_dir") {
            file = dir.join(file);
        }
    }
    let _guard = PASSWORD_FILES.lock().unwrap_or_else(|p| p.into_inner());
    match std::fs::read_to_string(&file) {
        // Ansible's file holds "password" or "password salt=..."
        Ok(text) => Ok(text.lines().next().unwrap_or("").split(" salt=").next().unwrap_or("").to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pw = generate();
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|e| err(format!("lookup('password'): cannot create {}: {e}", parent.display())))?;
            }
            write_private(&file, &format!("{pw}\n")).map_err(|e| err(format!("lookup('password'): cannot write {}: {e}", file.display())))?;
            Ok(pw)
        }
        Err(e) => Err(err(format!("lookup('password'): cannot read {}: {e}", file.display()))),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

/// `sequence`'s settings: `start=1 end=10 stride=2 format=host%02d`, `count=5`, or the
/// short form `[start-]end[/stride][:format]`; numbers may be hex (`0x10`) or octal (`0o7`).
#[derive(Clone, Debug)]
struct Sequence {
    start: i64,
    end: Option<i64>,
    count: Option<i64>,
    stride: i64,
    format: String,
}

impl Default for Sequence {
    fn default() -> Self {
        Sequence { start: 1, end: None, count: None, stride: 1, format: "%d".into() }
    }
}

fn seq_int(s: &str) -> Result<i64, Error> {
    let t = s.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16)
    } else if let Some(o) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        i64::from_str_radix(o, 8)
    } else {
        t.parse()
    }
    .map_err(|_| err(format!("lookup('sequence'): can't parse '{s}' as a number")))?;
    Ok(if neg { -v } else { v })
}

impl Sequence {
    fn from_kwargs(kwargs: &Kwargs) -> Result<Option<Sequence>, Error> {
        let mut seq = Sequence::default();
        let mut any = false;
        for k in ["start", "end", "count", "stride", "format"] {
            if let Some(v) = kwargs.get::<Option<Value>>(k)? {
                any = true;
                let s = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                seq.set(k, &s)?;
            }
        }
        Ok(any.then_some(seq))
    }

    fn set(&mut self, k: &str, v: &str) -> Result<(), Error> {
        match k {
            "start" => self.start = seq_int(v)?,
            "end" => self.end = Some(seq_int(v)?),
            "count" => self.count = Some(seq_int(v)?),
            "stride" => self.stride = seq_int(v)?,
            "format" => self.format = v.to_string(),
            _ => return Err(err(format!("lookup('sequence'): unknown option '{k}' (start, end, count, stride, format)"))),
        }
        Ok(())
    }

    fn parse(&mut self, term: &str) -> Result<(), Error> {
        let term = term.trim();
        if term.contains('=') {
            for w in term.split_whitespace() {
                let (k, v) = w.split_once('=').ok_or_else(|| err(format!("lookup('sequence'): can't parse '{w}' (key=value)")))?;
                self.set(k, v)?;
            }
            return Ok(());
        }
        // [start-]end[/stride][:format]
        let (nums, format) = match term.split_once(':') {
            Some((n, f)) => (n, Some(f)),
            None => (term, None),
        };
        let (range, stride) = match nums.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (nums, None),
        };
        match range.split_once('-') {
            Some((a, b)) if !a.is_empty() => {
                self.start = seq_int(a)?;
                self.end = Some(seq_int(b)?);
            }
            _ => self.end = Some(seq_int(range)?),
        }
        if let Some(s) = stride {
            self.stride = seq_int(s)?;
        }
        if let Some(f) = format {
            self.format = f.to_string();
        }
        Ok(())
    }

    fn values(&self) -> Result<Vec<Value>, Error> {
        let end = match (self.end, self.count) {
            (Some(_), Some(_)) => return Err(err("lookup('sequence'): can't use both count and end")),
            (Some(e), None) => e,
            (None, Some(0)) => return Ok(Vec::new()),
            (None, Some(c)) => self.start + (c - 1) * self.stride,
            (None, None) => return Err(err("lookup('sequence'): must specify count or end")),
        };
        if self.stride == 0 {
            return Ok(Vec::new());
        }
        if (self.stride > 0 && end < self.start) || (self.stride < 0 && end > self.start) {
            return Err(err("lookup('sequence'): to count backwards make stride negative"));
        }
        let mut out = Vec::new();
        let mut i = self.start;
        while (self.stride > 0 && i <= end) || (self.stride < 0 && i >= end) {
            out.push(Value::from(py_format_int(&self.format, i)?));
            i += self.stride;
            if out.len() > 1_000_000 {
                return Err(err("lookup('sequence'): more than a million items"));
            }
        }
        Ok(out)
    }
}

/// Python's `fmt % n` for one integer: `%d`, `%5d`, `%-5d`, `%05d`, `%x`, `%X`, `%o`, `%s`,
/// `%f` with width and precision, and `%%`.
pub(crate) fn py_format_int(fmt: &str, n: i64) -> Result<String, Error> {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut used = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "-+ 0#".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let conv = chars.next().ok_or_else(|| err(format!("format '{fmt}': incomplete format")))?;
        if conv == '%' {
            out.push('%');
            continue;
        }
        if used {
            return Err(err(format!("format '{fmt}': not enough arguments for format string")));
        }
        used = true;
        let body = match conv {
            'd' | 'i' | 'u' | 's' => n.abs().to_string(),
            'x' => format!("{:x}", n.unsigned_abs()),
            'X' => format!("{:X}", n.unsigned_abs()),
            'o' => format!("{:o}", n.unsigned_abs()),
            'f' | 'F' => format!("{:.*}", prec.unwrap_or(6), (n as f64).abs()),
            other => return Err(err(format!("format '{fmt}': unsupported format character '{other}'"))),
        };
        let body = match (conv, prec) {
            ('d' | 'i' | 'u' | 'x' | 'X' | 'o', Some(p)) if body.len() < p => format!("{}{body}", "0".repeat(p - body.len())),
            _ => body,
        };
        let prefix = if flags.contains('#') {
            match conv {
                'x' => "0x",
                'X' => "0X",
                'o' => "0o",
                _ => "",
            }
        } else {
            ""
        };
        let sign = if n < 0 {
            "-"
        } else if flags.contains('+') && conv != 's' {
            "+"
        } else if flags.contains(' ') && conv != 's' {
            " "
        } else {
            ""
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = sign.len() + prefix.len() + body.len();
        if len >= w {
            out.push_str(sign);
            out.push_str(prefix);
            out.push_str(&body);
        } else if flags.contains('-') {
            out.push_str(sign);
            out.push_str(prefix);
            out.push_str(&body);
            out.push_str(&" ".repeat(w - len));
        } else if flags.contains('0') && conv != 's' {
            out.push_str(sign);
            out.push_str(prefix);
            out.push_str(&"0".repeat(w - len));
            out.push_str(&body);
        } else {
            out.push_str(&" ".repeat(w - len));
            out.push_str(sign);
            out.push_str(prefix);
            out.push_str(&body);
        }
    }
    if !used {
        return Err(err(format!("format '{fmt}': not all arguments converted during string formatting")));
    }
    Ok(out)
}

/// `lookup('env', 'HOME')`: as Ansible 2.19 hands a lookup's values over without
/// `wantlist`: none, an empty list (`lookup('first_found', ..., skip=True)`; none at all
/// when `errors='ignore'` or `'warn'` let a failure pass); one, itself; several strings,
/// joined with commas; several values of other kinds, the list.
fn lookup(state: &State, plugin: String, terms: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let wantlist = kwargs.get::<Option<bool>>("wantlist")?.unwrap_or(false);
    let values = lookup_values(state, &plugin, &terms, &kwargs)?;
    if wantlist {
        return Ok(Value::from(values));
    }
    match values.len() {
        0 if kwargs.get::<Option<String>>("errors")?.is_some_and(|e| e == "ignore" || e == "warn") => Ok(Value::from(())),
        0 => Ok(Value::from(values)),
        1 => Ok(values.into_iter().next().unwrap_or(Value::from(()))),
        _ if values.iter().all(|v| v.kind() == ValueKind::String) => {
            Ok(Value::from(values.iter().map(|v| v.as_str().unwrap_or_default()).collect::<Vec<_>>().join(",")))
        }
        _ => Ok(Value::from(values)),
    }
}

/// `query('env', 'HOME')`: always a list.
fn query(state: &State, plugin: String, terms: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    Ok(Value::from(lookup_values(state, &plugin, &terms, &kwargs)?))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ev, vars};
    use super::super::{Templar, Vars};
    use super::py_format_int;
    use serde_json::{json, Value as Json};

    fn everr(expr: &str, v: &Vars) -> String {
        match Templar::new().eval_expr(expr, v) {
            Ok(x) => panic!("{expr}: expected an error, got {x}"),
            Err(e) => e.to_string(),
        }
    }

    fn looped(plugin: &str, terms: Json, subdir: &str, v: &Vars) -> Json {
        Templar::new().query_loop(plugin, &terms, subdir, v).unwrap_or_else(|e| panic!("with_{plugin}: {e}"))
    }

    #[test]
    fn sequence_forms() {
        let e = Vars::new();
        assert_eq!(ev("query('sequence', 'start=1 end=3 format=h%02d')", &e), json!(["h01", "h02", "h03"]));
        assert_eq!(ev("query('sequence', 'count=3')", &e), json!(["1", "2", "3"]));
        assert_eq!(ev("query('sequence', '4-8/2')", &e), json!(["4", "6", "8"]));
        assert_eq!(ev("query('sequence', '3:x%d')", &e), json!(["x1", "x2", "x3"]));
        assert_eq!(ev("query('sequence', 'start=0x0a end=0x0c format=%02x')", &e), json!(["0a", "0b", "0c"]));
        assert_eq!(ev("query('sequence', start=5, end=1, stride=-2)", &e), json!(["5", "3", "1"]));
        assert_eq!(ev("query('sequence', 'count=0')", &e), json!([]));
        assert_eq!(ev("lookup('sequence', 'end=2')", &e), json!("1,2"));
        assert!(everr("query('sequence', 'start=5 end=1')", &e).contains("stride negative"), "{}", everr("query('sequence', 'start=5 end=1')", &e));
        assert!(everr("query('sequence', 'start=1')", &e).contains("count or end"));
        assert!(everr("query('sequence', 'bogus=1 end=2')", &e).contains("unknown option 'bogus'"));
    }

    #[test]
    fn python_percent_format_of_an_integer() {
        assert_eq!(py_format_int("%d", 7).unwrap(), "7");
        assert_eq!(py_format_int("web%03d.example", 7).unwrap(), "web007.example");
        assert_eq!(py_format_int("%-4d|", 7).unwrap(), "7   |");
        assert_eq!(py_format_int("%4d|%%", -7).unwrap(), "  -7|%");
        assert_eq!(py_format_int("%05d", -7).unwrap(), "-0007");
        assert!(py_format_int("%+d %x %X %o %#x", 255).unwrap_err().to_string().contains("not enough arguments"));
        assert_eq!(py_format_int("%#x", 255).unwrap(), "0xff");
        assert_eq!(py_format_int("%.2f", 3).unwrap(), "3.00");
        assert_eq!(py_format_int("%s", 12).unwrap(), "12");
        assert!(py_format_int("plain", 1).is_err());
    }

    #[test]
    fn combining_lookups() {
        let e = vars(json!({
            "users": [{"name": "alice", "keys": ["k1", "k2"]}, {"name": "bob", "keys": ["k3"]}, {"name": "carol"}],
        }));
        assert_eq!(ev("query('nested', ['a', 'b'], [1, 2])", &e), json!([["a", 1], ["a", 2], ["b", 1], ["b", 2]]));
        assert_eq!(ev("query('cartesian', ['a'], 'x')", &e), json!([["a", "x"]]));
        assert_eq!(ev("query('together', ['a', 'b'], [1])", &e), json!([["a", 1], ["b", null]]));
        assert_eq!(ev("query('indexed_items', ['a', 'b'])", &e), json!([[0, "a"], [1, "b"]]));
        // with_subelements drops the list from the element it hands over; skip_missing
        assert_eq!(
            ev("query('subelements', users, 'keys', {'skip_missing': true})", &e),
            json!([[{"name": "alice"}, "k1"], [{"name": "alice"}, "k2"], [{"name": "bob"}, "k3"]])
        );
        assert!(everr("query('subelements', users, 'keys')", &e).contains("could not find 'keys'"));
        // loops: the rendered value is the terms; a lone string is one term
        assert_eq!(looped("nested", json!([["a"], [1, 2]]), "files", &e), json!([["a", 1], ["a", 2]]));
        assert_eq!(looped("sequence", json!("count=2"), "files", &e), json!(["1", "2"]));
        assert_eq!(looped("indexed_items", json!(["x", "y"]), "files", &e), json!([[0, "x"], [1, "y"]]));
        assert!(everr("lookup('nope', 1)", &e).contains("lookup plugin 'nope' is not supported"));
    }

    #[test]
    fn first_found_searches_like_ansible() {
        let d = tempfile::tempdir().unwrap();
        let role = d.path().join("roles/r");
        std::fs::create_dir_all(role.join("vars")).unwrap();
        std::fs::create_dir_all(d.path().join("files")).unwrap();
        std::fs::write(role.join("vars/Debian.yml"), "x: 1\n").unwrap();
        std::fs::write(role.join("default.yml"), "x: 2\n").unwrap();
        std::fs::write(d.path().join("files/f.txt"), "f\n").unwrap();
        let e = vars(json!({"role_path": role.display().to_string(), "playbook_dir": d.path().display().to_string(), "os": "Debian"}));
        let canon = |p: std::path::PathBuf| json!(std::fs::canonicalize(p).unwrap().display().to_string());
        // a lookup looks in the role's and the playbook's folders themselves
        assert_eq!(ev("lookup('first_found', ['vars/' ~ os ~ '.yml', 'default.yml'])", &e), canon(role.join("vars/Debian.yml")));
        assert_eq!(ev("lookup('first_found', 'Ubuntu.yml,default.yml')", &e), canon(role.join("default.yml")));
        assert_eq!(ev("lookup('first_found', {'files': ['Debian.yml'], 'paths': ['vars']})", &e), canon(role.join("vars/Debian.yml")));
        assert!(everr("lookup('first_found', ['f.txt'])", &e).contains("no file was found (looked for: f.txt)"));
        assert_eq!(ev("query('first_found', ['nope.yml'], skip=true)", &e), json!([]));
        // lookup (not query): an empty list too, as Ansible 2.19 (it was '')
        assert_eq!(ev("lookup('first_found', ['nope.yml'], skip=true)", &e), json!([]));
        assert_eq!(ev("lookup('first_found', ['nope.yml'], skip=true) | length", &e), json!(0));
        // in a loop, also in the subfolder of the task's kind
        assert_eq!(looped("first_found", json!(["f.txt"]), "files", &e), json!([std::fs::canonicalize(d.path().join("files/f.txt")).unwrap().display().to_string()]));
        assert_eq!(looped("first_found", json!(["{{ nope }}.yml", "Debian.yml"]), "vars", &e).as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn template_pipe_lines_lookups() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("templates")).unwrap();
        std::fs::write(d.path().join("templates/t.j2"), "{{ greeting }} {{ who | default('world') }}{{ '\\t' }}!\n").unwrap();
        let e = vars(json!({"playbook_dir": d.path().display().to_string(), "greeting": "hi {{ 'there' }}"}));
        // a template file keeps Jinja's escapes ('\t' is a tab), as Ansible's template lookup
        assert_eq!(ev("lookup('template', 't.j2')", &e), json!("hi there world\t!\n"));
        assert_eq!(ev("lookup('template', 't.j2', template_vars={'who': 'you'})", &e), json!("hi there you\t!\n"));
        assert!(everr("lookup('template', 'missing.j2')", &e).contains("could not find template 'missing.j2'"));
        assert_eq!(ev("lookup('pipe', 'echo a; echo b')", &e), json!("a\nb"));
        assert_eq!(ev("query('lines', 'printf \"x\\ny\\n\"')", &e), json!(["x", "y"]));
        // the playbook's folder is the working directory
        assert_eq!(ev("lookup('pipe', 'ls templates')", &e), json!("t.j2"));
        assert!(everr("lookup('pipe', 'exit 3')", &e).contains("exited with 3"));
    }

    #[test]
    fn template_lookup_has_template_vars_includes_and_header() {
        let d = tempfile::tempdir().unwrap();
        let role = d.path().join("roles/r");
        std::fs::create_dir_all(role.join("templates/conf")).unwrap();
        std::fs::create_dir_all(d.path().join("templates")).unwrap();
        std::fs::write(role.join("templates/conf/m.j2"), "# {{ ansible_managed }}\n{{ template_path }} {{ template_run_date is string }} {{ template_destpath }}\n").unwrap();
        // includes: the template's own folder first, then the role's and playbook's templates/
        std::fs::write(role.join("templates/conf/i.j2"), "{% include 'part.j2' %}+{% include 'top.j2' %}\n").unwrap();
        std::fs::write(role.join("templates/conf/part.j2"), "part").unwrap();
        std::fs::write(d.path().join("templates/top.j2"), "{% import 'conf/macros.j2' as m %}{{ m.hi() }}").unwrap();
        std::fs::write(role.join("templates/conf/macros.j2"), "{% macro hi() %}hi{% endmacro %}").unwrap();
        std::fs::write(role.join("templates/h.j2"), "#jinja2: lstrip_blocks: True\n  {% if true %}\nx\n  {% endif %}\n").unwrap();
        std::fs::write(role.join("templates/v.j2"), "<< who >>\n").unwrap();
        let e = vars(json!({"playbook_dir": d.path().display().to_string(), "role_path": role.display().to_string(), "who": "me"}));
        assert_eq!(ev("lookup('template', 'conf/m.j2')", &e), json!("# Ansible managed\nconf/m.j2 True \n"));
        let mut own = e.clone();
        own.insert("ansible_managed".into(), json!("mine"));
        assert_eq!(ev("lookup('template', 'conf/m.j2')", &own), json!("# mine\nconf/m.j2 True \n"));
        assert_eq!(ev("lookup('template', 'conf/i.j2')", &e), json!("part+hi\n"));
        assert_eq!(ev("lookup('template', 'h.j2')", &e), json!("x\n"));
        assert_eq!(ev("lookup('template', 'v.j2', variable_start_string='<<', variable_end_string='>>')", &e), json!("me\n"));
        std::fs::write(role.join("templates/bad.j2"), "#jinja2: nosuch: True\nx\n").unwrap();
        assert!(everr("lookup('template', 'bad.j2')", &e).contains("nosuch"));
    }

    #[test]
    fn password_lookup_is_generated_once_and_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        let e = vars(json!({"playbook_dir": d.path().display().to_string()}));
        let first = ev("lookup('password', 'credentials/db length=24 chars=ascii_lowercase,digits')", &e);
        let pw = first.as_str().unwrap().to_string();
        assert_eq!(pw.len(), 24);
        assert!(pw.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{pw}");
        let file = d.path().join("credentials/db");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{pw}\n"));
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(ev("lookup('password', 'credentials/db length=24')", &e), first);
        // Ansible's files may carry a salt after the password
        std::fs::write(d.path().join("salted"), "secret salt=abc\n").unwrap();
        assert_eq!(ev("lookup('password', 'salted')", &e), json!("secret"));
        let a = ev("lookup('password', '/dev/null', length=8)", &e);
        assert_eq!(a.as_str().unwrap().len(), 8);
        assert!(everr("lookup('password', 'x encrypt=sha512_crypt')", &e).contains("not supported"));
    }
}
