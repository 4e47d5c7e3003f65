//! `template`: render a local Jinja template (`templates/` of the role or playbook) at prepare
//! time, then write it like `copy` with `content` (same probe, diff, atomic write, backup,
//! validate). Template errors fail the task before anything touches the host.
//!
//! The environment is the templar's: `trim_blocks` on, `lstrip_blocks` off, trailing newline
//! kept (Ansible's defaults); other values of those and custom delimiters are rejected.

use super::args::{self, opt_boolish, opt_string};
use super::copy::{parse_mode, FileWrite, ModeSpec, Source};
use super::{Module, ModuleError, ModuleTask, PrepareContext};
use std::collections::BTreeMap;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct TemplateModule;

const PARAMS: &[&str] = &[
    "src",
    "dest",
    "owner",
    "group",
    "mode",
    "backup",
    "force",
    "validate",
    "follow",
    "newline_sequence",
    "trim_blocks",
    "lstrip_blocks",
    "output_encoding",
    "block_start_string",
    "block_end_string",
    "variable_start_string",
    "variable_end_string",
    "comment_start_string",
    "comment_end_string",
    "unsafe_writes",
];

/// Default `ansible_managed` string (when neither the variables nor `ansible.cfg` define
/// one): Ansible's own, so a template that prints it comes out the same with either tool
/// (moving a fleet from Ansible to provision rewrites no file and restarts nothing).
pub const ANSIBLE_MANAGED: &str = "Ansible managed";

static MANAGED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `ansible_managed` under `[defaults]` in `ansible.cfg`: the string templates get for
/// `{{ ansible_managed }}` in this run (set once, at start).
pub fn set_ansible_managed(text: String) {
    let _ = MANAGED.set(text);
}

fn ansible_managed() -> &'static str {
    MANAGED.get().map(String::as_str).unwrap_or(ANSIBLE_MANAGED)
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    src: String,
    dest: String,
    #[serde(default, deserialize_with = "opt_string")]
    owner: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group: Option<String>,
    #[serde(default)]
    mode: Option<Value>,
    #[serde(default, deserialize_with = "opt_boolish")]
    backup: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    force: Option<bool>,
    #[serde(default)]
    validate: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    follow: Option<bool>,
    #[serde(default)]
    newline_sequence: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    trim_blocks: Option<bool>,
    #[serde(default, deserialize_with = "opt_boolish")]
    lstrip_blocks: Option<bool>,
    #[serde(default)]
    output_encoding: Option<String>,
    #[serde(default)]
    block_start_string: Option<String>,
    #[serde(default)]
    block_end_string: Option<String>,
    #[serde(default)]
    variable_start_string: Option<String>,
    #[serde(default)]
    variable_end_string: Option<String>,
    #[serde(default)]
    comment_start_string: Option<String>,
    #[serde(default)]
    comment_end_string: Option<String>,
    #[serde(default, deserialize_with = "opt_boolish")]
    unsafe_writes: Option<bool>,
}

