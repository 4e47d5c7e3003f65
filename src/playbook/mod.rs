//! Playbooks and roles: YAML -> typed plays and task specs (not yet templated).
//!
//! Roles follow Ansible's layout `roles/NAME/{tasks,handlers,defaults,vars,meta}/main.yml`;
//! `meta/main.yml` dependencies are loaded first (once per play unless parameters differ).
//! `block`, `import_tasks` and `include_tasks` are flattened statically, their keywords
//! (`when`, `tags`, `become`, `vars`...) inherited by the tasks inside.

use crate::modules;
use crate::template::Vars;
use crate::yaml::{self, Location, Node, NodeValue, YamlError};
use indexmap::IndexMap;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{location}: {message}")]
    At { location: Location, message: String },
    #[error("{0}")]
    Other(String),
}

fn err_at(file: &Arc<PathBuf>, node: &Node, message: impl Into<String>) -> PlaybookError {
    PlaybookError::At { location: node.location(file), message: message.into() }
}

/// A role as loaded for one play.
#[derive(Debug)]
pub struct Role {
    pub name: String,
    pub path: PathBuf,
    pub defaults: Vars,
    pub vars: Vars,
    /// `roles: - {role: x, param: ...}` parameters (highest role precedence).
    pub params: Vars,
}

#[derive(Debug, Clone, Default)]
pub struct LoopControl {
    pub loop_var: Option<String>,
    pub index_var: Option<String>,
    pub label: Option<String>,
    pub extended: bool,
    /// `with_items`: the rendered list is flattened one level, and a lone value is one item.
    pub flatten: bool,
    /// `with_<plugin>:` (`with_sequence`, `with_nested`, `with_first_found`...): the items are
    /// the lookup plugin's answer for the rendered value (see `Templar::query_loop`).
    pub lookup: Option<String>,
}

/// One task (or handler) with everything needed to run it, keywords inherited from blocks,
/// includes and roles already applied.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: Option<String>,
    /// Module name as written (`ansible.builtin.file`).
    pub module: String,
    /// Args: a mapping, or a free-form string (`command: ls -l`).
    pub args: Value,
    /// All conditions, ANDed (inherited ones first).
    pub when: Vec<Value>,
    pub loop_items: Option<Value>,
    pub loop_control: LoopControl,
    pub register: Option<String>,
    pub notify: Vec<String>,
    pub listen: Vec<String>,
    pub r#become: Option<bool>,
    pub become_user: Option<String>,
    /// `remote_user` of the task, or of its block, include or role (the play's is on the
    /// play): who the task logs in as, unless the host's `ansible_user` says otherwise.
    pub remote_user: Option<String>,
    pub tags: Vec<String>,
    /// Block and task vars (block first, task wins).
    pub vars: Vars,
    pub changed_when: Option<Vec<Value>>,
    pub failed_when: Option<Vec<Value>>,
    pub ignore_errors: bool,
    /// `ignore_unreachable`: a host this task can't reach goes on with the next task.
    pub ignore_unreachable: bool,
    /// `delegate_facts`: the facts the task sets go to the host it is delegated to.
    pub delegate_facts: bool,
    pub no_log: bool,
    pub check_mode: Option<bool>,
    /// The `when` of each `include_tasks` around the task (outermost first): evaluated once
    /// per host, when the first of the included tasks comes, as Ansible evaluates it at the
    /// include, so a task of the file changing what it reads doesn't skip the rest.
    pub gates: Vec<Gate>,
    /// `diff` (task, block, include, role or play): `false` hides the task's diffs even with
    /// `--diff`, `true` shows them without it.
    pub diff: Option<bool>,
    pub run_once: bool,
    /// `delegate_to` (`local_action` is `delegate_to: localhost`): where the task runs
    /// instead of its host (as written; rendered when the task runs): the controller or
    /// another host over SSH.
    pub delegate_to: Option<String>,
    /// `async`: the seconds the task's actions may take (as written). With a `poll` other
    /// than 0 they run in the foreground, as the task waits for them anyway; past the limit
    /// they are stopped and the task fails, as Ansible's async job would.
    pub async_limit: Option<Value>,
    /// `poll: 0` with `async`: the task starts its job on the host and goes on; the job's
    /// result is read later with `async_status` (command and shell tasks).
    pub background: bool,
    /// `until` / `retries` / `delay`: run again until the conditions hold (or, with `retries`
    /// alone, until it doesn't fail), as Ansible does.
    pub retry: Option<Retry>,
    /// `environment` layers (play, role, blocks, task; outermost first, inner names win), as
    /// written: templates rendered per task.
    pub environment: Vec<Value>,
    /// The blocks with `rescue`/`always` sections around the task, outermost first.
    pub blocks: Vec<BlockPart>,
    /// A failure of this task ends the run after the current play (`any_errors_fatal`, from
    /// the task, its blocks or the play).
    pub any_errors_fatal: bool,
    pub role: Option<Arc<Role>>,
    pub location: Location,
    /// A `meta: flush_handlers` the play adds itself (after `pre_tasks`, and after the roles
    /// and tasks when `post_tasks` follow, as Ansible's play does): not listed, not chosen
    /// by name, and not left out by tags or `--roles`.
    pub implicit: bool,
}

/// The arguments `module_defaults` layers (outermost first) give `module`: entries naming
/// it bare or qualified (`file`, `ansible.builtin.file`), inner layers winning. Action groups
/// (`group/...`) name no module here.
fn module_defaults_for(module: &str, layers: &[Value]) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    let Some(target) = modules::lookup(module).map(|m| m.name()) else { return out };
    let mut apply = |layer: &Value| {
        if let Value::Object(by_module) = layer {
            for (k, v) in by_module {
                if modules::lookup(k).is_some_and(|m| m.name() == target) {
                    if let Value::Object(args) = v {
                        out.extend(args.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
            }
        }
    };
    for layer in layers {
        match layer {
            // The older form: a list of mappings.
            Value::Array(items) => items.iter().for_each(&mut apply),
            other => apply(other),
        }
    }
    out
}

/// `key=value key2='a b' key3={{ x | default('y z') }}` as Ansible's `split_args` reads it:
/// words split at spaces outside quotes and Jinja blocks; a value wholly in quotes loses them.
pub fn split_key_values(raw: &str) -> Result<serde_json::Map<String, Value>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut quote, mut depth) = (None::<char>, 0usize);
    let chars: Vec<char> = raw.trim().chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match (quote, c) {
            (Some(q), _) if c == q && depth == 0 => quote = None,
            (None, '\'' | '"') if depth == 0 => quote = Some(c),
            (_, '{') if matches!(next, Some('{' | '%' | '#')) => {
                depth += 1;
                cur.push(c);
                cur.push(next.unwrap_or_default());
                i += 2;
                continue;
            }
            (_, '}' | '%' | '#') if depth > 0 && next == Some('}') => {
                depth -= 1;
                cur.push(c);
                cur.push('}');
                i += 2;
                continue;
            }
            (None, w) if w.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        cur.push(c);
        i += 1;
    }
    if quote.is_some() || depth > 0 {
        return Err(format!("unbalanced quotes or Jinja braces in '{raw}'"));
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out = serde_json::Map::new();
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(|| format!("takes key=value arguments, got '{w}'"))?;
        let v = match (v.chars().next(), v.chars().last()) {
            (Some(a @ ('\'' | '"')), Some(b)) if a == b && v.len() >= 2 => &v[1..v.len() - 1],
            _ => v,
        };
        out.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(out)
}

/// The conditions of one `include_tasks` (see [`Task::gates`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Unique in the play.
    pub id: usize,
    pub when: Vec<Value>,
}

/// Where a task stands in a block that has `rescue` or `always` tasks (the play's tasks are
/// flattened: offsets count from the block's first task).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockPart {
    /// The block (unique in the playbook).
    pub id: usize,
    pub section: Section,
    /// This task's offset in the block.
    pub offset: usize,
    /// Offsets of the first `rescue` and `always` tasks, if any.
    pub rescue: Option<usize>,
    pub always: Option<usize>,
    /// Tasks in the block, all sections.
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Body,
    Rescue,
    Always,
}

/// A task's `until` conditions, and `retries` / `delay` as written (templates allowed).
#[derive(Debug, Clone)]
pub struct Retry {
    pub until: Option<Vec<Value>>,
    pub retries: Option<Value>,
    pub delay: Option<Value>,
}

impl Task {
    /// The `meta: flush_handlers` a play runs between its sections.
    fn implicit_flush(location: Location) -> Task {
        Task {
            name: None,
            module: "meta".into(),
            args: Value::String("flush_handlers".into()),
            when: Vec::new(),
            loop_items: None,
            loop_control: LoopControl::default(),
            register: None,
            notify: Vec::new(),
            listen: Vec::new(),
            r#become: None,
            become_user: None,
            remote_user: None,
            tags: vec!["always".into()],
            vars: Vars::new(),
            changed_when: None,
            failed_when: None,
            ignore_errors: false,
            ignore_unreachable: false,
            delegate_facts: false,
            no_log: false,
            check_mode: None,
            diff: None,
            gates: Vec::new(),
            run_once: false,
            delegate_to: None,
            async_limit: None,
            background: false,
            retry: None,
            any_errors_fatal: false,
            environment: Vec::new(),
            blocks: Vec::new(),
            role: None,
            location,
            implicit: true,
        }
    }

