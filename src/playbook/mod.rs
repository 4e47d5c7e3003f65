//! Playbooks and roles.
