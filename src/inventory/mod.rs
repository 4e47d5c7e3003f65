//! Inventory: hosts, groups, variables with Ansible's precedence; INI and YAML loaders.
//!
//! Sources: a file (INI or YAML/JSON, told apart by extension, else by content) or a directory
//! (every inventory file in it, recursively, sorted; `group_vars/`, `host_vars/`, hidden files
//! and backup/doc extensions skipped). `group_vars/` and `host_vars/` beside the inventory file
//! (or inside the inventory directory) are read too, and [`Inventory::add_vars_dir`] adds the
//! playbook directory's.
//!
//! Variable precedence for a host, low to high, as Ansible's default `VARIABLE_PRECEDENCE`:
//! 1. inline vars of group `all` (`[all:vars]`, `all: vars:`)
//! 2. inline vars of the host's other groups, sorted by depth (parents first), then
//!    `ansible_group_priority`, then name
//! 3. `group_vars/all` beside the inventory, then the playbook directory's
//! 4. `group_vars/<group>` beside the inventory (same group order), then the playbook directory's
//! 5. the host's inline vars, then `host_vars/<host>` beside the inventory, then the playbook
//!    directory's.
//!
//! Top-level keys replace (Ansible's default `hash_behaviour=replace`). Values stay raw: templates
//! such as `"{{ x }}"` are resolved later by the caller.

mod ini;
mod patterns;
mod pylit;
mod yaml;

use crate::template::Vars;
use indexmap::{IndexMap, IndexSet};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A malformed inventory or vars file; the message starts with `file:line:`.
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Pattern(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A YAML syntax error (location and snippet included).
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
}

#[derive(Debug, Clone, Default)]
struct Host {
    /// Inline inventory vars.
    vars: Vars,
    /// Groups the host was put in directly.
    groups: IndexSet<String>,
}

#[derive(Debug, Clone, Default)]
struct Group {
    /// Hosts put in this group directly.
    hosts: IndexSet<String>,
    children: IndexSet<String>,
    parents: IndexSet<String>,
    /// Inline inventory vars.
    vars: Vars,
    priority: i64,
}

/// Vars read from one directory's `group_vars/` and `host_vars/`.
#[derive(Debug, Clone, Default)]
struct VarsDir {
    dir: PathBuf,
    groups: HashMap<String, Vars>,
    hosts: HashMap<String, Vars>,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    hosts: IndexMap<String, Host>,
    groups: IndexMap<String, Group>,
    /// `group_vars/`/`host_vars/` beside the inventory sources.
    inventory_vars: Vec<VarsDir>,
    /// `group_vars/`/`host_vars/` of playbook directories (higher precedence).
    playbook_vars: Vec<VarsDir>,
    warnings: Vec<String>,
}

impl Default for Inventory {
    /// An empty inventory with the implicit groups `all` and `ungrouped`.
    fn default() -> Self {
        let mut inv = Inventory {
            hosts: IndexMap::new(),
            groups: IndexMap::new(),
            inventory_vars: Vec::new(),
            playbook_vars: Vec::new(),
            warnings: Vec::new(),
        };
        inv.ensure_group("all");
        inv.ensure_group("ungrouped");
        inv
    }
}

/// Extensions skipped when reading an inventory directory (Ansible's `INVENTORY_IGNORE_EXTS`
/// since 2.19; `.ini` files are read).
const IGNORED_EXTS: &[&str] = &[
    ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry", ".pub",
];
/// Names skipped when reading an inventory directory.
/// `known_hosts` lives beside generated inventories (e.g. scripts/testbed), so it is skipped too.
const IGNORED_NAMES: &[&str] = &["group_vars", "host_vars", "vars_plugins", "known_hosts", "known_hosts.old"];
/// Extensions of vars files (plus none).
const VARS_EXTS: &[&str] = &["", ".yml", ".yaml", ".json"];