    /// Is the task in a block's `rescue` section (it runs only after a failure)?
    pub fn in_rescue(&self) -> bool {
        self.blocks.iter().any(|p| p.section == Section::Rescue)
    }

    /// Does this handler run for a `notify` of `name` (its name, `role : name`, or a `listen`
    /// topic)?
    pub fn answers(&self, name: &str) -> bool {
        self.name.as_deref() == Some(name) || self.display_name() == name || self.listen.iter().any(|l| l == name)
    }

    /// `role : name` as Ansible shows it.
    pub fn display_name(&self) -> String {
        let base = self.name.clone().unwrap_or_else(|| self.module.clone());
        match &self.role {
            Some(r) => format!("{} : {}", r.name, base),
            None => base,
        }
    }
}

/// `--start-at-task PATTERN`: the first task, in play order, among those `selects` keeps,
/// whose name or `role : name` is the pattern or matches it as a shell glob (Ansible's
/// fnmatch), as (play, task) indexes.
pub fn find_start(pb: &Playbook, pattern: &str, selects: impl Fn(&Task) -> bool) -> Option<(usize, usize)> {
    let glob = globset::Glob::new(pattern).ok().map(|g| g.compile_matcher());
    let matches = |s: &str| s == pattern || glob.as_ref().is_some_and(|g| g.is_match(s));
    pb.plays.iter().enumerate().find_map(|(p, play)| {
        play.tasks.iter().position(|t| !t.implicit && selects(t) && (t.name.as_deref().is_some_and(matches) || matches(&t.display_name()))).map(|t| (p, t))
    })
}

#[derive(Debug)]
pub struct Play {
    pub name: String,
    pub hosts: String,
    pub vars: Vars,
    pub gather_facts: bool,
    pub r#become: Option<bool>,
    pub become_user: Option<String>,
    pub remote_user: Option<String>,
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    pub roles: Vec<Arc<Role>>,
    pub tags: Vec<String>,
    /// `any_errors_fatal` on the play (tasks carry their own, inherited from it).
    pub any_errors_fatal: bool,
    /// `max_fail_percentage`: the run ends when more than this share of a batch's hosts failed.
    pub max_fail_percentage: Option<f64>,
    /// `serial`: batch sizes as written (numbers, `"30%"`, templates), empty for one batch.
    pub serial: Vec<Value>,
    /// `order`: the order hosts are taken in (`inventory`, `reverse_inventory`, `sorted`,
    /// `reverse_sorted`, `shuffle`).
    pub order: HostOrder,
    /// When some `vars_files` name has a template: every entry in order, to be read again
    /// per host over `vars` (empty otherwise: `vars` has them all).
    pub vars_files: Vec<VarsFile>,
    /// `vars_prompt`: values asked for before the run (see `provision::prompt`).
    pub vars_prompt: Vec<Prompt>,
    pub location: Location,
}

/// One `vars_prompt` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub name: String,
    /// The question (the name when not given).
    pub prompt: String,
    pub default: Option<String>,
    /// The answer isn't echoed (Ansible's default: true).
    pub private: bool,
    /// Asked twice; the answers must match.
    pub confirm: bool,
    /// `encrypt: sha512_crypt`: the answer is stored hashed (`password_hash`).
    pub encrypt: Option<String>,
    pub salt: Option<String>,
    pub location: Location,
}

/// A `vars_files` entry (see [`Play::vars_files`]).
#[derive(Debug, Clone)]
pub enum VarsFile {
    Loaded(Vars),
    /// Names to render with the host's variables; the first that exists is read.
    PerHost { candidates: Vec<String>, location: Location },
}

/// A play's `order` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostOrder {
    #[default]
    Inventory,
    ReverseInventory,
    Sorted,
    ReverseSorted,
    Shuffle,
}

impl HostOrder {
    /// `hosts` (in inventory order) in this order.
    pub fn apply(self, hosts: &mut [String]) {
        match self {
            HostOrder::Inventory => {}
            HostOrder::ReverseInventory => hosts.reverse(),
            HostOrder::Sorted => hosts.sort(),
            HostOrder::ReverseSorted => {
                hosts.sort();
                hosts.reverse();
            }
            HostOrder::Shuffle => {
                use rand::seq::SliceRandom;
                hosts.shuffle(&mut rand::rng());
            }
        }
    }
}

#[derive(Debug)]
pub struct Playbook {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub plays: Vec<Play>,
}

/// Keywords a task may carry besides its module.
const TASK_KEYWORDS: &[&str] = &[
    "name", "when", "loop", "with_items", "with_list", "with_dict", "loop_control", "register", "notify", "listen",
    "become", "become_user", "become_method", "tags", "vars", "args", "changed_when", "failed_when", "ignore_errors", "no_log",
    "check_mode", "diff", "environment", "delegate_to", "run_once", "retries", "delay", "until", "any_errors_fatal", "throttle",
    "timeout", "remote_user", "debugger", "collections", "module_defaults", "async", "poll", "delegate_facts", "ignore_unreachable",
];

/// Keywords accepted but not implemented: loading warns once instead of failing.
const IGNORED_KEYWORDS: &[&str] = &["become_method", "debugger", "collections", "throttle", "timeout"];


const BLOCK_KEYWORDS: &[&str] =
    &["block", "rescue", "always", "name", "when", "tags", "become", "become_user", "remote_user", "vars", "ignore_errors", "no_log", "check_mode", "diff", "module_defaults", "become_method", "any_errors_fatal", "environment", "ignore_unreachable"];

/// Keywords an `include_tasks`/`import_tasks` or `include_role`/`import_role` takes besides
/// its own (includes are static here).
const INCLUDE_KEYWORDS: &[&str] = &["name", "when", "tags", "become", "become_user", "remote_user", "vars", "no_log", "ignore_errors", "ignore_unreachable", "check_mode", "diff", "module_defaults"];

/// Inherited keywords passed down from blocks, includes and roles.
#[derive(Debug, Clone, Default)]
struct Inherit {
    when: Vec<Value>,
    tags: Vec<String>,
    r#become: Option<bool>,
    become_user: Option<String>,
    remote_user: Option<String>,
    vars: Vars,
    ignore_errors: Option<bool>,
    ignore_unreachable: Option<bool>,
    no_log: Option<bool>,
    check_mode: Option<bool>,
    /// `diff`: this task's diffs shown (`true`, even without `--diff`) or not (`false`).
    diff: Option<bool>,
    any_errors_fatal: Option<bool>,
    gates: Vec<Gate>,
    /// `module_defaults` of the play, roles, blocks and includes around the task, outermost
    /// first.
    module_defaults: Vec<Value>,
    /// `environment` of the play, roles, blocks and includes around the task, outermost first.
    environment: Vec<Value>,
    role: Option<Arc<Role>>,
}

/// Which files of a role an entry loads (`include_role`'s `tasks_from` and the like), and
/// what else tells it from another entry of the same role.
#[derive(Default)]
struct RoleFrom {
    tasks: Option<String>,
    vars: Option<String>,
    defaults: Option<String>,
    handlers: Option<String>,
    /// Loaded by `include_role`/`import_role` rather than listed in `roles:`.
    include: bool,
    /// The entry's own `when`, `tags` (and an include's `vars`).
    own: Value,
}

struct Loader<'a> {
    playbook_dir: &'a Path,
    /// Roles already loaded in the current play (name + params), to run dependencies once.
    loaded_roles: Vec<(String, Value)>,
    roles: Vec<Arc<Role>>,
    /// Handlers of roles that tasks import or include (`import_role`, `include_role`): the
    /// play's handlers too, after its own.
    included_handlers: Vec<Task>,
    /// Blocks loaded so far (each gets its own id).
    blocks: usize,
}

pub fn load(path: &Path) -> Result<Playbook, PlaybookError> {
    let (file, _src, root) = yaml::load_file(path)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    let seq = root.as_seq().ok_or_else(|| err_at(&file, &root, format!("a playbook is a list of plays, found a {}", root.kind())))?;
    let mut plays = Vec::new();
    for play_node in seq {
        if let Some(m) = play_node.as_map() {
            if let Some(imp) = m.get("import_playbook").or_else(|| m.get("ansible.builtin.import_playbook")) {
                let name = imp.as_str().ok_or_else(|| err_at(&file, imp, "import_playbook needs a file name"))?;
                let sub = load(&dir.join(name))?;
                plays.extend(sub.plays);
                continue;
            }
        }
        let mut loader = Loader { playbook_dir: &dir, loaded_roles: Vec::new(), roles: Vec::new(), included_handlers: Vec::new(), blocks: 0 };
        plays.push(loader.play(&file, play_node)?);
    }
    Ok(Playbook { path: path.to_path_buf(), dir, plays })
}

