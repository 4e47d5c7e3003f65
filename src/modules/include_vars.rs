//! `include_vars`: host variables from YAML (or JSON) files on the controller, as Ansible's
//! `include_vars` (a relative `file` is looked for in the role's `vars/`, the role, the
//! playbook's `vars/`, then the playbook's folder; `dir` loads every `.yml`/`.yaml`/`.json`
//! file below it in name order). The variables are set like `set_fact` (and reported as
//! `ansible_facts`); `name` puts them under one variable. Reads only the controller, so it
//! runs in check mode too. Values stay as written: templates in them are rendered when used.

use std::path::{Path, PathBuf};

use super::args;
use super::{Module, ModuleError, ModuleTask, Plan, PrepareContext, ProbeResult};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub struct IncludeVarsModule;

const PARAMS: &[&str] = &[
    "_raw_params", "file", "dir", "name", "depth", "files_matching", "ignore_files", "extensions", "ignore_unknown_extensions", "hash_behaviour",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default, deserialize_with = "args::opt_string")]
    _raw_params: Option<String>,
    #[serde(default, deserialize_with = "args::opt_string")]
    file: Option<String>,
    #[serde(default, deserialize_with = "args::opt_string")]
    dir: Option<String>,
    #[serde(default, deserialize_with = "args::opt_string")]
    name: Option<String>,
    #[serde(default)]
    depth: Option<usize>,
    #[serde(default, deserialize_with = "args::opt_string")]
    files_matching: Option<String>,
    #[serde(default, deserialize_with = "args::opt_list")]
    ignore_files: Option<Vec<String>>,
    #[serde(default, deserialize_with = "args::opt_list")]
    extensions: Option<Vec<String>>,
    #[serde(default, deserialize_with = "args::opt_boolish")]
    ignore_unknown_extensions: Option<bool>,
    #[serde(default, deserialize_with = "args::opt_string")]
    hash_behaviour: Option<String>,
}

#[derive(Debug)]
struct IncludeVarsTask {
    facts: Map<String, Value>,
    files: Vec<String>,
}

impl Module for IncludeVarsModule {
    fn name(&self) -> &'static str {
        "include_vars"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    fn free_form(&self) -> Option<&'static str> {
        Some("_raw_params")
    }
    fn prepare(&self, args: &Map<String, Value>, ctx: &PrepareContext) -> Result<Box<dyn ModuleTask>, ModuleError> {
        let a: Args = args::parse("include_vars", PARAMS, args)?;
        if let Some(h) = a.hash_behaviour.as_deref().filter(|h| *h != "replace") {
            return Err(ModuleError::Args(format!("include_vars: hash_behaviour '{h}' is not supported (replace is)")));
        }
        let files = match (a.file.or(a._raw_params), &a.dir) {
            (Some(_), Some(_)) => return Err(ModuleError::Args("include_vars: file and dir are mutually exclusive".into())),
            (Some(f), None) => {
                let f = f.trim().to_string();
                vec![ctx.find_local("vars", &f).ok_or_else(|| ModuleError::LocalFile(format!("include_vars: could not find or access '{f}' (searched vars/ of the role and the playbook directory)")))?]
            }
            (None, Some(d)) => {
                let dir = ctx.find_local("vars", d).filter(|p| p.is_dir()).ok_or_else(|| ModuleError::LocalFile(format!("include_vars: {d} directory does not exist")))?;
                let exts = a.extensions.unwrap_or_else(|| vec!["yaml".into(), "yml".into(), "json".into()]);
                let matching = a.files_matching.as_deref().map(regex::Regex::new).transpose().map_err(|e| ModuleError::Args(format!("include_vars: files_matching: {e}")))?;
                let select = Select { exts, matching, ignore: a.ignore_files.unwrap_or_default(), ignore_unknown: a.ignore_unknown_extensions.unwrap_or(false) };
                let mut found = Vec::new();
                walk(&dir, a.depth.unwrap_or(0), 1, &select, &mut found)?;
                found
            }
            (None, None) => return Err(ModuleError::Args("include_vars: needs a file (free form or file:) or dir:".into())),
        };
        let mut loaded = Map::new();
        let mut names = Vec::new();
        for f in &files {
            let vars = crate::playbook::load_vars_file(f).map_err(|e| ModuleError::LocalFile(format!("include_vars: {e}")))?;
            loaded.extend(vars);
            names.push(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()).display().to_string());
        }
        let facts = match a.name {
            Some(n) if !crate::template::is_identifier(&n) => return Err(ModuleError::Args(format!("include_vars: '{n}' is not a valid variable name"))),
            Some(n) => Map::from_iter([(n, Value::Object(loaded))]),
            None => loaded,
        };
        if let Some(bad) = facts.keys().find(|k| !crate::template::is_identifier(k)) {
            return Err(ModuleError::Args(format!("include_vars: '{bad}' is not a valid variable name")));
        }
        Ok(Box::new(IncludeVarsTask { facts, files: names }))
    }
}

