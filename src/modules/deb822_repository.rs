//! `deb822_repository`: an APT source in deb822 format, `/etc/apt/sources.list.d/<name>.sources`,
//! with its key in `/etc/apt/keyrings/<name>.asc` when `signed_by` is a URL or key text.
//!
//! A key given by URL is downloaded on the host (curl, wget or python3) only when the keyring
//! file is missing: an existing keyring file is trusted as is. The module does not refresh
//! APT's lists; the result's `cache_update_needed` says whether the source changed (follow with
//! `apt: update_cache: true`).

use super::args::{self, opt_boolish, opt_list, opt_mode, opt_string, Mode};
use super::common;
use super::{sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct Deb822RepositoryModule;

const PARAMS: &[&str] = &[
    "name",
    "types",
    "uris",
    "suites",
    "components",
    "signed_by",
    "architectures",
    "enabled",
    "state",
    "allow_insecure",
    "allow_weak",
    "allow_downgrade_to_insecure",
    "by_hash",
    "check_date",
    "check_valid_until",
    "date_max_future",
    "inrelease_path",
    "languages",
    "pdiffs",
    "targets",
    "trusted",
    "mode",
    "install_python_debian",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    name: String,
    #[serde(default, deserialize_with = "opt_list")]
    types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_list")]
    uris: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_list")]
    suites: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_list")]
    components: Option<Vec<String>>,
    #[serde(default)]
    signed_by: Option<String>,
    #[serde(default, deserialize_with = "opt_list")]
    architectures: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_boolish")]
    enabled: Option<bool>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    allow_insecure: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    allow_weak: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    allow_downgrade_to_insecure: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    by_hash: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    check_date: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    check_valid_until: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    date_max_future: Option<String>,
    #[serde(default)]
    inrelease_path: Option<String>,
    #[serde(default, deserialize_with = "opt_list")]
    languages: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_boolish")]
    pdiffs: Option<bool>,
    #[serde(default, deserialize_with = "opt_list")]
    targets: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_boolish")]
    trusted: Option<bool>,
    #[serde(default, deserialize_with = "opt_mode")]
    mode: Option<Mode>,
    #[serde(default, deserialize_with = "opt_boolish")]
    install_python_debian: Option<bool>,
}

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    None,
    /// Existing path on the host (or a fingerprint list): referenced as is.
    Path(String),
    Url(String),
    Text(String),
}

#[derive(Debug)]
struct RepoTask {
    dest: String,
    key_path: String,
    present: bool,
    content: String,
    key: Key,
    mode: u32,
}

module_impl!(Deb822RepositoryModule, "deb822_repository");

/// A file name from a repository name (`[^A-Za-z0-9_.-]` -> `_`).
pub(crate) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' })
        .collect()
}

/// Shell function `fetch URL` printing the body to stdout, with whatever the host has.
pub(crate) const FETCH_FN: &str = "fetch() { if command -v curl >/dev/null 2>&1; then curl -fsSL -- \"$1\"; \
elif command -v wget >/dev/null 2>&1; then wget -qO- -- \"$1\"; \
else python3 -c 'import sys,urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=60).read())' \"$1\"; fi; }\n";

