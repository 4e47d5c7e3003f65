//! `unarchive`: unpack a tar (gz/xz/bz2/zst/plain) or zip archive into an existing directory.
//!
//! `src` is a controller file (found like `copy`'s: role `files/`, playbook dir), or with
//! `remote_src: true` a path or URL on the host. Idempotency: `creates` (skip when that path
//! exists), else the archive is compared with `dest`: `tar --diff` for tar archives (content,
//! size, type and missing files count; modification times and permissions do not), and for zip a
//! scratch extraction compared file by file with `cmp`. A controller archive has to be on the
//! host to be compared, so it is kept in a cache (`/var/cache/provision/unarchive/<sha256>` for
//! root, `~/.cache/provision/unarchive` otherwise); a missing cache entry means "extract".
//! URLs are cached the same way (keyed by the URL).
//!
//! `owner`, `group` and `mode` are applied to every extracted entry (as Ansible does; `dest`
//! itself keeps its own).
//! `extra_opts` are passed to `tar`/`unzip` for both the comparison and the extraction; with
//! them the comparison names files as extracted (`--show-transformed-names`), and the entry
//! whose name `--strip-components` empties (the top folder) is no difference, as in Ansible.

use super::args::{self, opt_boolish, opt_list, opt_mode, opt_string, Mode};
use super::common::sha256_hex;
use super::{
    sh_quote, Action, ActionOutput, Diff, Module, ModuleError, ModuleTask, Plan, PrepareContext,
    Probe, ProbeResult, Scope,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct UnarchiveModule;

const PARAMS: &[&str] = &[
    "src",
    "dest",
    "remote_src",
    "copy",
    "creates",
    "extra_opts",
    "owner",
    "group",
    "mode",
    "list_files",
    "exclude",
    "validate_certs",
    "keep_newer",
    "decrypt",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    src: String,
    dest: String,
    #[serde(default, deserialize_with = "opt_boolish")]
    remote_src: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    copy: Option<bool>,
    #[serde(default)]
    creates: Option<String>,
    #[serde(default, deserialize_with = "opt_list")]
    extra_opts: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    owner: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group: Option<String>,
    #[serde(default, deserialize_with = "opt_mode")]
    mode: Option<Mode>,
    #[serde(default, deserialize_with = "opt_boolish")]
    list_files: Option<bool>,
    #[serde(default, deserialize_with = "opt_list")]
    exclude: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_boolish")]
    validate_certs: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    keep_newer: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    decrypt: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Tar(&'static str),
    Zip,
}

#[derive(Debug)]
enum Source {
    /// Archive bytes from the controller (sent on stdin, kept in the host cache).
    Local {
        data: Vec<u8>,
        sha: String,
    },
    RemotePath(String),
    Url(String),
}

#[derive(Debug)]
struct UnarchiveTask {
    src_name: String,
    source: Source,
    format: Format,
    dest: String,
    creates: Option<String>,
    extra: Vec<String>,
    owner: Option<String>,
    group: Option<String>,
    mode: Option<Mode>,
    list_files: bool,
    keep_newer: bool,
    validate_certs: bool,
}

impl Module for UnarchiveModule {
    fn name(&self) -> &'static str {
        "unarchive"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("unarchive", PARAMS, args)?;
        let remote = a.remote_src.unwrap_or(false) || a.copy == Some(false);
        let local = if remote || is_url(&a.src) {
            None
        } else {
            let p = ctx
                .find_local("files", &a.src)
                .ok_or_else(|| ModuleError::LocalFile(format!("unarchive: could not find src '{}' (looked in files/ of the role and the playbook dir)", a.src)))?;
            // A vault-encrypted archive is decrypted (`decrypt: false` sends it as it is).
            let read = if a.decrypt == Some(false) { std::fs::read(&p) } else { crate::vault::read_file(&p) };
            Some(read.map_err(|e| {
                ModuleError::LocalFile(format!("unarchive: cannot read {}: {e}", p.display()))
            })?)
        };
        Ok(Box::new(build(a, local, remote)?))
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("ftp://")
}

fn detect(name: &str, data: Option<&[u8]>) -> Result<Format, ModuleError> {
    let n = name.to_lowercase();
    let n = n.split(['?', '#']).next().unwrap_or("");
    if let Some(d) = data {
        if d.starts_with(b"PK\x03\x04") {
            return Ok(Format::Zip);
        }
        if d.starts_with(&[0x1f, 0x8b]) {
            return Ok(Format::Tar("z"));
        }
        if d.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
            return Ok(Format::Tar("J"));
        }
        if d.starts_with(b"BZh") {
            return Ok(Format::Tar("j"));
        }
        if d.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Ok(Format::Tar("--zstd "));
        }
    }
    Ok(if n.ends_with(".zip") {
        Format::Zip
    } else if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
        Format::Tar("z")
    } else if n.ends_with(".tar.xz") || n.ends_with(".txz") {
        Format::Tar("J")
    } else if n.ends_with(".tar.bz2") || n.ends_with(".tbz2") || n.ends_with(".tbz") {
        Format::Tar("j")
    } else if n.ends_with(".tar.zst") || n.ends_with(".tzst") {
        Format::Tar("--zstd ")
    } else if n.ends_with(".tar") || data.is_some_and(|d| d.len() > 262 && &d[257..262] == b"ustar")
    {
        Format::Tar("")
    } else {
        return Err(ModuleError::Args(format!("unarchive: cannot tell the archive type of '{name}' (tar, tar.gz, tgz, tar.xz, tar.bz2, tar.zst, zip)")));
    })
}

