//! Command line: clap definitions -> validated run configuration.

use crate::connection::{HostKeyChecking, TransportKind};
use crate::executor::RunOptions;
use crate::playbook::TagFilter;
use crate::template::Vars;
use clap::{Parser, ValueEnum};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    Openssh,
    Russh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostKeyArg {
    Strict,
    AcceptNew,
    Off,
}

/// Converge hosts to the state described by Ansible-style playbooks, roles and inventories,
/// over SSH, with no Python on the hosts.
#[derive(Debug, Parser)]
#[command(
    name = "provision",
    version,
    about,
    after_help = "Exit codes: 0 ok, 1 usage or input error, 2 a host failed, 4 a host was unreachable.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A command instead of a run (`provision vault ...`).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Playbook to run.
    #[arg(default_value = "site.yml")]
    pub playbook: PathBuf,

    /// Inventory file or directory; a bare name that is not a path means `inventory/NAME`.
    #[arg(short = 'i', long, env = "PROVISION_INVENTORY")]
    pub inventory: Option<String>,

    /// Change nothing; report what would change.
    #[arg(short = 'C', long)]
    pub check: bool,

    /// Show differences (file contents, attributes) of what changes or would change.
    #[arg(short = 'D', long)]
    pub diff: bool,

    /// Only run tasks of these roles (comma-separated), with their handlers.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,

    /// Only run tasks tagged with these tags.
    #[arg(short = 't', long, value_delimiter = ',')]
    pub tags: Vec<String>,

    /// Skip tasks tagged with these tags.
    #[arg(long, value_delimiter = ',')]
    pub skip_tags: Vec<String>,

    /// Limit to hosts matching this pattern (`web1`, `web:!web2`, `web*`, `web:&prod`).
    #[arg(short = 'l', long)]
    pub limit: Option<String>,

    /// How many hosts run at once.
    #[arg(short = 'f', long, default_value_t = 50)]
    pub forks: usize,

    /// Extra variables: `key=value ...`, a JSON/YAML mapping, or `@file.yml`. Highest precedence.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,

    /// List the hosts each play would run on, and stop.
    #[arg(long)]
    pub list_hosts: bool,

    /// List the tasks each play would run, and stop.
    #[arg(long)]
    pub list_tasks: bool,

    /// Check the playbook, roles and inventory for errors, and stop.
    #[arg(long)]
    pub syntax_check: bool,

    /// More output (-v: actions taken, -vv: full task results, -vvv: debug logs).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub output: Output,

    /// SSH implementation.
    #[arg(long, value_enum, default_value = "openssh", env = "PROVISION_TRANSPORT")]
    pub transport: TransportArg,

    /// Host key verification. Also `ANSIBLE_HOST_KEY_CHECKING=False` or ansible.cfg
    /// `host_key_checking = False` (= off). A changed host key is always refused.
    #[arg(long, value_enum)]
    pub host_key_checking: Option<HostKeyArg>,

    /// Default SSH user (inventory `ansible_user` wins).
    #[arg(short = 'u', long)]
    pub user: Option<String>,

    /// Default private key (inventory `ansible_ssh_private_key_file` wins).
    #[arg(long)]
    pub private_key: Option<PathBuf>,

    /// Run tasks as root via sudo (like `become: true` on every play).
    #[arg(short = 'b', long)]
    pub r#become: bool,

    /// SSH connect timeout in seconds.
    #[arg(short = 'T', long, default_value_t = 10)]
    pub timeout: u64,

    /// Let plays on disjoint hosts run at the same time when the later one reads nothing the
    /// earlier one sets (default: each play starts when the one before has ended, as in
    /// Ansible; also `overlap_plays = true` under `[provision]` in ansible.cfg). Plays with
    /// `any_errors_fatal`, `max_fail_percentage` or `serial` are still waited for. Only for
    /// playbooks whose plays don't depend on each other through the hosts' state (a database
    /// one play sets up and the next one's hosts use).
    #[arg(long, env = "PROVISION_OVERLAP_PLAYS", num_args = 0..=1, default_missing_value = "true", require_equals = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub overlap_plays: Option<bool>,

    /// Ask for the sudo password used to become another user (hosts whose variables set
    /// `ansible_become_password` use theirs).
    #[arg(short = 'K', long)]
    pub ask_become_pass: bool,

    /// Run notified handlers even after a task failed. Always so here: accepted for Ansible's
    /// command lines.
    #[arg(long)]
    pub force_handlers: bool,

    /// Start the run at the first task whose name (or `role : name`) is this or matches it as
    /// a glob; earlier plays and tasks don't run.
    #[arg(long, value_name = "NAME")]
    pub start_at_task: Option<String>,

    /// File holding the vault password (an executable one is run and what it prints is the
    /// password). Repeatable. Default: ANSIBLE_VAULT_PASSWORD_FILE or ansible.cfg's
    /// `vault_password_file`.
    #[arg(long = "vault-password-file", alias = "vault-pass-file", value_name = "FILE")]
    pub vault_password_files: Vec<PathBuf>,

    /// A vault password for a vault id: `LABEL@FILE`, `LABEL@prompt` or `FILE`. Repeatable;
    /// added to ANSIBLE_VAULT_IDENTITY_LIST / ansible.cfg's `vault_identity_list`.
    #[arg(long = "vault-id", value_name = "ID")]
    pub vault_ids: Vec<String>,

    /// Ask for the vault password on the terminal.
    #[arg(short = 'J', long)]
    pub ask_vault_pass: bool,
}