fn io_err(path: &Path, source: std::io::Error) -> InventoryError {
    InventoryError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Inventory {
    /// Load a file (INI or YAML, detected by content/extension) or a directory (every inventory
    /// file in it, plus `group_vars/` and `host_vars/` inside it).
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let mut inv = Inventory::default();
        let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
        let vars_base = if meta.is_dir() {
            inv.load_dir(path)?;
            path.to_path_buf()
        } else {
            inv.load_file(path)?;
            match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        inv.finalize();
        let vars = inv.read_vars_dir(&vars_base)?;
        inv.inventory_vars.push(vars);
        Ok(inv)
    }

    /// Parse INI inventory text (no `group_vars`); `name` is used in messages.
    pub fn from_ini_str(name: &str, text: &str) -> Result<Inventory, InventoryError> {
        let mut inv = Inventory::default();
        ini::parse(&mut inv, Path::new(name), text)?;
        inv.finalize();
        Ok(inv)
    }

    /// Parse YAML inventory text (no `group_vars`); `name` is used in messages.
    pub fn from_yaml_str(name: &str, text: &str) -> Result<Inventory, InventoryError> {
        let mut inv = Inventory::default();
        let file = std::sync::Arc::new(PathBuf::from(name));
        let node = crate::yaml::parse_str(&file, text)?;
        yaml::parse(&mut inv, Path::new(name), &node)?;
        inv.finalize();
        Ok(inv)
    }

    /// Also load `group_vars/` and `host_vars/` found in `dir` (the playbook directory);
    /// they take precedence over inventory-dir ones, like Ansible.
    pub fn add_vars_dir(&mut self, dir: &Path) -> Result<(), InventoryError> {
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let c = canon(dir);
        if self
            .inventory_vars
            .iter()
            .chain(&self.playbook_vars)
            .any(|v| canon(&v.dir) == c)
        {
            // Same files already read; reading them twice would not change any result.
            return Ok(());
        }
        let vars = self.read_vars_dir(dir)?;
        self.playbook_vars.push(vars);
        Ok(())
    }

    /// Non-fatal problems found while loading (unexpected keys in YAML groups, ...), with locations.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Is `name` a host of this inventory?
    pub fn contains_host(&self, name: &str) -> bool {
        self.hosts.contains_key(name)
    }

    /// All hosts in inventory order.
    pub fn hosts(&self) -> Vec<String> {
        self.hosts.keys().cloned().collect()
    }

    /// Hosts matching an Ansible pattern (`all`, `*`, `web`, `web1`, `web*`, `~regex`,
    /// `a:b`, `a,b`, `a:!b`, `a:&b`, `web[0]`, `web[0:2]`), in inventory order. Unknown names
    /// match nothing. Terms are applied as Ansible does: unions first, then intersections, then
    /// exclusions; a pattern of only `&`/`!` terms starts from `all`.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>, InventoryError> {
        if pattern.trim().is_empty() {
            return Err(InventoryError::Pattern("empty host pattern".into()));
        }
        let groups = self.groups();
        let mut selected: IndexSet<String> = IndexSet::new();
        for (op, term) in patterns::ordered_terms(pattern) {
            let matched = self.match_term(&term, &groups)?;
            match op {
                patterns::Op::Union => selected.extend(matched),
                patterns::Op::Intersect => {
                    let m: IndexSet<String> = matched.into_iter().collect();
                    selected.retain(|h| m.contains(h));
                }
                patterns::Op::Exclude => {
                    for h in matched {
                        selected.shift_remove(&h);
                    }
                }
            }
        }
        Ok(self
            .hosts
            .keys()
            .filter(|h| selected.contains(*h))
            .cloned()
            .collect())
    }

    /// The terms of `pattern` that match no host or group (Ansible warns "Could not match
    /// supplied host pattern, ignoring: ..."), as written (without `&`/`!`).
    pub fn unmatched_terms(&self, pattern: &str) -> Result<Vec<String>, InventoryError> {
        let groups = self.groups();
        let mut out = Vec::new();
        for (_, term) in patterns::ordered_terms(pattern) {
            if self.match_term(&term, &groups)?.is_empty() && !groups.contains_key(&term.pattern) {
                out.push(term.pattern);
            }
        }
        Ok(out)
    }

    /// `groups` magic variable: every group (incl. `all`, `ungrouped`) -> its hosts (incl. via
    /// children), in inventory order.
    pub fn groups(&self) -> IndexMap<String, Vec<String>> {
        self.groups
            .keys()
            .map(|g| {
                let members = self.descendants(g);
                let hosts = if g == "all" {
                    self.hosts()
                } else {
                    self.hosts
                        .iter()
                        .filter(|(_, h)| h.groups.iter().any(|d| members.contains(d)))
                        .map(|(n, _)| n.clone())
                        .collect()
                };
                (g.clone(), hosts)
            })
            .collect()
    }

    /// `group_names`: groups the host belongs to (directly or via children), sorted, without
    /// `all`. Like Ansible, a host in no other group gets `["ungrouped"]`.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .host_groups(host)
            .into_iter()
            .filter(|g| g != "all")
            .collect();
        names.sort();
        names
    }

    /// Variables for a host, merged with Ansible precedence (see the module docs: inline `all`
    /// < inline groups by depth < `group_vars/all` < `group_vars/<group>` < inline host vars <
    /// `host_vars/<host>`; playbook-dir files over inventory-dir files). Raw (untemplated).
    pub fn host_vars(&self, host: &str) -> Vars {
        let mut out = Vars::new();
        let Some(h) = self.hosts.get(host) else {
            return out;
        };
        let merge = |out: &mut Vars, vars: Option<&Vars>| {
            if let Some(v) = vars {
                for (k, val) in v {
                    out.insert(k.clone(), val.clone());
                }
            }
        };
        let groups = self.sorted_host_groups(host);
        merge(&mut out, self.groups.get("all").map(|g| &g.vars));
        for g in &groups {
            merge(&mut out, self.groups.get(g).map(|g| &g.vars));
        }
        for layer in self.inventory_vars.iter().chain(&self.playbook_vars) {
            merge(&mut out, layer.groups.get("all"));
        }
        for layer in self.inventory_vars.iter().chain(&self.playbook_vars) {
            for g in &groups {
                merge(&mut out, layer.groups.get(g));
            }
        }
        merge(&mut out, Some(&h.vars));
        for layer in self.inventory_vars.iter().chain(&self.playbook_vars) {
            merge(&mut out, layer.hosts.get(host));
        }
        out
    }

    // ---- building (used by the format parsers) ----

    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    fn ensure_group(&mut self, name: &str) {
        if !self.groups.contains_key(name) {
            self.groups.insert(name.to_string(), Group::default());
        }
    }

    fn add_host(&mut self, host: &str, group: &str) {
        self.ensure_group(group);
        self.hosts
            .entry(host.to_string())
            .or_default()
            .groups
            .insert(group.to_string());
        self.groups[group].hosts.insert(host.to_string());
    }

    fn set_host_var(&mut self, host: &str, key: &str, value: Value) {
        self.hosts
            .entry(host.to_string())
            .or_default()
            .vars
            .insert(key.to_string(), value);
    }

    fn set_group_var(&mut self, group: &str, key: &str, value: Value) {
        self.ensure_group(group);
        let g = &mut self.groups[group];
        if key == "ansible_group_priority" {
            let p = match &value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            if let Some(p) = p {
                g.priority = p;
            }
        }
        g.vars.insert(key.to_string(), value);
    }

    /// Make `child` a child group of `parent`; refuses to create a cycle.
    fn add_child(&mut self, parent: &str, child: &str) -> Result<(), String> {
        if child == "all" {
            return Err(format!("group 'all' cannot be a child of '{parent}'"));
        }
        if parent == child || self.descendants(child).contains(parent) {
            return Err(format!(
                "adding group '{child}' as a child of '{parent}' creates a cycle"
            ));
        }
        self.ensure_group(parent);
        self.ensure_group(child);
        self.groups[parent].children.insert(child.to_string());
        self.groups[child].parents.insert(parent.to_string());
        Ok(())
    }

    /// After all sources are read: top-level groups become children of `all`, and hosts in no
    /// group but `all`/`ungrouped` go to `ungrouped` (and only those).
    fn finalize(&mut self) {
        let orphans: Vec<String> = self
            .groups
            .iter()
            .filter(|(n, g)| *n != "all" && g.parents.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        for g in orphans {
            let _ = self.add_child("all", &g);
        }
        let names: Vec<String> = self.hosts.keys().cloned().collect();
        for h in names {
            let lonely = self.hosts[&h]
                .groups
                .iter()
                .all(|g| g == "all" || g == "ungrouped");
            if lonely {
                self.add_host(&h, "ungrouped");
            } else if self.hosts[&h].groups.shift_remove("ungrouped") {
                self.groups["ungrouped"].hosts.shift_remove(&h);
            }
        }
    }

    // ---- queries ----

    /// The group and all groups below it.
    fn descendants(&self, group: &str) -> IndexSet<String> {
        let mut seen = IndexSet::new();
        let mut stack = vec![group.to_string()];
        while let Some(g) = stack.pop() {
            if seen.insert(g.clone()) {
                if let Some(gr) = self.groups.get(&g) {
                    stack.extend(gr.children.iter().cloned());
                }
            }
        }
        seen
    }

    /// Every group the host is in, directly or through children (including `all`).
    fn host_groups(&self, host: &str) -> IndexSet<String> {
        let mut seen = IndexSet::new();
        let Some(h) = self.hosts.get(host) else {
            return seen;
        };
        let mut stack: Vec<String> = h.groups.iter().cloned().collect();
        stack.push("all".into());
        while let Some(g) = stack.pop() {
            if seen.insert(g.clone()) {
                if let Some(gr) = self.groups.get(&g) {
                    stack.extend(gr.parents.iter().cloned());
                }
            }
        }
        seen
    }

    /// Longest distance from `all` (`all` is 0, top-level groups 1).
    fn depth(&self, group: &str, memo: &mut HashMap<String, i64>) -> i64 {
        if let Some(d) = memo.get(group) {
            return *d;
        }
        let d = match self.groups.get(group) {
            Some(g) if group != "all" => g
                .parents
                .iter()
                .map(|p| self.depth(p, memo) + 1)
                .max()
                .unwrap_or(1),
            _ => 0,
        };
        memo.insert(group.to_string(), d);
        d
    }

    /// The host's groups except `all`, in variable precedence order (Ansible's `sort_groups`).
    fn sorted_host_groups(&self, host: &str) -> Vec<String> {
        let mut memo = HashMap::new();
        let mut groups: Vec<(i64, i64, String)> = self
            .host_groups(host)
            .into_iter()
            .filter(|g| g != "all")
            .map(|g| {
                (
                    self.depth(&g, &mut memo),
                    self.groups.get(&g).map_or(0, |x| x.priority),
                    g,
                )
            })
            .collect();
        groups.sort();
        groups.into_iter().map(|(_, _, g)| g).collect()
    }

    fn match_term(
        &self,
        term: &patterns::Term,
        groups: &IndexMap<String, Vec<String>>,
    ) -> Result<Vec<String>, InventoryError> {
        let p = term.pattern.as_str();
        let re = patterns::compile(p).map_err(InventoryError::Pattern)?;
        let mut hosts: IndexSet<String> = IndexSet::new();
        let mut any_group = false;
        for (g, members) in groups {
            if re.is_match(g) {
                any_group = true;
                hosts.extend(members.iter().cloned());
            }
        }
        if !any_group || patterns::is_special(p) {
            hosts.extend(self.hosts.keys().filter(|h| re.is_match(h)).cloned());
        }
        let mut hosts: Vec<String> = hosts.into_iter().collect();
        if term.subscript.is_none() {
            return Ok(hosts);
        }
        // Slices count in inventory order.
        let order: HashMap<&str, usize> = self
            .hosts
            .keys()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        hosts.sort_by_key(|h| order.get(h.as_str()).copied().unwrap_or(usize::MAX));
        Ok(patterns::apply_subscript(hosts, term.subscript))
    }

    // ---- reading files ----

    fn load_dir(&mut self, dir: &Path) -> Result<(), InventoryError> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.')
                || IGNORED_NAMES.contains(&name.as_str())
                || IGNORED_EXTS.iter().any(|e| name.ends_with(e))
            {
                continue;
            }
            if path.is_dir() {
                self.load_dir(&path)?;
            } else {
                self.load_file(&path)?;
            }
        }
        Ok(())
    }

    fn load_file(&mut self, path: &Path) -> Result<(), InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
        // A vault-encrypted inventory (INI or YAML) is read as what it decrypts to. Its
        // values are not all taken for secrets (it is mostly names and addresses); secret
        // values in it are `!vault` values or secret-looking names, as anywhere.
        let text = if crate::vault::is_encrypted(text.as_bytes()) {
            crate::vault::decrypt_text(&text).map_err(|e| InventoryError::Parse(format!("{}:1:1: {e}", path.display())))?
        } else {
            text
        };
        if text.starts_with("#!") {
            return Err(InventoryError::Parse(format!(
                "{}:1: dynamic inventory scripts are not supported; use a static INI or YAML inventory",
                path.display()
            )));
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let file = std::sync::Arc::new(path.to_path_buf());
        match ext.as_str() {
            "yml" | "yaml" | "json" => {
                let node = crate::yaml::parse_str(&file, &text)?;
                yaml::parse(self, path, &node)
            }
            "ini" => ini::parse(self, path, &text),
            _ => match sniff_yaml(&file, &text) {
                Some(node) => yaml::parse(self, path, &node),
                None => ini::parse(self, path, &text),
            },
        }
    }

    /// Read `group_vars/` and `host_vars/` under `dir` for the groups and hosts we have.
    fn read_vars_dir(&self, dir: &Path) -> Result<VarsDir, InventoryError> {
        let mut out = VarsDir {
            dir: dir.to_path_buf(),
            ..Default::default()
        };
        let gdir = dir.join("group_vars");
        if gdir.is_dir() {
            for g in self.groups.keys() {
                if let Some(v) = read_entity_vars(&gdir, g)? {
                    out.groups.insert(g.clone(), v);
                }
            }
        }
        let hdir = dir.join("host_vars");
        if hdir.is_dir() {
            for h in self.hosts.keys() {
                if let Some(v) = read_entity_vars(&hdir, h)? {
                    out.hosts.insert(h.clone(), v);
                }
            }
        }
        Ok(out)
    }
}