fn build(a: Args, local: Option<Vec<u8>>, remote: bool) -> Result<UnarchiveTask, ModuleError> {
    let format = detect(&a.src, local.as_deref())?;
    let source = match local {
        Some(data) => Source::Local {
            sha: sha256_hex(&data),
            data,
        },
        None if is_url(&a.src) => Source::Url(a.src.clone()),
        None => {
            if !remote {
                return Err(ModuleError::Args(
                    "unarchive: internal: local src without data".into(),
                ));
            }
            Source::RemotePath(a.src.clone())
        }
    };
    let mut extra = a.extra_opts.unwrap_or_default();
    for e in a.exclude.unwrap_or_default() {
        match format {
            Format::Tar(_) => extra.push(format!("--exclude={e}")),
            Format::Zip => {
                extra.push("-x".into());
                extra.push(e);
            }
        }
    }
    Ok(UnarchiveTask {
        src_name: a.src,
        source,
        format,
        dest: a.dest,
        creates: a.creates,
        extra,
        owner: a.owner,
        group: a.group,
        mode: a.mode,
        list_files: a.list_files.unwrap_or(false),
        keep_newer: a.keep_newer.unwrap_or(false),
        validate_certs: a.validate_certs.unwrap_or(true),
    })
}

/// What `tar --diff` says of an entry whose name `--strip-components` emptied.
const EMPTY_NAME: &str = ": : Warning: Cannot stat: No such file or directory";

const CACHE: &str = "if [ \"$(id -u)\" = 0 ]; then c=/var/cache/provision/unarchive; else c=\"${XDG_CACHE_HOME:-$HOME/.cache}/provision/unarchive\"; fi\n";

