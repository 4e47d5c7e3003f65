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

// ---- provision vault ----

/// `provision vault ARGS` in `dir`, with `stdin`, and no vault settings from the environment.
fn vault_cmd(dir: &std::path::Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(dir)
        .arg("vault")
        .args(args)
        .env("NO_COLOR", "1")
        .env("ANSIBLE_CONFIG", dir.join("no-ansible.cfg"))
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .env_remove("ANSIBLE_VAULT_IDENTITY_LIST")
        .env_remove("ANSIBLE_VAULT_ENCRYPT_IDENTITY")
        .env_remove("EDITOR")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run provision vault");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into_owned(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn vault_ok(dir: &std::path::Path, args: &[&str]) -> Run {
    let r = vault_cmd(dir, args, b"", &[]);
    assert_eq!(r.code, 0, "provision vault {args:?}: {}", r.stderr);
    r
}

fn vault_err(dir: &std::path::Path, args: &[&str], message: &str) {
    let r = vault_cmd(dir, args, b"", &[]);
    assert_eq!(r.code, 1, "provision vault {args:?} should fail: {}{}", r.stdout, r.stderr);
    assert!(r.stderr.starts_with("ERROR! ") && r.stderr.contains(message), "provision vault {args:?}: {}", r.stderr);
}

fn read(dir: &std::path::Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap()
}

fn mode(dir: &std::path::Path, f: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777
}

fn chmod(dir: &std::path::Path, f: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(mode)).unwrap();
}

const SECRETS: &str = "db_password: s3cr3t\napi_key: \"k-123\"\n";

#[test]
fn vault_encrypt_view_decrypt_round_trip() {
    let p = project(&[
        ("pw", "hunter2\n"),
        ("other.pw", "nope\n"),
        ("group_vars/all.yml", SECRETS),
        ("hosts.yml", "all:\n  hosts:\n    local: {ansible_connection: local}\n"),
        ("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - assert: {that: [\"db_password == 's3cr3t'\", \"api_key == 'k-123'\"]}\n"),
    ]);
    let d = p.path();
    chmod(d, "group_vars/all.yml", 0o640);
    let r = vault_ok(d, &["encrypt", "--vault-password-file", "pw", "group_vars/all.yml"]);
    assert_eq!(r.stderr, "Encryption successful\n");
    let text = read(d, "group_vars/all.yml");
    assert!(text.starts_with("$ANSIBLE_VAULT;1.1;AES256\n") && !text.contains("s3cr3t"), "{text}");
    assert_eq!(mode(d, "group_vars/all.yml"), 0o640, "in-place writes keep the file's mode");
    assert_eq!(vault_ok(d, &["view", "--vault-pass-file", "pw", "group_vars/all.yml"]).stdout, SECRETS);
    // Options before the action work too.
    assert_eq!(vault_ok(d, &["--vault-password-file", "pw", "view", "group_vars/all.yml"]).stdout, SECRETS);
    // The vaulted file is what a run reads.
    let r = provision_env(d, &["-i", "hosts.yml", "--vault-password-file", "pw", "site.yml"], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.recap()["local"].failed, 0, "{}", r.stdout);
    // To another file, or stdout; the source stays encrypted.
    vault_ok(d, &["decrypt", "--vault-password-file", "pw", "--output", "plain.yml", "group_vars/all.yml"]);
    assert_eq!(read(d, "plain.yml"), SECRETS);
    assert_eq!(mode(d, "plain.yml"), 0o600, "a new file holding secrets is private");
    assert_eq!(read(d, "group_vars/all.yml"), text);
    assert_eq!(vault_ok(d, &["decrypt", "--vault-password-file", "pw", "--output", "-", "group_vars/all.yml"]).stdout, SECRETS);
    // Several passwords: the right one is found.
    assert_eq!(vault_ok(d, &["view", "--vault-password-file", "other.pw", "--vault-password-file", "pw", "group_vars/all.yml"]).stdout, SECRETS);
    let r = vault_ok(d, &["decrypt", "--vault-password-file", "pw", "group_vars/all.yml"]);
    assert_eq!(r.stderr, "Decryption successful\n");
    assert_eq!(read(d, "group_vars/all.yml"), SECRETS);
    assert_eq!(mode(d, "group_vars/all.yml"), 0o640);
    // stdin to stdout, and back; ANSIBLE_VAULT_PASSWORD_FILE is honoured.
    let env = [("ANSIBLE_VAULT_PASSWORD_FILE", "pw")];
    let r = vault_cmd(d, &["encrypt"], b"from: stdin\n", &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("$ANSIBLE_VAULT;1.1;AES256\n"), "{}", r.stdout);
    let back = vault_cmd(d, &["decrypt", "-"], r.stdout.as_bytes(), &env);
    assert_eq!((back.code, back.stdout.as_str()), (0, "from: stdin\n"), "{}", back.stderr);
    let left: Vec<String> = std::fs::read_dir(d.join("group_vars")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, vec!["all.yml"], "no temp files left beside");
}

