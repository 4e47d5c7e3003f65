//! `stat`: facts about a path, in Ansible's shape (`stat.exists`, `stat.isdir`, `stat.mode`
//! as `"0644"`, `stat.checksum` (sha1 by default) ...). Read-only: one probe, no actions.
//! `get_mime`/`get_attributes` are accepted and ignored (no `mimetype`/`attributes` keys).

use super::args::{self, opt_boolish, opt_string};
use super::{sh_quote, ModuleError, ModuleTask, Plan, Probe, ProbeResult, Scope};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct StatModule;

const PARAMS: &[&str] = &[
    "path",
    "dest",
    "name",
    "follow",
    "get_checksum",
    "checksum_algorithm",
    "checksum_algo",
    "checksum",
    "get_mime",
    "mime",
    "mime_type",
    "mime-type",
    "get_attributes",
    "attr",
    "attributes",
    "get_md5",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "dest", alias = "name")]
    path: String,
    #[serde(default, deserialize_with = "opt_boolish")]
    follow: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    get_checksum: Option<bool>,
    #[serde(
        default,
        alias = "checksum_algo",
        alias = "checksum",
        deserialize_with = "opt_string"
    )]
    checksum_algorithm: Option<String>,
    #[serde(
        default,
        alias = "mime",
        alias = "mime_type",
        alias = "mime-type",
        deserialize_with = "opt_boolish"
    )]
    get_mime: Option<bool>,
    #[serde(
        default,
        alias = "attr",
        alias = "attributes",
        deserialize_with = "opt_boolish"
    )]
    get_attributes: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    get_md5: Option<bool>,
}

#[derive(Debug)]
struct StatTask {
    path: String,
    follow: bool,
    /// `sha1sum`, `sha256sum` ... or None.
    checksum_cmd: Option<String>,
}

module_impl!(StatModule, "stat");

fn build(args: &Map<String, Value>) -> Result<StatTask, ModuleError> {
    let a: Args = args::parse("stat", PARAMS, args)?;
    let _ = (a.get_mime, a.get_attributes, a.get_md5);
    let alg = a
        .checksum_algorithm
        .unwrap_or_else(|| "sha1".into())
        .to_ascii_lowercase();
    if !matches!(
        alg.as_str(),
        "md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512"
    ) {
        return Err(ModuleError::Args(format!("stat: checksum_algorithm must be one of md5, sha1, sha224, sha256, sha384, sha512; got '{alg}'")));
    }
    Ok(StatTask {
        path: a.path,
        follow: a.follow.unwrap_or(false),
        checksum_cmd: a.get_checksum.unwrap_or(true).then(|| format!("{alg}sum")),
    })
}

impl ModuleTask for StatTask {
    fn probes(&self) -> Vec<Probe> {
        let l = if self.follow { "-L " } else { "" };
        let exists = if self.follow {
            "[ -e \"$p\" ]"
        } else {
            "{ [ -e \"$p\" ] || [ -L \"$p\" ]; }"
        };
        let mut s = format!(
            "p={}\nif ! {exists}; then echo 'exists|no'; exit 0; fi\necho 'exists|yes'\n\
             stat {l}-c 'mode|%a\ntype|%F\nuid|%u\ngid|%g\npw_name|%U\ngr_name|%G\nsize|%s\nmtime|%.9Y\natime|%.9X\nctime|%.9Z\ninode|%i\ndev|%d\nnlink|%h\nblocks|%b\nblock_size|%o' -- \"$p\" || exit 1\n\
             [ -r \"$p\" ] && echo 'readable|yes'\n[ -w \"$p\" ] && echo 'writeable|yes'\n[ -x \"$p\" ] && echo 'executable|yes'\n\
             if [ -L \"$p\" ]; then printf 'lnk_target|%s\\n' \"$(readlink -- \"$p\")\"; printf 'lnk_source|%s\\n' \"$(readlink -f -- \"$p\")\"; fi\n",
            sh_quote(&self.path)
        );
        if let Some(c) = &self.checksum_cmd {
            let nolink = if self.follow {
                ""
            } else {
                " && [ ! -L \"$p\" ]"
            };
            s.push_str(&format!("if [ -f \"$p\" ]{nolink} && [ -r \"$p\" ]; then printf 'checksum|%s\\n' \"$({c} < \"$p\" | cut -d' ' -f1)\"; fi\n"));
        }
        s.push_str("true\n");
        vec![Probe::new(s, Scope::path(&self.path))]
    }

