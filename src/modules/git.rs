//! `git`: a working copy at `dest` checked out at `version` (branch, tag, full or short sha;
//! default the remote's `HEAD`).
//!
//! One probe reads the working copy (HEAD sha, remote URL, tracked-file modifications, the local
//! resolution of `version`) and asks the remote what `version` points at (`git ls-remote`,
//! read-only). The plan compares shas: nothing to do when HEAD already is the target. A full sha
//! compares directly; a name the remote does not advertise (a short sha, say) that the working
//! copy cannot resolve either is fetched and resolved at apply time, and the task reports
//! `changed` only if HEAD moved (check mode then predicts a change).
//!
//! Like Ansible: modified tracked files fail the task unless `force` (untracked files are
//! ignored); `update: false` leaves an existing working copy alone; `clone: false` does not
//! create a missing one; a different URL of `remote` is replaced (`remote_url_changed`).
//! Results: `before`, `after` (full shas), `remote_url_changed`.

use super::args::{self, opt_boolish, opt_string};
use super::{
    sh_quote, Action, ActionOutput, Diff, ModuleError, ModuleTask, Plan,
    Probe, ProbeResult, Scope,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct GitModule;

const PARAMS: &[&str] = &[
    "repo",
    "name",
    "dest",
    "version",
    "force",
    "depth",
    "update",
    "clone",
    "remote",
    "accept_hostkey",
    "accept_newhostkey",
    "single_branch",
    "executable",
    "key_file",
    "ssh_opts",
    "recursive",
    "track_submodules",
    "umask",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "name")]
    repo: String,
    dest: String,
    #[serde(default, deserialize_with = "opt_string")]
    version: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    depth: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    update: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    clone: Option<bool>,
    #[serde(default)]
    remote: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    accept_hostkey: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    accept_newhostkey: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    single_branch: Option<bool>,
    #[serde(default)]
    executable: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
    #[serde(default)]
    ssh_opts: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    recursive: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    track_submodules: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    umask: Option<String>,
}

#[derive(Debug, Clone)]
struct GitTask {
    repo: String,
    dest: String,
    version: String,
    force: bool,
    depth: Option<u32>,
    update: bool,
    clone: bool,
    remote: String,
    single_branch: bool,
    git: String,
    recursive: bool,
    umask: Option<String>,
    /// `export ...` line: no prompts, ssh options.
    env: String,
}

module_impl!(GitModule, "git");

fn build(args: &Map<String, Value>) -> Result<GitTask, ModuleError> {
    let a: Args = args::parse("git", PARAMS, args)?;
    if a.repo.trim().is_empty() || a.dest.trim().is_empty() {
        return Err(ModuleError::Args(
            "git: repo and dest must not be empty".into(),
        ));
    }
    let depth = match a.depth.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => match d.parse::<u32>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                return Err(ModuleError::Args(format!(
                    "git: depth must be a positive number, got '{d}'"
                )))
            }
        },
    };
    let version = a
        .version
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "HEAD".into());
    if version.starts_with('-') || version.contains(char::is_whitespace) {
        return Err(ModuleError::Args(format!(
            "git: invalid version '{version}'"
        )));
    }
    let remote = a.remote.unwrap_or_else(|| "origin".into());
    if remote.is_empty() || remote.starts_with('-') || remote.contains(char::is_whitespace) {
        return Err(ModuleError::Args(format!(
            "git: invalid remote name '{remote}'"
        )));
    }
    if let Some(u) = &a.umask {
        if !u.trim().bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(ModuleError::Args(format!(
                "git: umask must be octal, got '{u}'"
            )));
        }
    }
    let mut ssh = String::from("ssh -o BatchMode=yes");
    if a.accept_hostkey.unwrap_or(false) {
        ssh.push_str(" -o StrictHostKeyChecking=no");
    } else if a.accept_newhostkey.unwrap_or(false) {
        ssh.push_str(" -o StrictHostKeyChecking=accept-new");
    }
    if let Some(k) = &a.key_file {
        ssh.push_str(&format!(" -i {} -o IdentitiesOnly=yes", sh_quote(k)));
    }
    if let Some(o) = &a.ssh_opts {
        ssh.push(' ');
        ssh.push_str(o);
    }
    let env = format!("GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND={} LC_ALL=C; export GIT_TERMINAL_PROMPT GIT_SSH_COMMAND LC_ALL\n", sh_quote(&ssh));
    let _ = a.track_submodules;
    Ok(GitTask {
        repo: a.repo.trim().to_string(),
        dest: a.dest.trim_end_matches('/').to_string(),
        version,
        force: a.force.unwrap_or(false),
        depth,
        update: a.update.unwrap_or(true),
        clone: a.clone.unwrap_or(true),
        remote,
        single_branch: a.single_branch.unwrap_or(false),
        git: a.executable.unwrap_or_else(|| "git".into()),
        recursive: a.recursive.unwrap_or(true),
        umask: a.umask.map(|u| u.trim().to_string()),
        env,
    })
}