impl UnarchiveTask {
    fn ext(&self) -> &'static str {
        match self.format {
            Format::Zip => ".zip",
            Format::Tar("z") => ".tar.gz",
            Format::Tar("J") => ".tar.xz",
            Format::Tar("j") => ".tar.bz2",
            Format::Tar("") => ".tar",
            Format::Tar(_) => ".tar.zst",
        }
    }

    /// Sets `$a` (archive path on the host) and `$c` (cache dir).
    fn locate(&self) -> String {
        match &self.source {
            Source::Local { sha, .. } => format!("{CACHE}a=\"$c/{sha}{}\"\n", self.ext()),
            Source::Url(u) => format!(
                "{CACHE}a=\"$c/url-{}{}\"\n",
                sha256_hex(u.as_bytes()),
                self.ext()
            ),
            Source::RemotePath(p) => format!("c=; a={}\n", sh_quote(p)),
        }
    }

    fn extra(&self) -> String {
        self.extra
            .iter()
            .map(|e| format!(" {}", sh_quote(e)))
            .collect()
    }

    fn tar(&self, op: &str) -> String {
        let Format::Tar(z) = self.format else {
            unreachable!()
        };
        // differences and listings named as extracted (`--strip-components`, `--transform`),
        // as Ansible
        let show = if (op == "d" || op == "t") && !self.extra.is_empty() { " --show-transformed-names" } else { "" };
        if z.starts_with('-') {
            format!("tar {z}-{op}f \"$a\" -C \"$dest\"{show}{}", self.extra())
        } else {
            format!("tar -{op}{z}f \"$a\" -C \"$dest\"{show}{}", self.extra())
        }
    }

    fn probe_script(&self) -> String {
        let mut s = format!("dest={}\n{}", sh_quote(&self.dest), self.locate());
        s.push_str("[ -d \"$dest\" ] || { echo 'dest|missing'; exit 0; }\n");
        if let Some(c) = &self.creates {
            s.push_str(&format!(
                "[ -e {} ] && {{ echo 'creates|exists'; exit 0; }}\n",
                sh_quote(c)
            ));
        }
        s.push_str("[ -f \"$a\" ] || { echo 'archive|missing'; exit 0; }\n");
        match self.format {
            Format::Tar(_) => {
                // An entry whose name `--strip-components` emptied (the top folder) can't be
                // stat'ed: not a difference (Ansible ignores the same line).
                s.push_str(&format!(
                    "out=$(LC_ALL=C {} 2>&1); rc=$?\n\
                     if [ $rc -gt 1 ]; then printf '%s\\n' \"$out\" | tail -n 5 | sed 's/^/error|/'; exit 0; fi\n\
                     out=$(printf '%s\\n' \"$out\" | grep -v '{EMPTY_NAME}$')\n\
                     printf '%s\\n' \"$out\" | grep -E 'No such file|Contents differ|Size differs|File type differs|Symlink differs|Not a directory|Not found' | head -n 20 | sed 's/^/diff|/'\n\
                     printf '%s\\n' \"$out\" | grep -cE 'No such file|Contents differ|Size differs|File type differs|Symlink differs|Not a directory|Not found' | sed 's/^/count|/'\n",
                    self.tar("d")
                ));
            }
            Format::Zip => {
                s.push_str(&format!(
                    "command -v unzip >/dev/null 2>&1 || {{ echo 'error|unzip is not installed'; exit 0; }}\n\
                     t=$(mktemp -d) || exit 1\n\
                     if ! unzip -qq -o \"$a\"{} -d \"$t\" >/dev/null 2>&1; then echo 'error|cannot read the zip archive'; rm -rf \"$t\"; exit 0; fi\n\
                     (cd \"$t\" && find . ! -type d) | while IFS= read -r f; do cmp -s \"$t/$f\" \"$dest/$f\" || echo \"diff|${{f#./}}\"; done | head -n 20\n\
                     rm -rf \"$t\"\n",
                    self.extra()
                ));
            }
        }
        s
    }

    fn action(&self) -> Action {
        let mut s = format!("set -e\ndest={}\n{}", sh_quote(&self.dest), self.locate());
        match &self.source {
            Source::Local { .. } => {
                s.push_str("mkdir -p \"$c\"\ncat > \"$a.part\"\nmv -f \"$a.part\" \"$a\"\n")
            }
            Source::Url(u) => {
                let k = if self.validate_certs { "" } else { " -k" };
                let nc = if self.validate_certs {
                    ""
                } else {
                    " --no-check-certificate"
                };
                s.push_str(&format!(
                    "mkdir -p \"$c\"\n\
                     if command -v curl >/dev/null 2>&1; then curl -fsSL{k} -o \"$a.part\" {u}\n\
                     elif command -v wget >/dev/null 2>&1; then wget -q{nc} -O \"$a.part\" {u}\n\
                     else python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' {u} \"$a.part\"; fi\n\
                     mv -f \"$a.part\" \"$a\"\n",
                    u = sh_quote(u)
                ));
            }
            Source::RemotePath(_) => {}
        }
        let list = match self.format {
            Format::Tar(_) => self.tar("t").replace(" -C \"$dest\"", ""),
            Format::Zip => "unzip -Z1 \"$a\"".to_string(),
        };
        match self.format {
            Format::Tar(_) => {
                let keep = if self.keep_newer {
                    " --keep-newer-files"
                } else {
                    ""
                };
                s.push_str(&format!("{}{keep}\n", self.tar("x")));
            }
            Format::Zip => s.push_str(&format!(
                "unzip -qq -o \"$a\"{} -d \"$dest\"\n",
                self.extra()
            )),
        }
        // As Ansible: owner, group and mode go to every extracted entry, named as extracted
        // (an entry `--strip-components` emptied is none), many per `chown`/`chmod`.
        let each = |cmd: String| format!("{list} | sed -e 's|^\\./||' -e '/^$/d' | (cd \"$dest\" && tr '\\n' '\\0' | xargs -0 -r {cmd} --)\n");
        if self.owner.is_some() || self.group.is_some() {
            let who = format!(
                "{}{}",
                self.owner.as_deref().map(sh_quote).unwrap_or_default(),
                self.group
                    .as_deref()
                    .map(|g| format!(":{}", sh_quote(g)))
                    .unwrap_or_default()
            );
            s.push_str(&each(format!("chown -h {who}")));
        }
        if let Some(m) = &self.mode {
            let mode = match m {
                Mode::Octal(o) => format!("{o:04o}"),
                Mode::Symbolic(sym) => sh_quote(sym),
            };
            s.push_str(&each(format!("chmod {mode}")));
        }
        if self.list_files {
            s.push_str(&format!("{list} | sed 's/^/file|/'\n"));
        }
        let mut a = Action::new(
            format!("unarchive {} into {}", self.src_name, self.dest),
            s,
            Scope::path(&self.dest),
        );
        if let Source::Local { data, .. } = &self.source {
            a = a.with_stdin(data.clone());
        }
        a
    }
}

