//! provision: Ansible-style declarative server provisioner. See README.md.

pub mod cli;
pub mod connection;
pub mod executor;
pub mod inventory;
pub mod modules;
pub mod playbook;
pub mod prompt;
pub mod report;
pub mod template;
pub mod vault;
pub mod vault_cmd;
pub mod yaml;