fn is_full_sha(v: &str) -> bool {
    (v.len() == 40 || v.len() == 64) && v.bytes().all(|b| b.is_ascii_hexdigit())
}

fn short(s: &str) -> String {
    s.chars().take(7).collect()
}

/// What `version` is on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A branch (also what the remote's HEAD points at) at this sha.
    Branch { name: String, sha: String },
    /// A tag (peeled to its commit).
    Tag { name: String, sha: String },
    /// A commit named by its full sha.
    Sha(String),
    /// Unknown before fetching (short sha not advertised by the remote).
    Unresolved,
}

impl Target {
    fn sha(&self) -> Option<&str> {
        match self {
            Target::Branch { sha, .. } | Target::Tag { sha, .. } => Some(sha),
            Target::Sha(s) => Some(s),
            Target::Unresolved => None,
        }
    }
}

#[derive(Debug, Default)]
struct Observed {
    git_missing: bool,
    /// "present" / "absent" / "notempty"
    repo: String,
    head: String,
    url: String,
    local: String,
    mods: Vec<String>,
    ls: Vec<String>,
    ls_err: Vec<String>,
}

fn observe(r: &ProbeResult) -> Result<Observed, ModuleError> {
    if r.rc != 0 {
        return Err(ModuleError::Failed(format!(
            "git: cannot probe: {}",
            r.stderr.trim()
        )));
    }
    let mut o = Observed::default();
    for line in r.stdout.lines() {
        let Some((k, v)) = line.split_once('|') else {
            continue;
        };
        match k {
            "git" if v == "missing" => o.git_missing = true,
            "repo" => o.repo = v.to_string(),
            "head" => o.head = v.trim().to_string(),
            "url" => o.url = v.to_string(),
            "local" => o.local = v.trim().to_string(),
            "mod" => o.mods.push(v.to_string()),
            "ls" => o.ls.push(v.to_string()),
            "lserr" => o.ls_err.push(v.to_string()),
            _ => {}
        }
    }
    Ok(o)
}

impl GitTask {
    fn q(&self) -> String {
        sh_quote(&self.git)
    }

    fn ls_patterns(&self) -> Vec<String> {
        if self.version == "HEAD" {
            vec!["HEAD".into()]
        } else {
            vec![self.version.clone(), format!("{}^{{}}", self.version)]
        }
    }