#[test]
fn vault_errors() {
    let p = project(&[("pw", "hunter2\n"), ("wrong.pw", "nope\n"), ("a.yml", "a: 1\n"), ("b.yml", "b: 2\n")]);
    let d = p.path();
    vault_ok(d, &["encrypt", "--vault-password-file", "pw", "a.yml"]);
    let before = read(d, "a.yml");
    vault_err(d, &["encrypt", "--vault-password-file", "pw", "a.yml"], "a.yml: input is already encrypted");
    vault_err(d, &["decrypt", "--vault-password-file", "pw", "b.yml"], "b.yml: input is not vault encrypted data");
    vault_err(d, &["view", "--vault-password-file", "pw", "b.yml"], "input is not vault encrypted data");
    vault_err(d, &["decrypt", "--vault-password-file", "wrong.pw", "a.yml"], "a.yml: decryption failed");
    vault_err(d, &["view", "--vault-password-file", "wrong.pw", "a.yml"], "decryption failed");
    vault_err(d, &["decrypt", "--vault-password-file", "missing.pw", "a.yml"], "missing.pw cannot be read");
    vault_err(d, &["decrypt", "--vault-password-file", "pw", "--output", "-", "a.yml", "b.yml"], "at most one input file");
    vault_err(d, &["decrypt", "--vault-password-file", "pw", "nosuch.yml"], "cannot read nosuch.yml");
    vault_err(d, &["encrypt", "--vault-id", "pr;od@pw", "b.yml"], "not allowed in vault ids");
    assert_eq!(read(d, "a.yml"), before, "failed commands leave files alone");
    assert_eq!(read(d, "b.yml"), "b: 2\n");
    // Usage errors (clap) exit 1 too; `view` needs a file.
    assert_eq!(vault_cmd(d, &["view"], b"", &[]).code, 1);
    assert_eq!(vault_cmd(d, &["frobnicate"], b"", &[]).code, 1);
    // An empty string or stdin is not encrypted.
    vault_err(d, &["encrypt_string", "--vault-password-file", "pw", ""], "was empty");
    vault_err(d, &["encrypt_string", "--vault-password-file", "pw"], "stdin was empty");
}

