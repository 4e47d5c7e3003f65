//! `template`: render a local Jinja template (`templates/` of the role or playbook) at prepare
//! time, then write it like `copy` with `content` (same probe, diff, atomic write, backup,
//! validate). Template errors fail the task before anything touches the host.
//!
//! Rendered as Ansible's `template` action does ([`crate::template::TemplateOptions`]):
//! `trim_blocks`, `lstrip_blocks`, `newline_sequence` and the delimiters from the task, then
//! from the template's `#jinja2:` first line; includes and imports found in the role's and
//! the playbook's `templates/` and folders, then the template's own folder; the variables
//! `ansible_managed`, `template_path`, `template_run_date`... ([`template_vars`]).

use super::args::{self, opt_boolish, opt_string};
use super::copy::{parse_mode, FileWrite, ModeSpec, Source};
use super::{Module, ModuleError, ModuleTask, PrepareContext};
use crate::template::{module_search_path, template_vars, OptionValue, TemplateOptions};
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

pub use crate::template::{set_ansible_managed, ANSIBLE_MANAGED};

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
        let mut opts = TemplateOptions::default();
        let bools = [("trim_blocks", a.trim_blocks), ("lstrip_blocks", a.lstrip_blocks)];
        for (name, v) in bools.into_iter().filter_map(|(n, v)| Some((n, OptionValue::Bool(v?)))) {
            opts.set(name, v).map_err(|e| ModuleError::Args(format!("template: {e}")))?;
        }
        for (name, v) in [
            ("newline_sequence", &a.newline_sequence),
            ("block_start_string", &a.block_start_string),
            ("block_end_string", &a.block_end_string),
            ("variable_start_string", &a.variable_start_string),
            ("variable_end_string", &a.variable_end_string),
            ("comment_start_string", &a.comment_start_string),
            ("comment_end_string", &a.comment_end_string),
        ] {
            if let Some(v) = v {
                opts.set(name, OptionValue::Str(v.clone())).map_err(|e| ModuleError::Args(format!("template: {e}")))?;
            }
        }
        if let Some(e) = &a.output_encoding {
            if !matches!(e.to_ascii_lowercase().replace('-', "").as_str(), "utf8") {
                return Err(ModuleError::Args(format!(
                    "template: output_encoding {e} is not supported (utf-8 only)"
                )));
            }
        }
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
        let managed = ctx.templar.var(ctx.vars, "ansible_managed").is_none();
        vars.extend(template_vars(&a.src, &path, Some(&a.dest), managed));
        let search = module_search_path(ctx.role_path, Some(ctx.playbook_dir), &path);
        let rendered = ctx.templar.render_template_file(&a.src, &text, &vars, &opts, search)?;
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
        std::fs::write(&src, "{{ template_path }}|{{ template_destpath }}|{{ template_host }}|{{ template_uid }}|{{ template_fullpath }}\n{{ template_run_date }}\n").unwrap();
        let uid = std::fs::metadata(&src).unwrap().uid();
        // id(1) names the file's owner independently of the module's own lookup
        let id = std::process::Command::new("id").args(["-nu", &uid.to_string()]).output().unwrap();
        let owner = if id.status.success() { String::from_utf8(id.stdout).unwrap().trim().to_string() } else { uid.to_string() };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
        let dest = dir.path().join("out").display().to_string();
        // template_path is the task's `src`, as in Ansible
        let expected = format!("t.j2|{dest}|{host}|{owner}|{}\n", std::fs::canonicalize(&src).unwrap().display());
        // twice: the second render reads the cached host and owner names
        for _ in 0..2 {
            let t = prepare(dir.path(), json!({"src": "t.j2", "dest": dest}), &Vars::new()).unwrap();
            let text = apply(t.as_ref()).diffs.into_iter().find_map(|d| match d {
                Diff::Text { after, .. } => after,
                _ => None,
            });
            let text = text.unwrap();
            let (first, run_date) = text.split_at(text.find('\n').unwrap() + 1);
            assert_eq!(first, expected);
            // Python's str(datetime.now()): 2024-05-01 12:34:56.789012
            let today = chrono::Local::now().format("%Y-%m-%d ").to_string();
            assert!(run_date.starts_with(&today) && run_date.len() >= 20, "{run_date:?}");
            std::fs::remove_file(&dest).unwrap();
        }
    }

    /// What the template task `args` writes (to a `dest` that doesn't exist yet).
    fn rendered(dir: &std::path::Path, args: Value, vars: &Vars) -> String {
        let t = prepare(dir, args.clone(), vars).unwrap_or_else(|e| panic!("{e}"));
        let text = apply(t.as_ref()).diffs.into_iter().find_map(|d| match d {
            Diff::Text { after, .. } => after,
            _ => None,
        });
        let _ = std::fs::remove_file(args["dest"].as_str().unwrap());
        text.unwrap()
    }

    #[test]
    fn whitespace_newline_and_delimiter_options() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        let src = "[s]\n  {% for h in hosts %}\n    {% if h != 'skip' %}\nserver {{ h }}\n    {% endif %}\n  {% endfor %}\n";
        std::fs::write(dir.path().join("templates/s.j2"), src).unwrap();
        std::fs::write(dir.path().join("templates/h.j2"), format!("#jinja2: lstrip_blocks: True, trim_blocks: True\n{src}")).unwrap();
        let mut vars = Vars::new();
        vars.insert("hosts".into(), json!(["a", "skip", "b"]));
        vars.insert("cfg".into(), json!({"k": [1]}));
        let dest = dir.path().join("out").display().to_string();
        let out = |args: Value| rendered(dir.path(), args, &vars);
        // lstrip_blocks from the task, and from the #jinja2: header (which is dropped)
        assert_eq!(out(json!({"src": "s.j2", "dest": dest, "lstrip_blocks": true})), "[s]\nserver a\nserver b\n");
        assert_eq!(out(json!({"src": "h.j2", "dest": dest})), "[s]\nserver a\nserver b\n");
        // the header wins over the task
        assert_eq!(out(json!({"src": "h.j2", "dest": dest, "lstrip_blocks": false})), "[s]\nserver a\nserver b\n");
        std::fs::write(dir.path().join("templates/t.j2"), "{% if true %}\nx\n{% endif %}\n").unwrap();
        assert_eq!(out(json!({"src": "t.j2", "dest": dest, "trim_blocks": false})), "\nx\n");
        // newline_sequence: the template's own newlines (also in macros and set blocks), not
        // those of what expressions output (as Ansible 2.19 writes them)
        std::fs::write(dir.path().join("templates/n.j2"), "a\n{{ cfg | to_nice_json }}\n{% if true %}\nb\n{% endif %}\n").unwrap();
        std::fs::write(dir.path().join("templates/m.j2"), "{% macro m() %}\nin macro\n{% endmacro %}{{ m() }}{% set blk %}\nset block\n{% endset %}{{ blk }}\n").unwrap();
        assert_eq!(out(json!({"src": "n.j2", "dest": dest, "newline_sequence": "\\r\\n"})), "a\r\n{\n    \"k\": [\n        1\n    ]\n}\r\nb\r\n");
        assert_eq!(out(json!({"src": "m.j2", "dest": dest, "newline_sequence": "\r\n"})), "in macro\r\nset block\r\n");
        // `\r`: Ansible counts only `\n` at the end when it adds back trailing newlines (one more)
        assert_eq!(out(json!({"src": "n.j2", "dest": dest, "newline_sequence": "\r"})), "a\r{\n    \"k\": [\n        1\n    ]\n}\rb\r\r");
        // other delimiters: {{ }} is text
        std::fs::write(dir.path().join("templates/d.j2"), "{{ kept }} [[ hosts | first ]] [% if true %]y[% endif %] <# c #>\n").unwrap();
        let args = json!({"src": "d.j2", "dest": dest, "variable_start_string": "[[", "variable_end_string": "]]",
            "block_start_string": "[%", "block_end_string": "%]", "comment_start_string": "<#", "comment_end_string": "#>"});
        assert_eq!(out(args), "{{ kept }} a y \n");
        let e = prepare(dir.path(), json!({"src": "s.j2", "dest": dest, "newline_sequence": "\t"}), &vars).err().unwrap();
        assert!(e.to_string().contains("newline_sequence"), "{e}");
    }

    #[test]
    fn includes_and_imports_are_found_on_ansibles_search_path() {
        let dir = tempfile::tempdir().unwrap();
        let role = dir.path().join("roles/web");
        std::fs::create_dir_all(role.join("templates/sub")).unwrap();
        std::fs::create_dir_all(dir.path().join("templates/partials")).unwrap();
        std::fs::write(dir.path().join("templates/partials/header.j2"), "# header {{ name }}\n").unwrap();
        std::fs::write(role.join("templates/macros.j2"), "{% macro kv(k, v) %}{{ k }} = {{ v }}{% endmacro %}\n").unwrap();
        std::fs::write(role.join("templates/base.j2"), "top\n{% block body %}{% endblock %}\nbottom\n").unwrap();
        std::fs::write(role.join("templates/sub/sibling.j2"), "sibling").unwrap();
        std::fs::write(
            role.join("templates/sub/app.j2"),
            "{% include 'partials/header.j2' %}\n{% import 'macros.j2' as m %}\n{% from 'macros.j2' import kv %}\n{{ m.kv('a', 1) }}\n{{ kv('b', 2) }}\n{% include 'sibling.j2' %}!\n",
        )
        .unwrap();
        std::fs::write(role.join("templates/child.j2"), "{% extends 'base.j2' %}{% block body %}middle {{ name }}{% endblock %}\n").unwrap();
        let mut vars = Vars::new();
        vars.insert("name".into(), json!("app"));
        let templar = Templar::new();
        let dest = dir.path().join("out").display().to_string();
        let ctx = PrepareContext { templar: &templar, vars: &vars, host: "web1", role_path: Some(&role), playbook_dir: dir.path(), run_as: "root" };
        let text = |src: &str| {
            let t = TemplateModule.prepare(json!({"src": src, "dest": dest}).as_object().unwrap(), &ctx).unwrap_or_else(|e| panic!("{e}"));
            apply(t.as_ref()).diffs.into_iter().find_map(|d| match d {
                Diff::Text { after, .. } => after,
                _ => None,
            })
        };
        // an included template's trailing newline is dropped (Jinja), the template's kept;
        // trim_blocks takes the newline after `{% include %}`, as Jinja does
        assert_eq!(text("sub/app.j2").as_deref(), Some("# header appa = 1\nb = 2\nsibling!\n"));
        std::fs::remove_file(&dest).unwrap();
        assert_eq!(text("child.j2").as_deref(), Some("top\nmiddle appbottom\n"));
        std::fs::remove_file(&dest).unwrap();
        // keep_trailing_newline (here from the header) keeps an included template's too
        std::fs::write(role.join("templates/k.j2"), "#jinja2: keep_trailing_newline: True\nA{% include 'sub/sibling.j2' %}|{% include 'partials/header.j2' %}B\n").unwrap();
        assert_eq!(text("k.j2").as_deref(), Some("Asibling|# header app\nB\n"));
        std::fs::write(role.join("templates/bad.j2"), "{% include 'nope.j2' %}\n").unwrap();
        let e = TemplateModule.prepare(json!({"src": "bad.j2", "dest": dest}).as_object().unwrap(), &ctx).err().unwrap();
        assert!(e.to_string().contains("nope.j2"), "{e}");
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
