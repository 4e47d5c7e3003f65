//! Inventory: hosts, groups, variables with Ansible's precedence; INI and YAML loaders.
//! OWNER: inventory helper. This is the agreed API; bodies are being written.

use crate::template::Vars;
use indexmap::IndexMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Pattern(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {}

impl Inventory {
    /// Load a file (INI or YAML, detected by content/extension) or a directory (every inventory
    /// file in it, plus `group_vars/` and `host_vars/` inside it).
    pub fn load(_path: &Path) -> Result<Inventory, InventoryError> {
        todo!()
    }
    /// Also load `group_vars/` and `host_vars/` found in `dir` (the playbook directory);
    /// they take precedence over inventory-dir ones, like Ansible.
    pub fn add_vars_dir(&mut self, _dir: &Path) -> Result<(), InventoryError> {
        todo!()
    }
    /// All hosts in inventory order.
    pub fn hosts(&self) -> Vec<String> {
        todo!()
    }
    /// Hosts matching an Ansible pattern (`all`, `*`, `web`, `web1`, `web*`, `~regex`,
    /// `a:b`, `a,b`, `a:!b`, `a:&b`), in inventory order. Unknown names match nothing.
    pub fn select(&self, _pattern: &str) -> Result<Vec<String>, InventoryError> {
        todo!()
    }
    /// `groups` magic variable: every group (incl. `all`, `ungrouped`) -> its hosts (incl. via children).
    pub fn groups(&self) -> IndexMap<String, Vec<String>> {
        todo!()
    }
    /// `group_names`: groups the host belongs to (directly or via children), sorted, without `all`/`ungrouped`.
    pub fn group_names(&self, _host: &str) -> Vec<String> {
        todo!()
    }
    /// Variables for a host, merged with Ansible precedence (all < parent groups < child groups
    /// < host; group_vars/host_vars files over inline inventory vars). Raw (untemplated).
    pub fn host_vars(&self, _host: &str) -> Vars {
        todo!()
    }
}