    fn plan(&self, probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let r = probes
            .first()
            .ok_or_else(|| ModuleError::Probe("stat: missing probe".into()))?;
        if r.rc != 0 {
            return Err(ModuleError::Failed(format!(
                "cannot stat {}: {}",
                self.path,
                r.stderr.trim()
            )));
        }
        let mut raw = std::collections::HashMap::new();
        for line in r.stdout.lines() {
            if let Some((k, v)) = line.split_once('|') {
                raw.insert(k.to_string(), v.to_string());
            }
        }
        let get = |k: &str| raw.get(k).map(String::as_str).unwrap_or("");
        let mut st = Map::new();
        let mut plan = Plan::ok();
        if get("exists") != "yes" {
            st.insert("exists".into(), json!(false));
            plan.result.insert("stat".into(), Value::Object(st));
            return Ok(plan);
        }
        let num = |k: &str| {
            get(k)
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or(Value::Null)
        };
        let float = |k: &str| {
            get(k)
                .parse::<f64>()
                .map(Value::from)
                .unwrap_or(Value::Null)
        };
        let mode = u32::from_str_radix(get("mode"), 8)
            .map_err(|_| ModuleError::Probe(format!("stat mode '{}'", get("mode"))))?;
        let ty = get("type");
        st.insert("exists".into(), json!(true));
        st.insert("path".into(), json!(self.path));
        st.insert("mode".into(), json!(format!("{mode:04o}")));
        st.insert("isdir".into(), json!(ty == "directory"));
        st.insert("isreg".into(), json!(ty.starts_with("regular")));
        st.insert("islnk".into(), json!(ty == "symbolic link"));
        st.insert("isblk".into(), json!(ty == "block special file"));
        st.insert("ischr".into(), json!(ty == "character special file"));
        st.insert("isfifo".into(), json!(ty == "fifo"));
        st.insert("issock".into(), json!(ty == "socket"));
        for k in [
            "uid",
            "gid",
            "size",
            "inode",
            "dev",
            "nlink",
            "blocks",
            "block_size",
        ] {
            st.insert(k.into(), num(k));
        }
        st.insert("pw_name".into(), json!(get("pw_name")));
        st.insert("gr_name".into(), json!(get("gr_name")));
        for k in ["mtime", "atime", "ctime"] {
            st.insert(k.into(), float(k));
        }
        for (k, bit) in [
            ("isuid", 0o4000),
            ("isgid", 0o2000),
            ("rusr", 0o400),
            ("wusr", 0o200),
            ("xusr", 0o100),
            ("rgrp", 0o40),
            ("wgrp", 0o20),
            ("xgrp", 0o10),
            ("roth", 0o4),
            ("woth", 0o2),
            ("xoth", 0o1),
        ] {
            st.insert(k.into(), json!(mode & bit != 0));
        }
        for k in ["readable", "writeable", "executable"] {
            st.insert(k.into(), json!(get(k) == "yes"));
        }
        if raw.contains_key("lnk_target") {
            st.insert("lnk_target".into(), json!(get("lnk_target")));
            st.insert("lnk_source".into(), json!(get("lnk_source")));
        }
        if raw.contains_key("checksum") {
            st.insert("checksum".into(), json!(get("checksum")));
        }
        plan.result.insert("stat".into(), Value::Object(st));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::apply;

    fn task(v: Value) -> StatTask {
        build(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn parses_recorded_output() {
        let t = task(json!({"path": "/etc/passwd"}));
        let out = "exists|yes\nmode|644\ntype|regular file\nuid|0\ngid|0\npw_name|root\ngr_name|root\nsize|1234\nmtime|1700000000.123456789\natime|1700000000.000000000\nctime|1700000000.000000000\ninode|42\ndev|2049\nnlink|1\nblocks|8\nblock_size|4096\nreadable|yes\nwriteable|yes\nchecksum|da39a3ee5e6b4b0d3255bfef95601890afd80709\n";
        let p = t
            .plan(&[ProbeResult {
                stdout: out.into(),
                stderr: String::new(),
                rc: 0,
            }])
            .unwrap();
        let st = &p.result["stat"];
        assert_eq!(st["mode"], "0644");
        assert_eq!(st["isreg"], true);
        assert_eq!(st["executable"], false);
        assert_eq!(st["woth"], false);
        assert_eq!(st["mtime"], 1_700_000_000.123_456_7);
        assert!(p.actions.is_empty());
        let p = t
            .plan(&[ProbeResult {
                stdout: "exists|no\n".into(),
                stderr: String::new(),
                rc: 0,
            }])
            .unwrap();
        assert_eq!(p.result["stat"], json!({"exists": false}));
    }

    #[test]
    fn probes_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "").unwrap();
        std::os::unix::fs::symlink(&f, dir.path().join("l")).unwrap();
        let p = apply(&task(json!({"path": f.display().to_string()})));
        let st = &p.result["stat"];
        assert_eq!(st["checksum"], "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(st["isreg"], true);
        assert_eq!(st["size"], 0);
        let l = dir.path().join("l").display().to_string();
        let p = apply(&task(json!({"path": l})));
        assert_eq!(p.result["stat"]["islnk"], true);
        assert_eq!(p.result["stat"]["lnk_source"], f.display().to_string());
        assert!(p.result["stat"].get("checksum").is_none());
        let p = apply(&task(
            json!({"path": l, "follow": true, "checksum_algorithm": "sha256"}),
        ));
        assert_eq!(p.result["stat"]["isreg"], true);
        assert_eq!(
            p.result["stat"]["checksum"],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let p = apply(&task(
            json!({"path": dir.path().join("nope").display().to_string()}),
        ));
        assert_eq!(p.result["stat"]["exists"], false);
        let p = apply(&task(json!({"path": dir.path().display().to_string()})));
        assert_eq!(p.result["stat"]["isdir"], true);
    }
}
