//! `secret`: a random value generated once on the host and kept in a file (a Django
//! `SECRET_KEY`, a database password), then reused on every run.
//!
//! The value is generated on the host (`/dev/urandom` filtered by `tr`) so it never travels
//! through the controller until it is read back for `register` (result key `secret`; the executor
//! treats registered results of this module as secret). A file that exists and is not empty is
//! never regenerated; only its owner/group/mode are corrected. Diffs show
//! `secret: absent -> (generated, 50 chars)`, never the value.
//!
//! `chars` takes literal characters and/or the names `ascii_letters`, `ascii_lowercase`,
//! `ascii_uppercase`, `digits`, `hexdigits`, `punctuation` (comma-separated or a list), like
//! Ansible's `password` lookup. The default avoids characters that need quoting in shells,
//! env files and URLs (`$`, quotes, `#`, `\`, `%`).

use super::args::{self, opt_list, opt_mode, opt_string, Mode};
use super::common::{attributes_plan, file_probe, parse_file_state, FileKind};
use super::{
    sh_quote, Action, ActionOutput, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct SecretModule;

const PARAMS: &[&str] = &[
    "path", "dest", "length", "chars", "charset", "owner", "group", "mode",
];

/// Default alphabet: letters, digits and punctuation that is safe unquoted in most places.
pub const DEFAULT_CHARS: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@^&*(-_=+)";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "dest")]
    path: String,
    #[serde(default, deserialize_with = "opt_string")]
    length: Option<String>,
    #[serde(default, alias = "charset", deserialize_with = "opt_list")]
    chars: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_string")]
    owner: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group: Option<String>,
    #[serde(default, deserialize_with = "opt_mode")]
    mode: Option<Mode>,
}

#[derive(Debug)]
struct SecretTask {
    path: String,
    length: usize,
    chars: Vec<u8>,
    owner: Option<String>,
    group: Option<String>,
    mode: Mode,
}

module_impl!(SecretModule, "secret");

fn charset(items: &[String]) -> Result<Vec<u8>, ModuleError> {
    let mut out: Vec<u8> = Vec::new();
    for it in items {
        let add: String = match it.as_str() {
            "ascii_letters" => ('a'..='z').chain('A'..='Z').collect(),
            "ascii_lowercase" => ('a'..='z').collect(),
            "ascii_uppercase" => ('A'..='Z').collect(),
            "digits" => ('0'..='9').collect(),
            "hexdigits" => "0123456789abcdefABCDEF".into(),
            "punctuation" => "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".into(),
            lit => lit.to_string(),
        };
        for b in add.bytes() {
            if !b.is_ascii_graphic() {
                return Err(ModuleError::Args(format!(
                    "secret: chars must be printable ASCII, got {:?}",
                    b as char
                )));
            }
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    if out.len() < 2 {
        return Err(ModuleError::Args(
            "secret: chars must contain at least two distinct characters".into(),
        ));
    }
    Ok(out)
}

fn build(args: &Map<String, Value>) -> Result<SecretTask, ModuleError> {
    let a: Args = args::parse("secret", PARAMS, args)?;
    if a.path.trim().is_empty() {
        return Err(ModuleError::Args("secret: path must not be empty".into()));
    }
    let length = match a.length.as_deref().map(str::trim) {
        None | Some("") => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=4096).contains(&n) => n,
            _ => {
                return Err(ModuleError::Args(format!(
                    "secret: length must be a number between 1 and 4096, got '{l}'"
                )))
            }
        },
    };
    let chars = match a.chars {
        Some(c) if !c.is_empty() => charset(&c)?,
        _ => DEFAULT_CHARS.bytes().collect(),
    };
    Ok(SecretTask {
        path: a.path,
        length,
        chars,
        owner: a.owner,
        group: a.group,
        mode: a.mode.unwrap_or(Mode::Octal(0o600)),
    })
}

/// A `tr` set listing exactly these bytes (octal escapes for everything but alphanumerics).
fn tr_set(chars: &[u8]) -> String {
    chars
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (*b as char).to_string()
            } else {
                format!("\\{b:03o}")
            }
        })
        .collect()
}

impl SecretTask {
    fn generate_action(&self) -> Action {
        let p = sh_quote(&self.path);
        let mode = self.mode.resolve(0o600, false);
        let mut s = format!(
            "set -e\numask 077\np={p}\nd=$(dirname -- \"$p\")\nmkdir -p -- \"$d\"\ntmp=$(mktemp \"$d/.provision.XXXXXXXX\")\ntrap 'rm -f \"$tmp\"' EXIT\n\
             LC_ALL=C tr -dc {} < /dev/urandom | head -c {n} > \"$tmp\"\n\
             [ \"$(wc -c < \"$tmp\")\" -eq {n} ] || {{ echo 'could not generate the secret' >&2; exit 1; }}\n",
            sh_quote(&tr_set(&self.chars)),
            n = self.length
        );
        if let Some(o) = &self.owner {
            s.push_str(&format!("chown {} \"$tmp\"\n", sh_quote(o)));
        }
        if let Some(g) = &self.group {
            s.push_str(&format!("chgrp {} \"$tmp\"\n", sh_quote(g)));
        }
        s.push_str(&format!("chmod {mode:04o} \"$tmp\"\nmv -f \"$tmp\" \"$p\"\ntrap - EXIT\nprintf 'secret|'; cat \"$p\"; echo\n"));
        Action::new(
            format!("generate secret {}", self.path),
            s,
            Scope::path(&self.path),
        )
    }
}

