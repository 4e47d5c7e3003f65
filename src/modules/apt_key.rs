//! `apt_key` (minimal, no `apt-key`): a key file for APT. The key goes to `keyring` when given,
//! else `/etc/apt/trusted.gpg.d/<id or name>.asc`. `data`/`file` keys are compared by content;
//! a `url` key is downloaded on the host only when the file is missing. `.gpg` keyrings get
//! binary keys (`gpg --dearmor` on the host for armored data).

use super::args::{self, opt_boolish};
use super::common;
use super::deb822_repository::{download_action, sanitize, FETCH_FN};
use super::{sh_quote, Action, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct AptKeyModule;

const PARAMS: &[&str] = &["id", "url", "data", "file", "keyring", "keyserver", "state", "validate_certs"];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    keyring: Option<String>,
    #[serde(default)]
    keyserver: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    validate_certs: Option<bool>,
}

#[derive(Debug)]
enum Source {
    Url(String),
    Data(String),
    /// A key file already on the host.
    File(String),
    None,
}

#[derive(Debug)]
struct KeyTask {
    path: String,
    present: bool,
    source: Source,
    dearmor: bool,
}

module_impl!(AptKeyModule, "apt_key");

fn build(args: &Map<String, Value>) -> Result<KeyTask, ModuleError> {
    let a: Args = args::parse("apt_key", PARAMS, args)?;
    let _ = a.validate_certs;
    let present = args::present_state("apt_key", a.state.as_deref())?;
    if a.keyserver.is_some() {
        return Err(ModuleError::Args("apt_key: keyserver is not supported; use url or data".into()));
    }
    let source = match (a.url, a.data, a.file) {
        (Some(u), None, None) => Source::Url(u),
        (None, Some(d), None) => Source::Data(if d.ends_with('\n') { d } else { format!("{d}\n") }),
        (None, None, Some(f)) => Source::File(f),
        (None, None, None) => Source::None,
        _ => {
            return Err(ModuleError::Args(
                "apt_key: parameters are mutually exclusive: url, data, file".into(),
            ))
        }
    };
    if present && matches!(source, Source::None) {
        return Err(ModuleError::Args(
            "apt_key: one of url, data or file is required with state=present".into(),
        ));
    }
    let id =
        a.id.map(|i| i.trim().trim_start_matches("0x").to_string())
            .filter(|i| !i.is_empty());
    let path = match (&a.keyring, &id, &source) {
        (Some(k), _, _) => k.clone(),
        (None, Some(i), _) => format!("/etc/apt/trusted.gpg.d/{}.asc", sanitize(i)),
        (None, None, Source::Url(u)) => {
            let base = u.rsplit('/').next().unwrap_or("key").split(['?', '#']).next().unwrap_or("key");
            let base = base.trim_end_matches(".asc").trim_end_matches(".gpg").trim_end_matches(".key");
            format!(
                "/etc/apt/trusted.gpg.d/{}.asc",
                sanitize(if base.is_empty() { "key" } else { base })
            )
        }
        (None, None, Source::File(f)) => format!("/etc/apt/trusted.gpg.d/{}", f.rsplit('/').next().unwrap_or("key.asc")),
        _ => return Err(ModuleError::Args("apt_key: give keyring or id to name the key file".into())),
    };
    let dearmor = path.ends_with(".gpg");
    Ok(KeyTask {
        path,
        present,
        source,
        dearmor,
    })
}