    /// Resolve `version` from `git ls-remote --symref` lines.
    fn resolve(&self, o: &Observed) -> Result<Target, ModuleError> {
        if is_full_sha(&self.version) {
            return Ok(Target::Sha(self.version.to_lowercase()));
        }
        if !o.ls_err.is_empty() {
            return Err(ModuleError::Failed(format!(
                "git: cannot read {} (git ls-remote failed): {}",
                self.repo,
                o.ls_err.join("\n").trim()
            )));
        }
        let mut refs: Vec<(String, String)> = Vec::new();
        let mut head_branch = None;
        for l in &o.ls {
            if let Some(rest) = l.strip_prefix("ref: ") {
                // "ref: refs/heads/main\tHEAD"
                if let Some((target, name)) = rest.split_once('\t') {
                    if name == "HEAD" {
                        head_branch = target.strip_prefix("refs/heads/").map(str::to_string);
                    }
                }
            } else if let Some((sha, name)) = l.split_once('\t') {
                refs.push((name.to_string(), sha.to_string()));
            }
        }
        let find = |n: &str| {
            refs.iter()
                .find(|(name, _)| name == n)
                .map(|(_, s)| s.clone())
        };
        let v = &self.version;
        if v == "HEAD" {
            return match (find("HEAD"), head_branch) {
                (Some(sha), Some(name)) => Ok(Target::Branch { name, sha }),
                (Some(sha), None) => Ok(Target::Sha(sha)),
                (None, _) => Err(ModuleError::Failed(format!(
                    "git: remote {} has no HEAD (empty repository?)",
                    self.repo
                ))),
            };
        }
        let bare = v
            .strip_prefix("refs/heads/")
            .or_else(|| v.strip_prefix("refs/tags/"))
            .unwrap_or(v);
        if !v.starts_with("refs/tags/") {
            if let Some(sha) = find(&format!("refs/heads/{bare}")) {
                return Ok(Target::Branch {
                    name: bare.to_string(),
                    sha,
                });
            }
        }
        if let Some(sha) =
            find(&format!("refs/tags/{bare}^{{}}")).or_else(|| find(&format!("refs/tags/{bare}")))
        {
            return Ok(Target::Tag {
                name: bare.to_string(),
                sha,
            });
        }
        if v.len() >= 4 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Target::Unresolved);
        }
        Err(ModuleError::Failed(format!(
            "git: version '{v}' is neither a branch, a tag nor a sha in {}",
            self.repo
        )))
    }

    fn probe_script(&self) -> String {
        let g = self.q();
        let d = sh_quote(&self.dest);
        let r = sh_quote(&self.remote);
        let v = sh_quote(&format!("{}^{{commit}}", self.version));
        let mut s = self.env.clone();
        s.push_str(&format!("g={g}; d={d}\n"));
        s.push_str("if ! command -v \"$g\" >/dev/null 2>&1; then echo 'git|missing'; exit 0; fi\n");
        s.push_str("if [ -e \"$d/.git\" ]; then\n  echo 'repo|present'\n");
        s.push_str("  printf 'head|%s\\n' \"$(\"$g\" -C \"$d\" rev-parse --verify -q HEAD 2>/dev/null)\"\n");
        s.push_str(&format!("  printf 'url|%s\\n' \"$(\"$g\" -C \"$d\" config --get remote.{r}.url 2>/dev/null)\"\n"));
        s.push_str(&format!("  printf 'local|%s\\n' \"$(\"$g\" -C \"$d\" rev-parse --verify -q {v} 2>/dev/null)\"\n"));
        s.push_str("  \"$g\" --no-optional-locks -C \"$d\" status --porcelain --untracked-files=no 2>/dev/null | sed 's/^/mod|/'\n");
        if !self.update {
            s.push_str("  exit 0\n");
        }
        s.push_str("elif [ -d \"$d\" ] && [ -n \"$(ls -A \"$d\" 2>/dev/null)\" ]; then echo 'repo|notempty'\n");
        s.push_str("else echo 'repo|absent'\n");
        if !self.clone {
            s.push_str("  exit 0\n");
        }
        s.push_str("fi\n");
        if !is_full_sha(&self.version) {
            let pats: Vec<String> = self.ls_patterns().iter().map(|p| sh_quote(p)).collect();
            s.push_str(&format!(
                "if out=$(\"$g\" ls-remote --symref -- {} {} 2>&1); then printf '%s\\n' \"$out\" | sed 's/^/ls|/'; else printf '%s\\n' \"$out\" | sed 's/^/lserr|/'; fi\n",
                sh_quote(&self.repo),
                pats.join(" ")
            ));
        }
        s
    }

    fn preamble(&self) -> String {
        let mut s = format!("set -e\n{}g={}\n", self.env, self.q());
        if let Some(u) = &self.umask {
            s.push_str(&format!("umask {u}\n"));
        }
        s
    }

    fn depth_arg(&self) -> String {
        self.depth
            .map(|d| format!(" --depth {d}"))
            .unwrap_or_default()
    }

    /// Check out the target in `$d` (after clone or fetch), print `after|<sha>`.
    fn checkout_cmds(&self, t: &Target) -> String {
        let mut s = String::new();
        let r = sh_quote(&self.remote);
        match t {
            Target::Branch { name, sha } => {
                let n = sh_quote(name);
                s.push_str(&format!("\"$g\" checkout -q --force -B {n} {sha}\n"));
                s.push_str(&format!(
                    "\"$g\" branch -q --set-upstream-to={} {n} >/dev/null 2>&1 || true\n",
                    sh_quote(&format!("{}/{}", self.remote, name))
                ));
            }
            Target::Tag { sha, .. } | Target::Sha(sha) => {
                s.push_str(&format!("\"$g\" cat-file -e {sha}^{{commit}} 2>/dev/null || \"$g\" fetch -q{} {r} {sha}\n", self.depth_arg()));
                s.push_str(&format!("\"$g\" checkout -q --force --detach {sha}\n"));
            }
            Target::Unresolved => {
                let v = sh_quote(&format!("{}^{{commit}}", self.version));
                s.push_str(&format!("want=$(\"$g\" rev-parse --verify -q {v}) || {{ echo \"version '{}' not found in {}\" >&2; exit 1; }}\n", self.version.replace('\'', ""), self.repo.replace(['\'', '"'], "")));
                s.push_str("[ \"$want\" = \"$(\"$g\" rev-parse --verify -q HEAD)\" ] || \"$g\" checkout -q --force --detach \"$want\"\n");
            }
        }
        if self.recursive {
            s.push_str(
                "if [ -f .gitmodules ]; then \"$g\" submodule -q update --init --recursive; fi\n",
            );
        }
        s.push_str("printf 'after|%s\\n' \"$(\"$g\" rev-parse HEAD)\"\n");
        s
    }

    fn clone_action(&self, t: &Target) -> Action {
        let mut s = self.preamble();
        s.push_str(&format!("d={}\n", sh_quote(&self.dest)));
        let mut c = format!(
            "\"$g\" clone -q --origin {}{}",
            sh_quote(&self.remote),
            self.depth_arg()
        );
        match t {
            Target::Branch { name, .. } | Target::Tag { name, .. } if self.version != "HEAD" => {
                c.push_str(&format!(" --branch {}", sh_quote(name)))
            }
            _ => {}
        }
        if self.single_branch {
            c.push_str(" --single-branch");
        } else if self.depth.is_some() {
            c.push_str(" --no-single-branch");
        }
        c.push_str(&format!(" -- {} \"$d\"\ncd \"$d\"\n", sh_quote(&self.repo)));
        s.push_str(&c);
        s.push_str(&self.checkout_cmds(t));
        Action::new(
            format!("clone {} into {}", self.repo, self.dest),
            s,
            Scope::path(&self.dest),
        )
    }

    fn update_action(&self, t: &Target) -> Action {
        let mut s = self.preamble();
        s.push_str(&format!("cd {}\n", sh_quote(&self.dest)));
        let r = sh_quote(&self.remote);
        let da = self.depth_arg();
        match t {
            Target::Branch { name, .. } => {
                let spec = sh_quote(&format!(
                    "+refs/heads/{name}:refs/remotes/{}/{name}",
                    self.remote
                ));
                s.push_str(&format!("\"$g\" fetch -q{da} {r} {spec}\n"));
            }
            Target::Tag { name, .. } => {
                let spec = sh_quote(&format!("+refs/tags/{name}:refs/tags/{name}"));
                s.push_str(&format!("\"$g\" fetch -q{da} {r} {spec}\n"));
            }
            Target::Sha(_) | Target::Unresolved => {
                if self.depth.is_some() {
                    s.push_str(&format!("\"$g\" fetch -q{da} {r}\n"));
                } else {
                    s.push_str(&format!(
                        "\"$g\" fetch -q --tags {r} '+refs/heads/*:refs/remotes/'{}'/*'\n",
                        sh_quote(&self.remote)
                    ));
                }
            }
        }
        s.push_str(&self.checkout_cmds(t));
        let what = match t {
            Target::Branch { name, sha } | Target::Tag { name, sha } => {
                format!("{name} ({})", short(sha))
            }
            Target::Sha(sha) => short(sha),
            Target::Unresolved => self.version.clone(),
        };
        Action::new(
            format!("update {} to {what}", self.dest),
            s,
            Scope::path(&self.dest),
        )
    }
}

