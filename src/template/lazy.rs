//! Lazy variable resolution: the raw `Vars` of a host are exposed to minijinja as a map
//! object; a variable whose raw value contains templates is rendered (with the same vars)
//! the first time it is referenced during one top-level call, then cached for that call.
//!
//! The object borrows the caller's `&Vars` without cloning (hosts carry hundreds of vars,
//! `hostvars` all hosts' vars). minijinja objects must be `'static`, so the borrow is held
//! as a raw pointer that is only dereferenced while the owning [`Scope`] is alive on the
//! current thread (rendering is synchronous and never leaves the calling thread). An object
//! that escapes its scope, or is touched from another thread, sees no variables.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Environment, Error, ErrorKind, Value};
use serde_json::Value as Json;

use super::Vars;

/// Nested lazy resolutions allowed (each is a nested render on the stack).
const MAX_DEPTH: usize = 64;

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static ACTIVE_SCOPES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    /// The root context of each active scope that has one (see [`Scope::set_root`]).
    static ROOTS: RefCell<Vec<(u64, Value)>> = const { RefCell::new(Vec::new()) };
    /// Why a variable turned out undefined because its value reads an undefined name
    /// (`x: "{{ nope }}"`): name -> message, for the error when `x` is used without a
    /// `default` (cleared when the outermost render ends).
    static UNDEFINED_BECAUSE: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// The message for variable `name` if it is undefined because its value reads an undefined
/// name ("undefined variable 'nope' (while templating 'name')").
pub(crate) fn undefined_reason(name: &str) -> Option<String> {
    UNDEFINED_BECAUSE.with(|u| u.borrow().get(name).cloned())
}

/// The variables of the innermost render running on this thread, as its context: for
/// lookups that render a template file with the task's variables (`lookup('template')`).
pub(crate) fn current_root() -> Option<Value> {
    ROOTS.with(|r| r.borrow().last().map(|(_, v)| v.clone()))
}
static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);

fn scope_active(id: u64) -> bool {
    ACTIVE_SCOPES.with(|s| s.borrow().iter().rev().any(|x| *x == id))
}

/// Guard marking a borrow of `Vars` as valid on this thread.
pub(crate) struct Scope<'a> {
    id: u64,
    _vars: std::marker::PhantomData<&'a Vars>,
}

impl<'a> Scope<'a> {
    pub(crate) fn enter(_vars: &'a Vars) -> Scope<'a> {
        let id = NEXT_SCOPE.fetch_add(1, Ordering::Relaxed);
        ACTIVE_SCOPES.with(|s| s.borrow_mut().push(id));
        Scope {
            id,
            _vars: std::marker::PhantomData,
        }
    }

    /// Record `ctx` as this render's context until the scope ends ([`current_root`]).
    pub(crate) fn set_root(&self, ctx: &Value) {
        ROOTS.with(|r| r.borrow_mut().push((self.id, ctx.clone())));
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        let id = self.id;
        ROOTS.with(|r| r.borrow_mut().retain(|(s, _)| *s != id));
        let outermost = ACTIVE_SCOPES.with(|s| s.borrow().len() <= 1);
        if outermost {
            UNDEFINED_BECAUSE.with(|u| u.borrow_mut().clear());
        }
        ACTIVE_SCOPES.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(pos) = s.iter().rposition(|x| *x == id) {
                s.remove(pos);
            }
        });
    }
}

/// Renders raw values: implemented by the templar (see mod.rs).
pub(crate) type Env = Arc<Environment<'static>>;

pub(crate) struct VarsObject {
    scope: u64,
    map: *const Vars,
    env: Env,
    /// `hostvars` object inherited from the top-level vars (for per-host objects).
    hostvars: Mutex<Option<Value>>,
    /// The host's variables common to its tasks, consulted when a name is not in `map`
    /// (see `Templar::with_base`); none for another host's vars under `hostvars`.
    base: Option<Arc<Vars>>,
    /// Play-wide variables shared by every host (`hostvars`, `groups`...), consulted when a
    /// name is not in `map`: shared, never copied per task.
    globals: Option<Arc<Vars>>,
    /// What hosts registered or set in the running play, by host (see `Templar::with_live`):
    /// handed to `hostvars`.
    live: Option<LiveHostVars>,
    /// For another host's vars under `hostvars`: what it registered or set, winning over `map`.
    over: Option<Arc<Vars>>,
    cache: Mutex<HashMap<String, Value>>,
    resolving: Mutex<HashSet<String>>,
}

