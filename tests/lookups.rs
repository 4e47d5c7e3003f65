//! Loops and lookups as Ansible playbooks write them (`with_first_found` + `include_vars`,
//! `with_sequence`, `with_nested`, `with_subelements`, the `template`, `pipe` and `password`
//! lookups) and Ansible's templating rules for strings written in YAML, run as a playbook.
//! All of it happens on the controller, so the hosts are local-connection hosts writing into
//! a temp dir.

mod common;
use common::*;

const INVENTORY: &str = "all:\n  hosts:\n    a: {ansible_connection: local, os_family: Debian}\n    b: {ansible_connection: local, os_family: Plan9}\n";

const ROLE_TASKS: &str = r#"
- name: OS-specific variables, with a default
  include_vars: "{{ item }}"
  with_first_found:
    - "{{ os_release_name }}.yml"
    - "{{ os_family }}.yml"
    - default.yml
- name: web hosts, numbered
  copy:
    dest: "{{ d }}/{{ inventory_hostname }}-{{ item }}"
    content: "{{ pkg }}\n"
  with_sequence: start=1 end={{ web_count }} format=web%02d
"#;

const SITE: &str = r#"
- hosts: all
  gather_facts: false
  vars:
    users:
      - {name: alice, keys: [k1, k2]}
      - {name: bob, keys: [k3]}
    app_url: "{{ undefined_base }}/app"
    db_password: "{{ lookup('password', d ~ '/credentials/db length=16 chars=ascii_letters,digits') }}"
  roles: [osvars]
  tasks:
    - name: one line per pair
      lineinfile:
        path: "{{ d }}/{{ inventory_hostname }}-pairs"
        line: "{{ item.0 }}-{{ item.1 }}"
        create: true
      with_nested: [[x, y], [1, 2]]
    - name: one line per key
      lineinfile:
        path: "{{ d }}/{{ inventory_hostname }}-keys"
        line: "{{ item.0.name }} {{ item.1 }}"
        create: true
      with_subelements:
        - "{{ users }}"
        - keys
    - name: YAML strings, Ansible's way
      copy:
        dest: "{{ d }}/{{ inventory_hostname }}-strings"
        content: "{{ 'foo-bar' | regex_replace('(\\w+)-(\\w+)', '\\2 \\1') }}|{{ app_url | default('no url') }}|{{ dict(['a', 'b'] | zip([1, 2])) | to_json }}|{{ lookup('pipe', 'echo from the controller') }}|{{ lookup('template', 'motd.j2') }}"
    - name: every controller file of a folder
      lineinfile:
        path: "{{ d }}/{{ inventory_hostname }}-globbed"
        line: "{{ item | basename }}"
        create: true
      with_fileglob: ["conf/*.conf", "{{ 'conf' }}/*.none"]
    - name: a generated password, the same for every host and every run
      copy:
        dest: "{{ d }}/{{ inventory_hostname }}-password"
        content: "{{ db_password }}"
"#;

fn files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("hosts.yml", INVENTORY),
        ("site.yml", SITE),
        ("roles/osvars/tasks/main.yml", ROLE_TASKS),
        ("roles/osvars/vars/Debian.yml", "pkg: apt\nweb_count: 2\n"),
        ("roles/osvars/vars/default.yml", "pkg: unknown\nweb_count: 1\n"),
        ("files/conf/b.conf", "b"),
        ("files/conf/a.conf", "a"),
        ("files/conf/.hidden.conf", "h"),
        ("templates/motd.j2", "{{ inventory_hostname }} has {{ pkg }}{{ '\\t' }}!"),
    ]
}