impl ModuleTask for SecretTask {
    fn probes(&self) -> Vec<Probe> {
        vec![file_probe(&self.path, true)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let st = parse_file_state(
            probes
                .first()
                .ok_or_else(|| ModuleError::Probe("secret: no probe output".into()))?,
        )?;
        let mut plan = Plan::ok();
        plan.result.insert("path".into(), json!(self.path));
        match st.kind {
            FileKind::File if st.size > 0 => {
                let value = st.text().ok_or_else(|| {
                    ModuleError::Failed(format!("secret: {} is not a small text file", self.path))
                })?;
                let value = value.strip_suffix('\n').unwrap_or(&value).to_string();
                plan.result.insert("secret".into(), json!(value));
                let (diffs, action) = attributes_plan(
                    &self.path,
                    &st,
                    self.owner.as_deref(),
                    self.group.as_deref(),
                    Some(&self.mode),
                    false,
                );
                plan.diffs = diffs;
                plan.actions.extend(action);
            }
            FileKind::File | FileKind::Absent => {
                plan.diffs.push(Diff::Field {
                    name: "secret".into(),
                    before: if st.exists() {
                        "empty".into()
                    } else {
                        "absent".into()
                    },
                    after: format!("(generated, {} chars)", self.length),
                });
                plan.result.insert("secret".into(), Value::Null);
                plan.actions.push(self.generate_action());
            }
            ref k => {
                return Err(ModuleError::Failed(format!(
                    "secret: {} exists and is a {}, not a file",
                    self.path,
                    k.name()
                )))
            }
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        for o in outputs {
            let out = String::from_utf8_lossy(&o.stdout);
            if let Some(idx) = out.find("secret|") {
                let v = out[idx + 7..].trim_end_matches('\n').to_string();
                plan.result.insert("secret".into(), json!(v));
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::ok as res;
    use super::*;

    #[test]
    fn generates_once_and_never_shows_the_value() {
        let t = build(json!({"path": "/etc/app/secret_key"}).as_object().unwrap()).unwrap();
        let p = t.plan(&[res("absent\n")]).unwrap();
        assert_eq!(
            p.diffs,
            vec![Diff::Field {
                name: "secret".into(),
                before: "absent".into(),
                after: "(generated, 50 chars)".into()
            }]
        );
        assert_eq!(p.actions.len(), 1);
        // existing: value read back, nothing to do
        let p = t
            .plan(&[res(
                "file|root|root|0|0|600|6|1\nsha256|x\ncontent\nYWJjZGUK\n",
            )])
            .unwrap();
        assert!(p.actions.is_empty());
        assert_eq!(p.result["secret"], json!("abcde"));
        assert!(p.diffs.is_empty());
        // mode drift is fixed without regenerating
        let p = t
            .plan(&[res(
                "file|root|root|0|0|644|6|1\nsha256|x\ncontent\nYWJjZGUK\n",
            )])
            .unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(p.actions[0].script.starts_with("chmod 0600"));
        assert!(!format!("{:?}", p.diffs).contains("abcde"));
    }

    #[test]
    fn charsets() {
        assert_eq!(charset(&["digits".into()]).unwrap(), b"0123456789".to_vec());
        assert!(charset(&["a".into()]).is_err());
        assert_eq!(tr_set(b"a-$"), "a\\055\\044");
        assert!(!DEFAULT_CHARS.contains(['$', '\'', '"', '#', '\\', '%']));
    }

    #[test]
    fn generation_runs_here() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sub/secret");
        let t = build(json!({"path": path.to_str().unwrap(), "length": "40", "chars": "ascii_letters,digits,-_"}).as_object().unwrap()).unwrap();
        let a = &t.plan(&[res("absent\n")]).unwrap().actions[0];
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(&a.script)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v = std::fs::read_to_string(&path).unwrap();
        assert_eq!(v.len(), 40);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let done = t
            .finish(
                t.plan(&[res("absent\n")]).unwrap(),
                &[ActionOutput {
                    stdout: o.stdout.clone(),
                    stderr: vec![],
                    exit_code: 0,
                }],
            )
            .unwrap();
        assert_eq!(done.result["secret"], json!(v));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        // Second run: probe sees it, nothing to do.
        let probe = t.probes().remove(0);
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(&probe.script)
            .output()
            .unwrap();
        let p = t.plan(&[res(&String::from_utf8_lossy(&o.stdout))]).unwrap();
        assert!(p.actions.is_empty());
        assert_eq!(p.result["secret"], json!(v));
    }
}