impl ModuleTask for UnarchiveTask {
    fn probes(&self) -> Vec<Probe> {
        let reads = match &self.source {
            Source::RemotePath(p) if p.starts_with('/') && self.dest.starts_with('/') => {
                Scope::Paths(vec![self.dest.clone(), p.clone()])
            }
            _ => Scope::Host,
        };
        vec![Probe::new(self.probe_script(), reads)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes
            .first()
            .ok_or_else(|| ModuleError::Probe("unarchive: no probe output".into()))?;
        if r.rc != 0 {
            return Err(ModuleError::Failed(format!(
                "unarchive: cannot probe: {}",
                r.stderr.trim()
            )));
        }
        let mut plan = Plan::ok();
        plan.result.insert("dest".into(), json!(self.dest));
        plan.result.insert("src".into(), json!(self.src_name));
        let lines: Vec<(&str, &str)> = r.stdout.lines().filter_map(|l| l.split_once('|')).collect();
        let has = |k: &str| lines.iter().any(|(a, _)| *a == k);
        if has("dest") {
            return Err(ModuleError::Failed(format!(
                "unarchive: dest '{}' must be an existing directory",
                self.dest
            )));
        }
        if has("creates") {
            // Skipped, as Ansible's action reports it.
            plan.skipped = Some(format!(
                "skipped, since {} exists",
                self.creates.as_deref().unwrap_or("")
            ));
            return Ok(plan);
        }
        let errors: Vec<&str> = lines
            .iter()
            .filter(|(k, _)| *k == "error")
            .map(|(_, v)| *v)
            .collect();
        if !errors.is_empty() {
            return Err(ModuleError::Failed(format!(
                "unarchive: cannot read {}: {}",
                self.src_name,
                errors.join("\n")
            )));
        }
        let before = if has("archive") {
            if let Source::RemotePath(p) = &self.source {
                return Err(ModuleError::Failed(format!(
                    "unarchive: src '{p}' does not exist on the host"
                )));
            }
            // The archive is kept on the host under its digest: this version was never sent,
            // so what `dest` holds (maybe an earlier version) can't be compared with it.
            match &self.source {
                Source::Url(_) => "not downloaded yet: not compared".to_string(),
                _ => "this version of the archive is not on the host yet: not compared".to_string(),
            }
        } else {
            let diffs: Vec<&str> = lines
                .iter()
                .filter(|(k, v)| *k == "diff" && !v.ends_with(EMPTY_NAME))
                .map(|(_, v)| *v)
                .collect();
            if diffs.is_empty() {
                return Ok(plan);
            }
            let count = lines
                .iter()
                .find(|(k, _)| *k == "count")
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(diffs.len());
            format!("{count} difference(s), e.g. {}", diffs[0])
        };
        plan.diffs.push(Diff::Field {
            name: format!("archive {}", self.src_name),
            before,
            after: format!("extracted into {}", self.dest),
        });
        plan.actions.push(self.action());
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        if self.list_files {
            if let Some(o) = outputs.last() {
                let files: Vec<String> = String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| l.strip_prefix("file|"))
                    .map(str::to_string)
                    .collect();
                plan.result.insert("files".into(), json!(files));
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::ok as res;
    use super::*;

    fn args(v: Value) -> Args {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn plans_from_probe_output() {
        let t = build(
            args(json!({"src": "/tmp/a.tar.gz", "dest": "/opt/a", "remote_src": true})),
            None,
            true,
        )
        .unwrap();
        assert!(t.probe_script().contains("tar -dzf \"$a\" -C \"$dest\""));
        assert!(t.plan(&[res("count|0\n")]).unwrap().actions.is_empty());
        let p = t
            .plan(&[res(
                "diff|tar: app/x.py: Warning: Cannot stat: No such file or directory\ncount|3\n",
            )])
            .unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(t.plan(&[res("archive|missing\n")]).is_err());
        assert!(t.plan(&[res("dest|missing\n")]).is_err());
        let t = build(
            args(json!({"src": "x.zip", "dest": "/opt/a", "creates": "/opt/a/x"})),
            Some(b"PK\x03\x04rest".to_vec()),
            false,
        )
        .unwrap();
        assert_eq!(t.format, Format::Zip);
        assert!(t
            .plan(&[res("creates|exists\n")])
            .unwrap()
            .actions
            .is_empty());
        let p = t.plan(&[res("archive|missing\n")]).unwrap();
        assert_eq!(p.actions[0].stdin.as_deref(), Some(&b"PK\x03\x04rest"[..]));
        assert!(matches!(&p.diffs[0], Diff::Field { before, .. } if before == "this version of the archive is not on the host yet: not compared"), "{:?}", p.diffs);
    }

    #[test]
    fn strip_components_is_idempotent() {
        let t = build(
            args(json!({"src": "/tmp/a.tar.gz", "dest": "/opt/a", "remote_src": true, "extra_opts": ["--strip-components=1"]})),
            None,
            true,
        )
        .unwrap();
        assert!(t.probe_script().contains("tar -dzf \"$a\" -C \"$dest\" --show-transformed-names --strip-components=1"));
        // the top folder's emptied name is no difference
        let empty = "diff|tar: : Warning: Cannot stat: No such file or directory\ncount|1\n";
        assert!(t.plan(&[res(empty)]).unwrap().actions.is_empty());
        let p = t.plan(&[res("diff|tar: : Warning: Cannot stat: No such file or directory\ndiff|a: Contents differ\ncount|2\n")]).unwrap();
        assert_eq!(p.actions.len(), 1);

        // and on this machine: extracted, then nothing to do, then a changed file found
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().display().to_string();
        let run = |s: &str| {
            let o = std::process::Command::new("sh").arg("-c").arg(s).current_dir(tmp.path()).output().unwrap();
            assert!(o.status.success(), "{s}: {}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        run("mkdir -p src/pkg/sub d && echo 1 > src/pkg/a && echo 2 > src/pkg/sub/b && tar -czf p.tar.gz -C src pkg");
        let t = build(
            args(json!({"src": format!("{root}/p.tar.gz"), "dest": format!("{root}/d"), "remote_src": true, "extra_opts": ["--strip-components=1"]})),
            None,
            true,
        )
        .unwrap();
        let p = t.plan(&[res(&run(&t.probe_script()))]).unwrap();
        assert_eq!(p.actions.len(), 1);
        run(&p.actions[0].script);
        assert_eq!(run("cat d/a d/sub/b"), "1\n2\n");
        let p = t.plan(&[res(&run(&t.probe_script()))]).unwrap();
        assert!(p.actions.is_empty(), "{:?}", p.diffs);
        run("echo changed > d/a");
        let p = t.plan(&[res(&run(&t.probe_script()))]).unwrap();
        assert!(matches!(&p.diffs[0], Diff::Field { before, .. } if before.contains("e.g. a: ")), "{:?}", p.diffs);
    }

    #[test]
    fn tar_and_zip_round_trip_here() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let sh = |s: &str, stdin: Option<&[u8]>| {
            use std::io::Write;
            let mut c = std::process::Command::new("sh")
                .arg("-c")
                .arg(s)
                .env("XDG_CACHE_HOME", root.join("cache"))
                .current_dir(root)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin
                .take()
                .unwrap()
                .write_all(stdin.unwrap_or_default())
                .unwrap();
            let o = c.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "{s}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        sh("mkdir -p src/app/sub && echo 1 > src/app/a && echo 2 > src/app/sub/b && tar -czf a.tar.gz -C src app && (cd src && zip -qr ../a.zip app) && mkdir d1 d2", None);
        let root_s = root.display().to_string();
        let is_root = sh("id -u", None).trim() == "0";
        for (name, dest) in [("a.tar.gz", "d1"), ("a.zip", "d2")] {
            if name.ends_with(".zip") && sh("command -v zip || true", None).is_empty() {
                continue;
            }
            let data = std::fs::read(root.join(name)).unwrap();
            let t = build(
                args(json!({"src": name, "dest": format!("{root_s}/{dest}"), "list_files": true})),
                Some(data),
                false,
            )
            .unwrap();
            if is_root {
                // root caches under /var/cache; use a remote path instead to stay inside the temp dir
                let t2 = build(args(json!({"src": format!("{root_s}/{name}"), "dest": format!("{root_s}/{dest}"), "remote_src": true})), None, true).unwrap();
                let p = t2.plan(&[res(&sh(&t2.probe_script(), None))]).unwrap();
                assert_eq!(p.actions.len(), 1, "{name}");
                sh(&p.actions[0].script, None);
                let p = t2.plan(&[res(&sh(&t2.probe_script(), None))]).unwrap();
                assert!(p.actions.is_empty(), "{name}: {p:?}");
                sh(&format!("echo changed > {dest}/app/a"), None);
                assert_eq!(
                    t2.plan(&[res(&sh(&t2.probe_script(), None))])
                        .unwrap()
                        .actions
                        .len(),
                    1,
                    "{name}"
                );
                let _ = t;
            } else {
                let p = t.plan(&[res(&sh(&t.probe_script(), None))]).unwrap();
                sh(&p.actions[0].script, p.actions[0].stdin.as_deref());
                assert!(t
                    .plan(&[res(&sh(&t.probe_script(), None))])
                    .unwrap()
                    .actions
                    .is_empty());
            }
        }
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn unarchive_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg("mkdir -p src/app && echo 1 > src/app/a && tar -czf a.tar.gz -C src app")
            .current_dir(tmp.path())
            .status()
            .unwrap();
        assert!(ok.success());
        testhost::run("rm -rf /tmp/ua && mkdir -p /tmp/ua/d1 /tmp/ua/d2 && cd /tmp/ua && mkdir -p s/z && echo z > s/z/f && cd s && python3 -m zipfile -c ../z.zip z", None);
        let data = std::fs::read(tmp.path().join("a.tar.gz")).unwrap();
        let t = build(
            args(json!({"src": "a.tar.gz", "dest": "/tmp/ua/d1", "owner": "nobody"})),
            Some(data),
            false,
        )
        .unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(
            first.changed() && second.actions.is_empty(),
            "{:?}",
            second.diffs
        );
        assert_eq!(
            testhost::run("stat -c %U /tmp/ua/d1/app/a", None).stdout_str(),
            "nobody\n"
        );
        testhost::run("apt-get install -y -q unzip >/dev/null 2>&1", None);
        let t = build(args(json!({"src": "/tmp/ua/z.zip", "dest": "/tmp/ua/d2", "remote_src": true, "list_files": true})), None, true).unwrap();
        let (first, second) = testhost::converge(&t);
        assert!(
            first.changed() && second.actions.is_empty(),
            "{:?}",
            second.diffs
        );
        eprintln!("{:?}", first.result);
    }

    fn args(v: Value) -> Args {
        serde_json::from_value(v).unwrap()
    }
}