#[test]
fn vault_ids_label_the_envelope_and_choose_the_password() {
    let p = project(&[("dev.pw", "dev-pw\n"), ("prod.pw", "prod-pw\n"), ("a.yml", "a: 1\n"), ("b.yml", "b: 2\n")]);
    let d = p.path();
    vault_ok(d, &["encrypt", "--vault-id", "prod@prod.pw", "a.yml"]);
    assert!(read(d, "a.yml").starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"), "{}", read(d, "a.yml"));
    // Several ids: which one encrypts must be said, as with ansible-vault.
    vault_err(d, &["encrypt", "--vault-id", "dev@dev.pw", "--vault-id", "prod@prod.pw", "b.yml"], "the vault ids dev, prod are available to encrypt");
    vault_err(d, &["encrypt", "--vault-id", "dev@dev.pw", "--vault-id", "prod@prod.pw", "--encrypt-vault-id", "qa", "b.yml"], "'qa' is none of the given vault ids");
    vault_ok(d, &["encrypt", "--vault-id", "dev@dev.pw", "--vault-id", "prod@prod.pw", "--encrypt-vault-id", "dev", "b.yml"]);
    assert!(read(d, "b.yml").starts_with("$ANSIBLE_VAULT;1.2;AES256;dev\n"));
    assert_eq!(vault_ok(d, &["view", "--vault-id", "dev@prod.pw", "--vault-id", "x@dev.pw", "b.yml", "a.yml"]).stdout, "b: 2\na: 1\n");
    vault_err(d, &["view", "--vault-id", "dev@prod.pw", "b.yml"], "decryption failed");
    // ANSIBLE_VAULT_IDENTITY_LIST and ANSIBLE_VAULT_ENCRYPT_IDENTITY, as for a run.
    let env = [("ANSIBLE_VAULT_IDENTITY_LIST", "dev@dev.pw,prod@prod.pw"), ("ANSIBLE_VAULT_ENCRYPT_IDENTITY", "prod")];
    let r = vault_cmd(d, &["encrypt_string", "x-value"], b"", &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("$ANSIBLE_VAULT;1.2;AES256;prod"), "{}", r.stdout);
}

#[test]
fn vault_password_scripts() {
    let p = project(&[
        ("pass.sh", "#!/bin/sh\necho script-pw\n"),
        ("vault-client.sh", "#!/bin/sh\n[ \"$1\" = --vault-id ] && echo \"pw-of-$2\"\n"),
        ("a.yml", "a: 1\n"),
        ("b.yml", "b: 2\n"),
    ]);
    let d = p.path();
    chmod(d, "pass.sh", 0o755);
    chmod(d, "vault-client.sh", 0o755);
    std::fs::write(d.join("script.pw"), "script-pw\n").unwrap();
    std::fs::write(d.join("prod.pw"), "pw-of-prod").unwrap();
    vault_ok(d, &["encrypt", "--vault-password-file", "pass.sh", "a.yml"]);
    assert_eq!(vault_ok(d, &["view", "--vault-password-file", "script.pw", "a.yml"]).stdout, "a: 1\n", "the script's output is the password");
    vault_ok(d, &["encrypt", "--vault-id", "prod@vault-client.sh", "b.yml"]);
    assert!(read(d, "b.yml").starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"));
    assert_eq!(vault_ok(d, &["view", "--vault-password-file", "prod.pw", "b.yml"]).stdout, "b: 2\n", "a client script is asked for the vault id's password");
}

/// The envelope of a `!vault |` block: its lines, unindented.
fn envelope_of(block: &str) -> String {
    block.lines().skip(1).map(|l| format!("{}\n", l.strip_prefix("          ").expect("indented by 10"))).collect()
}

#[test]
fn vault_encrypt_string_values_decrypt_in_a_run() {
    let p = project(&[("pw", "hunter2\n")]);
    let d = p.path();
    let r = vault_ok(d, &["encrypt_string", "--vault-password-file", "pw", "--name", "db_pass", "s3cr3t pass"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "db_pass: !vault |", "{}", r.stdout);
    assert_eq!(lines[1], "          $ANSIBLE_VAULT;1.1;AES256");
    assert!(lines[2..].iter().all(|l| l.len() <= 90 && l.starts_with("          ") && l.trim().bytes().all(|b| b.is_ascii_hexdigit())), "{}", r.stdout);
    assert!(r.stdout.ends_with('\n') && !r.stdout.ends_with("\n\n"));
    assert_eq!(r.stderr, "Encryption successful\n", "one string: no comments");
    let back = vault_cmd(d, &["decrypt", "--vault-password-file", "pw", "--output", "-"], envelope_of(&r.stdout).as_bytes(), &[]);
    assert_eq!((back.code, back.stdout.as_str()), (0, "s3cr3t pass"), "{}", back.stderr);
    // No name: a bare block. stdin (with --stdin-name) comes first, then the strings.
    let bare = vault_ok(d, &["encrypt-string", "--vault-password-file", "pw", "plain"]);
    assert!(bare.stdout.starts_with("!vault |\n          $ANSIBLE_VAULT;1.1;AES256\n"), "{}", bare.stdout);
    let r = vault_cmd(d, &["encrypt_string", "--vault-password-file", "pw", "--stdin-name", "from_stdin", "--name", "first", "one", "two"], b"multi\nline\n", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let names: Vec<&str> = r.stdout.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(names, vec!["from_stdin: !vault |", "first: !vault |", "!vault |"], "{}", r.stdout);
    assert!(r.stderr.contains("The last named variable will be \"first\""), "{}", r.stderr);
    assert!(r.stderr.contains("# The encrypted version of variable (\"from_stdin\", the string #1 from stdin)."), "{}", r.stderr);
    assert!(r.stderr.contains("# The encrypted version of the string #3 from the command line args."), "{}", r.stderr);
    let third = r.stdout.split("!vault |").nth(3).unwrap();
    let back = vault_cmd(d, &["decrypt", "--vault-password-file", "pw"], envelope_of(&format!("!vault |{third}")).as_bytes(), &[]);
    assert_eq!(back.stdout, "two", "{}", back.stderr);
    // Named values are a YAML vars file a run decrypts: each value is what was given.
    let named = r.stdout.split("\n!vault |").next().unwrap();
    std::fs::write(d.join("vars.yml"), format!("{named}\n{}", bare.stdout.replacen("!vault", "plain_one: !vault", 1))).unwrap();
    std::fs::write(d.join("hosts.yml"), "all:\n  hosts:\n    local: {ansible_connection: local}\n").unwrap();
    std::fs::write(
        d.join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  vars_files: [vars.yml]\n  tasks:\n    - assert:\n        that:\n          - from_stdin == 'multi\\nline\\n'\n          - first == 'one'\n          - plain_one == 'plain'\n",
    )
    .unwrap();
    let run = provision_env(d, &["-i", "hosts.yml", "--vault-password-file", "pw", "site.yml"], &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.recap()["local"].failed, 0, "{}", run.stdout);
    // A wrong password: the run fails instead.
    std::fs::write(d.join("wrong.pw"), "nope\n").unwrap();
    assert_ne!(provision_env(d, &["-i", "hosts.yml", "--vault-password-file", "wrong.pw", "site.yml"], &[]).code, 0);
}

#[test]
fn vault_rekey_changes_the_password() {
    let p = project(&[("old.pw", "old-pw\n"), ("new.pw", "new-pw\n"), ("a.yml", "a: 1\n"), ("b.yml", "b: 2\n")]);
    let d = p.path();
    chmod(d, "a.yml", 0o644);
    vault_ok(d, &["encrypt", "--vault-password-file", "old.pw", "a.yml"]);
    vault_ok(d, &["encrypt", "--vault-password-file", "old.pw", "b.yml"]);
    let r = vault_ok(d, &["rekey", "--vault-password-file", "old.pw", "--new-vault-password-file", "new.pw", "a.yml", "b.yml"]);
    assert_eq!(r.stderr, "Rekey successful\n");
    vault_err(d, &["view", "--vault-password-file", "old.pw", "a.yml"], "decryption failed");
    assert_eq!(vault_ok(d, &["view", "--vault-password-file", "new.pw", "a.yml", "b.yml"]).stdout, "a: 1\nb: 2\n");
    assert_eq!(mode(d, "a.yml"), 0o644);
    // To a new vault id: the header names it.
    vault_ok(d, &["rekey", "--vault-password-file", "new.pw", "--new-vault-id", "prod@old.pw", "a.yml"]);
    assert!(read(d, "a.yml").starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"));
    assert_eq!(vault_ok(d, &["view", "--vault-password-file", "old.pw", "a.yml"]).stdout, "a: 1\n");
    // The old password must open it; nothing is written otherwise.
    let before = read(d, "b.yml");
    vault_err(d, &["rekey", "--vault-password-file", "old.pw", "--new-vault-password-file", "new.pw", "b.yml"], "decryption failed");
    assert_eq!(read(d, "b.yml"), before);
    assert_ne!(vault_cmd(d, &["rekey", "--new-vault-password-file", "new.pw", "--new-vault-id", "x@new.pw", "b.yml"], b"", &[]).code, 0);
}

#[test]
fn vault_edit_reencrypts_only_a_changed_file_keeping_its_vault_id() {
    let p = project(&[("prod.pw", "prod-pw\n"), ("a.yml", "name: alice\n"), ("log.sh", "#!/bin/sh\nls -ld \"$1\" > edited-file\n")]);
    let d = p.path();
    chmod(d, "a.yml", 0o640);
    chmod(d, "log.sh", 0o755);
    vault_ok(d, &["encrypt", "--vault-id", "prod@prod.pw", "a.yml"]);
    let edit = |editor: &str| vault_cmd(d, &["edit", "--vault-password-file", "prod.pw", "a.yml"], b"", &[("EDITOR", editor)]);
    let r = edit("sed -i s/alice/bob/");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = read(d, "a.yml");
    assert!(text.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"), "the vault id is kept: {text}");
    assert_eq!(vault_ok(d, &["view", "--vault-id", "prod@prod.pw", "a.yml"]).stdout, "name: bob\n");
    assert_eq!(mode(d, "a.yml"), 0o640);
    // Unchanged: the file is not rewritten (a new salt would change every byte).
    assert_eq!(edit("true").code, 0);
    assert_eq!(read(d, "a.yml"), text);
    // The editor sees a private 0600 file, removed afterwards.
    assert_eq!(edit("./log.sh").code, 0);
    let seen = read(d, "edited-file");
    assert!(seen.starts_with("-rw------- "), "{seen}");
    let tmp = seen.split_whitespace().last().unwrap();
    assert!(tmp.ends_with("/a.yml") && !std::path::Path::new(tmp).exists(), "{seen}");
    // A failing editor changes nothing.
    let r = edit("sh -c 'echo x > \"$1\"; exit 3' sh");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("failed") && r.stderr.contains("a.yml is left as it was"), "{}", r.stderr);
    assert_eq!(read(d, "a.yml"), text);
    vault_err(d, &["edit", "--vault-password-file", "prod.pw", "edited-file"], "input is not vault encrypted data");
}

#[test]
fn vault_create_runs_the_editor_on_an_empty_file() {
    let p = project(&[("pw", "hunter2\n"), ("write.sh", "#!/bin/sh\n[ -s \"$1\" ] && exit 1\nprintf 'token: abc\\n' > \"$1\"\n")]);
    let d = p.path();
    chmod(d, "write.sh", 0o755);
    let env = [("EDITOR", "./write.sh")];
    let r = vault_cmd(d, &["create", "--vault-password-file", "pw", "--skip-tty-check", "new/dir/secret.yml"], b"", &env);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("new/dir does not exist, creating"), "{}", r.stderr);
    assert!(read(d, "new/dir/secret.yml").starts_with("$ANSIBLE_VAULT;1.1;AES256\n"));
    assert_eq!(mode(d, "new/dir/secret.yml"), 0o600);
    assert_eq!(vault_ok(d, &["view", "--vault-password-file", "pw", "new/dir/secret.yml"]).stdout, "token: abc\n");
    let r = vault_cmd(d, &["create", "--vault-password-file", "pw", "--skip-tty-check", "new/dir/secret.yml"], b"", &env);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("new/dir/secret.yml exists, please use 'edit' instead"), "{}", r.stderr);
    // Like ansible-vault: no editor without a terminal unless asked.
    let r = vault_cmd(d, &["create", "--vault-password-file", "pw", "other.yml"], b"", &env);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not a tty"), "{}", r.stderr);
    assert!(!d.join("other.yml").exists());
}

#[test]
fn vault_is_a_command_and_runs_still_take_a_playbook() {
    let r = provision(&repo(), &["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.lines().any(|l| l.trim_start().starts_with("vault ")), "{}", r.stdout);
    let r = provision(&repo(), &["vault", "--help"]);
    assert!(["encrypt", "decrypt", "view", "encrypt_string", "create", "edit", "rekey"].iter().all(|a| r.stdout.contains(&format!("  {a} "))), "{}", r.stdout);
}

/// With ansible-vault at hand: each reads what the other wrote.
#[test]
fn vault_interoperates_with_ansible_vault() {
    let av = std::path::Path::new("/var/cache/provision-bench/venv/bin/ansible-vault");
    if !av.exists() {
        return;
    }
    let ansible = |dir: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new(av)
            .current_dir(dir)
            .args(args)
            .env("ANSIBLE_CONFIG", dir.join("no-ansible.cfg"))
            .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
            .env_remove("ANSIBLE_VAULT_IDENTITY_LIST")
            .output()
            .unwrap();
        assert!(out.status.success(), "ansible-vault {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let p = project(&[("pw", "hunter2\n"), ("mine.yml", SECRETS), ("theirs.yml", SECRETS)]);
    let d = p.path();
    // provision writes, ansible-vault reads
    vault_ok(d, &["encrypt", "--vault-id", "prod@pw", "mine.yml"]);
    assert_eq!(ansible(d, &["view", "--vault-id", "prod@pw", "mine.yml"]), SECRETS);
    let s = vault_ok(d, &["encrypt_string", "--vault-password-file", "pw", "str-value"]).stdout;
    std::fs::write(d.join("mine.env"), envelope_of(&s)).unwrap();
    assert_eq!(ansible(d, &["decrypt", "--vault-password-file", "pw", "--output", "-", "mine.env"]), "str-value");
    // ansible-vault writes, provision reads, edits, and ansible-vault reads that
    ansible(d, &["encrypt", "--vault-id", "dev@pw", "theirs.yml"]);
    assert_eq!(vault_ok(d, &["view", "--vault-password-file", "pw", "theirs.yml"]).stdout, SECRETS);
    let r = vault_cmd(d, &["edit", "--vault-password-file", "pw", "theirs.yml"], b"", &[("EDITOR", "sed -i s/k-123/k-456/")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(read(d, "theirs.yml").starts_with("$ANSIBLE_VAULT;1.2;AES256;dev\n"));
    assert_eq!(ansible(d, &["view", "--vault-id", "dev@pw", "theirs.yml"]), SECRETS.replace("k-123", "k-456"));
    let s = ansible(d, &["encrypt_string", "--vault-password-file", "pw", "--name", "n", "their-str"]);
    let back = vault_cmd(d, &["decrypt", "--vault-password-file", "pw", "--output", "-"], envelope_of(&s).as_bytes(), &[]);
    assert_eq!(back.stdout, "their-str", "{}", back.stderr);
}

#[test]
fn vaulted_inventories_ini_and_yaml_are_read_with_the_password() {
    let p = project(&[
        ("pw", "hunter2\n"),
        ("site.yml", "- hosts: web\n  gather_facts: false\n  tasks: []\n"),
        ("inv.ini", "[web]\nweb-ini-1\nweb-ini-2\n"),
        ("inv.yml", "web:\n  hosts:\n    web-yaml-1:\n"),
        ("inv", "web:\n  hosts:\n    web-sniffed-1:\n"),
    ]);
    for f in ["inv.ini", "inv.yml", "inv"] {
        vault_ok(p.path(), &["encrypt", "--vault-password-file", "pw", f]);
    }
    for (inv, host) in [("inv.ini", "web-ini-2"), ("inv.yml", "web-yaml-1"), ("inv", "web-sniffed-1")] {
        let r = provision_env(p.path(), &["-i", inv, "site.yml", "--list-hosts", "--vault-password-file", "pw"], &[("ANSIBLE_CONFIG", "/nonexistent")]);
        assert_eq!(r.code, 0, "{inv}: {}", r.stderr);
        assert!(r.stdout.contains(host), "{inv}: {}", r.stdout);
        let r = provision_env(p.path(), &["-i", inv, "site.yml", "--list-hosts"], &[("ANSIBLE_CONFIG", "/nonexistent")]);
        assert_eq!(r.code, 1, "{inv}: {}", r.stdout);
        assert!(r.stderr.contains(&format!("{inv}:1:1: vault-encrypted, and no vault password was given")), "{inv}: {}", r.stderr);
    }
}

#[test]
fn start_at_task_skips_earlier_plays_and_tasks() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().display().to_string();
    let site = format!(
        "- name: first\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: one\n      copy: {{content: x, dest: {out}/one}}\n- name: second\n  hosts: all\n  tasks:\n    - name: two\n      copy: {{content: x, dest: {out}/two}}\n    - name: deploy app\n      copy: {{content: x, dest: {out}/three}}\n      tags: [app]\n    - name: four\n      copy: {{content: x, dest: {out}/four}}\n"
    );
    let p = project(&[("hosts.yml", "all:\n  hosts:\n    h: {ansible_connection: local}\n"), ("site.yml", &site)]);
    let files = || ["one", "two", "three", "four"].into_iter().filter(|f| d.path().join(f).exists()).collect::<Vec<_>>();
    let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "--start-at-task", "deploy*"]);
    r.assert_ok();
    assert_eq!(files(), ["three", "four"], "{}", r.stdout);
    assert!(!r.stdout.contains("PLAY [first]") && r.stdout.contains("Gathering Facts"), "{}", r.stdout);
    // Tags select first, then the start is looked for among what they keep.
    let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "--start-at-task", "two", "--tags", "app"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("among the tasks selected"), "{}", r.stderr);
    std::fs::remove_file(d.path().join("four")).unwrap();
    let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "--start-at-task", "second*", "--tags", "app"]);
    assert_eq!(r.code, 1, "a play's name is not a task's");
    let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "--start-at-task", "deploy app", "--tags", "app"]);
    r.assert_ok();
    assert_eq!(files(), ["three"]);
    let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "--start-at-task", "one"]);
    r.assert_ok();
    assert_eq!(files(), ["one", "two", "three", "four"]);
    let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "--start-at-task", "deploy"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--start-at-task: no task of the playbook is named 'deploy'"), "{}", r.stderr);
}
