//! The YAML (and JSON) inventory format, following Ansible's `yaml` inventory plugin:
//! top-level keys are groups (usually just `all`), each with optional `hosts` (name -> vars or
//! null), `vars` and `children` (nested groups, arbitrarily deep).

use super::patterns::{expand_host_range, split_host_port};
use super::{Inventory, InventoryError};
use crate::yaml::{Node, NodeValue};
use serde_json::Value;
use std::path::Path;

pub(super) fn parse(inv: &mut Inventory, file: &Path, root: &Node) -> Result<(), InventoryError> {
    let ctx = Ctx { file };
    match &root.value {
        NodeValue::Null => Ok(()),
        NodeValue::Map(m) => {
            if m.contains_key("plugin") {
                return Err(ctx.err(
                    root,
                    "this is an inventory plugin configuration (`plugin:`), which is not supported; use a static INI or YAML inventory",
                ));
            }
            for (name, data) in m {
                ctx.group(inv, name, data)?;
            }
            Ok(())
        }
        _ => Err(ctx.err(
            root,
            format!(
                "YAML inventory has invalid structure, it should be a mapping of groups, got a {}",
                root.kind()
            ),
        )),
    }
}

struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn at(&self, node: &Node) -> String {
        format!("{}:{}:{}", self.file.display(), node.line, node.column)
    }
    fn err(&self, node: &Node, msg: impl std::fmt::Display) -> InventoryError {
        InventoryError::Parse(format!("{}: {}", self.at(node), msg))
    }

    fn group(&self, inv: &mut Inventory, name: &str, data: &Node) -> Result<(), InventoryError> {
        let map = match &data.value {
            NodeValue::Null => {
                inv.ensure_group(name);
                return Ok(());
            }
            NodeValue::Map(m) => m,
            _ => {
                inv.warn(format!(
                    "{}: skipping '{name}': not a valid group definition (expected a mapping, got a {})",
                    self.at(data),
                    data.kind()
                ));
                return Ok(());
            }
        };
        inv.ensure_group(name);
        for (key, section) in map {
            match key.as_str() {
                "hosts" | "vars" | "children" => {}
                _ => {
                    inv.warn(format!(
                        "{}: skipping unexpected key '{key}' in group '{name}'; only 'hosts', 'vars' and 'children' are valid",
                        self.at(section)
                    ));
                    continue;
                }
            }
            let entries: Vec<(&str, Option<&Node>, &Node)> = match &section.value {
                NodeValue::Null => continue,
                // `hosts: web1` is shorthand for `hosts: {web1: null}`.
                NodeValue::Str(s) => vec![(s.as_str(), None, section)],
                NodeValue::Map(m) => m.iter().map(|(k, v)| (k.as_str(), Some(v), v)).collect(),
                _ => {
                    return Err(self.err(
                        section,
                        format!(
                        "invalid '{key}' entry for group '{name}': requires a mapping, found a {}",
                        section.kind()
                    ),
                    ))
                }
            };
            match key.as_str() {
                "vars" => {
                    for (k, v, _) in entries {
                        inv.set_group_var(name, k, v.map(Node::to_json).unwrap_or(Value::Null));
                    }
                }
                "children" => {
                    for (child, data, at) in entries {
                        match data {
                            Some(d) => self.group(inv, child, d)?,
                            None => inv.ensure_group(child),
                        }
                        inv.add_child(name, child).map_err(|m| self.err(at, m))?;
                    }
                }
                _ => {
                    for (pattern, vars, at) in entries {
                        let (pattern, port) = split_host_port(pattern);
                        let hosts = expand_host_range(&pattern).map_err(|m| self.err(at, m))?;
                        let vars = match vars.map(|v| &v.value) {
                            None | Some(NodeValue::Null) => None,
                            Some(NodeValue::Map(m)) => Some(m),
                            Some(_) => {
                                return Err(self.err(
                                    at,
                                    format!(
                                    "variables of host '{pattern}' must be a mapping, found a {}",
                                    at.kind()
                                ),
                                ))
                            }
                        };
                        for host in hosts {
                            inv.add_host(&host, name);
                            if let Some(port) = port {
                                inv.set_host_var(&host, "ansible_port", Value::from(port));
                            }
                            for (k, v) in vars.into_iter().flatten() {
                                inv.set_host_var(&host, k, v.to_json());
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