/// Commands besides running a playbook.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create, encrypt, decrypt, view, edit and re-key Ansible Vault files and strings (like
    /// ansible-vault).
    Vault(crate::vault_cmd::VaultCli),
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
}

/// `[defaults]` of an ansible.cfg in the current directory (or ANSIBLE_CONFIG), the few
/// settings we honour.
#[derive(Debug, Default)]
pub struct AnsibleCfg {
    pub host_key_checking: Option<bool>,
    pub inventory: Option<String>,
    pub remote_user: Option<String>,
    pub private_key_file: Option<String>,
    pub forks: Option<usize>,
    /// `[provision] overlap_plays` (see `--overlap-plays`).
    pub overlap_plays: Option<bool>,
    /// `[defaults] ansible_managed`: what templates get for `{{ ansible_managed }}`.
    pub ansible_managed: Option<String>,
    /// `[defaults] vault_password_file`.
    pub vault_password_file: Option<String>,
    /// `[defaults] vault_identity_list` (comma-separated `LABEL@SOURCE`).
    pub vault_identity_list: Vec<String>,
    /// `[defaults] vault_encrypt_identity`: the vault id `provision vault` encrypts with.
    pub vault_encrypt_identity: Option<String>,
}

impl AnsibleCfg {
    pub fn load() -> AnsibleCfg {
        let path = std::env::var("ANSIBLE_CONFIG").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("ansible.cfg"));
        let Ok(text) = std::fs::read_to_string(&path) else { return AnsibleCfg::default() };
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> AnsibleCfg {
        let mut cfg = AnsibleCfg::default();
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                section = line.trim_matches(|c| c == '[' || c == ']').to_string();
                continue;
            }
            let Some((k, v)) = line.split_once('=') else { continue };
            let (k, v) = (k.trim(), v.trim().to_string());
            if section == "provision" {
                if k == "overlap_plays" {
                    cfg.overlap_plays = crate::modules::args::truthy(&Value::String(v));
                }
                continue;
            }
            if section != "defaults" {
                continue;
            }
            match k {
                "host_key_checking" => cfg.host_key_checking = crate::modules::args::truthy(&Value::String(v)),
                "inventory" | "hostfile" => cfg.inventory = Some(v),
                "remote_user" => cfg.remote_user = Some(v),
                "private_key_file" => cfg.private_key_file = Some(v),
                "forks" => cfg.forks = v.parse().ok(),
                "ansible_managed" => cfg.ansible_managed = Some(v),
                "vault_password_file" => cfg.vault_password_file = Some(v),
                "vault_identity_list" => cfg.vault_identity_list = split_list(&v),
                "vault_encrypt_identity" => cfg.vault_encrypt_identity = Some(v).filter(|v| !v.is_empty()),
                _ => {}
            }
        }
        cfg
    }
}

/// `--inventory prod` -> `inventory/prod`: a bare name (no `/`) prefers the project's
/// `inventory/` folder; anything else is a path.
pub fn resolve_inventory(arg: &str) -> PathBuf {
    if !arg.contains('/') {
        let under = Path::new("inventory").join(arg);
        if under.exists() {
            return under;
        }
    }
    PathBuf::from(arg)
}