/// Error pointing at a mapping key (`fiel:`), found on the value's line when possible.
fn err_at_key(file: &Arc<PathBuf>, key: &str, value: &Node, message: impl Into<String>) -> PlaybookError {
    let mut location = value.location(file);
    if let Ok(text) = std::fs::read_to_string(file.as_path()) {
        if let Some((line, column)) = key_position(&text, key, value.line, value.column) {
            location.line = line;
            location.column = column;
        }
    }
    PlaybookError::At { location, message: message.into() }
}


/// The module or task keyword `word` is most likely a misspelling of, if one is close.
fn closest_name(word: &str) -> Option<String> {
    let (prefix, bare) = word.rsplit_once('.').map_or(("", word), |(p, b)| (p, b));
    modules::names()
        .into_iter()
        .map(|n| n.to_string())
        .chain(TASK_KEYWORDS.iter().map(|k| k.to_string()))
        .map(|n| (strsim::jaro_winkler(bare, &n), n))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| if prefix.is_empty() { n } else { format!("{prefix}.{n}") })
}

/// Where `key:` is written, for the value at `line`:`column` (1-based; the parser keeps no
/// position for keys): left of the value on its line (`key: value`, `{key: v}`), else on the
/// closest line above (a block value starts on the next line, maybe after comments).
fn key_position(text: &str, key: &str, line: u32, column: u32) -> Option<(u32, u32)> {
    let lines: Vec<&str> = text.lines().collect();
    let pattern = format!("{key}:");
    let at_key = |l: &str| {
        l.match_indices(&pattern)
            .filter(|(i, _)| l[..*i].chars().next_back().is_none_or(|c| c.is_whitespace() || matches!(c, '-' | '{' | ',' | '"' | '\'')))
            .last()
            .map(|(i, _)| l[..i].chars().count() as u32 + 1)
    };
    let first = line.checked_sub(1)? as usize;
    if let Some(l) = lines.get(first) {
        let upto: String = l.chars().take(column.saturating_sub(1) as usize).collect();
        if let Some(c) = at_key(&upto) {
            return Some((line, c));
        }
    }
    (first.saturating_sub(50)..first).rev().find_map(|i| at_key(lines.get(i)?).map(|c| (i as u32 + 1, c)))
}

fn str_list(file: &Arc<PathBuf>, node: &Node, what: &str) -> Result<Vec<String>, PlaybookError> {
    match &node.value {
        NodeValue::Str(s) => Ok(s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()),
        NodeValue::Seq(items) => items
            .iter()
            .map(|i| match &i.value {
                NodeValue::Str(s) => Ok(s.clone()),
                NodeValue::Int(n) => Ok(n.to_string()),
                _ => Err(err_at(file, i, format!("{what}: expected a string"))),
            })
            .collect(),
        NodeValue::Null => Ok(vec![]),
        NodeValue::Int(n) => Ok(vec![n.to_string()]),
        _ => Err(err_at(file, node, format!("{what}: expected a string or a list of strings"))),
    }
}

fn bool_of(file: &Arc<PathBuf>, node: &Node, what: &str) -> Result<bool, PlaybookError> {
    match &node.value {
        NodeValue::Bool(b) => Ok(*b),
        NodeValue::Str(_) | NodeValue::Int(_) => modules::args::truthy(&node.to_json())
            .ok_or_else(|| err_at(file, node, format!("{what}: expected a boolean, got '{}'", node.to_json()))),
        _ => Err(err_at(file, node, format!("{what}: expected a boolean"))),
    }
}

/// A percentage between 0 and 100: `30`, `12.5`, `"30"` or `"30%"`.
fn percentage(file: &Arc<PathBuf>, node: &Node, what: &str) -> Result<f64, PlaybookError> {
    let n = match node.to_json() {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse().ok(),
        _ => None,
    };
    n.filter(|p| (0.0..=100.0).contains(p)).ok_or_else(|| err_at(file, node, format!("{what}: expected a percentage between 0 and 100, got {}", node.to_json())))
}

fn vars_of(file: &Arc<PathBuf>, node: &Node, what: &str) -> Result<Vars, PlaybookError> {
    match node.to_json() {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Vars::new()),
        // A list of single-key maps is accepted by Ansible for vars.
        Value::Array(items) if items.iter().all(Value::is_object) => {
            Ok(items.into_iter().flat_map(|i| if let Value::Object(m) = i { m.into_iter().collect::<Vec<_>>() } else { vec![] }).collect())
        }
        _ => Err(err_at(file, node, format!("{what} must be a mapping"))),
    }
}

fn conditions(node: &Node) -> Vec<Value> {
    match node.to_json() {
        Value::Array(a) => a,
        Value::Null => vec![],
        v => vec![v],
    }
}

/// Load a YAML vars file (role defaults/vars, vars_files).
pub(crate) fn load_vars_file(path: &Path) -> Result<Vars, PlaybookError> {
    let (file, _, node) = yaml::load_file(path)?;
    vars_of(&file, &node, "a vars file")
}

