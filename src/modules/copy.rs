//! `copy`: put a file on the host from `content`, a local file (`src`, looked up in `files/`),
//! or another file on the host (`remote_src`). Changed only when the sha256 of the content or
//! the owner/group/mode differ; writes are atomic (temp file beside the destination, attributes
//! set, optional `validate`, optional backup, rename). `template` reuses [`FileWrite`].
//!
//! A vault-encrypted local `src` is decrypted with the run's vault passwords (`decrypt: false`
//! copies it as it is), as in Ansible.
//!
//! A folder on the host as `src` (`remote_src`) is copied as Ansible does (see
//! [`FileWrite::plan_tree`]), compared file by file through their sha256.
//!
//! Not supported: `checksum` (accepted and ignored), SELinux/attributes.

use super::args::{self, opt_boolish, opt_string, Mode};
use super::common::{attributes_plan, content_diff, sha256_hex, stat_lines, FileKind, FileState};
use super::file::{chmod_arg, extra, parse_with_extras};
use super::{
    sh_quote, Action, ActionOutput, Diff, Module, ModuleError, ModuleTask, Plan, PrepareContext,
    Probe, ProbeResult, Scope,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct CopyModule;

const PARAMS: &[&str] = &[
    "dest",
    "src",
    "content",
    "owner",
    "group",
    "mode",
    "directory_mode",
    "backup",
    "force",
    "thirsty",
    "validate",
    "follow",
    "local_follow",
    "remote_src",
    "decrypt",
    "checksum",
    "unsafe_writes",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    dest: String,
    #[serde(default, deserialize_with = "opt_string")]
    src: Option<String>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default, deserialize_with = "opt_string")]
    owner: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group: Option<String>,
    #[serde(default)]
    mode: Option<Value>,
    #[serde(default)]
    directory_mode: Option<Value>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backup: Option<bool>,
    #[serde(default, alias = "thirsty", deserialize_with = "opt_boolish")]
    force: Option<bool>,
    #[serde(default)]
    validate: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    follow: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    local_follow: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    remote_src: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    decrypt: Option<bool>,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    unsafe_writes: Option<bool>,
}

/// `mode`: a mode, or `preserve` (the source file's mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModeSpec {
    Given(Mode),
    /// Resolved for local sources at prepare time; for `remote_src` from the probe.
    PreserveRemote,
}

pub(crate) fn parse_mode(v: Option<&Value>) -> Result<Option<ModeSpec>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim() == "preserve" => Ok(Some(ModeSpec::PreserveRemote)),
        Some(v) => Mode::parse(v).map(|m| Some(ModeSpec::Given(m))),
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Source {
    Content(Vec<u8>),
    /// A file on the host.
    Remote(String),
}

/// One file to put on the host.
#[derive(Debug, Clone)]
pub(crate) struct FileWrite {
    pub module: &'static str,
    pub dest: String,
    /// Basename of the source, used when `dest` is (or ends like) a directory.
    pub base: Option<String>,
    pub source: Source,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<ModeSpec>,
    pub backup: bool,
    pub force: bool,
    pub validate: Option<String>,
    pub follow: bool,
    /// Extra result fields (`src`).
    pub result: Map<String, Value>,
}

impl Module for CopyModule {
    fn name(&self) -> &'static str {
        "copy"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        if let Some(tree) = build_tree(args, ctx)? {
            return Ok(Box::new(tree));
        }
        Ok(Box::new(build(args, Some(ctx))?))
    }
}

/// `copy` of a controller directory, as Ansible does it: `src: app/` copies what `app` holds
/// into `dest`, `src: app` copies `app` itself (`dest/app`). Every folder becomes a `file`
/// state=directory (with `directory_mode`, else as created), every file a [`FileWrite`]
/// (with `mode`, `preserve`: the controller file's); owner and group apply to both. Symbolic
/// links are followed (`local_follow`); other special files are skipped. Planned as one task:
/// the parts' probes go in one batch, their changes in order, folders before their files.
struct CopyTree {
    parts: Vec<Box<dyn ModuleTask>>,
    result: Map<String, Value>,
}

fn build_tree(args: &Map<String, Value>, ctx: &PrepareContext) -> Result<Option<CopyTree>, ModuleError> {
    let a: Args = args::parse("copy", PARAMS, args)?;
    let (Some(src), None, false) = (&a.src, &a.content, a.remote_src.unwrap_or(false)) else { return Ok(None) };
    let Some(root_src) = ctx.find_local("files", src).filter(|p| p.is_dir()) else { return Ok(None) };
    let dest = a.dest.trim_end_matches('/');
    let root = if src.ends_with('/') {
        dest.to_string()
    } else {
        format!("{dest}/{}", root_src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
    };
    let mut dirs = vec![String::new()];
    let mut files = Vec::new();
    walk(&root_src, "", &mut dirs, &mut files)?;
    let under = |rel: &str| if rel.is_empty() { root.clone() } else { format!("{root}/{rel}") };
    let common = |m: &mut Map<String, Value>| {
        for k in ["owner", "group"] {
            if let Some(v) = args.get(k) {
                m.insert(k.into(), v.clone());
            }
        }
    };
    let mut parts: Vec<Box<dyn ModuleTask>> = Vec::new();
    for d in dirs {
        let mut m = Map::new();
        m.insert("path".into(), json!(under(&d)));
        m.insert("state".into(), json!("directory"));
        if let Some(dm) = args.get("directory_mode") {
            m.insert("mode".into(), dm.clone());
        }
        common(&mut m);
        parts.push(super::file::task(&m).map_err(|e| ModuleError::Args(format!("copy: {e}")))?);
    }
    for (rel, path) in files {
        let mut m = args.clone();
        m.remove("directory_mode");
        m.insert("src".into(), json!(path.display().to_string()));
        m.insert("dest".into(), json!(under(&rel)));
        common(&mut m);
        parts.push(Box::new(build(&m, Some(ctx))?));
    }
    let mut result = Map::new();
    result.insert("src".into(), json!(src));
    result.insert("dest".into(), json!(format!("{dest}/")));
    Ok(Some(CopyTree { parts, result }))
}

/// The folders (relative paths appended to `dirs`, parents first) and files (relative path,
/// controller path) under a controller directory, in name order.
fn walk(dir: &std::path::Path, rel: &str, dirs: &mut Vec<String>, files: &mut Vec<(String, std::path::PathBuf)>) -> Result<(), ModuleError> {
    let read = |e: std::io::Error| ModuleError::LocalFile(format!("copy: cannot read {}: {e}", dir.display()));
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(read)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel_path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let path = e.path();
        // metadata() follows symbolic links (local_follow).
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                dirs.push(rel_path.clone());
                walk(&path, &rel_path, dirs, files)?;
            }
            Ok(m) if m.is_file() => files.push((rel_path, path)),
            _ => {}
        }
    }
    Ok(())
}

