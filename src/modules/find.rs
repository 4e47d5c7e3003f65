//! `find`: list files of the host that match (old releases to prune, logs to rotate, backups
//! to fetch). Read-only: one probe, no actions, so it runs in check mode too.
//!
//! The probe lists every entry under each path with GNU `find -printf` (NUL-separated records
//! with the `lstat` fields Ansible reports) and, for `contains`, the files `grep -P` (Perl
//! regular expressions, close to Python's) finds a matching line in, anchored at the line's
//! start as Ansible's `re.match` is (`read_whole_file`: anywhere in the file). The choosing is
//! done here, as Ansible's module does it: `patterns`/`excludes` on the base name (shell
//! patterns, or Python regular expressions matched from the start with `use_regex`), hidden
//! names, `file_type`, `age`/`age_stamp`, `size`, `mode`/`exact_mode`, `depth`, `limit`.
//!
//! Differences kept: files are listed in path order (Ansible's order is the directory's, i.e.
//! arbitrary); `{a,b}` in a shell pattern is an alternation here (fnmatch reads the braces as
//! characters); `encoding` is accepted only as UTF-8 (what `grep` reads).

use super::args;
use super::{sh_quote, Module, ModuleError, ModuleTask, Plan, PrepareContext, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct FindModule;

const PARAMS: &[&str] = &[
    "paths", "path", "name", "patterns", "pattern", "excludes", "exclude", "contains", "read_whole_file", "file_type", "age", "age_stamp", "size",
    "recurse", "hidden", "follow", "get_checksum", "checksum_algorithm", "checksum", "checksum_algo", "use_regex", "depth", "mode", "exact_mode",
    "encoding", "limit",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "path", alias = "name", deserialize_with = "args::list")]
    paths: Vec<String>,
    #[serde(default, alias = "pattern", deserialize_with = "args::opt_list")]
    patterns: Option<Vec<String>>,
    #[serde(default, alias = "exclude", deserialize_with = "args::opt_list")]
    excludes: Option<Vec<String>>,
    #[serde(default)]
    contains: Option<String>,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    read_whole_file: Option<bool>,
    #[serde(default)]
    file_type: Option<String>,
    #[serde(default, deserialize_with = "args::opt_string")]
    age: Option<String>,
    #[serde(default)]
    age_stamp: Option<String>,
    #[serde(default, deserialize_with = "args::opt_string")]
    size: Option<String>,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    recurse: Option<bool>,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    hidden: Option<bool>,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    follow: Option<bool>,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    get_checksum: Option<bool>,
    #[serde(default, alias = "checksum", alias = "checksum_algo")]
    checksum_algorithm: Option<String>,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    use_regex: Option<bool>,
    #[serde(default)]
    depth: Option<u32>,
    #[serde(default, deserialize_with = "args::opt_mode")]
    mode: Option<args::Mode>,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    exact_mode: Option<bool>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileType {
    Any,
    Directory,
    File,
    Link,
}

/// How names are matched.
#[derive(Debug)]
enum Matcher {
    Glob(globset::GlobMatcher),
    /// Python `re.match`: from the start of the name, not necessarily to its end.
    Regex(regex::Regex),
}

impl Matcher {
    fn is_match(&self, name: &str) -> bool {
        match self {
            Matcher::Glob(g) => g.is_match(name),
            Matcher::Regex(r) => r.find(name).is_some_and(|m| m.start() == 0),
        }
    }
}

#[derive(Debug)]
struct FindTask {
    paths: Vec<String>,
    patterns: Vec<Matcher>,
    excludes: Vec<Matcher>,
    contains: Option<String>,
    read_whole_file: bool,
    file_type: FileType,
    /// Seconds; negative: younger than.
    age: Option<i64>,
    age_stamp: &'static str,
    /// Bytes; negative: at most.
    size: Option<i64>,
    hidden: bool,
    follow: bool,
    /// The deepest level looked at (1: the path's own entries).
    max_depth: Option<u32>,
    checksum: Option<String>,
    mode: Option<u32>,
    exact_mode: bool,
    limit: Option<usize>,
}

