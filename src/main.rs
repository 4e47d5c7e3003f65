//! Thin entry point: parse, validate, run, exit code.

use anyhow::Context;
use clap::Parser;
use provision::cli::{self, AnsibleCfg, Cli, Output};
use provision::executor;
use provision::inventory::Inventory;
use provision::modules;
use provision::playbook::{self, Playbook};
use provision::report::{HumanOptions, HumanReporter, JsonReporter, Reporter};
use std::sync::Arc;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let filter = match cli.verbose {
        0..=2 => "warn",
        3 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PROVISION_LOG").unwrap_or_else(|_| filter.into()))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ERROR! {e:#}");
            std::process::exit(1);
        }
    }
}

/// Reject unknown module parameters before touching any host.
fn validate(pb: &Playbook) -> anyhow::Result<()> {
    for play in &pb.plays {
        for task in play.tasks.iter().chain(play.handlers.iter()) {
            let Some(m) = modules::lookup(&task.module) else { continue };
            let params = m.params();
            if params.is_empty() {
                continue; // modules taking arbitrary keys (set_fact)
            }
            if let Some(args) = task.args.as_object() {
                for k in args.keys() {
                    if k == "_raw_params" || params.contains(&k.as_str()) {
                        continue;
                    }
                    anyhow::bail!("{}: unsupported parameter '{k}' for module '{}'; valid parameters: {}", task.location, m.name(), params.join(", "));
                }
            }
        }
    }
    Ok(())
}

/// `--roles` must name roles of the playbook, like `--limit` hosts of the inventory; a tag
/// of `--tags`/`--skip-tags` that no task carries is most likely a typo (a warning: Ansible
/// says nothing).
fn check_selection(pb: &Playbook, opts: &executor::RunOptions) -> anyhow::Result<()> {
    let tasks = || pb.plays.iter().flat_map(|p| p.tasks.iter().chain(p.handlers.iter()));
    if let Some(wanted) = &opts.roles {
        let known: std::collections::BTreeSet<&str> =
            pb.plays.iter().flat_map(|p| p.roles.iter().map(|r| r.name.as_str())).chain(tasks().filter_map(|t| t.role.as_ref().map(|r| r.name.as_str()))).collect();
        let unknown: Vec<&str> = wanted.iter().map(String::as_str).filter(|r| !known.contains(r)).collect();
        if !unknown.is_empty() {
            let list = |v: &mut dyn Iterator<Item = &str>| v.map(|r| format!("'{r}'")).collect::<Vec<_>>().join(", ");
            anyhow::bail!(
                "--roles: {} {} no role of the playbook (its roles: {})",
                list(&mut unknown.iter().copied()),
                if unknown.len() == 1 { "is" } else { "are" },
                if known.is_empty() { "none".to_string() } else { list(&mut known.iter().copied()) }
            );
        }
    }
    const SPECIAL: &[&str] = &["all", "always", "never", "tagged", "untagged"];
    for (flag, given) in [("--tags", &opts.tags.only), ("--skip-tags", &opts.tags.skip)] {
        for tag in given.iter().filter(|t| !SPECIAL.contains(&t.as_str())) {
            if !tasks().any(|t| t.tags.contains(tag)) {
                eprintln!("[WARNING]: {flag}: no task of the playbook is tagged '{tag}'");
            }
        }
    }
    Ok(())
}

