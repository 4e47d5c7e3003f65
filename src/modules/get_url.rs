//! `get_url`: download a file on the host (curl, else wget, else python3 urllib) and move it
//! atomically into place.
//!
//! Idempotent like Ansible: an existing `dest` is left alone when its checksum matches
//! `checksum` (`sha256:<hex>`, also sha1/sha224/sha384/sha512/md5), or when no checksum is given
//! and `force` is false. With `force` (and no matching checksum) the file is downloaded to a temp
//! file and replaces `dest` only when the bytes differ; the task is `changed` only then (check
//! mode predicts a change). `dest` may be a directory: the file name is the URL's last path
//! segment. `headers` travel to the host on stdin, never in the script text.

use super::args::{self, opt_boolish, opt_mode, opt_string, Mode};
use super::common::{attributes_plan, parse_file_state, stat_lines, FileKind};
use super::{
    sh_quote, Action, ActionOutput, Diff, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct GetUrlModule;

const PARAMS: &[&str] = &[
    "url",
    "dest",
    "checksum",
    "mode",
    "owner",
    "group",
    "force",
    "timeout",
    "headers",
    "validate_certs",
    "url_username",
    "url_password",
    "force_basic_auth",
    "tmp_dest",
    "backup",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    url: String,
    dest: String,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default, deserialize_with = "opt_mode")]
    mode: Option<Mode>,
    #[serde(default, deserialize_with = "opt_string")]
    owner: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    timeout: Option<String>,
    #[serde(default)]
    headers: Option<Value>,
    #[serde(default, deserialize_with = "opt_boolish")]
    validate_certs: Option<bool>,
    #[serde(default)]
    url_username: Option<String>,
    #[serde(default)]
    url_password: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force_basic_auth: Option<bool>,
    #[serde(default)]
    tmp_dest: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backup: Option<bool>,
}

#[derive(Debug)]
struct GetUrlTask {
    url: String,
    dest: String,
    /// (algorithm, lowercase hex)
    checksum: Option<(String, String)>,
    mode: Option<Mode>,
    owner: Option<String>,
    group: Option<String>,
    force: bool,
    timeout: u32,
    /// `Name: value` lines, sent on stdin.
    headers: Vec<String>,
    validate_certs: bool,
}

module_impl!(GetUrlModule, "get_url");