impl ModuleTask for GitTask {
    fn probes(&self) -> Vec<Probe> {
        vec![Probe::new(self.probe_script(), Scope::path(&self.dest))]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let o = observe(
            probes
                .first()
                .ok_or_else(|| ModuleError::Probe("git: no probe output".into()))?,
        )?;
        if o.git_missing {
            return Err(ModuleError::Failed(format!(
                "git: '{}' not found on the host (install git first)",
                self.git
            )));
        }
        let mut plan = Plan::ok();
        let dest = &self.dest;
        match o.repo.as_str() {
            "absent" | "notempty" => {
                if o.repo == "notempty" {
                    return Err(ModuleError::Failed(format!("git: destination path '{dest}' already exists and is not an empty directory nor a git working copy")));
                }
                plan.result.insert("before".into(), Value::Null);
                if !self.clone {
                    plan.result.insert("after".into(), Value::Null);
                    plan.msg = Some(format!("{dest} does not exist and clone is false"));
                    return Ok(plan);
                }
                let t = self.resolve(&o)?;
                let after = t.sha().map(str::to_string);
                plan.diffs.push(Diff::Field {
                    name: "revision".into(),
                    before: "absent".into(),
                    after: after
                        .as_deref()
                        .map(short)
                        .unwrap_or_else(|| self.version.clone()),
                });
                plan.result.insert("after".into(), json!(after));
                plan.result
                    .insert("remote_url_changed".into(), json!(false));
                plan.actions.push(self.clone_action(&t));
                Ok(plan)
            }
            "present" => {
                let before = o.head.clone();
                plan.result.insert("before".into(), json!(before));
                if !self.update {
                    plan.result.insert("after".into(), json!(before));
                    plan.result
                        .insert("remote_url_changed".into(), json!(false));
                    return Ok(plan);
                }
                if !o.mods.is_empty() && !self.force {
                    return Err(ModuleError::Failed(format!(
                        "git: Local modifications exist in the destination: {dest} (force=no)"
                    )));
                }
                let url_changed = o.url != self.repo;
                plan.result
                    .insert("remote_url_changed".into(), json!(url_changed));
                if url_changed {
                    plan.diffs.push(Diff::Field {
                        name: "remote_url".into(),
                        before: if o.url.is_empty() {
                            "absent".into()
                        } else {
                            o.url.clone()
                        },
                        after: self.repo.clone(),
                    });
                    let r = sh_quote(&self.remote);
                    let u = sh_quote(&self.repo);
                    plan.actions.push(Action::new(
                        format!("set {} URL of {dest} to {}", self.remote, self.repo),
                        format!(
                            "set -e\ncd {}\nif {g} config --get remote.{r}.url >/dev/null; then {g} remote set-url {r} {u}; else {g} remote add {r} {u}; fi\n",
                            sh_quote(dest),
                            g = self.q()
                        ),
                        Scope::path(dest),
                    ));
                }
                let mut t = self.resolve(&o)?;
                if t == Target::Unresolved && !o.local.is_empty() {
                    // A short sha the working copy already knows.
                    t = Target::Sha(o.local.clone());
                }
                let needs_move = match t.sha() {
                    Some(sha) => sha != before,
                    None => true,
                };
                if needs_move {
                    plan.diffs.push(Diff::Field {
                        name: "revision".into(),
                        before: if before.is_empty() {
                            "none".into()
                        } else {
                            short(&before)
                        },
                        after: t.sha().map(short).unwrap_or_else(|| self.version.clone()),
                    });
                    plan.result.insert("after".into(), json!(t.sha()));
                    plan.actions.push(self.update_action(&t));
                } else {
                    plan.result.insert("after".into(), json!(before));
                    if !o.mods.is_empty() {
                        plan.diffs.push(Diff::Field {
                            name: "local_modifications".into(),
                            before: o
                                .mods
                                .iter()
                                .map(|m| m.get(3..).unwrap_or(m).to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                            after: "discarded".into(),
                        });
                        plan.actions.push(Action::new(
                            format!("discard local modifications in {dest}"),
                            format!(
                                "set -e\ncd {}\n{} reset -q --hard HEAD\n",
                                sh_quote(dest),
                                self.q()
                            ),
                            Scope::path(dest),
                        ));
                    }
                }
                Ok(plan)
            }
            other => Err(ModuleError::Probe(format!(
                "git: unexpected repo state '{other}'"
            ))),
        }
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        let mut after = None;
        for out in outputs {
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some(s) = l.strip_prefix("after|") {
                    after = Some(s.trim().to_string());
                }
            }
        }
        if let Some(a) = after {
            let before = plan
                .result
                .get("before")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let url_changed = plan
                .result
                .get("remote_url_changed")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            // Only an unresolved version can turn out to be a no-op.
            if before.as_deref() == Some(a.as_str()) && !url_changed && plan.actions.len() == 1 {
                plan.changed = Some(false);
                plan.diffs.clear();
            } else if let Some(Diff::Field { after: d, .. }) = plan
                .diffs
                .iter_mut()
                .find(|d| matches!(d, Diff::Field { name, .. } if name == "revision"))
            {
                *d = short(&a);
            }
            plan.result.insert("after".into(), json!(a));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::ok as res;
    use super::*;

    const MAIN: &str = "7800f3b7043dbace65a034bc2d8ce6d1448a376d";
    const NEXT: &str = "1111111111111111111111111111111111111111";
    const TAGOBJ: &str = "ccf7cf06faf0645e5656eb48f6937b845ba51cbc";

    fn task(extra: Value) -> GitTask {
        let mut m = json!({"repo": "file:///srv/sample-app.git", "dest": "/srv/app"})
            .as_object()
            .unwrap()
            .clone();
        m.extend(extra.as_object().unwrap().clone());
        build(&m).unwrap()
    }


    fn present(head: &str, extra: &str) -> String {
        format!("repo|present\nhead|{head}\nurl|file:///srv/sample-app.git\nlocal|{head}\n{extra}ls|ref: refs/heads/main\tHEAD\nls|{MAIN}\tHEAD\n")
    }

    #[test]
    fn fresh_clone_of_head() {
        let t = task(json!({}));
        let p = t
            .plan(&[res(&format!(
                "repo|absent\nls|ref: refs/heads/main\tHEAD\nls|{MAIN}\tHEAD\n"
            ))])
            .unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(
            p.actions[0]
                .script
                .contains("clone -q --origin origin -- file:///srv/sample-app.git \"$d\""),
            "{}",
            p.actions[0].script
        );
        assert!(p.actions[0]
            .script
            .contains(&format!("checkout -q --force -B main {MAIN}")));
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "revision".into(),
                before: "absent".into(),
                after: "7800f3b".into()
            }]
        );
        assert_eq!(p.result["after"], json!(MAIN));
    }

    #[test]
    fn converged_head_is_ok() {
        let t = task(json!({}));
        let p = t.plan(&[res(&present(MAIN, ""))]).unwrap();
        assert!(p.actions.is_empty() && p.diffs.is_empty(), "{p:?}");
        assert_eq!(p.result["before"], json!(MAIN));
        assert_eq!(p.result["after"], json!(MAIN));
    }

    #[test]
    fn branch_moves_and_tags_peel() {
        let t = task(json!({"version": "next"}));
        let out = format!("repo|present\nhead|{MAIN}\nurl|file:///srv/sample-app.git\nlocal|{MAIN}\nls|{NEXT}\trefs/heads/next\n");
        let p = t.plan(&[res(&out)]).unwrap();
        assert_eq!(p.actions.len(), 1);
        let s = &p.actions[0].script;
        assert!(
            s.contains("fetch -q origin +refs/heads/next:refs/remotes/origin/next"),
            "{s}"
        );
        assert!(
            s.contains(&format!("checkout -q --force -B next {NEXT}")),
            "{s}"
        );
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "revision".into(),
                before: "7800f3b".into(),
                after: "1111111".into()
            }]
        );

        let t = task(json!({"version": "v1"}));
        let out = format!("repo|present\nhead|{MAIN}\nurl|file:///srv/sample-app.git\nlocal|{MAIN}\nls|{TAGOBJ}\trefs/tags/v1\nls|{MAIN}\trefs/tags/v1^{{}}\n");
        assert!(t.plan(&[res(&out)]).unwrap().actions.is_empty());
    }

    #[test]
    fn local_modifications_fail_unless_force() {
        let t = task(json!({}));
        let e = t
            .plan(&[res(
                &present(MAIN, " M settings.py\n").replace(" M", "mod| M")
            )])
            .unwrap_err();
        assert!(e.to_string().contains("Local modifications"), "{e}");
        let t = task(json!({"force": true}));
        let p = t
            .plan(&[res(&present(MAIN, "mod| M settings.py\n"))])
            .unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(p.actions[0].script.contains("reset -q --hard HEAD"));
    }

    #[test]
    fn full_sha_compares_directly_and_short_sha_uses_local_resolution() {
        let t = task(json!({"version": MAIN}));
        assert!(!t.probe_script().contains("ls-remote"));
        let p = t
            .plan(&[res(&format!(
                "repo|present\nhead|{MAIN}\nurl|file:///srv/sample-app.git\nlocal|{MAIN}\n"
            ))])
            .unwrap();
        assert!(p.actions.is_empty());

        let t = task(json!({"version": "7800f3b"}));
        let p = t
            .plan(&[res(&format!(
                "repo|present\nhead|{MAIN}\nurl|file:///srv/sample-app.git\nlocal|{MAIN}\n"
            ))])
            .unwrap();
        assert!(p.actions.is_empty(), "{p:?}");
        // Unknown locally and not advertised: fetch, decide at apply time.
        let p = t
            .plan(&[res(&format!(
                "repo|present\nhead|{NEXT}\nurl|file:///srv/sample-app.git\nlocal|\n"
            ))])
            .unwrap();
        assert_eq!(p.actions.len(), 1);
        let done = t
            .finish(
                p,
                &[ActionOutput {
                    stdout: format!("after|{NEXT}\n").into_bytes(),
                    stderr: vec![],
                    exit_code: 0,
                }],
            )
            .unwrap();
        assert!(!done.changed());
    }

    #[test]
    fn update_false_and_clone_false() {
        let t = task(json!({"update": false, "version": "next"}));
        assert!(t.probe_script().contains("  exit 0\nelif"));
        let p = t
            .plan(&[res(&format!("repo|present\nhead|{MAIN}\nurl|x\nlocal|\n"))])
            .unwrap();
        assert!(p.actions.is_empty());
        let t = task(json!({"clone": false}));
        assert!(t.plan(&[res("repo|absent\n")]).unwrap().actions.is_empty());
    }

    #[test]
    fn url_change_and_ls_remote_errors() {
        let t = task(json!({"repo": "file:///srv/other.git"}));
        let out = format!("repo|present\nhead|{MAIN}\nurl|file:///srv/sample-app.git\nlocal|{MAIN}\nls|{MAIN}\tHEAD\n");
        let p = t.plan(&[res(&out)]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.result["remote_url_changed"], json!(true));
        let e = t
            .plan(&[res("repo|absent\nlserr|fatal: repository not found\n")])
            .unwrap_err();
        assert!(e.to_string().contains("repository not found"));
    }

    #[test]
    fn probe_and_actions_work_against_a_local_repo() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let sh = |s: &str| {
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(s)
                .current_dir(root)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{s}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            o
        };
        sh("git init -q -b main src && cd src && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m 1 && git tag -a v1 -m v1 && git checkout -qb next && git -c user.email=a@b -c user.name=a commit -q --allow-empty -m 2 && git checkout -q main");
        let repo = format!("file://{}/src", root.display());
        let dest = format!("{}/wc", root.display());
        for version in ["HEAD", "next", "v1", "main"] {
            let t = build(
                json!({"repo": repo, "dest": dest, "version": version})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
            let run = |t: &GitTask| {
                let o = sh(&t.probe_script());
                t.plan(&[res(&String::from_utf8_lossy(&o.stdout))]).unwrap()
            };
            let p = run(&t);
            for a in &p.actions {
                sh(&a.script);
            }
            let p2 = run(&t);
            assert!(p2.actions.is_empty(), "{version}: not idempotent: {p2:?}");
        }
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn git_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        testhost::run("rm -rf /tmp/gitt", None);
        let mk = |v: Value| build(v.as_object().unwrap()).unwrap();
        for (version, depth) in [
            ("main", None),
            ("next", None),
            ("HEAD", None),
            ("next", Some(1)),
        ] {
            let mut a = json!({"repo": "file:///srv/sample-app.git", "dest": "/tmp/gitt/app", "version": version});
            if let Some(d) = depth {
                a["depth"] = json!(d);
                a["dest"] = json!("/tmp/gitt/shallow");
            }
            let t = mk(a);
            let (first, second) = testhost::converge(&t);
            eprintln!("{version}: {:?} {:?}", first.diffs, first.result);
            assert!(second.actions.is_empty(), "{version}: {:?}", second.diffs);
        }
        // Local modification: fails without force, discarded with force.
        testhost::run(
            "echo x >> /tmp/gitt/app/README.md || echo x >> \"$(ls /tmp/gitt/app/*.py | head -1)\"",
            None,
        );
        let t = mk(json!({"repo": "file:///srv/sample-app.git", "dest": "/tmp/gitt/app"}));
        let probe = testhost::run(&t.probe_script(), None);
        let e = t
            .plan(&[ProbeResult {
                stdout: probe.stdout_str(),
                stderr: String::new(),
                rc: 0,
            }])
            .unwrap_err();
        assert!(e.to_string().contains("Local modifications"), "{e}");
        let t = mk(
            json!({"repo": "file:///srv/sample-app.git", "dest": "/tmp/gitt/app", "force": true}),
        );
        let (first, second) = testhost::converge(&t);
        assert!(first.changed() && second.actions.is_empty());
        // Short sha of next.
        let sha = testhost::run("git -C /srv/sample-app.git rev-parse next", None).stdout_str();
        let t = mk(
            json!({"repo": "file:///srv/sample-app.git", "dest": "/tmp/gitt/app", "version": &sha.trim()[..8]}),
        );
        let (first, second) = testhost::converge(&t);
        eprintln!("short: {:?} changed={}", first.diffs, first.changed());
        assert!(second.actions.is_empty());
    }
}