/// `--list-hosts` / `--list-tasks`, Ansible's layout.
fn list(cli: &Cli, pb: &Playbook, inventory: &Inventory, opts: &executor::RunOptions, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    writeln!(out, "\nplaybook: {}\n", cli.playbook.display())?;
    let limit = match &opts.limit {
        Some(l) => Some(inventory.select(l)?),
        None => None,
    };
    for (i, play) in pb.plays.iter().enumerate() {
        writeln!(out, "  play #{} ({}): {}\tTAGS: [{}]", i + 1, play.hosts, play.name, play.tags.join(", "))?;
        if cli.list_hosts {
            let mut hosts = inventory.select(&play.hosts)?;
            if let Some(l) = &limit {
                hosts.retain(|h| l.contains(h));
            }
            writeln!(out, "    pattern: ['{}']\n    hosts ({}):", play.hosts, hosts.len())?;
            for h in hosts {
                writeln!(out, "      {h}")?;
            }
        }
        if cli.list_tasks {
            writeln!(out, "    tasks:")?;
            for t in play.tasks.iter().filter(|t| !t.implicit && opts.selects(t)) {
                writeln!(out, "      {}\tTAGS: [{}]", t.display_name(), t.tags.join(", "))?;
            }
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let cfg = AnsibleCfg::load();
    if let Some(cli::Command::Vault(v)) = &cli.command {
        provision::vault_cmd::run(v, &cfg)?;
        return Ok(0);
    }
    if let Some(m) = &cfg.ansible_managed {
        provision::modules::template::set_ansible_managed(m.clone());
    }
    // Before anything is read: vars files and values may be vault-encrypted.
    provision::vault::install(cli.vault_keyring(&cfg)?);
    let mut opts = cli.run_options(&cfg)?;
    if cli.ask_become_pass {
        let p = rpassword::prompt_password("BECOME password: ").context("cannot read the become password from the terminal")?;
        opts.become_password = Some(p);
    }
    let inv_arg = cli
        .inventory
        .clone()
        .or(cfg.inventory.clone())
        .context("no inventory given: use --inventory FILE_OR_DIR (or a name under inventory/)")?;
    let inv_path = cli::resolve_inventory(&inv_arg);
    if !inv_path.exists() {
        let looked = if inv_arg.contains('/') { inv_path.display().to_string() } else { format!("inventory/{inv_arg} and ./{inv_arg}") };
        anyhow::bail!("inventory '{inv_arg}' not found (looked for {looked})");
    }
    if !cli.playbook.exists() {
        anyhow::bail!("playbook '{}' not found", cli.playbook.display());
    }
    let pb = playbook::load(&cli.playbook)?;
    validate(&pb)?;
    if let Some(name) = &cli.start_at_task {
        // Ansible says so at the end, having run nothing; here nothing starts.
        opts.start_at = Some(playbook::find_start(&pb, name, |t| opts.selects(t)).with_context(|| format!("--start-at-task: no task of the playbook is named '{name}' (or matches it){}", if opts.tags.only.is_empty() && opts.tags.skip.is_empty() && opts.roles.is_none() { "" } else { " among the tasks selected" }))?);
    }
    let mut inventory = Inventory::load(&inv_path)?;
    inventory.add_vars_dir(&pb.dir)?;
    for w in inventory.warnings() {
        eprintln!("[WARNING]: {w}");
    }
    if inventory.hosts().is_empty() {
        // Ansible: "provided hosts list is empty". Every play would say "no hosts matched".
        eprintln!("[WARNING]: inventory '{inv_arg}' has no hosts ({}): no play will run on any", inv_path.display());
    }
    if let Some(l) = &opts.limit {
        if inventory.select(l)?.is_empty() {
            anyhow::bail!("--limit '{l}' matches no host of the inventory");
        }
        for term in inventory.unmatched_terms(l)? {
            eprintln!("[WARNING]: --limit: '{term}' matches no host or group of the inventory, ignoring it");
        }
    }
    check_selection(&pb, &opts)?;

    if cli.syntax_check {
        println!("\nplaybook: {}", cli.playbook.display());
        return Ok(0);
    }
    if cli.list_hosts || cli.list_tasks {
        return match list(&cli, &pb, &inventory, &opts, &mut std::io::stdout().lock()) {
            // `| head`: the reader has seen enough.
            Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => Ok(0),
            other => other.map(|()| 0),
        };
    }

    let mut pb = pb;
    provision::prompt::answer(&mut pb, &opts.extra_vars, &mut provision::prompt::Terminal, &provision::template::Templar::new())?;

    let reporter: Box<dyn Reporter> = match cli.output {
        Output::Human => Box::new(HumanReporter::new(
            anstream::stdout(),
            HumanOptions { diff: opts.diff, verbosity: opts.verbosity, check: opts.check },
        )),
        Output::Json => Box::new(JsonReporter::new(std::io::stdout())),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let summary = rt.block_on(executor::run(Arc::new(pb), Arc::new(inventory), Arc::new(opts), reporter))?;
    Ok(summary.exit_code())
}