fn build(args: &Map<String, Value>) -> Result<GetUrlTask, ModuleError> {
    let a: Args = args::parse("get_url", PARAMS, args)?;
    let _ = (&a.tmp_dest, &a.backup, &a.force_basic_auth);
    if !(a.url.starts_with("http://")
        || a.url.starts_with("https://")
        || a.url.starts_with("ftp://")
        || a.url.starts_with("file://"))
    {
        return Err(ModuleError::Args(format!(
            "get_url: url must be http(s), ftp or file, got '{}'",
            a.url
        )));
    }
    let checksum = match a
        .checksum
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        None => None,
        Some(c) => {
            let (alg, hex) = c.split_once(':').ok_or_else(|| {
                ModuleError::Args(format!(
                    "get_url: checksum must look like sha256:<hex>, got '{c}'"
                ))
            })?;
            let alg = alg.to_lowercase();
            let len = match alg.as_str() {
                "md5" => 32,
                "sha1" => 40,
                "sha224" => 56,
                "sha256" => 64,
                "sha384" => 96,
                "sha512" => 128,
                _ => {
                    return Err(ModuleError::Args(format!(
                        "get_url: unsupported checksum algorithm '{alg}'"
                    )))
                }
            };
            if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ModuleError::Args(format!(
                    "get_url: checksum '{c}' is not a {alg} hex digest (checksum URLs are not supported)"
                )));
            }
            Some((alg, hex.to_lowercase()))
        }
    };
    let mut headers = Vec::new();
    match &a.headers {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                headers.push(format!(
                    "{k}: {}",
                    args::scalar_string(v)
                        .map_err(|e| ModuleError::Args(format!("get_url: header {k}: {e}")))?
                ));
            }
        }
        Some(Value::String(s)) => {
            headers.extend(s.split(',').map(|h| h.trim().replacen('=', ": ", 1)))
        }
        Some(other) => {
            return Err(ModuleError::Args(format!(
                "get_url: headers must be a dict, got {other}"
            )))
        }
    }
    if let (Some(u), Some(p)) = (&a.url_username, &a.url_password) {
        use base64::Engine as _;
        headers.push(format!(
            "Authorization: Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        ));
    }
    if headers.iter().any(|h| h.contains('\n')) {
        return Err(ModuleError::Args(
            "get_url: header values must not contain newlines".into(),
        ));
    }
    let timeout = match a.timeout.as_deref() {
        None => 10,
        Some(t) => t.trim().parse::<u32>().map_err(|_| {
            ModuleError::Args(format!("get_url: timeout must be seconds, got '{t}'"))
        })?,
    };
    Ok(GetUrlTask {
        url: a.url,
        dest: a.dest,
        checksum,
        mode: a.mode,
        owner: a.owner,
        group: a.group,
        force: a.force.unwrap_or(false),
        timeout,
        headers,
        validate_certs: a.validate_certs.unwrap_or(true),
    })
}

/// python3 fallback downloader: argv = header file, output, timeout, url.
const PY_FETCH: &str = r#"import ssl, sys, urllib.request
hdr, out, timeout, url = sys.argv[1:5]
req = urllib.request.Request(url)
for line in open(hdr):
    line = line.rstrip('\n')
    if ':' in line:
        k, v = line.split(':', 1)
        req.add_header(k.strip(), v.strip())
with urllib.request.urlopen(req, timeout=int(timeout), context=__CTX__) as r, open(out, 'wb') as f:
    while True:
        b = r.read(65536)
        if not b:
            break
        f.write(b)
"#;

impl GetUrlTask {
    fn url_basename(&self) -> String {
        let path = self.url.split(['?', '#']).next().unwrap_or("");
        let name = path.rsplit('/').next().unwrap_or("");
        if name.is_empty() {
            "index.html".into()
        } else {
            name.to_string()
        }
    }

    /// Script for the final path, taking a dest directory into account at run time.
    fn resolve_path(&self) -> String {
        format!(
            "p={d}; if [ -d \"$p\" ]; then p=\"${{p%/}}/\"{b}; echo \"isdir|$p\"; fi\n",
            d = sh_quote(&self.dest),
            b = sh_quote(&self.url_basename())
        )
    }

    fn algo(&self) -> &str {
        self.checksum
            .as_ref()
            .map(|(a, _)| a.as_str())
            .unwrap_or("sha256")
    }

    fn download_action(
        &self,
        final_path: &str,
        existing_mode: Option<u32>,
        compare: bool,
    ) -> Action {
        let mut s = format!(
            "set -e\np={}\nd=$(dirname -- \"$p\")\n",
            sh_quote(final_path)
        );
        s.push_str("tmp=$(mktemp \"$d/.provision.XXXXXXXX\"); hdr=$(mktemp)\ntrap 'rm -f \"$tmp\" \"$hdr\"' EXIT\ncat > \"$hdr\"\n");
        let u = sh_quote(&self.url);
        let t = self.timeout;
        let k = if self.validate_certs { "" } else { " -k" };
        let nc = if self.validate_certs {
            ""
        } else {
            " --no-check-certificate"
        };
        let py_ctx = if self.validate_certs {
            "None"
        } else {
            "ssl._create_unverified_context()"
        };
        s.push_str(&format!(
            "if command -v curl >/dev/null 2>&1; then curl -fsSL{k} --connect-timeout {t} --max-time {max} -H @\"$hdr\" -o \"$tmp\" {u}\n\
             elif command -v wget >/dev/null 2>&1; then set --; while IFS= read -r h; do set -- \"$@\" \"--header=$h\"; done < \"$hdr\"; wget -q{nc} -T {t} \"$@\" -O \"$tmp\" {u}\n\
             else python3 - \"$hdr\" \"$tmp\" {t} {u} <<'PYEOF'\n{py}PYEOF\n\
             fi\n",
            max = (t as u64) * 30,
            py = PY_FETCH.replace("__CTX__", py_ctx)
        ));
        if let Some((alg, hex)) = &self.checksum {
            s.push_str(&format!(
                "got=$({alg}sum < \"$tmp\" | cut -d' ' -f1)\n[ \"$got\" = {hex} ] || {{ echo \"checksum mismatch: expected {alg}:{hex}, got {alg}:$got\" >&2; exit 1; }}\n"
            ));
        }
        if compare {
            s.push_str(
                "if [ -f \"$p\" ] && cmp -s \"$tmp\" \"$p\"; then echo 'changed|0'; exit 0; fi\n",
            );
        }
        if let Some(o) = &self.owner {
            s.push_str(&format!("chown {} \"$tmp\"\n", sh_quote(o)));
        }
        if let Some(g) = &self.group {
            s.push_str(&format!("chgrp {} \"$tmp\"\n", sh_quote(g)));
        }
        match self
            .mode
            .as_ref()
            .map(|m| m.resolve(existing_mode.unwrap_or(0o644), false))
            .or(existing_mode)
        {
            Some(m) => s.push_str(&format!("chmod {m:04o} \"$tmp\"\n")),
            None => s.push_str("chmod $(printf '%04o' $((0666 & ~$(umask)))) \"$tmp\"\n"),
        }
        s.push_str("mv -f \"$tmp\" \"$p\"\ntrap - EXIT\nrm -f \"$hdr\"\necho 'changed|1'\n");
        let mut stdin = self.headers.join("\n");
        if !stdin.is_empty() {
            stdin.push('\n');
        }
        Action::new(
            format!("download {} to {final_path}", self.url),
            s,
            Scope::path(&self.dest),
        )
        .with_stdin(stdin.into_bytes())
    }
}

impl ModuleTask for GetUrlTask {
    fn probes(&self) -> Vec<Probe> {
        // The state of `$p` once a directory dest is resolved.
        let inner = stat_lines(false);
        let s = format!(
            "{}{inner}if [ -f \"$p\" ]; then printf 'sum|%s\\n' \"$({}sum < \"$p\" | cut -d' ' -f1)\"; fi\n",
            self.resolve_path(),
            self.algo()
        );
        let into = format!("{}/{}", self.dest.strip_suffix('/').unwrap_or(&self.dest), self.url_basename());
        vec![Probe::new(s, Scope::path(&self.dest)).with_stat(&self.dest).with_stat(into)]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes
            .first()
            .ok_or_else(|| ModuleError::Probe("get_url: no probe output".into()))?;
        let mut path = self.dest.clone();
        let mut rest = String::new();
        let mut sum = None;
        for l in r.stdout.lines() {
            if let Some(p) = l.strip_prefix("isdir|") {
                path = p.to_string();
            } else if let Some(s) = l.strip_prefix("sum|") {
                sum = Some(s.trim().to_lowercase());
            } else {
                rest.push_str(l);
                rest.push('\n');
            }
        }
        let st = parse_file_state(&ProbeResult {
            stdout: rest,
            stderr: r.stderr.clone(),
            rc: r.rc,
        })?;
        let mut plan = Plan::ok();
        plan.result.insert("dest".into(), json!(path));
        plan.result.insert("url".into(), json!(self.url));
        match st.kind {
            FileKind::Absent => {
                plan.diffs.push(Diff::Field {
                    name: "state".into(),
                    before: "absent".into(),
                    after: "file".into(),
                });
                plan.actions.push(self.download_action(&path, None, false));
            }
            FileKind::File => {
                let matches = match &self.checksum {
                    Some((_, want)) => sum.as_deref() == Some(want.as_str()),
                    None => !self.force,
                };
                if matches {
                    if let Some(s) = &sum {
                        plan.result.insert("checksum_dest".into(), json!(s));
                    }
                    let (d, a) = attributes_plan(
                        &path,
                        &st,
                        self.owner.as_deref(),
                        self.group.as_deref(),
                        self.mode.as_ref(),
                        false,
                    );
                    plan.diffs = d;
                    plan.actions.extend(a);
                } else {
                    let (before, compare) = match &self.checksum {
                        Some((alg, want)) => (
                            format!("{alg}:{}", sum.clone().unwrap_or_default()),
                            want.clone(),
                        ),
                        None => (
                            "(current file)".into(),
                            "(downloaded again, replaced if different)".into(),
                        ),
                    };
                    let after = if self.checksum.is_some() {
                        format!("{}:{compare}", self.algo())
                    } else {
                        compare
                    };
                    plan.diffs.push(Diff::Field {
                        name: "checksum".into(),
                        before,
                        after,
                    });
                    plan.actions.push(self.download_action(
                        &path,
                        Some(st.mode),
                        self.checksum.is_none(),
                    ));
                }
            }
            ref k => {
                return Err(ModuleError::Failed(format!(
                    "get_url: {path} exists and is a {}",
                    k.name()
                )))
            }
        }
        Ok(plan)
    }

    fn finish(&self, mut plan: Plan, outputs: &[ActionOutput]) -> Result<Plan, ModuleError> {
        if let Some(o) = outputs.last() {
            if String::from_utf8_lossy(&o.stdout).contains("changed|0") && plan.actions.len() == 1 {
                plan.changed = Some(false);
                plan.diffs.clear();
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::ok as res;
    use super::*;

    const SUM: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn plans() {
        let t = build(json!({"url": "https://x/y.tar.gz", "dest": "/opt/y.tar.gz", "checksum": format!("sha256:{SUM}"), "headers": {"Authorization": "Bearer T0K"}}).as_object().unwrap()).unwrap();
        let p = t.plan(&[res("absent\n")]).unwrap();
        assert_eq!(p.actions.len(), 1);
        assert!(!p.actions[0].script.contains("T0K"));
        assert_eq!(
            p.actions[0].stdin.as_deref(),
            Some(&b"Authorization: Bearer T0K\n"[..])
        );
        let ok = format!("file|root|root|0|0|644|0|1\nsum|{SUM}\n");
        assert!(t.plan(&[res(&ok)]).unwrap().actions.is_empty());
        let bad = ok.replace("sum|e3", "sum|00");
        assert_eq!(t.plan(&[res(&bad)]).unwrap().actions.len(), 1);
        // directory dest
        let t = build(
            json!({"url": "https://x/y.tar.gz?a=1", "dest": "/opt"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let p = t
            .plan(&[res(&format!(
                "isdir|/opt/y.tar.gz\nfile|root|root|0|0|644|0|1\nsum|{SUM}\n"
            ))])
            .unwrap();
        assert!(p.actions.is_empty());
        assert_eq!(p.result["dest"], json!("/opt/y.tar.gz"));
    }

    #[test]
    fn downloads_file_urls_here_with_each_fallback_idempotently() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src.bin");
        std::fs::write(&src, b"hello").unwrap();
        let dest = tmp.path().join("out.bin");
        let url = format!("file://{}", src.display());
        let t = build(json!({"url": url, "dest": dest.to_str().unwrap(), "checksum": "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "mode": "0640"}).as_object().unwrap()).unwrap();
        let run = |script: &str, stdin: &[u8]| {
            use std::io::Write;
            let mut c = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(stdin).unwrap();
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let p = t.plan(&[res(&run(&t.probes()[0].script, b""))]).unwrap();
        assert_eq!(p.actions.len(), 1);
        run(&p.actions[0].script, p.actions[0].stdin.as_deref().unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        let p = t.plan(&[res(&run(&t.probes()[0].script, b""))]).unwrap();
        assert!(p.actions.is_empty(), "{p:?}");
    }
}

#[cfg(test)]
mod host_tests {
    use super::super::testutil::testhost;
    use super::*;

    #[test]
    #[ignore]
    fn get_url_on_test_host() {
        if testhost::port().is_none() {
            return;
        }
        testhost::run(
            "rm -rf /tmp/gu && mkdir -p /tmp/gu/d && echo hello > /tmp/gu/src",
            None,
        );
        for v in [
            json!({"url": "file:///tmp/gu/src", "dest": "/tmp/gu/out", "mode": "0600", "headers": {"X-A": "b"}}),
            json!({"url": "file:///tmp/gu/src", "dest": "/tmp/gu/d/", "checksum": "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}),
        ] {
            let t = build(v.as_object().unwrap()).unwrap();
            let (first, second) = testhost::converge(&t);
            assert!(first.changed(), "{v}");
            assert!(second.actions.is_empty(), "{v}: {:?}", second.diffs);
        }
        let t = build(
            json!({"url": "file:///tmp/gu/src", "dest": "/tmp/gu/out", "force": true})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let (first, _) = testhost::converge(&t);
        assert!(!first.changed());
        assert_eq!(
            testhost::run("cat /tmp/gu/d/src; stat -c %a /tmp/gu/out", None).stdout_str(),
            "hello\n600\n"
        );
    }
}
