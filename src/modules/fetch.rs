//! `fetch`: copy a file from the host to the controller (backups, generated keys, logs).
//!
//! The controller file is `dest/<inventory_hostname>/<src>` (e.g.
//! `backups/web1/etc/nginx/nginx.conf`), or `dest` itself with `flat: true` (`dest` ending in
//! `/` then gets the file's name); a relative `dest` is relative to the playbook's folder, as
//! Ansible's `path_dwim` makes it. One probe reads the host file's SHA-1; when it equals the
//! controller file's, nothing is sent. Otherwise one action sends the file's bytes (`cat`, as
//! the task's become user, so root-only files can be fetched) and the executor writes them to
//! the controller file (`Action::download`: atomically, creating its folders). The whole file
//! passes through the controller's memory: meant for files, not disk images.

use super::args;
use super::{sh_quote, Action, ActionOutput, Module, ModuleError, ModuleTask, Plan, PrepareContext, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};
use std::path::{Component, Path, PathBuf};

pub struct FetchModule;

const PARAMS: &[&str] = &["src", "dest", "flat", "fail_on_missing", "validate_checksum"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    src: String,
    dest: String,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    flat: Option<bool>,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    fail_on_missing: Option<bool>,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    validate_checksum: Option<bool>,
}

#[derive(Debug)]
struct FetchTask {
    src: String,
    /// The controller file.
    dest: PathBuf,
    /// SHA-1 of the controller file as it is now (None: absent).
    local_checksum: Option<String>,
    fail_on_missing: bool,
    validate_checksum: bool,
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// The controller path `src` fetched from `host` lands at.
fn local_path(src: &str, dest: &str, flat: bool, host: &str, playbook_dir: &Path) -> Result<PathBuf, ModuleError> {
    let dest_dir = dest.ends_with('/');
    let dest = crate::connection::expand_tilde(dest);
    let base = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { playbook_dir.join(p) };
    let name = Path::new(src).file_name().and_then(|n| n.to_str()).ok_or_else(|| ModuleError::Args(format!("fetch: src '{src}' names no file")))?;
    if flat {
        return Ok(if dest_dir { base(&dest).join(name) } else { base(&dest) });
    }
    // `dest/host/src` with src's `.` and `..` resolved, so it stays under `dest/host`.
    let mut rel = PathBuf::new();
    for c in Path::new(src).components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::ParentDir => {
                rel.pop();
            }
            _ => {}
        }
    }
    Ok(base(&dest).join(host).join(rel))
}