fn find_main(dir: &Path) -> Option<PathBuf> {
    ["main.yml", "main.yaml", "main"].iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

impl Loader<'_> {
    fn play(&mut self, file: &Arc<PathBuf>, node: &Node) -> Result<Play, PlaybookError> {
        let m = node.as_map().ok_or_else(|| err_at(file, node, "a play must be a mapping"))?;
        const PLAY_KEYS: &[&str] = &[
            "name", "hosts", "vars", "vars_files", "roles", "tasks", "pre_tasks", "post_tasks", "handlers", "become", "become_user",
            "gather_facts", "tags", "remote_user", "serial", "strategy", "any_errors_fatal", "max_fail_percentage", "become_method",
            "collections", "environment", "force_handlers", "ignore_errors", "no_log", "check_mode", "order", "module_defaults",
            "ignore_unreachable", "diff", "vars_prompt",
        ];
        for (k, v) in m {
            if !PLAY_KEYS.contains(&k.as_str()) {
                return Err(err_at(file, v, format!("unknown play keyword '{k}'; valid keywords: {}", PLAY_KEYS.join(", "))));
            }
        }
        let hosts_node = m.get("hosts").ok_or_else(|| err_at(file, node, "a play needs 'hosts'"))?;
        let hosts = match hosts_node.to_json() {
            Value::String(s) => s,
            Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect::<Vec<_>>().join(":"),
            other => return Err(err_at(file, hosts_node, format!("hosts must be a pattern string, got {other}"))),
        };
        let name = m.get("name").and_then(|n| n.as_str()).map(str::to_string).unwrap_or_else(|| hosts.clone());
        let mut vars = match m.get("vars") {
            Some(v) => vars_of(file, v, "play vars")?,
            None => Vars::new(),
        };
        let mut vars_files = Vec::new();
        if let Some(vf) = m.get("vars_files") {
            let entries: Vec<&Node> = match &vf.value {
                NodeValue::Seq(items) => items.iter().collect(),
                NodeValue::Null => vec![],
                _ => vec![vf],
            };
            for entry in entries {
                // A file name, or a list of them of which the first found is read; a name
                // with a template is read per host, with the host's variables.
                let candidates = match entry.to_json() {
                    Value::String(f) => vec![f],
                    Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| err_at(file, entry, "vars_files: a list entry must list file names"))).collect::<Result<_, _>>()?,
                    _ => return Err(err_at(file, entry, "vars_files: expected a file name or a list of them")),
                };
                if candidates.iter().any(|c| crate::template::Templar::is_template(c)) {
                    vars_files.push(VarsFile::PerHost { candidates, location: entry.location(file) });
                    continue;
                }
                let found = candidates.iter().map(|f| self.playbook_dir.join(f)).find(|p| p.is_file() || candidates.len() == 1);
                let Some(p) = found else {
                    return Err(err_at(file, entry, format!("vars_files: none of {} found", candidates.join(", "))));
                };
                let loaded = load_vars_file(&p).map_err(|e| match e {
                    PlaybookError::Yaml(y) => PlaybookError::Yaml(y),
                    other => err_at(file, entry, format!("vars_files {}: {other}", p.display())),
                })?;
                vars.extend(loaded.clone());
                vars_files.push(VarsFile::Loaded(loaded));
            }
            if !vars_files.iter().any(|v| matches!(v, VarsFile::PerHost { .. })) {
                vars_files.clear();
            }
        }
        let mut vars_prompt = Vec::new();
        if let Some(vp) = m.get("vars_prompt") {
            let items = vp.as_seq().ok_or_else(|| err_at(file, vp, "vars_prompt must be a list"))?;
            for item in items {
                let pm = item.as_map().ok_or_else(|| err_at(file, item, "a vars_prompt entry must be a mapping with 'name'"))?;
                let text = |k: &str| -> Result<Option<String>, PlaybookError> {
                    pm.get(k).map(|v| match v.to_json() {
                        Value::String(s) => Ok(s),
                        Value::Number(n) => Ok(n.to_string()),
                        Value::Bool(b) => Ok(b.to_string()),
                        _ => Err(err_at(file, v, format!("vars_prompt: {k} must be text"))),
                    }).transpose()
                };
                for (k, v) in pm {
                    if !["name", "prompt", "default", "private", "confirm", "encrypt", "salt", "salt_size", "unsafe"].contains(&k.as_str()) {
                        return Err(err_at(file, v, format!("vars_prompt: unknown key '{k}'; valid: name, prompt, default, private, confirm, encrypt, salt, salt_size, unsafe")));
                    }
                }
                let name = text("name")?.ok_or_else(|| err_at(file, item, "a vars_prompt entry needs 'name'"))?;
                let flag = |k: &str, default: bool| pm.get(k).map(|b| bool_of(file, b, k)).transpose().map(|b| b.unwrap_or(default));
                vars_prompt.push(Prompt {
                    prompt: text("prompt")?.unwrap_or_else(|| name.clone()),
                    name,
                    default: text("default")?,
                    private: flag("private", true)?,
                    confirm: flag("confirm", false)?,
                    encrypt: text("encrypt")?,
                    salt: text("salt")?,
                    location: item.location(file),
                });
            }
        }
        let r#become = m.get("become").map(|b| bool_of(file, b, "become")).transpose()?;
        let become_user = m.get("become_user").and_then(|n| n.as_str()).map(str::to_string);
        let gather_facts = m.get("gather_facts").map(|b| bool_of(file, b, "gather_facts")).transpose()?.unwrap_or(true);
        let tags = m.get("tags").map(|t| str_list(file, t, "tags")).transpose()?.unwrap_or_default();
        let remote_user = m.get("remote_user").and_then(|n| n.as_str()).map(str::to_string);
        let base = Inherit {
            tags: tags.clone(),
            ignore_errors: m.get("ignore_errors").map(|b| bool_of(file, b, "ignore_errors")).transpose()?,
            ignore_unreachable: m.get("ignore_unreachable").map(|b| bool_of(file, b, "ignore_unreachable")).transpose()?,
            no_log: m.get("no_log").map(|b| bool_of(file, b, "no_log")).transpose()?,
            check_mode: m.get("check_mode").map(|b| bool_of(file, b, "check_mode")).transpose()?,
            diff: m.get("diff").map(|b| bool_of(file, b, "diff")).transpose()?,
            module_defaults: m.get("module_defaults").map(Node::to_json).into_iter().collect(),
            any_errors_fatal: m.get("any_errors_fatal").map(|b| bool_of(file, b, "any_errors_fatal")).transpose()?,
            environment: m.get("environment").map(Node::to_json).into_iter().collect(),
            ..Default::default()
        };
        let max_fail_percentage = match m.get("max_fail_percentage") {
            None => None,
            Some(n) => Some(percentage(file, n, "max_fail_percentage")?),
        };
        let order = match m.get("order") {
            None => HostOrder::Inventory,
            Some(o) => match o.as_str() {
                Some("inventory") => HostOrder::Inventory,
                Some("reverse_inventory") => HostOrder::ReverseInventory,
                Some("sorted") => HostOrder::Sorted,
                Some("reverse_sorted") => HostOrder::ReverseSorted,
                Some("shuffle") => HostOrder::Shuffle,
                _ => return Err(err_at(file, o, "order must be one of inventory, reverse_inventory, sorted, reverse_sorted, shuffle")),
            },
        };
        let serial = match m.get("serial").map(Node::to_json) {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a,
            Some(v) => vec![v],
        };

        let mut tasks = Vec::new();
        let mut handlers = Vec::new();
        // Handlers notified by a section run when it ends (the last one's at the play's end).
        let flush = |tasks: &mut Vec<Task>| {
            if !tasks.is_empty() {
                tasks.push(Task::implicit_flush(node.location(file)));
            }
        };
        let later = |keys: &[&str]| keys.iter().any(|k| m.get(*k).is_some_and(|n| !matches!(n.value, NodeValue::Null)));
        if let Some(t) = m.get("pre_tasks") {
            self.task_list(file, t, &base, &mut tasks)?;
            if later(&["roles", "tasks", "post_tasks"]) {
                flush(&mut tasks);
            }
        }
        if let Some(r) = m.get("roles") {
            let seq = r.as_seq().ok_or_else(|| err_at(file, r, "roles must be a list"))?;
            for role_node in seq {
                self.role_entry(file, role_node, &base, &mut tasks, &mut handlers)?;
            }
        }
        if let Some(t) = m.get("tasks") {
            self.task_list(file, t, &base, &mut tasks)?;
        }
        if later(&["post_tasks"]) && (later(&["roles", "tasks"])) {
            flush(&mut tasks);
        }
        if let Some(t) = m.get("post_tasks") {
            self.task_list(file, t, &base, &mut tasks)?;
        }
        if let Some(h) = m.get("handlers") {
            self.task_list(file, h, &base, &mut handlers)?;
        }
        handlers.append(&mut self.included_handlers);
        // A handler name written out that no handler of the play has or listens to is a
        // typo that would leave a service unrestarted: an error before anything runs (Ansible
        // stops the run when such a task notifies). Templated names are checked when used.
        for t in tasks.iter().chain(&handlers) {
            for n in t.notify.iter().filter(|n| !crate::template::Templar::is_template(n)) {
                if !handlers.iter().any(|h| h.answers(n)) {
                    let known: Vec<String> = handlers.iter().map(Task::display_name).collect();
                    let known = if known.is_empty() { "the play has none".to_string() } else { format!("the play's handlers: {}", known.join(", ")) };
                    return Err(PlaybookError::At { location: t.location.clone(), message: format!("notify: no handler is named or listens to '{n}' ({known})") });
                }
            }
        }
        Ok(Play {
            name,
            hosts,
            vars,
            gather_facts,
            r#become,
            become_user,
            remote_user,
            tasks,
            handlers,
            roles: std::mem::take(&mut self.roles),
            tags,
            any_errors_fatal: base.any_errors_fatal.unwrap_or(false),
            max_fail_percentage,
            serial,
            order,
            vars_files,
            vars_prompt,
            location: node.location(file),
        })
    }

    /// `- rolename` or `- {role: name, tags: [...], when: ..., vars: {...}, other params}`.
    fn role_entry(&mut self, file: &Arc<PathBuf>, node: &Node, inherit: &Inherit, tasks: &mut Vec<Task>, handlers: &mut Vec<Task>) -> Result<(), PlaybookError> {
        let mut inh = inherit.clone();
        let mut params = Vars::new();
        // What tells this entry from another of the same role (Ansible's role identity): its
        // own `when` and `tags` besides its parameters.
        let mut own = serde_json::Map::new();
        let name = match &node.value {
            NodeValue::Str(s) => s.clone(),
            NodeValue::Map(m) => {
                let mut name = None;
                for (k, v) in m {
                    match k.as_str() {
                        "role" | "name" => name = v.as_str().map(str::to_string),
                        "tags" => {
                            own.insert("tags".into(), v.to_json());
                            inh.tags.extend(str_list(file, v, "tags")?)
                        }
                        "when" => {
                            own.insert("when".into(), v.to_json());
                            inh.when.extend(conditions(v))
                        }
                        "become" => inh.r#become = Some(bool_of(file, v, "become")?),
                        "become_user" => inh.become_user = v.as_str().map(str::to_string),
                        "remote_user" => inh.remote_user = v.as_str().map(str::to_string),
                        "diff" => inh.diff = Some(bool_of(file, v, "diff")?),
                        "module_defaults" => inh.module_defaults.push(v.to_json()),
                        "environment" => inh.environment.push(v.to_json()),
                        "vars" => params.extend(vars_of(file, v, "role vars")?),
                        _ => {
                            params.insert(k.clone(), v.to_json());
                        }
                    }
                }
                name.ok_or_else(|| err_at(file, node, "role entry needs 'role: NAME'"))?
            }
            _ => return Err(err_at(file, node, "role entry must be a name or a mapping")),
        };
        self.load_role(file, node, &name, params, &RoleFrom { own: Value::Object(own), ..RoleFrom::default() }, &inh, tasks, handlers)
    }

    fn role_dir(&self, name: &str) -> Option<PathBuf> {
        let p = Path::new(name);
        if p.is_absolute() && p.is_dir() {
            return Some(p.to_path_buf());
        }
        let mut candidates = vec![self.playbook_dir.join("roles").join(name), self.playbook_dir.join(name)];
        if let Ok(extra) = std::env::var("ANSIBLE_ROLES_PATH") {
            candidates.extend(extra.split(':').map(|d| PathBuf::from(d).join(name)));
        }
        candidates.into_iter().find(|c| c.is_dir())
    }

    #[allow(clippy::too_many_arguments)]
    fn load_role(&mut self, file: &Arc<PathBuf>, at: &Node, name: &str, params: Vars, from: &RoleFrom, inherit: &Inherit, tasks: &mut Vec<Task>, handlers: &mut Vec<Task>) -> Result<(), PlaybookError> {
        let dir = self.role_dir(name).ok_or_else(|| {
            err_at(file, at, format!("role '{name}' not found (looked in {}/roles/{name})", self.playbook_dir.display()))
        })?;
        let meta = match find_main(&dir.join("meta")) {
            Some(p) => Some(yaml::load_file(&p)?),
            None => None,
        };
        let meta_map = meta.as_ref().and_then(|(_, _, n)| n.as_map());
        let allow_duplicates = meta_map.and_then(|m| m.get("allow_duplicates")).is_some_and(|v| matches!(v.to_json(), Value::Bool(true)) || v.as_str().is_some_and(|s| ["yes", "true", "True"].contains(&s)));
        // Ansible runs a role once per play unless it is another entry: other parameters,
        // `when`, `tags`, entry files, or included rather than listed (or the role allows
        // duplicates).
        let key = (name.to_string(), serde_json::json!({"params": params, "from": [from.tasks, from.vars, from.defaults, from.handlers], "include": from.include, "own": from.own}));
        if self.loaded_roles.contains(&key) && !allow_duplicates {
            return Ok(());
        }
        if self.loaded_roles.iter().filter(|(n, _)| n == name).count() > 20 {
            return Err(err_at(file, at, format!("role '{name}': dependency cycle")));
        }
        self.loaded_roles.push(key);
        let role_name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| name.to_string());

        // meta dependencies first.
        if let Some((mfile, _, mnode)) = &meta {
            if let Some(deps) = mnode.as_map().and_then(|m| m.get("dependencies")) {
                if let Some(seq) = deps.as_seq() {
                    for d in seq {
                        let mut dep_inherit = inherit.clone();
                        dep_inherit.role = None;
                        self.role_entry(mfile, d, &dep_inherit, tasks, handlers)?;
                    }
                }
            }
        }
        // `tasks_from: install` is tasks/install.yml (or .yaml, or the name as given).
        let entry = |sub: &str, chosen: &Option<String>| -> Result<Option<PathBuf>, PlaybookError> {
            match chosen {
                None => Ok(find_main(&dir.join(sub))),
                Some(f) => {
                    let base = dir.join(sub);
                    [f.clone(), format!("{f}.yml"), format!("{f}.yaml")]
                        .iter()
                        .map(|n| base.join(n))
                        .find(|p| p.is_file())
                        .map(Some)
                        .ok_or_else(|| err_at(file, at, format!("role '{name}': {sub}/{f} not found (nor {f}.yml, {f}.yaml)")))
                }
            }
        };
        let defaults = match entry("defaults", &from.defaults)? {
            Some(p) => load_vars_file(&p)?,
            None => Vars::new(),
        };
        let vars = match entry("vars", &from.vars)? {
            Some(p) => load_vars_file(&p)?,
            None => Vars::new(),
        };
        let role = Arc::new(Role { name: role_name, path: dir.clone(), defaults, vars, params });
        self.roles.push(role.clone());
        let mut inh = inherit.clone();
        inh.role = Some(role.clone());
        if let Some(p) = entry("tasks", &from.tasks)? {
            let (tfile, _, tnode) = yaml::load_file(&p)?;
            self.task_list(&tfile, &tnode, &inh, tasks)?;
        }
        if let Some(p) = entry("handlers", &from.handlers)? {
            let (hfile, _, hnode) = yaml::load_file(&p)?;
            // Handlers keep the role (for files/templates lookups and vars) but not the role's
            // `when` (Ansible applies it to tasks only).
            let mut hinh = inh.clone();
            hinh.when.clear();
            self.task_list(&hfile, &hnode, &hinh, handlers)?;
        }
        Ok(())
    }

    fn task_list(&mut self, file: &Arc<PathBuf>, node: &Node, inherit: &Inherit, out: &mut Vec<Task>) -> Result<(), PlaybookError> {
        match &node.value {
            NodeValue::Null => Ok(()),
            NodeValue::Seq(items) => {
                for item in items {
                    self.task_or_block(file, item, inherit, out)?;
                }
                Ok(())
            }
            _ => Err(err_at(file, node, format!("expected a list of tasks, found a {}", node.kind()))),
        }
    }

    fn apply_common(&self, file: &Arc<PathBuf>, m: &IndexMap<String, Node>, inherit: &Inherit) -> Result<Inherit, PlaybookError> {
        let mut inh = inherit.clone();
        if let Some(w) = m.get("when") {
            inh.when.extend(conditions(w));
        }
        if let Some(t) = m.get("tags") {
            inh.tags.extend(str_list(file, t, "tags")?);
        }
        if let Some(b) = m.get("become") {
            inh.r#become = Some(bool_of(file, b, "become")?);
        }
        if let Some(u) = m.get("become_user") {
            inh.become_user = Some(u.as_str().ok_or_else(|| err_at(file, u, "become_user must be a string"))?.to_string());
        }
        if let Some(u) = m.get("remote_user") {
            inh.remote_user = Some(u.as_str().ok_or_else(|| err_at(file, u, "remote_user must be a string"))?.to_string());
        }
        if let Some(v) = m.get("vars") {
            inh.vars.extend(vars_of(file, v, "vars")?);
        }
        if let Some(b) = m.get("ignore_errors") {
            inh.ignore_errors = Some(bool_of(file, b, "ignore_errors")?);
        }
        if let Some(b) = m.get("ignore_unreachable") {
            inh.ignore_unreachable = Some(bool_of(file, b, "ignore_unreachable")?);
        }
        if let Some(b) = m.get("no_log") {
            inh.no_log = Some(bool_of(file, b, "no_log")?);
        }
        if let Some(b) = m.get("check_mode") {
            inh.check_mode = Some(bool_of(file, b, "check_mode")?);
        }
        if let Some(b) = m.get("diff") {
            inh.diff = Some(bool_of(file, b, "diff")?);
        }
        if let Some(d) = m.get("module_defaults") {
            inh.module_defaults.push(d.to_json());
        }
        if let Some(b) = m.get("any_errors_fatal") {
            inh.any_errors_fatal = Some(bool_of(file, b, "any_errors_fatal")?);
        }
        if let Some(e) = m.get("environment") {
            inh.environment.push(e.to_json());
        }
        Ok(inh)
    }

    fn task_or_block(&mut self, file: &Arc<PathBuf>, node: &Node, inherit: &Inherit, out: &mut Vec<Task>) -> Result<(), PlaybookError> {
        let m = node.as_map().ok_or_else(|| err_at(file, node, format!("a task must be a mapping, found a {}", node.kind())))?;
        if let Some(block) = m.get("block") {
            for (k, v) in m {
                if !BLOCK_KEYWORDS.contains(&k.as_str()) {
                    return Err(err_at(file, v, format!("'{k}' is not valid on a block; valid: {}", BLOCK_KEYWORDS.join(", "))));
                }
            }
            let inh = self.apply_common(file, m, inherit)?;
            let start = out.len();
            self.task_list(file, block, &inh, out)?;
            let rescue_at = out.len();
            if let Some(r) = m.get("rescue") {
                self.task_list(file, r, &inh, out)?;
            }
            let always_at = out.len();
            if let Some(a) = m.get("always") {
                self.task_list(file, a, &inh, out)?;
            }
            let end = out.len();
            if rescue_at < end {
                // Tasks are flattened: each one of the block learns where it stands in it.
                let id = self.blocks;
                self.blocks += 1;
                for (k, t) in out[start..end].iter_mut().enumerate() {
                    let section = if start + k < rescue_at {
                        Section::Body
                    } else if start + k < always_at {
                        Section::Rescue
                    } else {
                        Section::Always
                    };
                    let part = BlockPart {
                        id,
                        section,
                        offset: k,
                        rescue: (always_at > rescue_at).then_some(rescue_at - start),
                        always: (end > always_at).then_some(always_at - start),
                        len: end - start,
                    };
                    t.blocks.insert(0, part);
                }
            }
            return Ok(());
        }
        // Static includes.
        for key in ["import_tasks", "include_tasks", "ansible.builtin.import_tasks", "ansible.builtin.include_tasks"] {
            if let Some(target) = m.get(key) {
                let fname = match &target.value {
                    NodeValue::Str(s) => s.clone(),
                    NodeValue::Map(tm) => tm.get("file").and_then(|f| f.as_str()).map(str::to_string).ok_or_else(|| err_at(file, target, "include needs a file"))?,
                    _ => return Err(err_at(file, target, "include needs a file name")),
                };
                for k in m.keys() {
                    if k != key && !INCLUDE_KEYWORDS.contains(&k.as_str()) {
                        return Err(err_at(file, &m[k], format!("'{k}' on {key} is not supported (includes are static here)")));
                    }
                }
                if fname.contains("{{") {
                    return Err(err_at(file, target, "templated include file names are not supported (includes are static)"));
                }
                let mut inh = self.apply_common(file, m, inherit)?;
                if key.ends_with("include_tasks") && inh.when.len() > inherit.when.len() {
                    // The include's own `when` is evaluated once, at the include.
                    let when = inh.when.split_off(inherit.when.len());
                    inh.gates.push(Gate { id: self.blocks, when });
                    self.blocks += 1;
                }
                let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
                let mut candidates = vec![base.join(&fname)];
                if let Some(r) = &inherit.role {
                    candidates.push(r.path.join("tasks").join(&fname));
                }
                candidates.push(self.playbook_dir.join(&fname));
                let path = candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| err_at(file, target, format!("included file '{fname}' not found")))?;
                let (ifile, _, inode) = yaml::load_file(&path)?;
                return self.task_list(&ifile, &inode, &inh, out);
            }
        }
        for key in ["include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role"] {
            if let Some(target) = m.get(key) {
                for k in m.keys() {
                    if k == "loop" || k.starts_with("with_") {
                        return Err(err_at_key(file, k, &m[k], format!("'{k}' on {key} is not supported (includes are static here): list the role once per item, or loop inside the role")));
                    }
                    if k != key && !INCLUDE_KEYWORDS.contains(&k.as_str()) && !["environment", "any_errors_fatal"].contains(&k.as_str()) {
                        return Err(err_at(file, &m[k], format!("'{k}' on {key} is not supported (includes are static here)")));
                    }
                }
                let rm = target.as_map().ok_or_else(|| err_at(file, target, format!("{key} needs {{name: ROLE}}")))?;
                let name = rm.get("name").or_else(|| rm.get("role")).and_then(|n| n.as_str()).ok_or_else(|| err_at(file, target, format!("{key} needs name")))?.to_string();
                let mut from = RoleFrom { include: true, ..RoleFrom::default() };
                let mut apply = None;
                for (k, v) in rm {
                    let text = || v.as_str().map(str::to_string).ok_or_else(|| err_at(file, v, format!("{k} must be a file name")));
                    match k.as_str() {
                        "name" | "role" | "public" | "rolespec_validate" | "allow_duplicates" => {}
                        "tasks_from" => from.tasks = Some(text()?),
                        "vars_from" => from.vars = Some(text()?),
                        "defaults_from" => from.defaults = Some(text()?),
                        "handlers_from" => from.handlers = Some(text()?),
                        "apply" => apply = Some(v),
                        _ => return Err(err_at(file, v, format!("unknown {key} option '{k}'; valid: name, tasks_from, vars_from, defaults_from, handlers_from, apply, public, allow_duplicates, rolespec_validate"))),
                    }
                }
                let mut own = serde_json::Map::new();
                for k in ["when", "tags", "vars"] {
                    if let Some(v) = m.get(k) {
                        own.insert(k.into(), v.to_json());
                    }
                }
                from.own = Value::Object(own);
                let mut inh = self.apply_common(file, m, inherit)?;
                if let Some(a) = apply {
                    // `apply`: keywords for every task of the role (static here, as the
                    // include's own keywords are).
                    let am = a.as_map().ok_or_else(|| err_at(file, a, "apply must be a mapping of task keywords"))?;
                    inh = self.apply_common(file, am, &inh)?;
                }
                let mut handlers = Vec::new();
                self.load_role(file, target, &name, Vars::new(), &from, &Inherit { role: None, ..inh }, out, &mut handlers)?;
                self.included_handlers.append(&mut handlers);
                return Ok(());
            }
        }
        self.task(file, node, m, inherit, out)
    }

    fn task(&mut self, file: &Arc<PathBuf>, node: &Node, m: &IndexMap<String, Node>, inherit: &Inherit, out: &mut Vec<Task>) -> Result<(), PlaybookError> {
        let mut module: Option<(&String, &Node)> = None;
        let mut with_lookup: Option<(&String, &Node)> = None;
        let mut local_action: Option<&Node> = None;
        for (k, v) in m {
            if !TASK_KEYWORDS.contains(&k.as_str()) && k.strip_prefix("with_").is_some_and(crate::template::Templar::is_lookup_plugin) {
                if let Some((prev, _)) = with_lookup.or_else(|| ["loop", "with_items", "with_list", "with_dict"].iter().find_map(|l| m.get_key_value(*l))) {
                    return Err(err_at(file, v, format!("task has two loops: '{prev}' and '{k}'")));
                }
                with_lookup = Some((k, v));
                continue;
            }
            if TASK_KEYWORDS.contains(&k.as_str()) {
                continue;
            }
            if k == "local_action" {
                local_action = Some(v);
                continue;
            }
            if k == "action" {
                return Err(err_at(file, v, format!("'{k}:' is not supported; write the module name as the key")));
            }
            if modules::is_module(k) || k == "meta" || k == "ansible.builtin.meta" {
                if let Some((prev, _)) = module {
                    return Err(err_at(file, v, format!("task has two modules: '{prev}' and '{k}'")));
                }
                module = Some((k, v));
            } else {
                let msg = if k.starts_with("with_") {
                    format!("'{k}' is not supported; use 'loop' (with_items, with_list, with_dict, and with_<lookup> for the lookups {} are)", crate::template::Templar::lookup_plugins().join(", "))
                } else if let Some(close) = closest_name(k) {
                    format!("unknown module or task keyword '{k}'; did you mean '{close}'?")
                } else {
                    format!("unknown module or task keyword '{k}'. Modules: {}. Task keywords: {}", modules::names().join(", "), TASK_KEYWORDS.join(", "))
                };
                return Err(err_at_key(file, k, v, msg));
            }
        }
        // `local_action: command echo hi` / `local_action: {module: copy, ...}`: the module,
        // delegated to localhost.
        let (module, margs, mut args) = match (module, local_action) {
            (Some((k, _)), Some(la)) => return Err(err_at(file, la, format!("task has both a module ('{k}') and local_action"))),
            (Some((k, v)), None) => (k.clone(), v, v.to_json()),
            (None, Some(la)) => {
                let (name, args) = match la.to_json() {
                    Value::String(s) => {
                        let s = s.trim().to_string();
                        let (name, rest) = s.split_once(char::is_whitespace).unwrap_or((&s, ""));
                        (name.to_string(), if rest.trim().is_empty() { Value::Null } else { Value::String(rest.trim().to_string()) })
                    }
                    Value::Object(mut o) => match o.remove("module") {
                        Some(Value::String(name)) => (name, Value::Object(o)),
                        _ => return Err(err_at(file, la, "local_action needs 'module: NAME'")),
                    },
                    _ => return Err(err_at(file, la, "local_action must be a string ('command echo hi') or a mapping with 'module'")),
                };
                if !modules::is_module(&name) {
                    return Err(err_at(file, la, format!("local_action: unknown module '{name}'")));
                }
                (name, la, args)
            }
            (None, None) => return Err(err_at(file, node, "task has no module")),
        };
        if let Some(extra) = m.get("args") {
            let Value::Object(extra) = extra.to_json() else {
                return Err(err_at(file, extra, "args must be a mapping"));
            };
            match &mut args {
                Value::Object(a) => a.extend(extra),
                Value::Null => args = Value::Object(extra),
                Value::String(s) => {
                    let mut a = serde_json::Map::new();
                    a.insert("_raw_params".into(), Value::String(s.clone()));
                    a.extend(extra);
                    args = Value::Object(a);
                }
                _ => return Err(err_at(file, margs, "module arguments must be a mapping or a string")),
            }
        }
        if !matches!(args, Value::Object(_) | Value::String(_) | Value::Null) {
            return Err(err_at(file, margs, format!("arguments of '{module}' must be a mapping or a string")));
        }
        // `debug: msg={{ greeting }} var=x`: Ansible splits `key=value` words before
        // templating (a template's spaces, quotes and `=` stay in its value).
        if let Value::String(raw) = &args {
            if modules::lookup(&module).is_some_and(|m| m.free_form().is_none()) {
                args = Value::Object(split_key_values(raw).map_err(|e| err_at(file, margs, format!("{module}: {e}")))?);
            }
        }
        let inh = self.apply_common(file, m, inherit)?;
        // `module_defaults` for this module (inner layers win) fill the arguments it lacks.
        let defaults = module_defaults_for(&module, &inh.module_defaults);
        if !defaults.is_empty() {
            let mut a = match args {
                Value::Object(a) => a,
                Value::String(s) => serde_json::Map::from_iter([("_raw_params".to_string(), Value::String(s))]),
                _ => serde_json::Map::new(),
            };
            for (k, v) in defaults {
                a.entry(k).or_insert(v);
            }
            args = Value::Object(a);
        }
        // with_items flattens one level when the task runs (`LoopControl::flatten`).
        let loop_items = if let Some(l) = m.get("loop").or_else(|| m.get("with_items")).or_else(|| m.get("with_list")) {
            Some(l.to_json())
        } else if let Some(d) = m.get("with_dict") {
            let v = d.to_json();
            Some(match v {
                Value::String(s) => Value::String(format!("{{{{ ({}) | dict2items }}}}", s.trim().trim_start_matches("{{").trim_end_matches("}}"))),
                Value::Object(o) => Value::Array(o.into_iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect()),
                _ => return Err(err_at(file, d, "with_dict needs a mapping")),
            })
        } else {
            with_lookup.map(|(_, v)| v.to_json())
        };
        let mut loop_control = LoopControl {
            flatten: m.contains_key("with_items"),
            lookup: with_lookup.map(|(k, _)| k["with_".len()..].to_string()),
            ..LoopControl::default()
        };
        if let Some(lc) = m.get("loop_control") {
            let lm = lc.as_map().ok_or_else(|| err_at(file, lc, "loop_control must be a mapping"))?;
            for (k, v) in lm {
                match k.as_str() {
                    "loop_var" => loop_control.loop_var = v.as_str().map(str::to_string),
                    "index_var" => loop_control.index_var = v.as_str().map(str::to_string),
                    "label" => loop_control.label = v.as_str().map(str::to_string),
                    "extended" => loop_control.extended = bool_of(file, v, "extended")?,
                    "pause" | "extended_allitems" => {}
                    _ => return Err(err_at(file, v, format!("unknown loop_control key '{k}'; valid: loop_var, index_var, label, extended"))),
                }
            }
        }
        let string_opt = |k: &str| -> Result<Option<String>, PlaybookError> {
            m.get(k).map(|n| n.as_str().map(str::to_string).ok_or_else(|| err_at(file, n, format!("{k} must be a string")))).transpose()
        };
        for k in IGNORED_KEYWORDS {
            if m.contains_key(*k) {
                tracing::warn!("{}: task keyword '{k}' is ignored by provision", m[*k].location(file));
            }
        }
        let task = Task {
            name: string_opt("name")?,
            module: module.clone(),
            args,
            when: inh.when.clone(),
            loop_items,
            loop_control,
            register: string_opt("register")?,
            notify: m.get("notify").map(|n| str_list(file, n, "notify")).transpose()?.unwrap_or_default(),
            listen: m.get("listen").map(|n| str_list(file, n, "listen")).transpose()?.unwrap_or_default(),
            r#become: inh.r#become,
            become_user: inh.become_user.clone(),
            remote_user: inh.remote_user.clone(),
            tags: inh.tags.clone(),
            vars: inh.vars.clone(),
            changed_when: m.get("changed_when").map(conditions),
            failed_when: m.get("failed_when").map(conditions),
            ignore_errors: inh.ignore_errors.unwrap_or(false),
            ignore_unreachable: inh.ignore_unreachable.unwrap_or(false),
            delegate_facts: m.get("delegate_facts").map(|b| bool_of(file, b, "delegate_facts")).transpose()?.unwrap_or(false),
            no_log: inh.no_log.unwrap_or(false),
            check_mode: inh.check_mode,
            diff: inh.diff,
            gates: inh.gates.clone(),
            run_once: m.get("run_once").map(|b| bool_of(file, b, "run_once")).transpose()?.unwrap_or(false),
            delegate_to: if local_action.is_some() { Some("localhost".to_string()) } else { string_opt("delegate_to")? },
            async_limit: m.get("async").map(Node::to_json),
            background: m.contains_key("async") && m.get("poll").is_some_and(|p| matches!(p.to_json(), Value::Number(ref n) if n.as_u64() == Some(0)) || p.to_json() == Value::String("0".into())),
            retry: (m.contains_key("until") || m.contains_key("retries")).then(|| Retry {
                until: m.get("until").map(conditions),
                retries: m.get("retries").map(Node::to_json),
                delay: m.get("delay").map(Node::to_json),
            }),
            any_errors_fatal: inh.any_errors_fatal.unwrap_or(false),
            environment: inh.environment.clone(),
            blocks: Vec::new(),
            role: inh.role.clone(),
            location: node.location(file),
            implicit: false,
        };
        out.push(task);
        Ok(())
    }
}