/// `"2d"`, `"-1h"`, `"30"` (seconds) → seconds; `"10m"`, `"-1g"` (bytes) with `units`.
fn with_unit(what: &str, text: &str, units: &[(char, i64)]) -> Result<i64, ModuleError> {
    let t = text.trim().to_ascii_lowercase();
    let (num, unit) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => (&t[..t.len() - 1], Some(c)),
        _ => (t.as_str(), None),
    };
    let n: i64 = num.parse().map_err(|_| ModuleError::Args(format!("find: failed to process {what} '{text}'")))?;
    let factor = match unit {
        None => 1,
        Some(u) => units.iter().find(|(c, _)| *c == u).map(|(_, f)| *f).ok_or_else(|| ModuleError::Args(format!("find: failed to process {what} '{text}'")))?,
    };
    Ok(n * factor)
}

fn matchers(patterns: &[String], use_regex: bool) -> Result<Vec<Matcher>, ModuleError> {
    patterns
        .iter()
        .map(|p| {
            if use_regex {
                super::lineinfile::py_regex("find", "pattern", p).map(Matcher::Regex)
            } else {
                globset::GlobBuilder::new(p)
                    .literal_separator(false)
                    .backslash_escape(false)
                    .build()
                    .map(|g| Matcher::Glob(g.compile_matcher()))
                    .map_err(|e| ModuleError::Args(format!("find: invalid pattern '{p}': {e}")))
            }
        })
        .collect()
}

impl Module for FindModule {
    fn name(&self) -> &'static str {
        "find"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(&self, args: &Map<String, Value>, _ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("find", PARAMS, args)?;
        if a.paths.is_empty() {
            return Err(ModuleError::Args("find: paths is required".into()));
        }
        let use_regex = a.use_regex.unwrap_or(false);
        let file_type = match a.file_type.as_deref().unwrap_or("file") {
            "any" => FileType::Any,
            "directory" => FileType::Directory,
            "file" => FileType::File,
            "link" => FileType::Link,
            other => return Err(ModuleError::Args(format!("find: file_type must be one of any, directory, file, link; got '{other}'"))),
        };
        let age_stamp = match a.age_stamp.as_deref().unwrap_or("mtime") {
            "mtime" => "mtime",
            "atime" => "atime",
            "ctime" => "ctime",
            other => return Err(ModuleError::Args(format!("find: age_stamp must be one of atime, ctime, mtime; got '{other}'"))),
        };
        let checksum = match a.get_checksum.unwrap_or(false) {
            false => None,
            true => match a.checksum_algorithm.as_deref().unwrap_or("sha1") {
                alg @ ("md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512") => Some(alg.to_string()),
                other => return Err(ModuleError::Args(format!("find: checksum_algorithm must be one of md5, sha1, sha224, sha256, sha384, sha512; got '{other}'"))),
            },
        };
        if let Some(e) = a.encoding.as_deref().filter(|e| !matches!(e.to_ascii_lowercase().replace('-', "").as_str(), "utf8")) {
            return Err(ModuleError::Args(format!("find: contents are read as UTF-8; encoding '{e}' is not supported")));
        }
        let limit = match a.limit {
            None => None,
            Some(n) if n <= 0 => return Err(ModuleError::Args(format!("find: limit cannot be {n} (use None for unlimited)"))),
            Some(n) => Some(n as usize),
        };
        let patterns = match a.patterns.filter(|p| !p.is_empty()) {
            Some(p) => p,
            None => vec![if use_regex { ".*".into() } else { "*".into() }],
        };
        let recurse = a.recurse.unwrap_or(false);
        Ok(Box::new(FindTask {
            paths: a.paths,
            patterns: matchers(&patterns, use_regex)?,
            excludes: matchers(&a.excludes.unwrap_or_default(), use_regex)?,
            contains: a.contains,
            read_whole_file: a.read_whole_file.unwrap_or(false),
            file_type,
            age: a.age.as_deref().map(|t| with_unit("age", t, &[('s', 1), ('m', 60), ('h', 3600), ('d', 86400), ('w', 604800)])).transpose()?,
            age_stamp,
            size: a.size.as_deref().map(|t| with_unit("size", t, &[('b', 1), ('k', 1 << 10), ('m', 1 << 20), ('g', 1 << 30), ('t', 1 << 40)])).transpose()?,
            hidden: a.hidden.unwrap_or(false),
            follow: a.follow.unwrap_or(false),
            max_depth: if recurse { a.depth.filter(|d| *d > 0) } else { Some(1) },
            checksum,
            mode: a.mode.map(|m| m.resolve(0, false) & 0o7777),
            exact_mode: a.exact_mode.unwrap_or(true),
            limit,
        }))
    }
}