impl Module for FetchModule {
    fn name(&self) -> &'static str {
        "fetch"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(&self, args: &Map<String, Value>, ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("fetch", PARAMS, args)?;
        if a.src.trim().is_empty() || a.dest.trim().is_empty() {
            return Err(ModuleError::Args("fetch: src and dest are required".into()));
        }
        let dest = local_path(&a.src, &a.dest, a.flat.unwrap_or(false), ctx.host, ctx.playbook_dir)?;
        let local_checksum = match std::fs::read(&dest) {
            Ok(data) => Some(sha1_hex(&data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) if dest.is_dir() => return Err(ModuleError::Args(format!("fetch: dest {} is a directory ({e})", dest.display()))),
            Err(e) => return Err(ModuleError::Args(format!("fetch: cannot read {}: {e}", dest.display()))),
        };
        Ok(Box::new(FetchTask { src: a.src, dest, local_checksum, fail_on_missing: a.fail_on_missing.unwrap_or(true), validate_checksum: a.validate_checksum.unwrap_or(true) }))
    }
}

impl FetchTask {
    fn result(&self, plan: &mut Plan, remote: Option<&str>, local: Option<&str>) {
        let dest = self.dest.display().to_string();
        plan.result.insert("file".into(), json!(self.src));
        plan.result.insert("dest".into(), json!(dest));
        plan.result.insert("remote_checksum".into(), json!(remote));
        plan.result.insert("checksum".into(), json!(local));
    }
}

impl ModuleTask for FetchTask {
    fn probes(&self) -> Vec<Probe> {
        let s = format!(
            "p={}\nif [ -d \"$p\" ]; then echo dir; elif [ ! -e \"$p\" ]; then echo missing; elif [ ! -r \"$p\" ]; then echo unreadable; else set -- $(sha1sum < \"$p\") && echo \"ok $1\"; fi\n",
            sh_quote(&self.src)
        );
        vec![Probe::new(s, Scope::path(&self.src))]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes.first().ok_or_else(|| ModuleError::Probe("fetch: missing probe".into()))?;
        let line = r.stdout.lines().next().unwrap_or("").trim();
        let mut plan = Plan::ok();
        match line.split_once(' ').unwrap_or((line, "")) {
            ("ok", remote) => {
                self.result(&mut plan, Some(remote), self.local_checksum.as_deref());
                if self.local_checksum.as_deref() != Some(remote) {
                    let script = format!("exec cat -- {}", sh_quote(&self.src));
                    plan.actions.push(Action::new(format!("fetch {} to {}", self.src, self.dest.display()), script, Scope::Nothing).download_to(self.dest.clone()));
                }
            }
            ("missing", _) => {
                plan.result.insert("file".into(), json!(self.src));
                plan.msg = Some("the remote file does not exist, not transferring, ignored".into());
                if self.fail_on_missing {
                    plan.failed = Some("the remote file does not exist, not transferring, ignored".into());
                }
            }
            ("dir", _) => plan.failed = Some("remote file is a directory, fetch cannot work on directories".into()),
            ("unreadable", _) => plan.failed = Some(format!("file is not readable: {}", self.src)),
            _ => return Err(ModuleError::Probe(format!("fetch: could not read {}: {}{}", self.src, r.stdout.trim(), r.stderr.trim()))),
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let Some(out) = outputs.first().filter(|o| o.exit_code == 0) else { return Ok(plan) };
        let got = sha1_hex(&out.stdout);
        let remote = plan.result.get("remote_checksum").and_then(Value::as_str).map(str::to_string);
        self.result(&mut plan, remote.as_deref(), Some(&got));
        plan.result.insert("md5sum".into(), json!(format!("{:x}", md5::compute(&out.stdout))));
        if self.validate_checksum && remote.as_deref() != Some(got.as_str()) {
            // The file changed while it was read.
            plan.failed = Some(format!("checksum mismatch: {} changed while it was fetched", self.src));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::apply;

    fn task(args: Value, dir: &Path) -> Result<Box<dyn ModuleTask>, ModuleError> {
        crate::modules::testutil::prepare(&FetchModule, args, dir)
    }

    #[test]
    fn where_the_file_lands_on_the_controller() {
        let pb = Path::new("/pb");
        let at = |src: &str, dest: &str, flat: bool| local_path(src, dest, flat, "web1", pb).unwrap().display().to_string();
        assert_eq!(at("/etc/nginx/nginx.conf", "backups", false), "/pb/backups/web1/etc/nginx/nginx.conf");
        assert_eq!(at("/etc/../etc/./hosts", "/srv/b/", false), "/srv/b/web1/etc/hosts");
        assert_eq!(at("../../x", "b", false), "/pb/b/web1/x");
        assert_eq!(at("/etc/hosts", "out/", true), "/pb/out/hosts");
        assert_eq!(at("/etc/hosts", "/tmp/hosts-web1", true), "/tmp/hosts-web1");
        assert!(local_path("/", "b", true, "web1", pb).is_err());
    }

    #[test]
    fn sends_the_file_only_when_the_controller_copy_differs() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("remote.txt");
        std::fs::write(&src, "hello\n").unwrap();
        let src = src.display().to_string();
        let args = json!({"src": src, "dest": "out/", "flat": true});
        // Nothing on the controller yet: one download action, then the result.
        let t = task(args.clone(), dir.path()).unwrap();
        let plan = apply(t.as_ref());
        assert!(plan.failed.is_none(), "{:?}", plan.failed);
        let sum = "f572d396fae9206628714fb2ce00f72e94f2258f";
        assert_eq!(plan.result["remote_checksum"], sum);
        assert_eq!(plan.result["checksum"], sum);
        assert_eq!(plan.result["dest"], dir.path().join("out/remote.txt").display().to_string());
        assert_eq!(plan.result["md5sum"], "b1946ac92492d2347c6235b4d2611184");
        let p = t.plan(&[crate::modules::testutil::ok(&format!("ok {sum}"))]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].download.as_deref(), Some(dir.path().join("out/remote.txt").as_path()));
        assert_eq!(p.actions[0].script, format!("exec cat -- {src}"));
        // The same bytes already there: nothing to do.
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("out/remote.txt"), "hello\n").unwrap();
        let t = task(args, dir.path()).unwrap();
        let p = t.plan(&[crate::modules::testutil::ok(&format!("ok {sum}"))]).unwrap();
        assert!(p.actions.is_empty() && !p.changed());
        assert_eq!(p.result["checksum"], sum);
    }

    #[test]
    fn missing_directories_and_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let t = task(json!({"src": "/nope", "dest": "b"}), dir.path()).unwrap();
        let p = t.plan(&[crate::modules::testutil::ok("missing")]).unwrap();
        assert_eq!(p.failed.as_deref(), Some("the remote file does not exist, not transferring, ignored"));
        let t = task(json!({"src": "/nope", "dest": "b", "fail_on_missing": "no"}), dir.path()).unwrap();
        let p = t.plan(&[crate::modules::testutil::ok("missing")]).unwrap();
        assert!(p.failed.is_none() && p.actions.is_empty() && p.msg.as_deref().unwrap().contains("does not exist"));
        let p = t.plan(&[crate::modules::testutil::ok("dir")]).unwrap();
        assert!(p.failed.unwrap().contains("directories"));
        // Bytes that don't match what the probe saw: the file changed in between.
        let t = task(json!({"src": "/x", "dest": "b"}), dir.path()).unwrap();
        let p = t.plan(&[crate::modules::testutil::ok("ok 0000")]).unwrap();
        let out = ActionOutput { stdout: b"hello\n".to_vec(), stderr: vec![], exit_code: 0 };
        assert!(t.finish(p, std::slice::from_ref(&out)).unwrap().failed.unwrap().contains("checksum mismatch"));
        let t = task(json!({"src": "/x", "dest": "b", "validate_checksum": false}), dir.path()).unwrap();
        let p = t.plan(&[crate::modules::testutil::ok("ok 0000")]).unwrap();
        assert!(t.finish(p, &[out]).unwrap().failed.is_none());
        assert!(task(json!({"src": "/x"}), dir.path()).is_err());
        // dest names a folder with flat: refused before anything runs
        std::fs::create_dir(dir.path().join("adir")).unwrap();
        let e = task(json!({"src": "/x", "dest": "adir", "flat": true}), dir.path()).err().unwrap().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }
}