/// Parse one `-e` argument.
pub fn parse_extra_vars(arg: &str) -> Result<Vars, CliError> {
    let arg = arg.trim();
    if let Some(file) = arg.strip_prefix('@') {
        let path = Path::new(file);
        let (f, _, node) = crate::yaml::load_file(path)?;
        return match node.to_json() {
            Value::Object(m) => Ok(m),
            Value::Null => Ok(Vars::new()),
            _ => Err(CliError::Usage(format!("{}: extra vars file must be a mapping", f.display()))),
        };
    }
    if arg.starts_with('{') {
        let file = std::sync::Arc::new(PathBuf::from("<--extra-vars>"));
        let node = crate::yaml::parse_str(&file, arg)?;
        return match node.to_json() {
            Value::Object(m) => Ok(m),
            _ => Err(CliError::Usage(format!("--extra-vars '{arg}': not a mapping"))),
        };
    }
    let words = shlex::split(arg).ok_or_else(|| CliError::Usage(format!("--extra-vars '{arg}': unbalanced quotes")))?;
    let mut vars = Vars::new();
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(|| CliError::Usage(format!("--extra-vars: expected key=value, got '{w}'")))?;
        if k.is_empty() {
            return Err(CliError::Usage(format!("--extra-vars: empty name in '{w}'")));
        }
        // key=value values are strings, like Ansible.
        vars.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(vars)
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Where the vault passwords come from, given `--vault-id`s and `--vault-password-file`s:
/// ansible.cfg's / ANSIBLE_VAULT_IDENTITY_LIST's vault ids, then the `--vault-id`s; the
/// password files (`--vault-password-file`, else ANSIBLE_VAULT_PASSWORD_FILE, else
/// ansible.cfg's). For [`crate::vault::keyring_from`].
pub fn vault_sources(cfg: &AnsibleCfg, vault_ids: &[String], password_files: &[PathBuf]) -> (Vec<String>, Vec<PathBuf>) {
    let mut ids = match std::env::var("ANSIBLE_VAULT_IDENTITY_LIST") {
        Ok(v) => split_list(&v),
        Err(_) => cfg.vault_identity_list.clone(),
    };
    ids.extend(vault_ids.iter().cloned());
    let mut files = password_files.to_vec();
    if files.is_empty() {
        if let Some(f) = std::env::var("ANSIBLE_VAULT_PASSWORD_FILE").ok().filter(|f| !f.is_empty()).or(cfg.vault_password_file.clone()) {
            files.push(PathBuf::from(f));
        }
    }
    (ids, files)
}

impl Cli {
    /// The run's vault passwords: [`vault_sources`], then `--ask-vault-pass`.
    pub fn vault_keyring(&self, cfg: &AnsibleCfg) -> Result<crate::vault::Keyring, CliError> {
        let (ids, files) = vault_sources(cfg, &self.vault_ids, &self.vault_password_files);
        crate::vault::keyring_from(&ids, &files, self.ask_vault_pass).map_err(|e| CliError::Usage(e.to_string()))
    }

    /// Validated run options.
    pub fn run_options(&self, cfg: &AnsibleCfg) -> Result<RunOptions, CliError> {
        let mut extra = Vars::new();
        for e in &self.extra_vars {
            extra.extend(parse_extra_vars(e)?);
        }
        let env_hkc = std::env::var("ANSIBLE_HOST_KEY_CHECKING").ok().and_then(|v| crate::modules::args::truthy(&Value::String(v)));
        let host_key_checking = match self.host_key_checking {
            Some(HostKeyArg::Strict) => HostKeyChecking::Strict,
            Some(HostKeyArg::AcceptNew) => HostKeyChecking::AcceptNew,
            Some(HostKeyArg::Off) => HostKeyChecking::Off,
            None => match env_hkc.or(cfg.host_key_checking) {
                Some(false) => HostKeyChecking::Off,
                _ => HostKeyChecking::Strict,
            },
        };
        if self.forks == 0 {
            return Err(CliError::Usage("--forks must be at least 1".into()));
        }
        Ok(RunOptions {
            check: self.check,
            diff: self.diff,
            forks: if self.forks == 50 { cfg.forks.unwrap_or(50) } else { self.forks },
            limit: self.limit.clone(),
            tags: TagFilter { only: self.tags.clone(), skip: self.skip_tags.clone() },
            roles: if self.roles.is_empty() { None } else { Some(self.roles.clone()) },
            extra_vars: extra,
            transport: match self.transport {
                TransportArg::Openssh => TransportKind::OpenSsh,
                TransportArg::Russh => TransportKind::Russh,
            },
            host_key_checking,
            connect_timeout: Duration::from_secs(self.timeout.max(1)),
            verbosity: self.verbose,
            user: self.user.clone().or(cfg.remote_user.clone()),
            private_key: self.private_key.clone().or(cfg.private_key_file.as_deref().map(crate::connection::expand_tilde)),
            r#become: self.r#become,
            overlap_plays: self.overlap_plays.or(cfg.overlap_plays).unwrap_or(false),
            start_at: None,
            become_password: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_vars_forms() {
        let v = parse_extra_vars("a=1 b='x y'").unwrap();
        assert_eq!(v["a"], "1");
        assert_eq!(v["b"], "x y");
        let v = parse_extra_vars(r#"{"n": 3, "l": [1]}"#).unwrap();
        assert_eq!(v["n"], 3);
        assert!(parse_extra_vars("novalue").is_err());
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("v.yml");
        std::fs::write(&f, "x: {y: 1}\n").unwrap();
        assert_eq!(parse_extra_vars(&format!("@{}", f.display())).unwrap()["x"]["y"], 1);
    }

    #[test]
    fn ansible_cfg_defaults() {
        let c = AnsibleCfg::parse("[defaults]\nhost_key_checking = False\nforks=7\nansible_managed = Managed by ops: {{ no }}\nvault_password_file = ~/.vault_pass\nvault_identity_list = dev@dev.pw, prod@prompt\n[ssh_connection]\nforks=1\n[provision]\noverlap_plays = yes\n");
        assert_eq!(c.vault_password_file.as_deref(), Some("~/.vault_pass"));
        assert_eq!(c.vault_identity_list, vec!["dev@dev.pw", "prod@prompt"]);
        assert_eq!(c.overlap_plays, Some(true));
        assert_eq!(c.host_key_checking, Some(false));
        assert_eq!(c.forks, Some(7));
        assert_eq!(c.ansible_managed.as_deref(), Some("Managed by ops: {{ no }}"));
    }

    #[test]
    fn parses_ansible_like_flags() {
        let c = Cli::try_parse_from(["provision", "-i", "prod", "--check", "--diff", "--tags", "a,b", "-l", "web:!web2", "-vv", "play.yml"]).unwrap();
        assert!(c.check && c.diff);
        assert_eq!(c.tags, vec!["a", "b"]);
        assert_eq!(c.verbose, 2);
        assert_eq!(c.playbook, PathBuf::from("play.yml"));
    }

    #[test]
    fn ansible_flags_with_nothing_to_change_are_accepted() {
        let c = Cli::try_parse_from(["provision", "-i", "prod", "--force-handlers", "-K", "--start-at-task", "x"]).unwrap();
        assert!(c.force_handlers && c.ask_become_pass);
        assert_eq!(c.start_at_task.as_deref(), Some("x"));
    }

    #[test]
    fn vault_is_a_command_beside_the_playbook_argument() {
        let c = Cli::try_parse_from(["provision", "vault", "encrypt", "--vault-id", "prod@pw", "x.yml"]).unwrap();
        let Some(Command::Vault(v)) = &c.command else { panic!("{c:?}") };
        assert_eq!(v.keys.vault_ids, vec!["prod@pw"]);
        assert!(matches!(&v.action, crate::vault_cmd::Action::Encrypt { files, output: None } if files == &["x.yml"]));
        for args in [&["provision"][..], &["provision", "play.yml", "-i", "inv"], &["provision", "-i", "inv", "vault"], &["provision", "--check"]] {
            let c = Cli::try_parse_from(args).unwrap();
            assert!(c.command.is_none(), "{args:?}");
        }
        assert_eq!(Cli::try_parse_from(["provision", "-i", "inv", "vault"]).unwrap().playbook, PathBuf::from("vault"));
        assert!(Cli::try_parse_from(["provision", "vault"]).is_err(), "an action is needed");
        let c = AnsibleCfg::parse("[defaults]\nvault_encrypt_identity = prod\n");
        assert_eq!(c.vault_encrypt_identity.as_deref(), Some("prod"));
    }

    #[test]
    fn overlap_plays_from_the_flag_or_ansible_cfg() {
        let overlap = |args: &[&str], cfg: Option<bool>| {
            let c = Cli::try_parse_from(["provision"].iter().chain(args)).unwrap();
            c.run_options(&AnsibleCfg { overlap_plays: cfg, ..Default::default() }).unwrap().overlap_plays
        };
        assert!(!overlap(&[], None));
        assert!(overlap(&[], Some(true)));
        assert!(overlap(&["--overlap-plays"], None));
        assert!(overlap(&["--overlap-plays", "site.yml"], Some(false)));
        assert!(!overlap(&["--overlap-plays=false"], Some(true)));
        assert!(!overlap(&["--overlap-plays=no", "site.yml"], Some(true)));
    }
}
