//! Where a delegated task runs (`delegate_to`): the controller, or another host over SSH.
//!
//! A host delegated to is reached with its own inventory variables (`ansible_host`,
//! `ansible_port`, `ansible_user`, keys, SSH arguments; a name the inventory doesn't know is
//! an address with the run's defaults), as in Ansible. Its connection is opened the first time
//! a task needs it and shared by every host's delegated tasks for the rest of the run (one
//! connection per delegated host, whatever the number of hosts delegating to it); it is closed
//! when the run ends. A host that can't be reached makes the delegating host's task
//! unreachable, as Ansible reports it; the failure is remembered, not retried per task.
//!
//! A task whose `remote_user` differs from its play's logs in as that user on its own host
//! the same way: one more connection to the host, shared by such tasks for the rest of the run
//! (a delegate that is the host itself, `same_host`).

use super::{open_connection, ConnectFailure, RunOptions};
use crate::connection::Transport;
use crate::inventory::Inventory;
use crate::template::{Templar, Vars};
use std::collections::HashMap;
use std::sync::Arc;

/// Where the item running now goes.
#[derive(Clone)]
pub struct Delegate {
    /// The name given in `delegate_to` (`localhost` for the controller).
    pub name: String,
    pub conn: Arc<dyn Transport>,
    /// Who the connection logs in as (a task without `become` runs as it).
    pub login: String,
    /// The controller: no SSH, and the task runs as the user running provision unless it
    /// says `become: true` itself.
    pub controller: bool,
    /// The task's own host, logged in to as another user (`remote_user`): its changes are
    /// the host's and its actions are the host's round trips.
    pub same_host: bool,
    /// The sudo password for becoming another user there: the delegated host's own become
    /// password variables, as Ansible takes a delegate's connection and become variables
    /// from it (else `--ask-become-pass`'s answer).
    pub become_password: Option<String>,
}

/// A delegate's connection, who it logs in as and its become password.
type Connected = Result<(Arc<dyn Transport>, String, Option<String>), String>;

/// A connection opened once, on first use (its result kept, failure included).
type Slot = Arc<tokio::sync::OnceCell<Connected>>;

/// The run's connections to hosts tasks are delegated to.
#[derive(Default)]
pub struct DelegatePool {
    /// By host and `remote_user` keyword.
    conns: tokio::sync::Mutex<HashMap<(String, Option<String>), Slot>>,
    /// Facts tasks set for the hosts they were delegated to.
    pub facts: DelegatedFacts,
}

/// Facts that tasks with `delegate_facts: true` set for the host they were delegated to, for
/// the rest of the run: later plays see them as that host's own variables and through
/// `hostvars` (and the running play through `hostvars` after its next meeting point).
#[derive(Default)]
pub struct DelegatedFacts {
    /// Per host, every gift in the order given.
    by_host: std::sync::Mutex<HashMap<String, Vec<Vars>>>,
}

impl DelegatedFacts {
    /// Give `host` these facts.
    pub fn give(&self, host: &str, facts: &Vars) {
        self.by_host.lock().unwrap_or_else(|e| e.into_inner()).entry(host.to_string()).or_default().push(facts.clone());
    }

    /// Everything `host` was given so far, merged (a gathered `ansible_facts` joins the ones
    /// given before).
    pub fn of(&self, host: &str) -> Option<Vars> {
        let all = self.by_host.lock().unwrap_or_else(|e| e.into_inner());
        let gifts = all.get(host)?;
        let mut out = Vars::new();
        for g in gifts {
            merge_facts(&mut out, g);
        }
        Some(out)
    }

    /// The gifts to `host` after the first `seen`, and how many there are now.
    pub fn since(&self, host: &str, seen: usize) -> (Vec<Vars>, usize) {
        let all = self.by_host.lock().unwrap_or_else(|e| e.into_inner());
        let gifts = all.get(host).map(Vec::as_slice).unwrap_or_default();
        (gifts.get(seen..).unwrap_or_default().to_vec(), gifts.len().max(seen))
    }
}

/// `into` with `facts` set on it; `ansible_facts` mappings are merged, key by key.
pub fn merge_facts(into: &mut Vars, facts: &Vars) {
    for (k, v) in facts {
        match (into.get_mut(k), v) {
            (Some(serde_json::Value::Object(old)), serde_json::Value::Object(new)) if k == "ansible_facts" => {
                old.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

impl DelegatePool {
    /// The connection to `host` with the `remote_user` keyword in force (the host's
    /// `ansible_user` still wins), opened on first use (one attempt per run).
    pub async fn get(&self, host: &str, remote_user: Option<&str>, inventory: &Inventory, templar: &Templar, opts: &RunOptions) -> Result<Delegate, String> {
        let key = (host.to_string(), remote_user.map(str::to_string));
        let cell = self.conns.lock().await.entry(key).or_default().clone();
        let (conn, login, become_password) = cell.get_or_init(|| connect(host, remote_user, inventory, templar, opts)).await.clone()?;
        Ok(Delegate { name: host.to_string(), conn, login, controller: false, same_host: false, become_password })
    }

    pub async fn close(&self) {
        let cells: Vec<_> = self.conns.lock().await.values().cloned().collect();
        for cell in cells {
            if let Some(Ok((conn, _, _))) = cell.get() {
                tracing::debug!("closing a delegation connection");
                conn.close().await;
            }
        }
    }
}

async fn connect(host: &str, remote_user: Option<&str>, inventory: &Inventory, templar: &Templar, opts: &RunOptions) -> Connected {
    tracing::debug!(host = %host, remote_user = ?remote_user, "connecting to a host tasks are delegated to");
    let to = match remote_user {
        Some(u) => format!("{host} as remote_user {u}"),
        None => format!("delegate_to {host}"),
    };
    let (conn, user) = open_connection(host, inventory, templar, opts, remote_user).await.map_err(|e| match e {
        ConnectFailure::BadVars(e) => format!("{to}: bad connection variables: {e}"),
        ConnectFailure::Unreachable(e) => format!("{to}: {e}"),
    })?;
    let login = match user {
        Some(u) => u,
        // The login user may come from ~/.ssh/config.
        None => {
            let out = conn.exec("id -un", None).await.map_err(|e| format!("{to}: {e}"))?;
            out.stdout_str().trim().to_string()
        }
    };
    let vars = inventory.host_vars(host);
    let become_password = super::become_password(&vars, &vars, templar, opts);
    if let Some(p) = &become_password {
        crate::vault::reveal(p);
    }
    Ok((conn, login, become_password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: serde_json::Value) -> Vars {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn gifts_merge_their_ansible_facts_and_are_taken_once() {
        let f = DelegatedFacts::default();
        assert!(f.of("db").is_none());
        f.give("db", &vars(json!({"ansible_facts": {"hostname": "db", "os": "debian"}, "ansible_hostname": "db"})));
        f.give("db", &vars(json!({"ansible_facts": {"os": "debian12"}, "given_by": "web"})));
        assert_eq!(f.of("db").unwrap(), vars(json!({"ansible_facts": {"hostname": "db", "os": "debian12"}, "ansible_hostname": "db", "given_by": "web"})));
        let (first, seen) = f.since("db", 0);
        assert_eq!((first.len(), seen), (2, 2));
        let (none, seen) = f.since("db", seen);
        assert_eq!((none.len(), seen), (0, 2));
        f.give("db", &vars(json!({"given_by": "api"})));
        let (next, seen) = f.since("db", seen);
        assert_eq!((next, seen), (vec![vars(json!({"given_by": "api"}))], 3));
        assert_eq!(f.since("web", 0), (vec![], 0));
    }
}
