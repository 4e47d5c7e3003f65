//! Command-line behaviour that needs no hosts: listing, selection, input errors, exit codes.

mod common;
use common::*;

fn repo_run(args: &[&str]) -> Run {
    provision(&repo(), args)
}

#[test]
fn list_hosts_resolves_bare_inventory_names_and_limits() {
    let r = repo_run(&["--inventory", "prod", "--list-hosts", "--limit", "web:!web2*"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("hosts (1):") && r.stdout.contains("web1.example.com"), "{}", r.stdout);
    assert!(!r.stdout.contains("web2.example.com"));
}

#[test]
fn list_tasks_honours_tags_and_roles() {
    let r = repo_run(&["-i", "prod", "--list-tasks", "--tags", "nginx"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("gunicorn_nginx : Write the Nginx site"));
    assert!(!r.stdout.contains("Gunicorn config") && !r.stdout.contains("postgres :"), "{}", r.stdout);
    let r = repo_run(&["-i", "prod", "--list-tasks", "--roles", "postgres"]);
    assert!(r.stdout.lines().filter(|l| l.contains(" : ")).all(|l| l.trim_start().starts_with("postgres :")), "{}", r.stdout);
}

#[test]
fn ini_inventory_with_ranges_children_and_patterns() {
    let p = project(&[
        ("hosts.ini", "[web]\nweb[01:03].example.com\n\n[db]\ndb1 ansible_host=192.0.2.10\n\n[prod:children]\nweb\ndb\n"),
        ("site.yml", "- hosts: prod:&web:!web02.example.com\n  tasks: []\n"),
    ]);
    let r = provision(p.path(), &["-i", "hosts.ini", "--list-hosts"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let hosts: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("      ")).map(str::trim).collect();
    assert_eq!(hosts, vec!["web01.example.com", "web03.example.com"], "{}", r.stdout);
}

#[test]
fn usage_and_input_errors_exit_1() {
    assert_eq!(repo_run(&["--bogus"]).code, 1);
    let r = repo_run(&["-i", "nope-inventory"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nope-inventory"), "{}", r.stderr);
    let r = repo_run(&["-i", "prod", "missing.yml"]);
    assert_eq!(r.code, 1);
    let r = repo_run(&["-i", "prod", "--limit", "nosuchhost"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("matches no host"), "{}", r.stderr);
    let r = repo_run(&["-i", "prod", "-e", "novalue"]);
    assert_eq!(r.code, 1);
}

#[test]
fn syntax_check_reports_yaml_errors_with_location() {
    let p = project(&[("hosts.yml", "all:\n  hosts:\n    h1:\n"), ("site.yml", "- hosts: all\n  tasks:\n    - name: x\n      copy: {content: a, dest: /x}\n      when: [unclosed\n")]);
    let r = provision(p.path(), &["-i", "hosts.yml", "--syntax-check"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("site.yml:"), "{}", r.stderr);
    let p = project(&[("hosts.yml", "all:\n  hosts:\n    h1:\n"), ("site.yml", "- hosts: all\n  tasks:\n    - copy: {content: a, dest: /x}\n")]);
    assert_eq!(provision(p.path(), &["-i", "hosts.yml", "--syntax-check"]).code, 0);
}

#[test]
fn extra_vars_from_a_file_reach_list_output() {
    let p = project(&[("hosts.yml", "all:\n  hosts:\n    h1:\n"), ("vars.yml", "target: all\n"), ("site.yml", "- hosts: all\n  tasks: []\n")]);
    let r = provision(p.path(), &["-i", "hosts.yml", "-e", "@vars.yml", "--list-hosts"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("h1"));
}

#[test]
fn an_inventory_without_hosts_is_warned_about() {
    // e.g. inventory/testbed before `scripts/testbed up` generated its hosts.yml.
    let p = project(&[("inv/group_vars/all.yml", "x: 1\n"), ("site.yml", "- hosts: all\n  tasks: []\n")]);
    let r = provision(p.path(), &["-i", "inv", "site.yml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("[WARNING]: inventory 'inv' has no hosts"), "{}", r.stderr);
    assert!(r.stdout.contains("no hosts matched"), "{}", r.stdout);
    let r = provision(p.path(), &["-i", "inv", "--list-hosts"]);
    assert!(r.stderr.contains("has no hosts"), "{}", r.stderr);
    // An inventory with hosts says nothing of the kind.
    let q = project(&[("hosts.yml", "all:\n  hosts:\n    a: {ansible_connection: local}\n"), ("site.yml", "- hosts: all\n  gather_facts: false\n  tasks: []\n")]);
    let r = provision(q.path(), &["-i", "hosts.yml", "site.yml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("has no hosts"), "{}", r.stderr);
}

#[test]
fn selection_typos_are_errors_or_warnings() {
    // --roles names a role the playbook doesn't have: an error, like --limit without a match
    let r = repo_run(&["-i", "prod", "--list-tasks", "--roles", "postgres,nginx"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("--roles: 'nginx' is no role of the playbook") && r.stderr.contains("'gunicorn_nginx'"), "{}", r.stderr);
    // a tag no task carries, a --limit part matching nothing: warnings, the rest runs
    let r = repo_run(&["-i", "prod", "--list-tasks", "--list-hosts", "--tags", "nginx,ngnix", "--skip-tags", "slow", "--limit", "web1*:web9"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("[WARNING]: --tags: no task of the playbook is tagged 'ngnix'"), "{}", r.stderr);
    assert!(r.stderr.contains("[WARNING]: --skip-tags: no task of the playbook is tagged 'slow'"), "{}", r.stderr);
    assert!(r.stderr.contains("[WARNING]: --limit: 'web9' matches no host or group"), "{}", r.stderr);
    assert!(!r.stderr.contains("'nginx'") && !r.stderr.contains("web1*"), "{}", r.stderr);
    assert!(r.stdout.contains("web1.example.com") && r.stdout.contains("Write the Nginx site"), "{}", r.stdout);
}

#[test]
fn listing_into_a_closed_pipe_ends_quietly() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(repo())
        .args(["-i", "prod", "--list-hosts", "--list-tasks"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // `| head -0`: the reader is gone before the first line
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn yaml_errors_in_inventory_files_are_told_once_with_their_location() {
    let p = project(&[
        ("inv/hosts", "[web]\nw1\n"),
        ("inv/group_vars/web.yml", "a: 1\nb: [1, 2\n"),
        ("site.yml", "- hosts: all\n  tasks: []\n"),
    ]);
    let r = provision(p.path(), &["-i", "inv", "--syntax-check"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("inv/group_vars/web.yml:2:4: unclosed bracket '['"), "{}", r.stderr);
    assert_eq!(r.stderr.matches("unclosed bracket").count(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("error: line"), "{}", r.stderr);
    // a bare inventory name that exists nowhere: both places it was looked for
    let r = provision(p.path(), &["-i", "invv", "--syntax-check"]);
    assert!(r.stderr.contains("inventory 'invv' not found (looked for inventory/invv and ./invv)"), "{}", r.stderr);
}