impl ModuleTask for KeyTask {
    fn probes(&self) -> Vec<Probe> {
        vec![common::file_probe(&self.path, true)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let st = common::parse_file_state(probes.first().ok_or_else(|| ModuleError::Probe("missing key probe".into()))?)?;
        let mut plan = Plan::ok();
        plan.result.insert("keyring".into(), json!(self.path));
        let p = sh_quote(&self.path);
        if !self.present {
            if st.exists() {
                plan.diffs.push(Diff::Field {
                    name: self.path.clone(),
                    before: "present".into(),
                    after: "absent".into(),
                });
                plan.actions.push(Action::new(
                    format!("remove {}", self.path),
                    format!("rm -f -- {p}"),
                    Scope::path(&self.path),
                ));
            }
            return Ok(plan);
        }
        match &self.source {
            Source::Data(d) if !self.dearmor || !d.contains("-----BEGIN PGP") => {
                if st.content.as_deref() != Some(d.as_bytes()) {
                    plan.diffs.push(common::content_diff(&self.path, &st, d.as_bytes()));
                    plan.actions.push(common::write_file_action(
                        &self.path,
                        d.as_bytes(),
                        Some("root"),
                        Some("root"),
                        Some(0o644),
                        None,
                    ));
                }
            }
            Source::Data(d) => {
                if !st.exists() {
                    plan.diffs.push(Diff::Field {
                        name: self.path.clone(),
                        before: "absent".into(),
                        after: "present".into(),
                    });
                    let s = format!("set -e\ntmp=$(mktemp)\ntrap 'rm -f \"$tmp\"' EXIT\ngpg --dearmor < /dev/stdin > \"$tmp\"\nchmod 0644 \"$tmp\"\nmv -f \"$tmp\" {p}\ntrap - EXIT\n");
                    plan.actions
                        .push(Action::new(format!("write {}", self.path), s, Scope::path(&self.path)).with_stdin(d.as_bytes().to_vec()));
                }
            }
            Source::Url(u) => {
                if !st.exists() {
                    plan.diffs.push(Diff::Field {
                        name: self.path.clone(),
                        before: "absent".into(),
                        after: format!("downloaded from {u}"),
                    });
                    if self.dearmor {
                        let s = format!(
                            "set -e\n{FETCH_FN}tmp=$(mktemp)\ntrap 'rm -f \"$tmp\" \"$tmp.k\"' EXIT\nfetch {} > \"$tmp.k\"\n\
                             if grep -q -- '-----BEGIN PGP' \"$tmp.k\"; then gpg --dearmor < \"$tmp.k\" > \"$tmp\"; else cat \"$tmp.k\" > \"$tmp\"; fi\n\
                             chmod 0644 \"$tmp\"\nmv -f \"$tmp\" {p}\n",
                            sh_quote(u)
                        );
                        plan.actions
                            .push(Action::new(format!("download {u} to {}", self.path), s, Scope::path(&self.path)));
                    } else {
                        plan.actions.push(download_action(u, &self.path));
                    }
                }
            }
            Source::File(f) => {
                if !st.exists() {
                    plan.diffs.push(Diff::Field {
                        name: self.path.clone(),
                        before: "absent".into(),
                        after: format!("copied from {f}"),
                    });
                    plan.actions.push(Action::new(
                        format!("copy {f} to {}", self.path),
                        format!("install -m 0644 -- {} {p}", sh_quote(f)),
                        Scope::path(&self.path),
                    ));
                }
            }
            Source::None => {}
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{assert_sh_syntax, ok};
    use super::*;

    #[test]
    fn key_files() {
        let t = build(
            json!({"url": "https://example.org/keys/repo.gpg.key", "keyring": "/etc/apt/keyrings/ex.asc"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(t.plan(&[ok("absent\n")]).unwrap().actions.len(), 1);
        assert!(t.plan(&[ok("file|root|root|0|0|644|3|1\nsha256|x\n")]).unwrap().actions.is_empty());
        let t = build(json!({"id": "0xABCD", "data": "KEY"}).as_object().unwrap()).unwrap();
        assert_eq!(t.path, "/etc/apt/trusted.gpg.d/ABCD.asc");
        let p = t.plan(&[ok("absent\n")]).unwrap();
        assert_eq!(p.actions[0].stdin.as_deref(), Some(&b"KEY\n"[..]));
        let t = build(json!({"id": "ABCD", "state": "absent"}).as_object().unwrap()).unwrap();
        assert_eq!(
            t.plan(&[ok("file|root|root|0|0|644|3|1\n")]).unwrap().actions[0].script,
            "rm -f -- /etc/apt/trusted.gpg.d/ABCD.asc"
        );
        let t = build(
            json!({"url": "https://x/k.asc", "keyring": "/usr/share/keyrings/x.gpg"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let a = &t.plan(&[ok("absent\n")]).unwrap().actions[0];
        assert_sh_syntax(&a.script);
    }
}