/// Tag selection (`--tags`, `--skip-tags`) with Ansible's `always`, `never`, `all`, `tagged`, `untagged`.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    pub only: Vec<String>,
    pub skip: Vec<String>,
}

impl TagFilter {
    pub fn selects(&self, tags: &[String]) -> bool {
        let has = |t: &str| tags.iter().any(|x| x == t);
        if self.skip.iter().any(|s| has(s) || (s == "tagged" && !tags.is_empty()) || (s == "untagged" && tags.is_empty())) {
            return false;
        }
        if self.only.is_empty() {
            return !has("never");
        }
        if has("always") && !self.only.iter().any(|o| o == "never") {
            return true;
        }
        self.only.iter().any(|o| match o.as_str() {
            "all" => !has("never"),
            "tagged" => !tags.is_empty() && !has("never"),
            "untagged" => tags.is_empty(),
            t => has(t),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn key_values_split_outside_quotes_and_jinja() {
        let m = split_key_values("msg={{ v | default('a b') }} y='one two' z=\"{{ q }} r\" w= u=a=b").unwrap();
        assert_eq!(Value::Object(m), serde_json::json!({"msg": "{{ v | default('a b') }}", "y": "one two", "z": "{{ q }} r", "w": "", "u": "a=b"}));
        assert_eq!(split_key_values("msg=hi stray").unwrap_err(), "takes key=value arguments, got 'stray'");
        assert!(split_key_values("msg='open").is_err() && split_key_values("msg={{ x").is_err());
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// The error loading `site` (as `dir/site.yml`) gives.
    fn site_error(dir: &Path, site: &str) -> String {
        write(dir, "site.yml", site);
        load(&dir.join("site.yml")).unwrap_err().to_string()
    }

    #[test]
    fn start_at_task_finds_names_role_names_and_globs_among_selected_tasks() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "roles/app/tasks/main.yml", "- name: migrate\n  ping:\n- name: collect static\n  ping:\n");
        write(d.path(), "site.yml", "- hosts: all\n  tasks:\n    - name: base\n      ping:\n- hosts: all\n  roles: [app]\n  tasks:\n    - name: migrate\n      ping:\n");
        let pb = load(&d.path().join("site.yml")).unwrap();
        let all = |_: &Task| true;
        assert_eq!(find_start(&pb, "base", all), Some((0, 0)));
        assert_eq!(find_start(&pb, "migrate", all), Some((1, 0)), "the role's task comes first");
        assert_eq!(find_start(&pb, "app : collect*", all), Some((1, 1)));
        assert_eq!(find_start(&pb, "collect static", all), Some((1, 1)));
        assert_eq!(find_start(&pb, "migrate", |t: &Task| t.role.is_none()), Some((1, 2)));
        assert_eq!(find_start(&pb, "deploy", all), None);
    }

    #[test]
    fn ignore_unreachable_is_inherited_from_plays_blocks_and_includes() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "more.yml", "- name: included\n  ping:\n");
        write(
            d.path(),
            "site.yml",
            "- hosts: all\n  tasks:\n    - name: plain\n      ping:\n    - block:\n        - name: in block\n          ping:\n      ignore_unreachable: true\n    - import_tasks: more.yml\n      ignore_unreachable: yes\n    - name: own\n      ping:\n      ignore_unreachable: true\n- hosts: all\n  ignore_unreachable: true\n  tasks:\n    - name: from the play\n      ping:\n    - name: turned off\n      ping:\n      ignore_unreachable: false\n",
        );
        let pb = load(&d.path().join("site.yml")).unwrap();
        let flags: Vec<(String, bool)> = pb.plays.iter().flat_map(|p| p.tasks.iter().map(|t| (t.display_name(), t.ignore_unreachable))).collect();
        let want = [("plain", false), ("in block", true), ("included", true), ("own", true), ("from the play", true), ("turned off", false)];
        assert_eq!(flags, want.map(|(n, b)| (n.to_string(), b)));
    }