/// An extension-less (or unknown-extension) file is YAML if it parses as a mapping of groups
/// (every value null or a mapping) and does not start with an INI section.
fn sniff_yaml(file: &std::sync::Arc<PathBuf>, text: &str) -> Option<crate::yaml::Node> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))?;
    if first.starts_with('[') {
        return None;
    }
    let node = crate::yaml::parse_str(file, text).ok()?;
    let map = node.as_map()?;
    map.values()
        .all(|v| v.is_null() || v.as_map().is_some())
        .then_some(node)
}

/// The vars for one group or host from `base/NAME`, `base/NAME.{yml,yaml,json}` or every file in
/// the folder `base/NAME/` (sorted, recursively), later files replacing earlier keys.
fn read_entity_vars(base: &Path, name: &str) -> Result<Option<Vars>, InventoryError> {
    let mut files = Vec::new();
    let folder = base.join(name);
    if folder.is_dir() {
        collect_vars_files(&folder, &mut files)?;
    } else {
        for ext in VARS_EXTS {
            let f = base.join(format!("{name}{ext}"));
            if f.is_file() {
                files.push(f);
            }
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut vars = Vars::new();
    for f in files {
        for (k, v) in read_vars_file(&f)? {
            vars.insert(k, v);
        }
    }
    Ok(Some(vars))
}

fn collect_vars_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InventoryError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let ext = p
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        if p.is_dir() {
            if ext.is_empty() {
                collect_vars_files(&p, out)?;
            }
        } else if VARS_EXTS.contains(&ext.as_str()) {
            out.push(p);
        }
    }
    Ok(())
}

fn read_vars_file(path: &Path) -> Result<Vars, InventoryError> {
    let source = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let node = crate::yaml::parse_str(&std::sync::Arc::new(path.to_path_buf()), &source)?;
    match node.to_json() {
        Value::Null => Ok(Vars::new()),
        Value::Object(m) => Ok(m),
        _ => Err(InventoryError::Parse(format!(
            "{}:{}:{}: vars file must contain a mapping of variable names to values, found a {}",
            path.display(),
            node.line,
            node.column,
            node.kind()
        ))),
    }
}

#[cfg(test)]
mod tests;