/// Action: download `url` atomically to `path` (mode 0644).
pub(crate) fn download_action(url: &str, path: &str) -> Action {
    let p = sh_quote(path);
    let s = format!(
        "set -e\n{FETCH_FN}mkdir -p \"$(dirname -- {p})\"\ntmp=$(mktemp \"$(dirname -- {p})/.provision.XXXXXXXX\")\ntrap 'rm -f \"$tmp\"' EXIT\n\
         fetch {} > \"$tmp\"\n[ -s \"$tmp\" ] || {{ echo 'empty download: '{} >&2; exit 1; }}\nchmod 0644 \"$tmp\"\nmv -f \"$tmp\" {p}\ntrap - EXIT\n",
        sh_quote(url),
        sh_quote(url)
    );
    Action::new(format!("download {url} to {path}"), s, Scope::path(path))
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn build(args: &Map<String, Value>) -> Result<RepoTask, ModuleError> {
    let a: Args = args::parse("deb822_repository", PARAMS, args)?;
    let _ = a.install_python_debian;
    let present = args::present_state("deb822_repository", a.state.as_deref())?;
    let file = sanitize(&a.name);
    let dest = format!("/etc/apt/sources.list.d/{file}.sources");
    let key_path = format!("/etc/apt/keyrings/{file}.asc");
    let key = match a.signed_by.as_deref().map(str::trim) {
        None | Some("") => Key::None,
        Some(s) if s.contains("-----BEGIN PGP") => Key::Text(format!("{}\n", s.trim_end())),
        Some(s) if s.starts_with("http://") || s.starts_with("https://") => Key::Url(s.to_string()),
        Some(s) => Key::Path(s.to_string()),
    };
    if present && (a.uris.as_ref().is_none_or(|u| u.is_empty()) || a.suites.as_ref().is_none_or(|s| s.is_empty())) {
        return Err(ModuleError::Args(
            "deb822_repository: uris and suites are required with state=present".into(),
        ));
    }
    let mut c = format!("X-Repolib-Name: {}\n", a.name);
    let mut field = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            c.push_str(&format!("{k}: {v}\n"));
        }
    };
    let join = |v: &Option<Vec<String>>| v.as_ref().map(|v| v.join(" "));
    field(
        "Types",
        Some(
            a.types
                .as_ref()
                .filter(|t| !t.is_empty())
                .map(|t| t.join(" "))
                .unwrap_or_else(|| "deb".into()),
        ),
    );
    field("URIs", join(&a.uris));
    field("Suites", join(&a.suites));
    field("Components", join(&a.components));
    field("Architectures", join(&a.architectures));
    field("Languages", join(&a.languages));
    field("Targets", join(&a.targets));
    field("PDiffs", a.pdiffs.map(|b| yes_no(b).into()));
    field("By-Hash", a.by_hash.map(|b| yes_no(b).into()));
    field("Allow-Insecure", a.allow_insecure.map(|b| yes_no(b).into()));
    field("Allow-Weak", a.allow_weak.map(|b| yes_no(b).into()));
    field(
        "Allow-Downgrade-To-Insecure",
        a.allow_downgrade_to_insecure.map(|b| yes_no(b).into()),
    );
    field("Trusted", a.trusted.map(|b| yes_no(b).into()));
    field("Check-Valid-Until", a.check_valid_until.map(|b| yes_no(b).into()));
    field("Check-Date", a.check_date.map(|b| yes_no(b).into()));
    field("Date-Max-Future", a.date_max_future.clone());
    field("InRelease-Path", a.inrelease_path.clone());
    field("Enabled", a.enabled.map(|b| yes_no(b).into()));
    field(
        "Signed-By",
        match &key {
            Key::None => None,
            Key::Path(p) => Some(p.clone()),
            Key::Url(_) | Key::Text(_) => Some(key_path.clone()),
        },
    );
    Ok(RepoTask {
        dest,
        key_path,
        present,
        content: c,
        key,
        mode: a.mode.map(|m| m.resolve(0o644, false)).unwrap_or(0o644),
    })
}