    #[test]
    fn loads_roles_with_dependencies_blocks_and_includes() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "site.yml", "- hosts: web\n  roles:\n    - {role: app, tags: [app]}\n  tasks:\n    - name: last\n      debug: msg=hi\n");
        write(d.path(), "roles/base/tasks/main.yml", "- name: base task\n  file: {path: /x, state: directory}\n");
        write(d.path(), "roles/base/defaults/main.yml", "base_dir: /srv\n");
        write(d.path(), "roles/app/meta/main.yml", "dependencies:\n  - base\n");
        write(
            d.path(),
            "roles/app/tasks/main.yml",
            "- block:\n    - name: in block\n      command: echo hi\n      notify: restart app\n  when: x is defined\n  become: true\n- import_tasks: more.yml\n  tags: more\n",
        );
        write(d.path(), "roles/app/tasks/more.yml", "- name: more\n  ansible.builtin.copy: {content: a, dest: /a}\n");
        write(d.path(), "roles/app/handlers/main.yml", "- name: restart app\n  service: {name: app, state: restarted}\n");
        let pb = load(&d.path().join("site.yml")).unwrap();
        let play = &pb.plays[0];
        let names: Vec<_> = play.tasks.iter().map(|t| t.display_name()).collect();
        assert_eq!(names, vec!["base : base task", "app : in block", "app : more", "last"]);
        assert_eq!(play.tasks[1].when, vec![Value::String("x is defined".into())]);
        assert_eq!(play.tasks[1].r#become, Some(true));
        assert_eq!(play.tasks[2].tags, vec!["app", "more"]);
        assert_eq!(play.tasks[0].tags, vec!["app"], "dependencies inherit the tags of the role that pulled them");
        assert_eq!(play.handlers.len(), 1);
        assert_eq!(play.roles.len(), 2);
        assert_eq!(play.roles[0].defaults["base_dir"], "/srv");
        assert_eq!(play.tasks[3].args, serde_json::json!({"msg": "hi"}), "key=value words are split when loaded");
    }

    #[test]
    fn unknown_module_points_at_file_line_column() {
        let d = tempfile::tempdir().unwrap();
        let e = site_error(d.path(), "- hosts: all\n  tasks:\n    - name: x\n      fiel: {path: /x}\n");
        assert!(e.contains("site.yml:4:7") && e.contains("unknown module or task keyword 'fiel'"), "{e}");
        assert!(e.contains("did you mean 'file'?"), "{e}");
        // a block value starts on the next line: the key's own line and column
        let e = site_error(d.path(), "- hosts: all\n  tasks:\n    - name: x\n      # copies\n      copyy:\n        # the source\n        src: a\n        dest: /b\n");
        assert!(e.contains("site.yml:5:7: unknown module or task keyword 'copyy'; did you mean 'copy'?"), "{e}");
        let e = site_error(d.path(), "- hosts: all\n  tasks:\n    - ansible.builtin.templte:\n        src: a\n");
        assert!(e.contains("site.yml:3:7:") && e.contains("did you mean 'ansible.builtin.template'?"), "{e}");
        // nothing close: the valid names
        let e = site_error(d.path(), "- hosts: all\n  tasks:\n    - zzqx: {}\n");
        assert!(e.contains("site.yml:3:7:") && e.contains("Modules: ") && e.contains("file"), "{e}");
    }

    #[test]
    fn remote_user_comes_from_the_task_its_block_include_or_role() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "site.yml",
            "- hosts: all\n  remote_user: ops\n  roles:\n    - {role: r, remote_user: deploy}\n  tasks:\n    - name: plain\n      command: id\n    - name: own\n      command: id\n      remote_user: root\n    - remote_user: blockuser\n      block:\n        - name: in block\n          command: id\n        - name: in block, own\n          command: id\n          remote_user: inner\n    - import_tasks: more.yml\n      remote_user: incl\n",
        );
        write(d.path(), "roles/r/tasks/main.yml", "- name: role task\n  command: id\n");
        write(d.path(), "more.yml", "- name: included\n  command: id\n");
        let pb = load(&d.path().join("site.yml")).unwrap();
        let play = &pb.plays[0];
        assert_eq!(play.remote_user.as_deref(), Some("ops"));
        let users: Vec<(String, Option<&str>)> = play.tasks.iter().map(|t| (t.display_name(), t.remote_user.as_deref())).collect();
        assert_eq!(
            users,
            [
                ("r : role task".to_string(), Some("deploy")),
                ("plain".into(), None),
                ("own".into(), Some("root")),
                ("in block".into(), Some("blockuser")),
                ("in block, own".into(), Some("inner")),
                ("included".into(), Some("incl")),
            ]
        );
        let e = site_error(d.path(), "- hosts: all\n  tasks:\n    - command: id\n      remote_user: [a]\n");
        assert!(e.contains("site.yml:4:20") && e.contains("remote_user must be a string"), "{e}");
    }

    #[test]
    fn delegate_to_and_local_action() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("site.yml"),
            "- hosts: all\n  tasks:\n    - command: hostname\n      delegate_to: \"{{ builder }}\"\n    - local_action: command echo hi there\n    - local_action: {module: copy, dest: /tmp/x, content: y}\n    - with_sequence: count=2\n      debug: {msg: \"{{ item }}\"}\n",
        )
        .unwrap();
        let pb = load(&d.path().join("site.yml")).unwrap();
        let t = &pb.plays[0].tasks;
        assert_eq!((t[0].module.as_str(), t[0].delegate_to.as_deref()), ("command", Some("{{ builder }}")));
        assert_eq!((t[1].module.as_str(), t[1].delegate_to.as_deref(), &t[1].args), ("command", Some("localhost"), &Value::String("echo hi there".into())));
        assert_eq!((t[2].module.as_str(), &t[2].args), ("copy", &serde_json::json!({"dest": "/tmp/x", "content": "y"})));
        assert_eq!((t[3].loop_control.lookup.as_deref(), &t[3].loop_items), (Some("sequence"), &Some(Value::String("count=2".into()))));
        let e = site_error(d.path(), "- hosts: all\n  tasks:\n    - local_action: nosuchmodule x\n");
        assert!(e.contains("site.yml:3:21: local_action: unknown module 'nosuchmodule'"), "{e}");
        let e = site_error(d.path(), "- hosts: all\n  tasks:\n    - local_action: {dest: /x}\n");
        assert!(e.contains("local_action needs 'module: NAME'"), "{e}");
        let e = site_error(d.path(), "- hosts: all\n  tasks:\n    - debug: {msg: x}\n      local_action: command x\n");
        assert!(e.contains("task has both a module ('debug') and local_action"), "{e}");
        let e = site_error(d.path(), "- hosts: all\n  tasks:\n    - debug: {msg: x}\n      loop: [1]\n      with_sequence: count=2\n");
        assert!(e.contains("task has two loops: 'loop' and 'with_sequence'"), "{e}");
    }

    #[test]
    fn with_fileglob_loops_over_a_fileglob_query() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("site.yml"), "- hosts: all\n  tasks:\n    - copy: {src: \"{{ item }}\", dest: /etc/app/}\n      with_fileglob: [\"conf/*.conf\", \"{{ extra_dir }}/*.conf\"]\n    - debug: {msg: x}\n      with_fileglob: \"a\\\"b/*\"\n").unwrap();
        let pb = load(&d.path().join("site.yml")).unwrap();
        let tasks = &pb.plays[0].tasks;
        // the generic `with_<lookup>` loop: the value rendered, then the lookup's answer
        assert_eq!(tasks[0].loop_control.lookup.as_deref(), Some("fileglob"));
        assert_eq!(tasks[0].loop_items, Some(serde_json::json!(["conf/*.conf", "{{ extra_dir }}/*.conf"])));
        assert_eq!(tasks[1].loop_items, Some(Value::String("a\"b/*".into())));
    }

    #[test]
    fn missing_role_is_an_error_with_location() {
        let d = tempfile::tempdir().unwrap();
        let e = site_error(d.path(), "- hosts: all\n  roles: [nope]\n");
        assert!(e.contains("role 'nope' not found") && e.contains("site.yml:2:"), "{e}");
    }

    #[test]
    fn failure_keywords_and_serial_are_read() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "site.yml",
            "- hosts: qa\n  any_errors_fatal: true\n  serial: [1, '30%']\n  max_fail_percentage: '20%'\n  tasks:\n    - command: a\n  handlers:\n    - name: h\n      command: b\n\
             - hosts: prod\n  serial: 2\n  tasks:\n    - block:\n        - command: c\n      any_errors_fatal: true\n    - command: d\n      any_errors_fatal: false\n",
        );
        let pb = load(&d.path().join("site.yml")).unwrap();
        let (qa, prod) = (&pb.plays[0], &pb.plays[1]);
        assert!(qa.any_errors_fatal && qa.tasks[0].any_errors_fatal && qa.handlers[0].any_errors_fatal);
        assert_eq!(qa.serial, vec![serde_json::json!(1), serde_json::json!("30%")]);
        assert_eq!(qa.max_fail_percentage, Some(20.0));
        assert!(!prod.any_errors_fatal && prod.max_fail_percentage.is_none());
        assert_eq!(prod.serial, vec![serde_json::json!(2)]);
        assert!(prod.tasks[0].any_errors_fatal && !prod.tasks[1].any_errors_fatal);
    }

    #[test]
    fn bad_failure_keywords_are_errors_with_location() {
        let d = tempfile::tempdir().unwrap();
        let e = site_error(d.path(), "- hosts: all\n  max_fail_percentage: lots\n  tasks: []\n");
        assert!(e.contains("site.yml:2:") && e.contains("max_fail_percentage"), "{e}");
    }

    #[test]
    fn tag_filter_semantics() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = TagFilter { only: t(&["nginx"]), skip: vec![] };
        assert!(f.selects(&t(&["nginx", "web"])));
        assert!(!f.selects(&t(&["web"])));
        assert!(f.selects(&t(&["always"])));
        let none = TagFilter::default();
        assert!(none.selects(&[]));
        assert!(!none.selects(&t(&["never"])));
        let skip = TagFilter { only: vec![], skip: t(&["db"]) };
        assert!(!skip.selects(&t(&["db"])));
        assert!(skip.selects(&t(&["web"])));
    }
}