/// Per host, the variables it registered or set so far in the running play.
pub type LiveHostVars = Arc<HashMap<String, Arc<Vars>>>;

// SAFETY: `map` is only dereferenced after checking that scope `scope` is active on the
// *current* thread, which guarantees the borrowed `Vars` is alive (see module docs).
unsafe impl Send for VarsObject {}
unsafe impl Sync for VarsObject {}

impl fmt::Debug for VarsObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<vars>")
    }
}

impl VarsObject {
    pub(crate) fn new(scope: &Scope<'_>, map: &Vars, env: Env, base: Option<Arc<Vars>>, globals: Option<Arc<Vars>>, live: Option<LiveHostVars>) -> Arc<VarsObject> {
        Arc::new(VarsObject {
            scope: scope.id,
            map: map as *const Vars,
            env,
            hostvars: Mutex::new(None),
            base,
            globals,
            live,
            over: None,
            cache: Mutex::new(HashMap::new()),
            resolving: Mutex::new(HashSet::new()),
        })
    }

    fn raw(&self) -> Option<&Vars> {
        if scope_active(self.scope) {
            // SAFETY: see module docs and `unsafe impl Send`.
            Some(unsafe { &*self.map })
        } else {
            None
        }
    }

    fn lookup(self: &Arc<Self>, key: &str) -> Option<Value> {
        if let Some(v) = self.cache.lock().ok()?.get(key) {
            return Some(v.clone());
        }
        let raw_map = self.raw()?;
        let raw = match self.over.as_deref().and_then(|o| o.get(key)).or_else(|| raw_map.get(key)).or_else(|| self.base.as_deref()?.get(key)).or_else(|| self.globals.as_deref()?.get(key)) {
            Some(raw) => raw,
            None => {
                return match key {
                    "hostvars" => self.hostvars.lock().ok()?.clone(),
                    "vars" => Some(Value::from_dyn_object(self.clone())),
                    _ => None,
                }
            }
        };
        let value = if key == "hostvars" {
            match raw {
                Json::Object(hosts) => {
                    let obj = HostVarsObject {
                        scope: self.scope,
                        map: hosts as *const serde_json::Map<String, Json>,
                        env: self.env.clone(),
                        globals: self.globals.clone(),
                        live: self.live.clone(),
                        hosts: Mutex::new(HashMap::new()),
                    };
                    Value::from_object(obj)
                }
                other => Value::from(minijinja::value::Serde(other)),
            }
        } else if !contains_template(raw) {
            Value::from(minijinja::value::Serde(raw))
        } else {
            {
                let mut resolving = self.resolving.lock().ok()?;
                if resolving.contains(key) {
                    return Some(Value::from(Error::new(
                        ErrorKind::InvalidOperation,
                        format!("recursive loop detected in template: variable '{key}' refers to itself"),
                    )));
                }
                resolving.insert(key.to_string());
            }
            let ctx = Value::from_dyn_object(self.clone());
            let depth = DEPTH.with(|d| {
                d.set(d.get() + 1);
                d.get()
            });
            let result = if depth > MAX_DEPTH {
                Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("variables nested too deep (more than {MAX_DEPTH} levels)"),
                ))
            } else {
                super::render_raw(&self.env, raw, &ctx)
            };
            DEPTH.with(|d| d.set(d.get() - 1));
            if let Ok(mut r) = self.resolving.lock() {
                r.remove(key);
            }
            match result {
                Ok(v) => v,
                Err(err) => {
                    let inner = match raw {
                        Json::String(src) => super::describe_undefined(&err, &self.env, src, &ctx, super::Source::Text),
                        _ => super::describe_error(&err, None),
                    };
                    const MARK: &str = " (while templating ";
                    let detail = match inner.rfind(MARK) {
                        Some(i) if inner.ends_with(')') => format!(
                            "{}{MARK}'{key}' → {}",
                            &inner[..i],
                            &inner[i + MARK.len()..]
                        ),
                        _ => format!("{inner}{MARK}'{key}')"),
                    };
                    if err.kind() == ErrorKind::UndefinedError {
                        // Undefined, as in Ansible (`x | default(...)`, `x is defined`); the
                        // reason is kept for the error if `x` is used as it is.
                        UNDEFINED_BECAUSE.with(|u| u.borrow_mut().insert(key.to_string(), detail));
                        Value::UNDEFINED
                    } else {
                        Value::from(Error::new(err.kind(), detail))
                    }
                }
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key.to_string(), value.clone());
        }
        Some(value)
    }
}