impl Module for TemplateModule {
    fn name(&self) -> &'static str {
        "template"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn prepare(
        &self,
        args: &Map<String, Value>,
        ctx: &PrepareContext,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("template", PARAMS, args)?;
        if a.trim_blocks == Some(false) || a.lstrip_blocks == Some(true) {
            return Err(ModuleError::Args("template: only trim_blocks=true and lstrip_blocks=false (Ansible's defaults) are supported".into()));
        }
        for (name, v, default) in [
            ("block_start_string", &a.block_start_string, "{%"),
            ("block_end_string", &a.block_end_string, "%}"),
            ("variable_start_string", &a.variable_start_string, "{{"),
            ("variable_end_string", &a.variable_end_string, "}}"),
            ("comment_start_string", &a.comment_start_string, "{#"),
            ("comment_end_string", &a.comment_end_string, "#}"),
        ] {
            if v.as_deref().is_some_and(|v| v != default) {
                return Err(ModuleError::Args(format!(
                    "template: custom {name} is not supported"
                )));
            }
        }
        if let Some(e) = &a.output_encoding {
            if !matches!(e.to_ascii_lowercase().replace('-', "").as_str(), "utf8") {
                return Err(ModuleError::Args(format!(
                    "template: output_encoding {e} is not supported (utf-8 only)"
                )));
            }
        }
        let newline = match a.newline_sequence.as_deref() {
            None | Some("\n") | Some("\\n") => "\n",
            Some("\r\n") | Some("\\r\\n") => "\r\n",
            Some("\r") | Some("\\r") => "\r",
            Some(o) => {
                return Err(ModuleError::Args(format!(
                    "template: newline_sequence must be \\n, \\r or \\r\\n, got {o:?}"
                )))
            }
        };
        if let Some(v) = &a.validate {
            if !v.contains("%s") {
                return Err(ModuleError::Args(format!(
                    "template: validate must contain %s: {v}"
                )));
            }
        }
        let _ = a.unsafe_writes;
        let path = ctx
            .find_local("templates", &a.src)
            .ok_or_else(|| ModuleError::LocalFile(format!("Could not find or access '{}' (searched templates/ of the role and the playbook directory)", a.src)))?;
        let text = crate::vault::read_to_string(&path)
            .map_err(|e| ModuleError::LocalFile(format!("Could not read template '{}': {e}", path.display())))?;
        let mut vars = ctx.vars.clone();
        if ctx.templar.var(ctx.vars, "ansible_managed").is_none() {
            vars.insert("ansible_managed".into(), json!(ansible_managed()));
        }
        let full = std::fs::canonicalize(&path).unwrap_or(path.clone());
        vars.insert("template_path".into(), json!(path.display().to_string()));
        vars.insert(
            "template_fullpath".into(),
            json!(full.display().to_string()),
        );
        vars.insert("template_destpath".into(), json!(a.dest));
        vars.insert("template_host".into(), json!(local_hostname()));
        vars.insert("template_uid".into(), json!(local_owner(&path)));
        let mut rendered = ctx.templar.render_template(&a.src, &text, &vars)?;
        if newline != "\n" {
            rendered = rendered.replace("\r\n", "\n").replace('\n', newline);
        }
        let mut mode =
            parse_mode(a.mode.as_ref()).map_err(|e| ModuleError::Args(format!("template: {e}")))?;
        if mode == Some(ModeSpec::PreserveRemote) {
            use std::os::unix::fs::PermissionsExt;
            mode = std::fs::metadata(&path).ok().map(|m| {
                ModeSpec::Given(super::args::Mode::Octal(m.permissions().mode() & 0o7777))
            });
        }
        let base = a
            .src
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(&a.src)
            .to_string();
        let mut result = Map::new();
        result.insert("src".into(), json!(a.src));
        Ok(Box::new(FileWrite {
            module: "template",
            dest: a.dest,
            base: Some(base),
            source: Source::Content(rendered.into_bytes()),
            owner: a.owner.filter(|s| !s.is_empty()),
            group: a.group.filter(|s| !s.is_empty()),
            mode,
            backup: a.backup.unwrap_or(false),
            force: a.force.unwrap_or(true),
            validate: a.validate.filter(|v| !v.trim().is_empty()),
            follow: a.follow.unwrap_or(false),
            result,
        }))
    }
}

/// The controller's host name (read once per process).
fn local_hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
    .clone()
}