/// One entry the host listed.
#[derive(Debug, Clone)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    inode: u64,
    dev: u64,
    nlink: u64,
    atime: f64,
    mtime: f64,
    ctime: f64,
    user: String,
    group: String,
    path: String,
}

impl Entry {
    fn parse(rec: &str) -> Option<Entry> {
        let f: Vec<&str> = rec.splitn(14, '\t').collect();
        let [kind, mode, uid, gid, size, inode, dev, nlink, atime, mtime, ctime, user, group, path] = f[..] else { return None };
        let num = |s: &str| s.parse::<u64>().ok();
        let time = |s: &str| s.parse::<f64>().ok();
        // `%u`/`%g` print the number when the id has no name; Ansible gives "" then.
        let name = |n: &str, id: &str| if n == id { String::new() } else { n.to_string() };
        Some(Entry {
            kind: kind.chars().next()?,
            mode: u32::from_str_radix(mode, 8).ok()?,
            uid: num(uid)?,
            gid: num(gid)?,
            size: num(size)?,
            inode: num(inode)?,
            dev: num(dev)?,
            nlink: num(nlink)?,
            atime: time(atime)?,
            mtime: time(mtime)?,
            ctime: time(ctime)?,
            user: name(user, uid),
            group: name(group, gid),
            path: path.to_string(),
        })
    }

    fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    fn stamp(&self, which: &str) -> f64 {
        match which {
            "atime" => self.atime,
            "ctime" => self.ctime,
            _ => self.mtime,
        }
    }