impl Object for VarsObject {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.lookup(key.as_str()?)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.raw() {
            Some(m) => {
                let mut keys: Vec<Value> = m.keys().map(|k| Value::from(k.as_str())).collect();
                if let Some(over) = &self.over {
                    keys.extend(over.keys().filter(|k| !m.contains_key(*k)).map(|k| Value::from(k.as_str())));
                }
                if let Some(base) = &self.base {
                    keys.extend(base.keys().filter(|k| !m.contains_key(*k)).map(|k| Value::from(k.as_str())));
                }
                Enumerator::Values(keys)
            }
            None => Enumerator::Empty,
        }
    }
}

/// `hostvars`: host name -> that host's (raw) vars, each resolved lazily in its own context.
struct HostVarsObject {
    scope: u64,
    map: *const serde_json::Map<String, Json>,
    env: Env,
    /// Keeps shared globals (which `map` may point into) alive.
    globals: Option<Arc<Vars>>,
    live: Option<LiveHostVars>,
    hosts: Mutex<HashMap<String, Value>>,
}

// SAFETY: as for VarsObject.
unsafe impl Send for HostVarsObject {}
unsafe impl Sync for HostVarsObject {}

impl fmt::Debug for HostVarsObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hostvars>")
    }
}

impl HostVarsObject {
    fn raw(&self) -> Option<&serde_json::Map<String, Json>> {
        if scope_active(self.scope) {
            // SAFETY: see module docs.
            Some(unsafe { &*self.map })
        } else {
            None
        }
    }
}

impl Object for HostVarsObject {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let host = key.as_str()?;
        if let Some(v) = self.hosts.lock().ok()?.get(host) {
            return Some(v.clone());
        }
        let raw = self.raw()?.get(host)?;
        let value = match raw {
            Json::Object(m) => {
                let obj = Arc::new(VarsObject {
                    scope: self.scope,
                    map: m as *const Vars,
                    env: self.env.clone(),
                    hostvars: Mutex::new(Some(Value::from_dyn_object(self.clone()))),
                    base: None,
                    globals: self.globals.clone(),
                    live: self.live.clone(),
                    over: self.live.as_ref().and_then(|l| l.get(host).cloned()),
                    cache: Mutex::new(HashMap::new()),
                    resolving: Mutex::new(HashSet::new()),
                });
                Value::from_dyn_object(obj)
            }
            other => Value::from(minijinja::value::Serde(other)),
        };
        if let Ok(mut h) = self.hosts.lock() {
            h.insert(host.to_string(), value.clone());
        }
        Some(value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.raw() {
            Some(m) => Enumerator::Values(m.keys().map(|k| Value::from(k.as_str())).collect()),
            None => Enumerator::Empty,
        }
    }
}

/// Does a raw value contain template syntax anywhere (strings, keys, nested)?
pub(crate) fn contains_template(v: &Json) -> bool {
    match v {
        Json::String(s) => super::Templar::is_template(s),
        Json::Array(a) => a.iter().any(contains_template),
        Json::Object(m) => m
            .iter()
            .any(|(k, v)| super::Templar::is_template(k) || contains_template(v)),
        _ => false,
    }
}