impl ModuleTask for RepoTask {
    fn probes(&self) -> Vec<Probe> {
        vec![common::file_probe(&self.dest, true), common::file_probe(&self.key_path, true)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        if probes.len() < 2 {
            return Err(ModuleError::Probe("missing deb822_repository probes".into()));
        }
        let st = common::parse_file_state(&probes[0])?;
        let key = common::parse_file_state(&probes[1])?;
        let mut plan = Plan::ok();
        plan.result.insert("dest".into(), json!(self.dest));
        plan.result.insert("repo".into(), json!(self.content));
        if !self.present {
            let mut removed = false;
            for (path, s) in [(&self.dest, &st), (&self.key_path, &key)] {
                if s.exists() {
                    plan.diffs.push(Diff::Text {
                        path: path.clone(),
                        before: s.text(),
                        after: None,
                    });
                    plan.actions.push(Action::new(
                        format!("remove {path}"),
                        format!("rm -f -- {}", sh_quote(path)),
                        Scope::path(path.as_str()),
                    ));
                    removed = true;
                }
            }
            plan.result.insert("cache_update_needed".into(), json!(removed));
            return Ok(plan);
        }
        // key first, so the source never points at a missing key.
        match &self.key {
            Key::Text(t) => {
                if key.content.as_deref() != Some(t.as_bytes()) {
                    plan.diffs.push(common::content_diff(&self.key_path, &key, t.as_bytes()));
                    plan.actions.push(Action::new(
                        "create /etc/apt/keyrings",
                        "mkdir -p -m 0755 /etc/apt/keyrings",
                        Scope::path("/etc/apt/keyrings"),
                    ));
                    plan.actions.push(common::write_file_action(
                        &self.key_path,
                        t.as_bytes(),
                        Some("root"),
                        Some("root"),
                        Some(0o644),
                        None,
                    ));
                }
                plan.result.insert("key_filename".into(), json!(self.key_path));
            }
            Key::Url(u) => {
                if !key.exists() {
                    plan.diffs.push(Diff::Field {
                        name: self.key_path.clone(),
                        before: "absent".into(),
                        after: format!("downloaded from {u}"),
                    });
                    plan.actions.push(download_action(u, &self.key_path));
                }
                plan.result.insert("key_filename".into(), json!(self.key_path));
            }
            _ => {}
        }
        let source_changed = st.content.as_deref() != Some(self.content.as_bytes());
        if source_changed {
            plan.diffs.push(common::content_diff(&self.dest, &st, self.content.as_bytes()));
            plan.actions.push(common::write_file_action(
                &self.dest,
                self.content.as_bytes(),
                Some("root"),
                Some("root"),
                Some(self.mode),
                None,
            ));
        } else if st.mode != self.mode {
            plan.diffs.push(Diff::Field {
                name: "mode".into(),
                before: st.mode_str(),
                after: format!("{:04o}", self.mode),
            });
            plan.actions.push(Action::new(
                format!("chmod {}", self.dest),
                format!("chmod {:04o} {}", self.mode, sh_quote(&self.dest)),
                Scope::path(&self.dest),
            ));
        }
        plan.result.insert("cache_update_needed".into(), json!(!plan.actions.is_empty()));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_sh_syntax, file, ok};
    use super::*;


    #[test]
    fn writes_source_and_key() {
        let t = build(
            json!({"name": "nginx", "uris": "https://nginx.org/packages/debian", "suites": ["bookworm"], "components": "nginx", "signed_by": "https://nginx.org/keys/nginx_signing.key", "architectures": "amd64"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let want = "X-Repolib-Name: nginx\nTypes: deb\nURIs: https://nginx.org/packages/debian\nSuites: bookworm\nComponents: nginx\nArchitectures: amd64\nSigned-By: /etc/apt/keyrings/nginx.asc\n";
        assert_eq!(t.content, want);
        let p = t.plan(&[ok("absent\n"), ok("absent\n")]).unwrap();
        assert_eq!(p.actions.len(), 2);
        assert!(p.actions[0].script.contains("fetch https://nginx.org/keys/nginx_signing.key"));
        assert_eq!(p.result["cache_update_needed"], json!(true));
        let p = t.plan(&[file(want), file("KEY")]).unwrap();
        assert!(p.actions.is_empty());
        let t = build(json!({"name": "nginx", "state": "absent"}).as_object().unwrap()).unwrap();
        assert_eq!(t.plan(&[file(want), file("KEY")]).unwrap().actions.len(), 2);
        assert!(t.plan(&[ok("absent\n"), ok("absent\n")]).unwrap().actions.is_empty());
    }

    #[test]
    fn inline_key_text() {
        let key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n-----END PGP PUBLIC KEY BLOCK-----";
        let t = build(
            json!({"name": "x y", "uris": "http://a", "suites": "stable", "signed_by": key, "enabled": false})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(t.dest, "/etc/apt/sources.list.d/x_y.sources");
        assert!(t.content.contains("Enabled: no\nSigned-By: /etc/apt/keyrings/x_y.asc\n"));
        let p = t.plan(&[ok("absent\n"), file(&format!("{key}\n"))]).unwrap();
        assert_eq!(p.actions.len(), 1);
    }

    #[test]
    fn download_script_is_valid_sh() {
        let a = download_action("http://x/y.key", "/tmp/z.asc");
        assert_sh_syntax(&a.script);
    }
}