/// The name of the local user owning `path` (its uid when /etc/passwd doesn't name it).
/// Names are looked up once per uid and process: every host renders the same templates.
fn local_owner(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    static NAMES: std::sync::Mutex<BTreeMap<u32, String>> = std::sync::Mutex::new(BTreeMap::new());
    let Ok(uid) = std::fs::metadata(path).map(|m| m.uid()) else {
        return String::new();
    };
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    names
        .entry(uid)
        .or_insert_with(|| {
            std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|p| {
                    p.lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
                    })
                })
                .unwrap_or_else(|| uid.to_string())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testutil::apply;
    use crate::modules::Diff;
    use crate::template::{Templar, Vars};

    fn prepare(
        dir: &std::path::Path,
        args: Value,
        vars: &Vars,
    ) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let templar = Templar::new();
        let ctx = PrepareContext {
            templar: &templar,
            vars,
            host: "web1",
            role_path: Some(dir),
            playbook_dir: dir,
            run_as: "root",
        };
        TemplateModule.prepare(args.as_object().unwrap(), &ctx)
    }

    #[test]
    fn renders_and_writes_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/app.conf.j2"), "# {{ ansible_managed }}\nport={{ port }}\n{% for h in hosts %}\nh={{ h }}\n{% endfor %}\n").unwrap();
        let mut vars = Vars::new();
        vars.insert("port".into(), json!(8000));
        vars.insert("hosts".into(), json!(["a", "b"]));
        let dest = dir.path().join("out.conf").display().to_string();
        let t = prepare(
            dir.path(),
            json!({"src": "app.conf.j2", "dest": dest, "mode": "0640"}),
            &vars,
        )
        .unwrap();
        let p = apply(t.as_ref());
        let expected = format!("# {ANSIBLE_MANAGED}\nport=8000\nh=a\nh=b\n");
        assert_eq!(
            p.diffs,
            vec![Diff::Text {
                path: dest.clone(),
                before: None,
                after: Some(expected.clone())
            }]
        );
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), expected);
        assert_eq!(p.result["src"], "app.conf.j2");
        assert!(apply(t.as_ref()).actions.is_empty());
        vars.insert("port".into(), json!(9000));
        let t = prepare(
            dir.path(),
            json!({"src": "app.conf.j2", "dest": dest}),
            &vars,
        )
        .unwrap();
        let p = apply(t.as_ref());
        match &p.diffs[0] {
            Diff::Text { before, after, .. } => {
                assert!(
                    before.as_ref().unwrap().contains("port=8000")
                        && after.as_ref().unwrap().contains("port=9000")
                );
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn template_variables_name_the_source_and_the_controller() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        let src = dir.path().join("templates/t.j2");
        std::fs::write(&src, "{{ template_path }}|{{ template_destpath }}|{{ template_host }}|{{ template_uid }}\n").unwrap();
        let uid = std::fs::metadata(&src).unwrap().uid();
        // id(1) names the file's owner independently of the module's own lookup
        let id = std::process::Command::new("id").args(["-nu", &uid.to_string()]).output().unwrap();
        let owner = if id.status.success() { String::from_utf8(id.stdout).unwrap().trim().to_string() } else { uid.to_string() };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
        let dest = dir.path().join("out").display().to_string();
        let expected = format!("{}|{dest}|{host}|{owner}\n", src.display());
        // twice: the second render reads the cached host and owner names
        for _ in 0..2 {
            let t = prepare(dir.path(), json!({"src": "t.j2", "dest": dest}), &Vars::new()).unwrap();
            let text = apply(t.as_ref()).diffs.into_iter().find_map(|d| match d {
                Diff::Text { after, .. } => after,
                _ => None,
            });
            assert_eq!(text.as_deref(), Some(expected.as_str()));
            std::fs::remove_file(&dest).unwrap();
        }
    }

    #[test]
    fn errors_propagate() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.j2"), "{{ nope }}\n").unwrap();
        let e = prepare(
            dir.path(),
            json!({"src": "bad.j2", "dest": "/tmp/x"}),
            &Vars::new(),
        )
        .err()
        .unwrap();
        assert!(matches!(e, ModuleError::Template(_)), "{e}");
        assert!(e.to_string().contains("nope"), "{e}");
        let e = prepare(
            dir.path(),
            json!({"src": "missing.j2", "dest": "/tmp/x"}),
            &Vars::new(),
        )
        .err()
        .unwrap();
        assert!(matches!(e, ModuleError::LocalFile(_)));
    }
}
