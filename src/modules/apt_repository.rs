//! `apt_repository`: a one-line APT source in `/etc/apt/sources.list.d/<filename>.list`.
//! `present` is satisfied when the line (whitespace-normalised) is active in any `.list` file,
//! as in Ansible; `absent` removes it from every file (deleting files left empty). With
//! `update_cache` (default true) a change is followed by `apt-get update`.

use super::args::{self, opt_boolish, opt_mode, opt_string, Mode};
use super::common;
use super::{sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct AptRepositoryModule;

const PARAMS: &[&str] = &[
    "repo",
    "state",
    "mode",
    "update_cache",
    "update-cache",
    "update_cache_retries",
    "update_cache_retry_max_delay",
    "validate_certs",
    "filename",
    "codename",
    "install_python_apt",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    repo: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_mode")]
    mode: Option<Mode>,
    #[serde(default, alias = "update-cache", deserialize_with = "opt_boolish")]
    update_cache: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    update_cache_retries: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    update_cache_retry_max_delay: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    validate_certs: Option<bool>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    codename: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    install_python_apt: Option<bool>,
}

#[derive(Debug)]
struct RepoTask {
    repo: String,
    dest: String,
    present: bool,
    mode: u32,
    update_cache: bool,
}

module_impl!(AptRepositoryModule, "apt_repository");

fn normalize(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Ansible's default file name: the repository's host and path, non-alphanumerics as `_`.
fn suggest_filename(repo: &str) -> String {
    let no_opts = regex::Regex::new(r"\[[^\]]+\]").unwrap().replace_all(repo, "");
    let no_proto = regex::Regex::new(r"\w+://").unwrap().replace_all(&no_opts, "");
    let first = no_proto
        .split_whitespace()
        .find(|p| *p != "deb" && *p != "deb-src")
        .unwrap_or("repo");
    let first = first.rsplit_once('@').map(|(_, h)| h).unwrap_or(first);
    let cleaned: String = first.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { ' ' }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join("_")
}

fn build(args: &Map<String, Value>) -> Result<RepoTask, ModuleError> {
    let a: Args = args::parse("apt_repository", PARAMS, args)?;
    let _ = (
        a.update_cache_retries,
        a.update_cache_retry_max_delay,
        a.validate_certs,
        a.codename,
        a.install_python_apt,
    );
    let present = args::present_state("apt_repository", a.state.as_deref())?;
    let repo = normalize(&a.repo);
    if repo.starts_with("ppa:") {
        return Err(ModuleError::Args("apt_repository: PPAs are not supported (Ubuntu only)".into()));
    }
    if !(repo.starts_with("deb ") || repo.starts_with("deb-src ")) {
        return Err(ModuleError::Args(format!(
            "apt_repository: repo must be a 'deb ...' or 'deb-src ...' line, got '{repo}'"
        )));
    }
    let file = match a.filename.as_deref() {
        Some(f) => f.trim_end_matches(".list").to_string(),
        None => suggest_filename(&repo),
    };
    if file.is_empty() || file.contains('/') {
        return Err(ModuleError::Args(format!("apt_repository: invalid filename '{file}'")));
    }
    Ok(RepoTask {
        repo,
        dest: format!("/etc/apt/sources.list.d/{file}.list"),
        present,
        mode: a.mode.map(|m| m.resolve(0o644, false)).unwrap_or(0o644),
        update_cache: a.update_cache.unwrap_or(true),
    })
}

impl RepoTask {
    fn update_action(&self) -> Action {
        Action::new("update apt cache", "export DEBIAN_FRONTEND=noninteractive\nset -e\napt-get update -q -o DPkg::Lock::Timeout=300\nmkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp", Scope::Host)
    }
}

impl ModuleTask for RepoTask {
    fn probes(&self) -> Vec<Probe> {
        let list = "for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [ -f \"$f\" ] || continue; \
                    awk -v f=\"$f\" '/^[ \\t]*deb(-src)?[ \\t]/ { print \"src|\" f \"|\" $0 }' \"$f\"; done; true";
        vec![Probe::new(list, Scope::path("/etc/apt")), common::file_probe(&self.dest, true)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        if probes.len() < 2 || probes[0].rc != 0 {
            return Err(ModuleError::Probe("cannot read APT sources".into()));
        }
        let st = common::parse_file_state(&probes[1])?;
        let found: Vec<String> = probes[0]
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("src|"))
            .filter_map(|l| l.split_once('|'))
            .filter(|(_, line)| normalize(line) == self.repo)
            .map(|(f, _)| f.to_string())
            .collect();
        let mut plan = Plan::ok();
        plan.result.insert("repo".into(), json!(self.repo));
        plan.result
            .insert("state".into(), json!(if self.present { "present" } else { "absent" }));
        if self.present {
            if found.is_empty() {
                let mut content = st.text().unwrap_or_default();
                if !content.is_empty() && !content.ends_with('\n') {
                    content.push('\n');
                }
                content.push_str(&self.repo);
                content.push('\n');
                plan.diffs.push(common::content_diff(&self.dest, &st, content.as_bytes()));
                plan.actions.push(common::write_file_action(
                    &self.dest,
                    content.as_bytes(),
                    Some("root"),
                    Some("root"),
                    Some(self.mode),
                    None,
                ));
                plan.result.insert("sources_added".into(), json!([self.dest]));
            }
        } else {
            let mut files = found.clone();
            files.dedup();
            for f in &files {
                plan.diffs.push(Diff::Field {
                    name: f.clone(),
                    before: self.repo.clone(),
                    after: "(removed)".into(),
                });
                let q = sh_quote(f);
                let s = format!(
                    "set -e\ntmp=$(mktemp)\ntrap 'rm -f \"$tmp\"' EXIT\n\
                     awk -v l={} '{{ x=$0; gsub(/[ \\t]+/, \" \", x); sub(/^ /, \"\", x); sub(/ $/, \"\", x); if (x != l) print }}' {q} > \"$tmp\"\n\
                     if grep -q '[^[:space:]]' \"$tmp\"; then cat \"$tmp\" > {q}; else rm -f -- {q}; fi\n",
                    sh_quote(&self.repo)
                );
                plan.actions
                    .push(Action::new(format!("remove repository from {f}"), s, Scope::path(f.as_str())));
            }
            if !files.is_empty() {
                plan.result.insert("sources_removed".into(), json!(files));
            }
        }
        if !plan.actions.is_empty() && self.update_cache {
            plan.actions.push(self.update_action());
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_sh_syntax, ok};
    use super::*;

    #[test]
    fn filenames_like_ansible() {
        assert_eq!(
            suggest_filename("deb http://dl.google.com/linux/chrome/deb/ stable main"),
            "dl_google_com_linux_chrome_deb"
        );
        assert_eq!(
            suggest_filename("deb [arch=amd64 signed-by=/x.gpg] https://user:pw@apt.example.org/debian bookworm main"),
            "apt_example_org_debian"
        );
    }

    #[test]
    fn present_absent() {
        let t = build(
            json!({"repo": "deb  [trusted=yes] file:/srv/localrepo ./", "filename": "local"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t
            .plan(&[
                ok("src|/etc/apt/sources.list|deb [trusted=yes] file:/srv/localrepo ./\n"),
                ok("absent\n"),
            ])
            .unwrap();
        assert!(p.actions.is_empty());
        let p = t.plan(&[ok(""), ok("absent\n")]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert_eq!(
            p.actions[0].stdin.as_deref(),
            Some(&b"deb [trusted=yes] file:/srv/localrepo ./\n"[..])
        );
        assert!(p.actions[1].script.contains("apt-get update"));
        let t = build(
            json!({"repo": "deb [trusted=yes] file:/srv/localrepo ./", "state": "absent", "update_cache": false})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t
            .plan(&[
                ok("src|/etc/apt/sources.list|deb [trusted=yes] file:/srv/localrepo ./\n"),
                ok("absent\n"),
            ])
            .unwrap();
        assert_eq!(p.actions.len(), 1);
        assert_sh_syntax(&p.actions[0].script);
        assert_sh_syntax(&t.probes()[0].script);
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn apt_repository_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        let t = build(
            json!({"repo": "deb [trusted=yes] file:/srv/localrepo ./", "filename": "mslocal"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = testhost::plan(&t);
        eprintln!("{:?}", p.diffs);
        // the testbed's own sources already have it: nothing to do
        assert!(p.actions.is_empty());
        let t = build(
            json!({"repo": "deb [trusted=yes] file:/srv/localrepo  ./ ", "state": "absent", "update_cache": false})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = testhost::plan(&t);
        eprintln!("{:?}", p.diffs);
        assert_eq!(p.actions.len(), 1);
    }
}