    /// Ansible's `statinfo` fields plus `path`.
    fn info(&self) -> Map<String, Value> {
        let m = self.mode;
        let bit = |b: u32| m & b != 0;
        let v = json!({
            "path": self.path, "mode": format!("{:04o}", m & 0o7777),
            "isdir": self.kind == 'd', "ischr": self.kind == 'c', "isblk": self.kind == 'b', "isreg": self.kind == 'f',
            "isfifo": self.kind == 'p', "islnk": self.kind == 'l', "issock": self.kind == 's',
            "uid": self.uid, "gid": self.gid, "size": self.size, "inode": self.inode, "dev": self.dev, "nlink": self.nlink,
            "atime": self.atime, "mtime": self.mtime, "ctime": self.ctime, "gr_name": self.group, "pw_name": self.user,
            "wusr": bit(0o200), "rusr": bit(0o400), "xusr": bit(0o100), "wgrp": bit(0o020), "rgrp": bit(0o040), "xgrp": bit(0o010),
            "woth": bit(0o002), "roth": bit(0o004), "xoth": bit(0o001), "isuid": bit(0o4000), "isgid": bit(0o2000),
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// What the probe said.
#[derive(Debug, Default)]
struct Listing {
    now: f64,
    entries: Vec<Entry>,
    /// Paths that are not directories, with why.
    skipped: Vec<(String, String)>,
    /// Files with a line matching `contains`.
    containing: std::collections::HashSet<String>,
    checksums: std::collections::HashMap<String, String>,
}

fn parse_listing(out: &str) -> Result<Listing, ModuleError> {
    let mut l = Listing::default();
    for rec in out.split('\0').filter(|r| !r.is_empty()) {
        let (tag, rest) = rec.split_once('\t').unwrap_or((rec, ""));
        match tag {
            "N" => l.now = rest.trim().parse().map_err(|_| ModuleError::Probe(format!("find: bad time '{rest}'")))?,
            "E" => l.entries.push(Entry::parse(rest).ok_or_else(|| ModuleError::Probe(format!("find: bad entry '{rest}'")))?),
            "S" => {
                let (p, why) = rest.split_once('\t').unwrap_or((rest, ""));
                l.skipped.push((p.to_string(), why.to_string()));
            }
            "C" => {
                l.containing.insert(rest.to_string());
            }
            "K" => {
                // `sha1sum` output: `<hex>  <path>`
                if let Some((sum, p)) = rest.split_once("  ") {
                    l.checksums.insert(p.to_string(), sum.to_string());
                }
            }
            other => return Err(ModuleError::Probe(format!("find: unexpected output '{other}'"))),
        }
    }
    Ok(l)
}

impl FindTask {
    fn name_matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(name)) && !self.excludes.iter().any(|e| e.is_match(name))
    }

    fn age_ok(&self, e: &Entry, now: f64) -> bool {
        let elapsed = now - e.stamp(self.age_stamp);
        match self.age {
            None => true,
            Some(a) if a >= 0 => elapsed >= a as f64,
            Some(a) => elapsed <= a.unsigned_abs() as f64,
        }
    }

    fn size_ok(&self, e: &Entry) -> bool {
        match self.size {
            None => true,
            Some(s) if s >= 0 => e.size >= s as u64,
            Some(s) => e.size <= s.unsigned_abs(),
        }
    }

    fn mode_ok(&self, e: &Entry) -> bool {
        match self.mode {
            None | Some(0) => true,
            Some(m) if self.exact_mode => e.mode & 0o7777 == m,
            Some(m) => e.mode & m != 0,
        }
    }

    /// Ansible's choice for one entry.
    fn chooses(&self, e: &Entry, l: &Listing) -> bool {
        if e.name().starts_with('.') && !self.hidden {
            return false;
        }
        if !self.name_matches(e.name()) || !self.age_ok(e, l.now) || !self.mode_ok(e) {
            return false;
        }
        match self.file_type {
            // Sizes count for regular files only.
            FileType::Any => e.kind != 'f' || self.size_ok(e),
            FileType::Directory => e.kind == 'd',
            FileType::File => e.kind == 'f' && self.size_ok(e) && (self.contains.is_none() || l.containing.contains(&e.path)),
            FileType::Link => e.kind == 'l',
        }
    }

    fn find_options(&self) -> String {
        let mut o = String::from(" -mindepth 1");
        if let Some(d) = self.max_depth {
            o.push_str(&format!(" -maxdepth {d}"));
        }
        o
    }
}

impl ModuleTask for FindTask {
    fn probes(&self) -> Vec<Probe> {
        let follow = if self.follow { " -L" } else { "" };
        let opts = self.find_options();
        let mut s = String::from("printf 'N\\t%s\\0' \"$(date +%s.%N)\"\n");
        for p in &self.paths {
            s.push_str(&format!("p={}\nif [ -d \"$p\" ]; then\n", sh_quote(p)));
            s.push_str(&format!(
                "  find{follow} \"$p\"{opts} -printf 'E\\t%y\\t%m\\t%U\\t%G\\t%s\\t%i\\t%D\\t%n\\t%A@\\t%T@\\t%C@\\t%u\\t%g\\t%p\\0' 2>/dev/null\n"
            ));
            if let Some(c) = &self.contains {
                let (flags, pattern) = if self.read_whole_file { ("-lZPz", c.clone()) } else { ("-lZP", format!("^(?:{c})")) };
                s.push_str(&format!(
                    "  find{follow} \"$p\"{opts} -type f -exec grep {flags} -e {} -- {{}} + 2>/dev/null | sed -z 's/^/C\\t/'\n",
                    sh_quote(&pattern)
                ));
            }
            if let Some(alg) = &self.checksum {
                s.push_str(&format!("  find{follow} \"$p\"{opts} -type f -exec {alg}sum -- {{}} + 2>/dev/null | tr '\\n' '\\0' | sed -z 's/^/K\\t/'\n"));
            }
            s.push_str("else\n  printf 'S\\t%s\\t%s\\0' \"$p\" \"'$p' is not a directory\"\nfi\n");
        }
        s.push_str("true\n");
        vec![Probe::new(s, Scope::Host)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes.first().ok_or_else(|| ModuleError::Probe("find: missing probe".into()))?;
        if r.rc != 0 {
            return Err(ModuleError::Probe(format!("find: listing failed (exit {}): {}", r.rc, r.stderr.trim())));
        }
        let l = parse_listing(&r.stdout)?;
        let mut chosen: Vec<&Entry> = l.entries.iter().filter(|e| self.chooses(e, &l)).collect();
        chosen.sort_by(|a, b| a.path.cmp(&b.path));
        let mut msg = "All paths examined";
        if let Some(n) = self.limit {
            if chosen.len() >= n {
                chosen.truncate(n);
                msg = "Limit of matches reached";
            }
        }
        if !l.skipped.is_empty() {
            msg = "Not all paths examined, check warnings for details";
        }
        let files: Vec<Value> = chosen
            .iter()
            .map(|e| {
                let mut info = e.info();
                if let Some(sum) = l.checksums.get(&e.path).filter(|_| e.kind == 'f') {
                    info.insert("checksum".into(), json!(sum));
                }
                Value::Object(info)
            })
            .collect();
        let mut plan = Plan::ok();
        plan.result.insert("matched".into(), json!(files.len()));
        plan.result.insert("files".into(), Value::Array(files));
        plan.result.insert("examined".into(), json!(l.entries.len()));
        plan.result.insert("msg".into(), json!(msg));
        let skipped: Map<String, Value> = l.skipped.iter().map(|(p, why)| (p.clone(), json!(why))).collect();
        plan.result.insert("skipped_paths".into(), Value::Object(skipped));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::{apply, assert_sh_syntax};

    fn task(args: Value) -> Result<Box<dyn ModuleTask>, ModuleError> {
        crate::modules::testutil::prepare(&FindModule, args, std::path::Path::new("."))
    }

    fn names(plan: &Plan, root: &std::path::Path) -> Vec<String> {
        let root = format!("{}/", root.display());
        plan.result["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().trim_start_matches(&root).to_string()).collect()
    }

    /// A tree: `releases/{r1,r2,r3}/`, files of several sizes and ages, a hidden one, a link.
    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for r in ["releases/r1", "releases/r2", "releases/r3/static"] {
            std::fs::create_dir_all(p.join(r)).unwrap();
        }
        std::fs::write(p.join("app.log"), "started\nERROR disk full\n").unwrap();
        std::fs::write(p.join("old.log"), "x".repeat(2048)).unwrap();
        std::fs::write(p.join("app.conf"), "ERROR not at the start? no: it is\n").unwrap();
        std::fs::write(p.join(".hidden.log"), "h").unwrap();
        std::fs::write(p.join("releases/r3/static/site.css"), "body{}").unwrap();
        std::os::unix::fs::symlink("releases/r3", p.join("current")).unwrap();
        // old.log: ten days old
        let ten_days = std::time::SystemTime::now() - std::time::Duration::from_secs(10 * 86400);
        std::fs::File::options().write(true).open(p.join("old.log")).unwrap().set_modified(ten_days).unwrap();
        d
    }

    fn find(root: &std::path::Path, mut args: Value) -> Plan {
        args["paths"] = json!(root.display().to_string());
        let t = task(args).unwrap();
        for p in t.probes() {
            assert_sh_syntax(&p.script);
        }
        apply(t.as_ref())
    }

    #[test]
    fn chooses_files_as_ansible_does() {
        let d = tree();
        let p = d.path();
        assert_eq!(names(&find(p, json!({})), p), ["app.conf", "app.log", "old.log"], "files at the top only, no hidden ones");
        assert_eq!(names(&find(p, json!({"patterns": "*.log"})), p), ["app.log", "old.log"]);
        assert_eq!(names(&find(p, json!({"patterns": "*.log", "hidden": true})), p), [".hidden.log", "app.log", "old.log"]);
        assert_eq!(names(&find(p, json!({"patterns": ["*.log", "*.css"], "excludes": "old*", "recurse": true})), p), ["app.log", "releases/r3/static/site.css"]);
        assert_eq!(names(&find(p, json!({"patterns": "^app\\.", "use_regex": true})), p), ["app.conf", "app.log"]);
        assert_eq!(names(&find(p, json!({"patterns": "log", "use_regex": true})), p), Vec::<String>::new(), "re.match anchors at the start");
        assert_eq!(names(&find(p, json!({"age": "1w"})), p), ["old.log"]);
        assert_eq!(names(&find(p, json!({"age": "-1d"})), p), ["app.conf", "app.log"]);
        assert_eq!(names(&find(p, json!({"size": "1k"})), p), ["old.log"]);
        assert_eq!(names(&find(p, json!({"size": "-100b"})), p), ["app.conf", "app.log"]);
        assert_eq!(names(&find(p, json!({"contains": "ERROR"})), p), ["app.conf", "app.log"]);
        assert_eq!(names(&find(p, json!({"contains": "disk"})), p), Vec::<String>::new(), "a line must match from its start");
        assert_eq!(names(&find(p, json!({"contains": "disk", "read_whole_file": true})), p), ["app.log"]);
        assert_eq!(names(&find(p, json!({"file_type": "directory", "paths": "x"})), p), ["releases"]);
        assert_eq!(names(&find(p, json!({"file_type": "directory", "recurse": true})), p), ["releases", "releases/r1", "releases/r2", "releases/r3", "releases/r3/static"]);
        assert_eq!(names(&find(p, json!({"file_type": "directory", "recurse": true, "depth": 2})), p), ["releases", "releases/r1", "releases/r2", "releases/r3"]);
        assert_eq!(names(&find(p, json!({"file_type": "link"})), p), ["current"]);
        assert_eq!(names(&find(p, json!({"file_type": "any", "patterns": "[acr]*"})), p), ["app.conf", "app.log", "current", "releases"]);
        let limited = find(p, json!({"file_type": "any", "limit": 2}));
        assert_eq!((limited.result["matched"].clone(), limited.result["msg"].clone()), (json!(2), json!("Limit of matches reached")));
    }

    #[test]
    fn reports_each_file_as_ansible_does() {
        let d = tree();
        let p = d.path();
        let plan = find(p, json!({"patterns": "app.log", "get_checksum": true}));
        assert!(plan.actions.is_empty() && !plan.changed());
        assert_eq!(plan.result["matched"], 1);
        assert_eq!(plan.result["msg"], "All paths examined");
        let f = &plan.result["files"][0];
        assert_eq!(f["size"], 24);
        assert_eq!(f["isreg"], true);
        assert_eq!(f["isdir"], false);
        assert_eq!(f["checksum"], json!(hex::encode(<sha1::Sha1 as sha1::Digest>::digest(b"started\nERROR disk full\n"))));
        assert!(f["mtime"].as_f64().unwrap() > 1.7e9 && f["mode"].as_str().unwrap().len() == 4 && f["rusr"] == true);
        assert!(f["pw_name"].is_string() && f["uid"].is_u64());
        assert_eq!(plan.result["examined"], 6, "every entry at the top, hidden ones too");
        let modes = find(p, json!({"mode": f["mode"].clone(), "patterns": "app.*"}));
        assert_eq!(names(&modes, p), ["app.conf", "app.log"]);
        assert_eq!(names(&find(p, json!({"mode": "0001", "exact_mode": false})), p), Vec::<String>::new());
    }

    #[test]
    fn paths_that_are_not_folders_are_skipped_with_a_reason() {
        let d = tree();
        let t = task(json!({"paths": [d.path().join("app.log").display().to_string(), "/nonexistent-md"]})).unwrap();
        let plan = apply(t.as_ref());
        assert_eq!(plan.result["matched"], 0);
        assert_eq!(plan.result["msg"], "Not all paths examined, check warnings for details");
        assert_eq!(plan.result["skipped_paths"]["/nonexistent-md"], "'/nonexistent-md' is not a directory");
    }

    #[test]
    fn arguments() {
        assert!(task(json!({"paths": "/x", "age": "2 days"})).err().unwrap().to_string().contains("failed to process age"));
        assert!(task(json!({"paths": "/x", "size": "1q"})).err().unwrap().to_string().contains("failed to process size"));
        assert!(task(json!({"paths": "/x", "limit": 0})).err().unwrap().to_string().contains("limit cannot be 0"));
        assert!(task(json!({"paths": "/x", "file_type": "socket"})).err().unwrap().to_string().contains("file_type must be"));
        assert!(task(json!({"paths": "/x", "encoding": "latin-1"})).err().unwrap().to_string().contains("encoding"));
        assert!(task(json!({"paths": "/x", "encoding": "UTF-8"})).is_ok());
        assert!(task(json!({"patterns": "*"})).is_err());
        assert_eq!(with_unit("age", "-2H", &[('h', 3600)]).unwrap(), -7200);
    }
}