#[test]
fn ansible_loops_lookups_and_yaml_strings() {
    let dir = tempfile::tempdir().unwrap();
    let p = project(&files());
    let dv = format!("d={}", dir.path().display());
    let args = ["-i", "hosts.yml", "site.yml", "-e", dv.as_str()];
    let r = provision_env(p.path(), &args, &[]);
    r.assert_ok();
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_else(|e| panic!("{n}: {e}\n{}", r.stdout));
    // with_first_found + include_vars: Debian.yml on a, the default on b (the term naming an
    // undefined variable left out, as Ansible does)
    assert_eq!(read("a-web01"), "apt\n");
    assert_eq!(read("a-web02"), "apt\n");
    assert_eq!(read("b-web01"), "unknown\n");
    assert!(!dir.path().join("b-web02").exists());
    assert_eq!(read("a-pairs"), "x-1\nx-2\ny-1\ny-2\n");
    assert_eq!(read("b-keys"), "alice k1\nalice k2\nbob k3\n");
    assert_eq!(read("a-globbed"), "a.conf\nb.conf\n");
    // backreferences from a double-quoted YAML string; a variable reading an undefined name
    // takes its default; dict(zip); pipe; the template lookup keeps Jinja's escapes
    assert_eq!(read("a-strings"), "bar foo|no url|{\"a\": 1, \"b\": 2}|from the controller|a has apt\t!");
    let pw = read("a-password");
    assert_eq!(pw.len(), 16);
    assert_eq!(read("b-password"), pw);
    assert_eq!(read("credentials/db"), format!("{pw}\n"));
    // the password never shows in the output (a variable named like a secret)
    assert!(!r.stdout.contains(&pw) && !r.stderr.contains(&pw));

    // a second run changes nothing (the password is read back, not generated again)
    let again = provision_env(p.path(), &args, &[]);
    again.assert_ok();
    for (host, rc) in again.recap() {
        assert_eq!(rc.changed, 0, "{host}: {}", again.stdout);
    }
    // and the check run agrees
    let mut check = args.to_vec();
    check.extend(["--check", "--diff"]);
    let c = provision_env(p.path(), &check, &[]);
    c.assert_ok();
    assert!(c.recap().values().all(|rc| rc.changed == 0), "{}", c.stdout);
}

#[test]
fn a_with_loop_of_a_lookup_provision_lacks_names_the_ones_it_has() {
    let p = project(&[("hosts.yml", INVENTORY), ("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: {msg: x}\n      with_inventory_hostnames: all\n")]);
    let r = provision_env(p.path(), &["-i", "hosts.yml", "site.yml"], &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("site.yml:5:7: 'with_inventory_hostnames' is not supported") && r.stderr.contains("sequence"), "{}", r.stderr);
}

#[test]
fn ansible_managed_is_ansibles_text_unless_ansible_cfg_says_otherwise() {
    let files = |cfg: Option<&'static str>| {
        let mut f = vec![
            ("hosts.yml", "all:\n  hosts:\n    a: {ansible_connection: local}\n"),
            ("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - template: {src: t.j2, dest: \"{{ d }}/out\"}\n"),
            ("templates/t.j2", "# {{ ansible_managed }}\nx\n"),
        ];
        if let Some(c) = cfg {
            f.push(("ansible.cfg", c));
        }
        f
    };
    for (cfg, want) in [(None, "# Ansible managed\nx\n"), (Some("[defaults]\nansible_managed = Managed by ops: do not edit\n"), "# Managed by ops: do not edit\nx\n")] {
        let dir = tempfile::tempdir().unwrap();
        let p = project(&files(cfg));
        let dv = format!("d={}", dir.path().display());
        provision_env(p.path(), &["-i", "hosts.yml", "site.yml", "-e", dv.as_str()], &[]).assert_ok();
        assert_eq!(std::fs::read_to_string(dir.path().join("out")).unwrap(), want);
    }
}

#[test]
fn delegation_to_a_local_inventory_host_runs_here_and_an_unreachable_delegate_says_so() {
    // `builder` is the controller; `far` is an SSH host nobody answers for (port 1).
    let inv = "all:\n  hosts:\n    a: {ansible_connection: local}\n    builder: {ansible_connection: local}\n    far: {ansible_host: 127.0.0.1, ansible_port: 1}\n";
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n    - command: echo local\n      delegate_to: builder\n      register: r\n    - copy: {dest: \"{{ d }}/r\", content: \"{{ r.stdout }}\"}\n    - command: echo far\n      delegate_to: \"{{ 'far' }}\"\n    - copy: {dest: \"{{ d }}/after\", content: x}\n";
    let dir = tempfile::tempdir().unwrap();
    let p = project(&[("hosts.yml", inv), ("site.yml", site)]);
    let dv = format!("d={}", dir.path().display());
    let r = provision_env(p.path(), &["-i", "hosts.yml", "site.yml", "-e", dv.as_str()], &[]);
    assert_ne!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(std::fs::read_to_string(dir.path().join("r")).unwrap(), "local");
    assert!(r.stdout.contains("fatal: [a]: UNREACHABLE! => delegate_to far: "), "{}", r.stdout);
    assert!(!dir.path().join("after").exists(), "the host went on after its delegate was unreachable");
    assert_eq!(r.recap()["a"].unreachable, 1, "{}", r.stdout);
}