impl ModuleTask for CopyTree {
    fn probes(&self) -> Vec<Probe> {
        self.parts.iter().flat_map(|p| p.probes()).collect()
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let mut plan = Plan::ok();
        plan.result.extend(self.result.clone());
        let mut at = 0;
        for part in &self.parts {
            let n = part.probes().len();
            let got = probes.get(at..at + n).ok_or_else(|| ModuleError::Probe("copy: probe results missing".into()))?;
            at += n;
            let p = part.plan(got)?;
            if let Some(f) = p.failed {
                plan.failed = Some(f);
                return Ok(plan);
            }
            plan.diffs.extend(p.diffs);
            plan.actions.extend(p.actions);
        }
        Ok(plan)
    }
}

/// Ansible writes non-string `content` (a YAML mapping or list) as JSON (`json.dumps`).
fn content_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.clone().into_bytes(),
        Value::Bool(true) => b"True".to_vec(),
        Value::Bool(false) => b"False".to_vec(),
        Value::Null => Vec::new(),
        Value::Number(n) => n.to_string().into_bytes(),
        other => crate::template::json_dumps(other).into_bytes(),
    }
}

fn local_mode(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

fn build(
    args: &Map<String, Value>,
    ctx: Option<&PrepareContext>,
) -> Result<FileWrite, ModuleError> {
    let a: Args = args::parse("copy", PARAMS, args)?;
    let mut mode =
        parse_mode(a.mode.as_ref()).map_err(|e| ModuleError::Args(format!("copy: {e}")))?;
    parse_mode(a.directory_mode.as_ref())
        .map_err(|e| ModuleError::Args(format!("copy: directory_mode: {e}")))?;
    let _ = (a.checksum, a.unsafe_writes, a.local_follow);
    if let Some(v) = &a.validate {
        if !v.contains("%s") {
            return Err(ModuleError::Args(format!(
                "copy: validate must contain %s: {v}"
            )));
        }
    }
    let remote = a.remote_src.unwrap_or(false);
    let mut result = Map::new();
    let (source, base) = match (&a.content, &a.src) {
        (Some(_), Some(_)) => {
            return Err(ModuleError::Args(
                "copy: src and content are mutually exclusive".into(),
            ))
        }
        (None, None) => {
            return Err(ModuleError::Args(
                "copy: one of src or content is required".into(),
            ))
        }
        (Some(c), None) => {
            if a.dest.ends_with('/') {
                return Err(ModuleError::Args(
                    "copy: can not use content with a dir as dest".into(),
                ));
            }
            if mode == Some(ModeSpec::PreserveRemote) {
                return Err(ModuleError::Args("copy: mode=preserve needs src".into()));
            }
            (Source::Content(content_bytes(c)), None)
        }
        (None, Some(src)) => {
            let base = src
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(src)
                .to_string();
            result.insert("src".into(), json!(src));
            if remote {
                (Source::Remote(src.clone()), Some(base))
            } else {
                let ctx = ctx
                    .ok_or_else(|| ModuleError::LocalFile(format!("copy: cannot look up {src}")))?;
                let path = ctx
                    .find_local("files", src)
                    .ok_or_else(|| ModuleError::LocalFile(format!("Could not find or access '{src}' (searched files/ of the role and the playbook directory)")))?;
                let read = if a.decrypt == Some(false) { std::fs::read(&path) } else { crate::vault::read_file(&path) };
                let data = read.map_err(|e| {
                    ModuleError::LocalFile(format!("Could not read '{}': {e}", path.display()))
                })?;
                if mode == Some(ModeSpec::PreserveRemote) {
                    mode = local_mode(&path).map(|m| ModeSpec::Given(Mode::Octal(m)));
                }
                // registered as the file that was copied: the controller's
                let full: std::path::PathBuf = if path.is_absolute() { path.clone() } else { std::env::current_dir().map(|d| d.join(&path)).unwrap_or(path.clone()) }
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                result.insert("src".into(), json!(full.display().to_string()));
                (Source::Content(data), Some(base))
            }
        }
    };
    Ok(FileWrite {
        module: "copy",
        dest: a.dest,
        base,
        source,
        owner: a.owner.filter(|s| !s.is_empty()),
        group: a.group.filter(|s| !s.is_empty()),
        mode,
        backup: a.backup.unwrap_or(false),
        force: a.force.unwrap_or(true),
        validate: a.validate.filter(|v| !v.trim().is_empty()),
        follow: a.follow.unwrap_or(false),
        result,
    })
}

impl FileWrite {
    fn dest_into_dir(&self) -> bool {
        self.dest.ends_with('/')
    }

    fn script_for(
        &self,
        target: &str,
        mode: Option<&Mode>,
        owner: Option<&str>,
        group: Option<&str>,
        keep_mode: Option<u32>,
    ) -> String {
        let t = sh_quote(target);
        let mut s = format!("set -e\nd=$(dirname -- {t})\n");
        if self.dest_into_dir() {
            s.push_str("mkdir -p -- \"$d\"\n");
        } else {
            s.push_str("[ -d \"$d\" ] || { echo \"Destination directory $d does not exist\" >&2; exit 1; }\n");
        }
        s.push_str("tmp=$(mktemp \"$d/.provision.XXXXXXXX\")\ntrap 'rm -f \"$tmp\"' EXIT\n");
        match &self.source {
            Source::Content(_) => s.push_str("cat > \"$tmp\"\n"),
            Source::Remote(src) => s.push_str(&format!("cat -- {} > \"$tmp\"\n", sh_quote(src))),
        }
        if let Some(o) = owner {
            s.push_str(&format!("chown {} \"$tmp\"\n", sh_quote(o)));
        }
        if let Some(g) = group {
            s.push_str(&format!("chgrp {} \"$tmp\"\n", sh_quote(g)));
        }
        match (mode, keep_mode) {
            (Some(Mode::Octal(m)), _) => s.push_str(&format!("chmod {m:04o} \"$tmp\"\n")),
            (Some(m @ Mode::Symbolic(_)), Some(k)) => s.push_str(&format!(
                "chmod {k:04o} \"$tmp\"\nchmod {} \"$tmp\"\n",
                chmod_arg(m)
            )),
            (Some(m @ Mode::Symbolic(_)), None) => s.push_str(&format!(
                "chmod $(printf '%04o' $((0666 & ~$(umask)))) \"$tmp\"\nchmod {} \"$tmp\"\n",
                chmod_arg(m)
            )),
            (None, Some(k)) => s.push_str(&format!("chmod {k:04o} \"$tmp\"\n")),
            // mktemp creates 0600; give the umask default a new file would get.
            (None, None) => s.push_str("chmod $(printf '%04o' $((0666 & ~$(umask)))) \"$tmp\"\n"),
        }
        if let Some(v) = &self.validate {
            let check = v.replace("%s", "\"$tmp\"");
            let shown = v.replace('\'', "");
            s.push_str(&format!(
                "if ! ( {check} ) >&2; then echo 'failed to validate: {shown}' >&2; exit 1; fi\n"
            ));
        }
        if self.backup {
            s.push_str(&format!(
                "if [ -e {t} ]; then b={t}.$$.$(date +%Y-%m-%d@%H:%M:%S)~; cp -p -- {t} \"$b\"; printf 'backup_file|%s\\n' \"$b\"; fi\n"
            ));
        }
        s.push_str(&format!("mv -f \"$tmp\" {t}\ntrap - EXIT\n{}\n", after_stat(target)));
        s
    }

    /// `remote_src` with a folder as `src`: where its contents go, as Ansible decides
    /// (`src/`: into `dest`; `src`: into `dest/<name of src>`).
    fn tree_target(&self) -> Option<String> {
        let Source::Remote(src) = &self.source else { return None };
        let dest = self.dest.trim_end_matches('/');
        Some(if src.ends_with('/') { dest.to_string() } else { format!("{dest}/{}", self.base.as_deref().unwrap_or("")) })
    }

    /// Lists (after `@src|directory`) the source folder's entries, links followed
    /// (`@sd|MODE|REL` folders, `@sf|MODE|SHA256|REL` files), and what the target holds
    /// (`@tt|dir`, or `@tt|notdir` when it is something else; `@td|OWNER|GROUP|REL`, `@tf|OWNER|GROUP|SHA256|REL`,
    /// `@to|REL` for other kinds).
    fn tree_probe(&self) -> String {
        let Some(t) = self.tree_target() else { return String::new() };
        format!(
            "t={};              (cd -- \"$s\" && find -L . -mindepth 1 -type d -printf '@sd|%m|%P\\n' && find -L . -mindepth 1 -type f -print | sort | while IFS= read -r f; do printf '@sf|%s|%s|%s\\n' \"$(stat -L -c %a -- \"$f\")\" \"$(sha256sum < \"$f\" | cut -c1-64)\" \"${{f#./}}\"; done); \
             if [ -e \"$t\" ] && [ ! -d \"$t\" ]; then echo '@tt|notdir'; \
             elif [ -d \"$t\" ]; then echo '@tt|dir'; (cd -- \"$t\" && find . -mindepth 1 \\( -type d -printf '@td|%u|%g|%P\\n' \\) -o \\( ! -type f -printf '@to|%P\\n' \\) && find . -mindepth 1 -type f -print | sort | while IFS= read -r f; do printf '@tf|%s|%s|%s\\n' \"$(stat -c '%U|%G' -- \"$f\")\" \"$(sha256sum < \"$f\" | cut -c1-64)\" \"${{f#./}}\"; done); fi; ",
            sh_quote(&t)
        )
    }

    /// The plan for a source folder on the host (see [`Self::tree_probe`]): as Ansible's
    /// `remote_src` copy, missing folders are made and missing or different files copied
    /// (with the source's mode), what only the target holds is kept, and `owner`/`group` go
    /// to the whole target recursively.
    fn plan_tree(&self, extras: &[(String, String)], src: &str, mut plan: Plan) -> Result<Plan, ModuleError> {
        let t = self.tree_target().unwrap_or_default();
        if extra(extras, "tt") == Some("notdir") {
            plan.failed = Some(format!("Destination {t} is not a directory (copying the directory {src})"));
            return Ok(plan);
        }
        let mut have_dirs = std::collections::BTreeMap::new();
        let mut have_files = std::collections::BTreeMap::new();
        let mut others = std::collections::BTreeSet::new();
        for (k, v) in extras {
            match k.as_str() {
                "td" => {
                    let mut it = v.splitn(3, '|');
                    if let (Some(o), Some(g), Some(rel)) = (it.next(), it.next(), it.next()) {
                        have_dirs.insert(rel.to_string(), (o.to_string(), g.to_string()));
                    }
                }
                "tf" => {
                    let mut it = v.splitn(4, '|');
                    if let (Some(o), Some(g), Some(sha), Some(rel)) = (it.next(), it.next(), it.next(), it.next()) {
                        have_files.insert(rel.to_string(), (o.to_string(), g.to_string(), sha.to_string()));
                    }
                }
                "to" => {
                    others.insert(v.clone());
                }
                _ => {}
            }
        }
        let q = |rel: &str| sh_quote(&format!("{t}/{rel}"));
        let qs = |rel: &str| sh_quote(&format!("{}/{rel}", src.trim_end_matches('/')));
        let mut cmds = vec![format!("set -e\nmkdir -p -- {}", sh_quote(&t))];
        let mut changed_paths = Vec::new();
        let mut owned = true;
        let wrong = |o: &str, g: &str| self.owner.as_deref().is_some_and(|w| w != o) || self.group.as_deref().is_some_and(|w| w != g);
        for (k, v) in extras {
            match k.as_str() {
                "sd" => {
                    let Some((mode, rel)) = v.split_once('|') else { continue };
                    match have_dirs.get(rel) {
                        Some((o, g)) => owned &= !wrong(o, g),
                        None => {
                            if others.contains(rel) || have_files.contains_key(rel) {
                                plan.failed = Some(format!("cannot copy the directory {rel} of {src} over a file in {t}"));
                                return Ok(plan);
                            }
                            cmds.push(format!("mkdir -p -- {}\nchmod {mode} -- {}", q(rel), q(rel)));
                            changed_paths.push(format!("{t}/{rel}/"));
                        }
                    }
                }
                "sf" => {
                    let mut it = v.splitn(3, '|');
                    let (Some(mode), Some(sha), Some(rel)) = (it.next(), it.next(), it.next()) else { continue };
                    match have_files.get(rel) {
                        Some((o, g, have)) if have == sha => owned &= !wrong(o, g),
                        _ => {
                            if have_dirs.contains_key(rel) {
                                plan.failed = Some(format!("cannot copy the file {rel} of {src} over a directory in {t}"));
                                return Ok(plan);
                            }
                            cmds.push(format!("rm -f -- {d}\ncp -L -- {} {d}\nchmod {mode} -- {d}", qs(rel), d = q(rel)));
                            changed_paths.push(format!("{t}/{rel}"));
                        }
                    }
                }
                _ => {}
            }
        }
        if extra(extras, "tt").is_none() {
            changed_paths.insert(0, format!("{t}/"));
        }
        if !changed_paths.is_empty() || !owned {
            if let Some(o) = &self.owner {
                cmds.push(format!("chown -R {} -- {}", sh_quote(o), sh_quote(&t)));
            }
            if let Some(g) = &self.group {
                cmds.push(format!("chgrp -R {} -- {}", sh_quote(g), sh_quote(&t)));
            }
            plan.diffs.push(Diff::Field {
                name: format!("copy of the directory {src}"),
                before: if changed_paths.is_empty() { "owner/group differ".into() } else { format!("{} missing or different", changed_paths.len()) },
                after: if changed_paths.is_empty() { format!("{t} owned as asked") } else { changed_paths.join(" ") },
            });
            plan.actions.push(Action::new(format!("copy the directory {src} into {t}"), cmds.join("\n"), Scope::path(&t)));
        }
        plan.result.insert("dest".into(), json!(self.dest));
        plan.result.remove("checksum");
        Ok(plan)
    }

    fn base_result(&self, plan: &mut Plan, target: &str) {
        plan.result.extend(self.result.clone());
        plan.result.insert("dest".into(), json!(target));
    }
}

impl ModuleTask for FileWrite {
    fn probes(&self) -> Vec<Probe> {
        let mut s = format!("p={}\n", sh_quote(self.dest.trim_end_matches('/')));
        let mut reads = vec![self.dest.clone()];
        match &self.base {
            Some(b) if self.dest_into_dir() => s.push_str(&format!(
                "p=\"$p\"/{}\nprintf '@into|%s\\n' \"$p\"\n",
                sh_quote(b)
            )),
            Some(b) => s.push_str(&format!(
                "if [ -d \"$p\" ]; then p=\"$p\"/{}; printf '@into|%s\\n' \"$p\"; fi\n",
                sh_quote(b)
            )),
            None => s.push_str("if [ -d \"$p\" ] && [ ! -L \"$p\" ]; then echo '@isdir|yes'; fi\n"),
        }
        if self.follow {
            s.push_str("if [ -L \"$p\" ] && [ -e \"$p\" ]; then p=$(readlink -f -- \"$p\"); printf '@real|%s\\n' \"$p\"; fi\n");
        }
        if let Source::Remote(src) = &self.source {
            reads.push(src.clone());
            s.push_str(&format!(
                "s={}\nif [ -f \"$s\" ]; then printf '@src_mode|%s\\n' \"$(stat -L -c %a -- \"$s\")\"; \
                 printf '@src_sha256|%s\\n' \"$(sha256sum < \"$s\" | cut -d' ' -f1)\"; \
                 z=$(stat -L -c %s -- \"$s\"); printf '@src_size|%s\\n' \"$z\"; \
                 if [ \"$z\" -le {} ]; then printf '@src_content|%s\\n' \"$(base64 -w0 < \"$s\")\"; fi; \
                 elif [ -d \"$s\" ]; then echo '@src|directory'; {}else echo '@src|missing'; fi\n",
                sh_quote(src),
                super::common::MAX_DIFF_BYTES,
                self.tree_probe()
            ));
        }
        s.push_str(&stat_lines(true));
        let dest = self.dest.trim_end_matches('/');
        let mut probe = Probe::new(s, Scope::Paths(reads)).with_stat(dest);
        if let Some(b) = &self.base {
            probe = probe.with_stat(format!("{dest}/{b}"));
        }
        vec![probe]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes
            .first()
            .ok_or_else(|| ModuleError::Probe(format!("{}: missing probe", self.module)))?;
        let (extras, st) = parse_with_extras(r)?;
        let mut plan = Plan::ok();
        let target = extra(&extras, "real")
            .or(extra(&extras, "into"))
            .unwrap_or(self.dest.as_str())
            .to_string();
        self.base_result(&mut plan, &target);
        if extra(&extras, "isdir").is_some() {
            plan.failed = Some(format!(
                "can not use content with a dir as dest: {}",
                self.dest
            ));
            return Ok(plan);
        }
        // The new content (None: remote source larger than the diff limit, only its checksum known).
        let (content, new_sha, src_mode): (Option<Vec<u8>>, String, Option<u32>) = match &self
            .source
        {
            Source::Content(c) => (Some(c.clone()), sha256_hex(c), None),
            Source::Remote(src) => {
                match extra(&extras, "src") {
                    Some("directory") => return self.plan_tree(&extras, src, plan),
                    Some(_) => {
                        plan.failed = Some(format!("Source {src} not found"));
                        return Ok(plan);
                    }
                    None => {}
                }
                let content = match extra(&extras, "src_content") {
                    Some(b) => {
                        use base64::Engine as _;
                        Some(
                            base64::engine::general_purpose::STANDARD
                                .decode(b.trim())
                                .map_err(|e| ModuleError::Probe(format!("source content: {e}")))?,
                        )
                    }
                    None => None,
                };
                let sha = extra(&extras, "src_sha256").unwrap_or("").to_string();
                let m =
                    extra(&extras, "src_mode").and_then(|m| u32::from_str_radix(m.trim(), 8).ok());
                (content, sha, m)
            }
        };
        let mode: Option<Mode> = match &self.mode {
            Some(ModeSpec::Given(m)) => Some(m.clone()),
            Some(ModeSpec::PreserveRemote) => src_mode.map(Mode::Octal),
            None => None,
        };
        plan.result.insert("checksum".into(), json!(new_sha));
        if let Some(c) = &content {
            plan.result.insert("size".into(), json!(c.len()));
        }
        plan.result.insert("state".into(), json!("file"));
        if st.exists() && !self.force {
            plan.result
                .insert("msg".into(), json!("file already exists"));
            return Ok(plan);
        }
        if st.kind == FileKind::Directory {
            plan.failed = Some(format!("Destination {target} is a directory"));
            return Ok(plan);
        }
        let is_file = st.kind == FileKind::File;
        let content_same = is_file && st.sha256.as_deref() == Some(new_sha.as_str());
        if content_same {
            let (diffs, action) = attributes_plan(
                &target,
                &st,
                self.owner.as_deref(),
                self.group.as_deref(),
                mode.as_ref(),
                false,
            );
            plan.diffs.extend(diffs);
            plan.actions.extend(action.map(|mut a| {
                a.script = format!("{{ {}\n}} && {}", a.script, after_stat(&target));
                a
            }));
            result_attrs(
                &mut plan,
                &st,
                self.owner.as_deref(),
                self.group.as_deref(),
                mode.as_ref(),
            );
            // What Ansible's `file` module registers here (copy runs it when the content is
            // the same): `path`, no `src` nor `md5sum`.
            plan.result.insert("path".into(), json!(target));
            plan.result.insert("size".into(), json!(st.size));
            if self.module == "copy" {
                plan.result.remove("src");
            }
            return Ok(plan);
        }
        if let Some(c) = &content {
            plan.result.insert("md5sum".into(), json!(format!("{:x}", md5::compute(c))));
        } else if let Some(z) = extra(&extras, "src_size").and_then(|z| z.trim().parse::<u64>().ok()) {
            plan.result.insert("size".into(), json!(z));
        }
        // Content changes: write (keeping an existing file's owner, group and mode unless given).
        match (&st.kind, &content) {
            (FileKind::File, Some(c)) => plan.diffs.push(content_diff(&target, &st, c)),
            (_, Some(c)) => {
                if st.exists() {
                    plan.diffs.push(Diff::Field {
                        name: "state".into(),
                        before: st.kind.name().into(),
                        after: "file".into(),
                    });
                }
                plan.diffs
                    .push(content_diff(&target, &FileState::absent(), c));
            }
            (_, None) => plan.diffs.push(Diff::Field {
                name: "checksum".into(),
                before: st.sha256.clone().unwrap_or_else(|| st.kind.name().into()),
                after: new_sha.clone(),
            }),
        }
        let (owner, group, keep_mode) = if is_file {
            let (attr_diffs, _) = attributes_plan(
                &target,
                &st,
                self.owner.as_deref(),
                self.group.as_deref(),
                mode.as_ref(),
                false,
            );
            plan.diffs.extend(attr_diffs);
            (
                Some(self.owner.clone().unwrap_or(st.owner.clone())),
                Some(self.group.clone().unwrap_or(st.group.clone())),
                Some(st.mode),
            )
        } else {
            (self.owner.clone(), self.group.clone(), None)
        };
        let script = self.script_for(
            &target,
            mode.as_ref(),
            owner.as_deref(),
            group.as_deref(),
            keep_mode,
        );
        let mut action = Action::new(format!("write {target}"), script, Scope::path(&target));
        if let Some(c) = content.filter(|_| matches!(self.source, Source::Content(_))) {
            action = action.with_stdin(c);
        }
        plan.actions.push(action);
        let after = FileState {
            kind: FileKind::File,
            mode: keep_mode.unwrap_or(0o644),
            ..st.clone()
        };
        result_attrs(
            &mut plan,
            &after,
            owner.as_deref(),
            group.as_deref(),
            mode.as_ref(),
        );
        if !is_file {
            // a new file: who owns it is known after the action (see `after_stat`)
            for k in ["uid", "gid"] {
                plan.result.remove(k);
            }
            for k in ["owner", "group"] {
                if plan.result.get(k).is_some_and(|v| v == "") {
                    plan.result.remove(k);
                }
            }
            plan.result.remove("mode");
            if let Some(Mode::Octal(m)) = &mode {
                plan.result.insert("mode".into(), json!(format!("{m:04o}")));
            }
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        for o in outputs {
            for line in o.stdout_str().lines() {
                if let Some(b) = line.strip_prefix("backup_file|") {
                    plan.result.insert("backup_file".into(), json!(b));
                }
                if let Some(a) = line.strip_prefix("@after|") {
                    after_attrs(&mut plan, a);
                }
            }
        }
        Ok(plan)
    }
}

/// Prints the target's `@after|uid|gid|owner|group|mode|size` at the end of an action, for
/// [`after_attrs`]: what the file is after the change, registered as Ansible does.
fn after_stat(target: &str) -> String {
    format!("printf '@after|%s\\n' \"$(stat -c '%u|%g|%U|%G|%a|%s' -- {})\"", sh_quote(target))
}

fn after_attrs(plan: &mut Plan, line: &str) {
    let f: Vec<&str> = line.trim().split('|').collect();
    let [uid, gid, owner, group, mode, size] = f[..] else { return };
    let (Ok(uid), Ok(gid), Ok(mode), Ok(size)) = (uid.parse::<u32>(), gid.parse::<u32>(), u32::from_str_radix(mode, 8), size.parse::<u64>()) else { return };
    for (k, v) in [("uid", json!(uid)), ("gid", json!(gid)), ("owner", json!(owner)), ("group", json!(group)), ("mode", json!(format!("{mode:04o}"))), ("size", json!(size))] {
        plan.result.insert(k.into(), v);
    }
}

/// `owner`, `group`, `mode`, and `uid`/`gid` when they are known before the change (the
/// owner and group stay those of the existing file); the action's [`after_stat`] tells them
/// after it.
fn result_attrs(
    plan: &mut Plan,
    st: &FileState,
    owner: Option<&str>,
    group: Option<&str>,
    mode: Option<&Mode>,
) {
    if let Some(o) = owner
        .map(str::to_string)
        .or_else(|| st.exists().then(|| st.owner.clone()))
    {
        plan.result.insert("owner".into(), json!(o));
    }
    if let Some(g) = group
        .map(str::to_string)
        .or_else(|| st.exists().then(|| st.group.clone()))
    {
        plan.result.insert("group".into(), json!(g));
    }
    if st.exists() || mode.is_some() {
        let m = mode.map(|m| m.resolve(st.mode, false)).unwrap_or(st.mode);
        plan.result.insert("mode".into(), json!(format!("{m:04o}")));
    }
    let same = |want: Option<&str>, name: &str, id: u32| want.is_none_or(|w| w == name || w == id.to_string());
    if st.exists() && same(owner, &st.owner, st.uid) {
        plan.result.insert("uid".into(), json!(st.uid));
    }
    if st.exists() && same(group, &st.group, st.gid) {
        plan.result.insert("gid".into(), json!(st.gid));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::testutil::{apply, local_probes, ok, sh};
    use super::*;

    fn task(v: Value) -> FileWrite {
        build(v.as_object().unwrap(), None).unwrap()
    }
    pub(crate) fn build_for_tests(v: Value) -> FileWrite {
        task(v)
    }

    #[test]
    fn a_controller_directory_is_copied_as_ansible_does() {
        use std::os::unix::fs::PermissionsExt;
        let project = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let files = project.path().join("files/app");
        std::fs::create_dir_all(files.join("bin")).unwrap();
        std::fs::create_dir_all(files.join("empty")).unwrap();
        std::fs::write(files.join("README"), "readme\n").unwrap();
        std::fs::write(files.join("bin/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(files.join("bin/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("README", files.join("link")).unwrap();
        let templar = crate::template::Templar::new();
        let vars = crate::template::Vars::new();
        let ctx = PrepareContext { templar: &templar, vars: &vars, host: "h", role_path: None, playbook_dir: project.path(), run_as: "root" };
        let prepare = |v: Value| CopyModule.prepare(v.as_object().unwrap(), &ctx).unwrap();
        let dest = out.path().join("site").display().to_string();
        // `app/`: what app holds, into dest (created), folders with directory_mode
        let t = prepare(json!({"src": "app/", "dest": dest, "mode": "preserve", "directory_mode": "0750"}));
        let first = apply(t.as_ref());
        let summaries: Vec<String> = first.actions.iter().map(|a| a.summary.replace(&dest, "D")).collect();
        assert_eq!(summaries, ["create directory D", "create directory D/bin", "create directory D/empty", "write D/README", "write D/bin/run.sh", "write D/link"]);
        let mode = |p: &str| std::fs::metadata(out.path().join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!((mode("site"), mode("site/empty"), mode("site/bin/run.sh")), (0o750, 0o750, 0o755));
        assert_eq!(std::fs::read_to_string(out.path().join("site/link")).unwrap(), "readme\n", "links are followed");
        assert!(t.plan(&local_probes(t.as_ref())).unwrap().actions.is_empty(), "second run changes nothing");
        // one file changes: its writes
        std::fs::write(files.join("README"), "readme 2\n").unwrap();
        let t = prepare(json!({"src": "app/", "dest": dest, "mode": "preserve", "directory_mode": "0750"}));
        let p = t.plan(&local_probes(t.as_ref())).unwrap();
        assert_eq!(p.actions.iter().map(|a| a.summary.replace(&dest, "D")).collect::<Vec<_>>(), ["write D/README", "write D/link"], "the link is the same file");
        // `app`: the folder itself, under dest
        let t = prepare(json!({"src": "app", "dest": format!("{dest}/")}));
        apply(t.as_ref());
        assert_eq!(std::fs::read_to_string(out.path().join("site/app/bin/run.sh")).unwrap(), "#!/bin/sh\n");
        assert_eq!(mode("site/app/bin/run.sh"), 0o644 & !umask(), "without mode: a new file's default");
    }

    fn umask() -> u32 {
        let (_, out, _) = sh("umask", None);
        u32::from_str_radix(out.trim(), 8).unwrap()
    }

    #[test]
    fn content_changes_only_when_checksum_differs() {
        let t = task(json!({"dest": "/etc/motd", "content": "hello\n", "mode": "0644"}));
        let same = "file|root|root|0|0|644|6|1\nsha256|5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\ncontent\naGVsbG8K\n";
        let p = t.plan(&[ok(same)]).unwrap();
        assert!(p.actions.is_empty() && p.diffs.is_empty(), "{:?}", p.diffs);
        assert_eq!(
            p.result["checksum"],
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        let p = t
            .plan(&[ok(
                "file|www-data|adm|33|4|600|4|1\nsha256|abc\ncontent\naGkK\n",
            )])
            .unwrap();
        assert_eq!(
            p.diffs,
            vec![
                Diff::Text {
                    path: "/etc/motd".into(),
                    before: Some("hi\n".into()),
                    after: Some("hello\n".into())
                },
                Diff::Field {
                    name: "mode".into(),
                    before: "0600".into(),
                    after: "0644".into()
                },
            ]
        );
        // existing owner/group kept across the rename
        let s = &p.actions[0].script;
        assert!(
            s.contains("chown www-data \"$tmp\"")
                && s.contains("chgrp adm \"$tmp\"")
                && s.contains("chmod 0644 \"$tmp\""),
            "{s}"
        );
        assert_eq!(p.actions[0].stdin.as_deref(), Some(&b"hello\n"[..]));
        let p = t.plan(&[ok("absent\n")]).unwrap();
        assert_eq!(
            p.diffs,
            vec![Diff::Text {
                path: "/etc/motd".into(),
                before: None,
                after: Some("hello\n".into())
            }]
        );
        let p = t.plan(&[ok("file|root|root|0|0|600|6|1\nsha256|5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\n")]).unwrap();
        assert!(p.actions[0].script.starts_with("{ chmod 0644 /etc/motd\n} && printf '@after|"), "{}", p.actions[0].script);
        let t = task(json!({"dest": "/etc/motd", "content": "x", "force": false}));
        assert!(t
            .plan(&[ok("file|root|root|0|0|600|6|1\nsha256|abc\n")])
            .unwrap()
            .actions
            .is_empty());
    }

    #[test]
    fn registers_what_ansible_registers() {
        let t = task(json!({"dest": "/etc/motd", "content": "hello\n", "owner": "www-data"}));
        let sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        // unchanged: what Ansible's file module returns (path and dest; no src, no md5sum)
        let p = t.plan(&[ok(&format!("file|www-data|adm|33|4|640|6|1\nsha256|{sha}\n"))]).unwrap();
        assert!(p.actions.is_empty());
        let keys: Vec<&str> = p.result.keys().map(String::as_str).collect();
        assert_eq!(keys, ["dest", "checksum", "size", "state", "owner", "group", "mode", "uid", "gid", "path"]);
        assert_eq!(
            (&p.result["path"], &p.result["uid"], &p.result["gid"], &p.result["owner"], &p.result["group"], &p.result["mode"], &p.result["size"]),
            (&json!("/etc/motd"), &json!(33), &json!(4), &json!("www-data"), &json!("adm"), &json!("0640"), &json!(6))
        );
        // a new owner: its uid is known after the change
        let p = t.plan(&[ok(&format!("file|root|adm|0|4|640|6|1\nsha256|{sha}\n"))]).unwrap();
        assert_eq!((p.result.get("uid"), &p.result["gid"]), (None, &json!(4)));
        let done = t.finish(p, &[crate::modules::testutil::out("@after|33|4|www-data|adm|640|6\n")]).unwrap();
        assert_eq!((&done.result["uid"], &done.result["owner"]), (&json!(33), &json!("www-data")));
        // changed content: the copy module's result, md5sum of the content
        let p = t.plan(&[ok("absent\n")]).unwrap();
        assert_eq!(p.result["md5sum"], json!(format!("{:x}", md5::compute(b"hello\n"))));
        assert!(p.result.get("path").is_none() && p.result.get("uid").is_none());
        assert!(p.actions[0].script.ends_with("printf '@after|%s\\n' \"$(stat -c '%u|%g|%U|%G|%a|%s' -- /etc/motd)\"\n"));
        let done = t.finish(p, &[crate::modules::testutil::out("@after|33|33|www-data|www-data|644|6\n")]).unwrap();
        assert_eq!(
            (&done.result["uid"], &done.result["gid"], &done.result["group"], &done.result["mode"], &done.result["size"], &done.result["dest"]),
            (&json!(33), &json!(33), &json!("www-data"), &json!("0644"), &json!(6), &json!("/etc/motd"))
        );
        // a controller file: its full path as src
        let project = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(project.path().join("files")).unwrap();
        std::fs::write(project.path().join("files/app.conf"), "a=1\n").unwrap();
        let t = crate::modules::testutil::prepare(&CopyModule, json!({"src": "app.conf", "dest": "/etc/app.conf"}), project.path()).unwrap();
        let p = t.plan(&[ok("absent\n")]).unwrap();
        assert_eq!(p.result["src"], json!(project.path().join("files/app.conf").display().to_string()));
        // a big file on the host: its size from the probe, no md5sum (the content isn't read)
        let t = task(json!({"dest": "/srv/big", "src": "/srv/big.src", "remote_src": true}));
        let p = t.plan(&[ok("@src_mode|644\n@src_sha256|abc\n@src_size|999999\nabsent\n")]).unwrap();
        assert_eq!((p.result.get("md5sum"), &p.result["size"], &p.result["src"]), (None, &json!(999999), &json!("/srv/big.src")));
    }

    #[test]
    fn registers_the_file_after_the_write_here() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f").display().to_string();
        let t = task(json!({"dest": dest, "content": "abc", "mode": "0640"}));
        let done = crate::modules::testutil::apply(&t);
        let uid = String::from_utf8(std::process::Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
        assert_eq!((&done.result["uid"], &done.result["mode"], &done.result["size"]), (&json!(uid.trim().parse::<u32>().unwrap()), &json!("0640"), &json!(3)));
        assert!(done.result["owner"].as_str().is_some_and(|o| !o.is_empty()) && done.result["gid"].is_u64());
    }

    #[test]
    fn structured_content_is_json() {
        assert_eq!(
            content_bytes(&json!({"a": [1, "é"], "b": true})),
            br#"{"a": [1, "\u00e9"], "b": true}"#.to_vec()
        );
    }

    #[test]
    fn remote_src_directory_is_copied_as_ansible_does() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap().to_string();
        let w = |f: &str, c: &str| std::fs::write(format!("{base}/{f}"), c).unwrap();
        let read = |f: &str| std::fs::read_to_string(format!("{base}/{f}")).unwrap();
        let mode = |f: &str| std::fs::metadata(format!("{base}/{f}")).unwrap().permissions().mode() & 0o7777;
        std::fs::create_dir_all(format!("{base}/s/sub/deeper")).unwrap();
        std::fs::create_dir_all(format!("{base}/d")).unwrap();
        w("s/a.conf", "a\n");
        w("s/.hidden", "h\n");
        w("s/sub/deeper/b.sh", "#!/bin/sh\n");
        std::fs::set_permissions(format!("{base}/s/sub/deeper/b.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::symlink(format!("{base}/s/a.conf"), format!("{base}/s/link.conf")).unwrap();
        w("d/mine", "kept\n");
        // `src/`: the contents into dest
        let t = task(json!({"dest": format!("{base}/d"), "src": format!("{base}/s/"), "remote_src": true}));
        let p = apply(&t);
        assert_eq!(p.actions.len(), 1, "{:?}", p.diffs);
        assert_eq!((read("d/a.conf"), read("d/.hidden"), read("d/sub/deeper/b.sh"), read("d/mine")), ("a\n".into(), "h\n".into(), "#!/bin/sh\n".into(), "kept\n".into()));
        assert_eq!(read("d/link.conf"), "a\n", "links followed (local_follow)");
        assert_eq!(mode("d/sub/deeper/b.sh"), 0o750, "the source's mode");
        assert!(apply(&t).actions.is_empty(), "converged");
        // a changed file is copied again, the others are not touched
        w("d/a.conf", "changed\n");
        let p = apply(&t);
        assert!(matches!(&p.diffs[0], Diff::Field { after, .. } if after == &format!("{base}/d/a.conf")), "{:?}", p.diffs);
        assert_eq!(read("d/a.conf"), "a\n");
        // `src` without the slash: the folder itself, made with its parents
        let t = task(json!({"dest": format!("{base}/e/f"), "src": format!("{base}/s"), "remote_src": true}));
        apply(&t);
        assert_eq!(read("e/f/s/sub/deeper/b.sh"), "#!/bin/sh\n");
        assert!(apply(&t).actions.is_empty());
        // over a file: fails
        w("x", "file\n");
        let t = task(json!({"dest": format!("{base}/x"), "src": format!("{base}/s/"), "remote_src": true}));
        let p = t.plan(&local_probes(&t)).unwrap();
        assert!(p.failed.as_deref().is_some_and(|f| f.contains("is not a directory")), "{:?}", p.failed);
    }

    #[test]
    fn real_host_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap().to_string();
        let t = task(
            json!({"dest": format!("{base}/f"), "content": "one\n", "mode": "u=rw,g=r,o=", "backup": true}),
        );
        let p = apply(&t);
        assert_eq!(p.actions.len(), 1);
        assert!(!p.result.contains_key("backup_file"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(format!("{base}/f"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o640
        );
        assert!(apply(&t).actions.is_empty());
        let t = task(json!({"dest": format!("{base}/f"), "content": "two\n", "backup": true}));
        let p = apply(&t);
        let b = p.result["backup_file"].as_str().unwrap().to_string();
        assert!(
            regex::Regex::new(r"/f\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$")
                .unwrap()
                .is_match(&b),
            "{b}"
        );
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "one\n");
        assert_eq!(
            std::fs::metadata(format!("{base}/f"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o640,
            "mode kept"
        );
        // remote_src into an existing directory
        std::fs::create_dir(format!("{base}/d")).unwrap();
        let t = task(
            json!({"dest": format!("{base}/d"), "src": format!("{base}/f"), "remote_src": true, "mode": "preserve"}),
        );
        let p = apply(&t);
        assert_eq!(p.result["dest"], format!("{base}/d/f"));
        assert_eq!(
            std::fs::read_to_string(format!("{base}/d/f")).unwrap(),
            "two\n"
        );
        assert_eq!(
            std::fs::metadata(format!("{base}/d/f"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o640
        );
        assert!(apply(&t).actions.is_empty());
        // dest ending with / is created
        let t = task(
            json!({"dest": format!("{base}/new/"), "src": format!("{base}/f"), "remote_src": true}),
        );
        apply(&t);
        assert_eq!(
            std::fs::read_to_string(format!("{base}/new/f")).unwrap(),
            "two\n"
        );
        // validate failure leaves the file alone
        let t = task(
            json!({"dest": format!("{base}/f"), "content": "bad\n", "validate": "grep -q good %s"}),
        );
        let probes = local_probes(&t);
        let p = t.plan(&probes).unwrap();
        let (rc, _, err) = sh(&p.actions[0].script, p.actions[0].stdin.as_deref());
        assert_ne!(rc, 0);
        assert!(err.contains("failed to validate"), "{err}");
        assert_eq!(
            std::fs::read_to_string(format!("{base}/f")).unwrap(),
            "two\n"
        );
        assert_eq!(
            std::fs::read_dir(&base)
                .unwrap()
                .filter(|e| e
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".provision"))
                .count(),
            0
        );
        // missing parent
        let t = task(json!({"dest": format!("{base}/nope/x"), "content": "x"}));
        let probes = local_probes(&t);
        let p = t.plan(&probes).unwrap();
        let (_, _, err) = sh(&p.actions[0].script, p.actions[0].stdin.as_deref());
        assert!(err.contains("Destination directory"), "{err}");
    }
}