struct Select {
    exts: Vec<String>,
    matching: Option<regex::Regex>,
    ignore: Vec<String>,
    ignore_unknown: bool,
}

/// The files of `dir` (and its subfolders down to `depth`, 0 = all), each folder's files in
/// name order before its subfolders, as Ansible's `os.walk` + `sorted`.
fn walk(dir: &Path, depth: usize, level: usize, s: &Select, out: &mut Vec<PathBuf>) -> Result<(), ModuleError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ModuleError::LocalFile(format!("include_vars: cannot read {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut subdirs = Vec::new();
    for p in entries {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if p.is_dir() {
            subdirs.push(p);
            continue;
        }
        if s.ignore.contains(&name) || s.matching.as_ref().is_some_and(|m| !m.is_match(&name)) {
            continue;
        }
        let ext = p.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        if !s.exts.contains(&ext) {
            if s.ignore_unknown {
                continue;
            }
            return Err(ModuleError::LocalFile(format!("include_vars: {} does not have a valid extension: {}", p.display(), s.exts.join(", "))));
        }
        out.push(p);
    }
    if depth == 0 || level < depth {
        for d in subdirs {
            walk(&d, depth, level + 1, s, out)?;
        }
    }
    Ok(())
}

impl ModuleTask for IncludeVarsTask {
    fn plan(&self, _probes: &[ProbeResult]) -> Result<Plan, ModuleError> {
        let mut result = Map::new();
        result.insert("ansible_included_var_files".into(), json!(self.files));
        Ok(Plan { facts: self.facts.clone(), result, ..Plan::ok() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{Templar, Vars};

    fn prep(args: Value, role: Option<&Path>, playbook: &Path) -> Result<Plan, ModuleError> {
        let templar = Templar::new();
        let vars = Vars::new();
        let ctx = PrepareContext { templar: &templar, vars: &vars, host: "h", role_path: role, playbook_dir: playbook, run_as: "root" };
        IncludeVarsModule.prepare(args.as_object().unwrap(), &ctx)?.plan(&[])
    }

    #[test]
    fn a_file_searched_like_ansible_then_a_folder() {
        let d = tempfile::tempdir().unwrap();
        let role = d.path().join("roles/r");
        std::fs::create_dir_all(role.join("vars/os")).unwrap();
        std::fs::create_dir_all(d.path().join("vars/conf.d/sub")).unwrap();
        std::fs::write(role.join("vars/Debian.yml"), "pkg: apt\nlist: [1, 2]\nt: \"{{ other }}\"\n").unwrap();
        std::fs::write(d.path().join("vars/conf.d/b.yml"), "x: b\ny: b\n").unwrap();
        std::fs::write(d.path().join("vars/conf.d/a.json"), "{\"x\": \"a\", \"z\": 1}").unwrap();
        std::fs::write(d.path().join("vars/conf.d/sub/c.yaml"), "y: c\n").unwrap();
        std::fs::write(d.path().join("vars/conf.d/README"), "not vars").unwrap();

        // free form, from the role's vars/; templates stay for later
        let p = prep(json!({"_raw_params": "Debian.yml"}), Some(&role), d.path()).unwrap();
        assert_eq!(Value::Object(p.facts.clone()), json!({"pkg": "apt", "list": [1, 2], "t": "{{ other }}"}));
        assert!(!p.changed());
        let files = p.result["ansible_included_var_files"].as_array().unwrap();
        assert!(files[0].as_str().unwrap().ends_with("roles/r/vars/Debian.yml"), "{files:?}");
        // name: under one variable
        let p = prep(json!({"file": "Debian.yml", "name": "os"}), Some(&role), d.path()).unwrap();
        assert_eq!(p.facts["os"]["pkg"], json!("apt"));
        // a folder: files in name order, then subfolders; later files win
        let p = prep(json!({"dir": "conf.d", "ignore_unknown_extensions": true}), None, d.path()).unwrap();
        assert_eq!(Value::Object(p.facts.clone()), json!({"x": "b", "z": 1, "y": "c"}));
        let p = prep(json!({"dir": "conf.d", "depth": 1, "files_matching": "^[ab]\\.", "ignore_files": ["a.json"]}), None, d.path()).unwrap();
        assert_eq!(Value::Object(p.facts.clone()), json!({"x": "b", "y": "b"}));
        let e = prep(json!({"dir": "conf.d"}), None, d.path()).unwrap_err().to_string();
        assert!(e.contains("README does not have a valid extension"), "{e}");
        // errors
        let e = prep(json!({"_raw_params": "nope.yml"}), Some(&role), d.path()).unwrap_err().to_string();
        assert!(e.contains("could not find or access 'nope.yml'"), "{e}");
        assert!(prep(json!({"file": "a", "dir": "b"}), None, d.path()).is_err());
        assert!(prep(json!({"file": "Debian.yml", "hash_behaviour": "merge"}), Some(&role), d.path()).is_err());
        std::fs::write(d.path().join("list.yml"), "- 1\n").unwrap();
        assert!(prep(json!({"file": "list.yml"}), None, d.path()).is_err());
    }
}
