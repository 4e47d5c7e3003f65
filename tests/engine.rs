//! The engine end to end on real test hosts over real SSH, with both transports: converge,
//! second run changes nothing, --check leaves hosts byte-for-byte unchanged, --diff shows
//! diffs, targeted runs, unreachable hosts, input errors.

mod common;
use common::*;
use std::sync::Mutex;

/// Tests in this file share one set of hosts; run them one at a time.
static HOSTS: Mutex<Option<Testbed>> = Mutex::new(None);

fn with_hosts<F: FnOnce(&Testbed)>(f: F) {
    let mut guard = HOSTS.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = Some(Testbed::up("en", 2900, 2));
    }
    f(guard.as_ref().unwrap());
}

const SITE: &str = r#"
- name: demo app
  hosts: all
  vars:
    base: /srv/demo
    motd_lines: [one, two]
    db_password: "s3cr3t-Pa55word"
  roles:
    - {role: demo, tags: [demo]}
  tasks:
    - name: read back the config
      ansible.builtin.slurp: {src: "{{ base }}/conf/app.conf"}
      register: conf
    - name: config has the port
      assert:
        that:
          - "'port = ' ~ app_port in (conf.content | b64decode)"
"#;

const TASKS: &str = r#"
- name: base directory
  file: {path: "{{ base }}", state: directory, mode: "0755"}
- name: sub directories
  file: {path: "{{ base }}/{{ item }}", state: directory, mode: "0750"}
  loop: [conf, data, logs]
- name: config from template
  template: {src: app.conf.j2, dest: "{{ base }}/conf/app.conf", mode: "0640"}
  notify: note config change
  tags: [config]
- name: static file
  copy: {src: hello.txt, dest: "{{ base }}/data/hello.txt", mode: "0644"}
- name: inline content
  copy:
    content: "{{ motd_lines | join('\n') }}\n"
    dest: "{{ base }}/motd"
- name: link to motd
  file: {src: "{{ base }}/motd", dest: "{{ base }}/motd.link", state: link}
- name: initialise once
  command: touch {{ base }}/data/initialised
  args: {creates: "{{ base }}/data/initialised"}
- name: look at the config
  stat: {path: "{{ base }}/conf/app.conf"}
  register: st
- name: remember its mode
  set_fact: {conf_mode: "{{ st.stat.mode }}"}
- name: facts and set_fact are usable
  assert: {that: ["conf_mode == '0640'", "ansible_distribution == 'Debian'", "inventory_hostname in groups['all']"]}
- name: count motd lines
  shell: "wc -l < {{ base }}/motd"
  register: lines
  changed_when: false
- name: show it
  debug: {msg: "motd has {{ lines.stdout | trim }} lines"}
- name: secret file
  copy: {content: "{{ db_password }}", dest: "{{ base }}/conf/pw", mode: "0600"}
  no_log: true
- name: skipped on purpose
  file: {path: /nonexistent/never, state: directory}
  when: ansible_distribution != 'Debian'
"#;

fn demo_project() -> tempfile::TempDir {
    project(&[
        ("site.yml", SITE),
        ("roles/demo/tasks/main.yml", TASKS),
        ("roles/demo/defaults/main.yml", "app_port: 8080\n"),
        ("roles/demo/templates/app.conf.j2", "# {{ ansible_managed }}\n[server]\nhost = {{ inventory_hostname }}\nport = {{ app_port }}\n{% for l in motd_lines %}\nline = {{ l }}\n{% endfor %}\n"),
        ("roles/demo/files/hello.txt", "hello from provision\n"),
        ("roles/demo/handlers/main.yml", "- name: note config change\n  command: touch {{ base }}/logs/config-changed\n"),
    ])
}

fn full_cycle(tb: &Testbed, transport: &str) {
    tb.reset(&["web1", "search1"]);
    let p = demo_project();
    let inv = tb.inventory();
    let inv = inv.to_str().unwrap();
    let base = ["-i", inv, "site.yml", "--transport", transport];

    // --check on fresh hosts: predicts changes, changes nothing.
    let before = (tb.snapshot("web1"), tb.snapshot("search1"));
    let check = provision(p.path(), &[&base[..], &["--check", "--diff"]].concat());
    assert_eq!(check.code, 0, "check failed:\n{}\n{}", check.stdout, check.stderr);
    assert!(check.total_changed() > 0, "check predicted no change on fresh hosts:\n{}", check.stdout);
    assert!(check.stdout.contains("+port = 8080"), "diff of the template missing:\n{}", check.stdout);
    assert_eq!((tb.snapshot("web1"), tb.snapshot("search1")), before, "--check changed a host");
    assert!(!check.stdout.contains("s3cr3t-Pa55word"), "secret printed:\n{}", check.stdout);

    // Converge.
    let first = provision(p.path(), &base);
    first.assert_ok();
    assert!(first.total_changed() > 0);
    assert!(!first.stdout.contains("s3cr3t-Pa55word") && !first.stderr.contains("s3cr3t-Pa55word"));
    let conf = tb.ssh_ok("web1", "cat /srv/demo/conf/app.conf; stat -c '%a %U' /srv/demo/conf/app.conf /srv/demo/conf; readlink /srv/demo/motd.link; cat /srv/demo/data/hello.txt; test -f /srv/demo/logs/config-changed && echo handler-ran");
    assert!(conf.contains("host = en-web1") && conf.contains("port = 8080") && conf.contains("line = two"), "{conf}");
    assert!(conf.contains("640 root") && conf.contains("750 root") && conf.contains("/srv/demo/motd\n") && conf.contains("hello from provision") && conf.contains("handler-ran"), "{conf}");
    assert!(first.stdout.contains("motd has 2 lines"), "{}", first.stdout);
    assert!(first.stdout.contains("RUNNING HANDLER [demo : note config change]"));

    // Second run: nothing changes; check mode agrees.
    provision(p.path(), &base).assert_no_changes();
    let snap = tb.snapshot("web1");
    provision(p.path(), &[&base[..], &["--check", "--diff"]].concat()).assert_no_changes();
    assert_eq!(tb.snapshot("web1"), snap);

    // One variable changes exactly one file and fires only its handler, on the limited host.
    let r = provision(p.path(), &[&base[..], &["-e", "app_port=9090", "--limit", &tb.host("web1"), "--diff"]].concat());
    r.assert_ok();
    let recap = r.recap();
    assert_eq!(recap.len(), 1, "--limit ran on other hosts:\n{}", r.stdout);
    assert_eq!(r.changed_tasks(&tb.host("web1")), vec!["demo : config from template", "demo : note config change"], "{}", r.stdout);
    assert!(r.stdout.contains("-port = 8080") && r.stdout.contains("+port = 9090"), "{}", r.stdout);

    // Tags: only the tagged task runs.
    let t = provision(p.path(), &[&base[..], &["--tags", "config", "--limit", &tb.host("web1")]].concat());
    t.assert_ok();
    assert!(t.stdout.contains("TASK [demo : config from template]"));
    assert!(!t.stdout.contains("TASK [demo : static file]"), "{}", t.stdout);
    assert_eq!(t.changed_tasks(&tb.host("web1")), vec!["demo : config from template", "demo : note config change"], "back to 8080:\n{}", t.stdout);
}

#[test]
fn converge_idempotence_check_and_targeting_over_openssh_and_russh() {
    with_hosts(|tb| {
        full_cycle(tb, "openssh");
        full_cycle(tb, "russh");
    });
}

#[test]
fn unreachable_host_is_reported_and_others_complete() {
    with_hosts(|tb| {
        let inv = std::fs::read_to_string(tb.inventory()).unwrap();
        let inv = inv.replace("    web:\n      hosts:\n", "    web:\n      hosts:\n        ghost: {ansible_host: 127.0.0.1, ansible_port: 1}\n");
        let p = project(&[("hosts.yml", &inv), ("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: 'true'\n      changed_when: false\n")]);
        let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "-T", "3"]);
        assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
        let recap = r.recap();
        assert_eq!(recap["ghost"].unreachable, 1, "{}", r.stdout);
        assert_eq!(recap[&tb.host("web1")].ok, 1, "{}", r.stdout);
        assert_eq!(recap[&tb.host("search1")].ok, 1);
    });
}

#[test]
fn failures_and_input_errors() {
    with_hosts(|tb| {
        let inv = tb.inventory();
        let inv = inv.to_str().unwrap();
        // Unknown module: input error, exit 1, file:line:col, nothing run.
        let p = project(&[("site.yml", "- hosts: all\n  tasks:\n    - name: typo\n      fiel: {path: /x}\n")]);
        let r = provision(p.path(), &["-i", inv, "site.yml"]);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("site.yml:4:7") && r.stderr.contains("fiel"), "{}", r.stderr);
        // Unknown parameter.
        let p = project(&[("site.yml", "- hosts: all\n  tasks:\n    - file: {path: /x, stat: directory}\n")]);
        let r = provision(p.path(), &["-i", inv, "site.yml"]);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("'stat'") && r.stderr.contains("state"), "{}", r.stderr);
        // Undefined variable: the task fails on every host, exit 2, message names it.
        let p = project(&[("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: uses undefined\n      file: {path: \"/tmp/{{ nope_var }}\", state: directory}\n")]);
        let r = provision(p.path(), &["-i", inv, "site.yml"]);
        assert_eq!(r.code, 2, "{}", r.stdout);
        assert!(r.stdout.contains("nope_var"), "{}", r.stdout);
        // A command that fails, and one whose failure is ignored.
        let p = project(&[("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: 'false'\n      ignore_errors: true\n    - shell: exit 3\n")]);
        let r = provision(p.path(), &["-i", inv, "site.yml"]);
        assert_eq!(r.code, 2);
        assert!(r.stdout.contains("...ignoring") && r.stdout.contains("non-zero return code"), "{}", r.stdout);
        // ... and what the host said, without -vv
        assert!(r.stdout.contains("FAILED! => non-zero return code\n    rc: 3\n"), "{}", r.stdout);
        let p = project(&[("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: ls /nonexistent-dir\n")]);
        let r = provision(p.path(), &["-i", inv, "site.yml"]);
        assert_eq!(r.code, 2);
        assert!(r.stdout.contains("    rc: 2\n    stderr:\n      ls: cannot access '/nonexistent-dir': No such file or directory"), "{}", r.stdout);
        // A private key placed with copy: --diff and -vv show that a key changed, never the key.
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";
        let p = project(&[("site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: {src: tls.key, dest: /root/engine-tls.key, mode: '0600'}\n"), ("tls.key", key)]);
        let r = provision(p.path(), &["-i", inv, "site.yml", "--diff", "-vv"]);
        r.assert_ok();
        assert!(r.stdout.contains("+-----BEGIN OPENSSH PRIVATE KEY-----") && r.stdout.contains("+********"), "{}", r.stdout);
        assert!(!r.stdout.contains("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"), "{}", r.stdout);
        // Malformed YAML.
        let p = project(&[("site.yml", "- hosts: all\n  tasks:\n    - name: x\n     file: {}\n")]);
        let r = provision(p.path(), &["-i", inv, "site.yml"]);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("site.yml:"), "{}", r.stderr);
    });
}

#[test]
fn become_user_and_json_output() {
    with_hosts(|tb| {
        let inv = tb.inventory();
        let inv = inv.to_str().unwrap();
        let site = "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: who\n      command: id -un\n      become: true\n      become_user: nobody\n      register: who\n      changed_when: false\n    - assert: {that: \"who.stdout == 'nobody'\"}\n";
        let p = project(&[("site.yml", site)]);
        let r = provision(p.path(), &["-i", inv, "site.yml", "--output", "json"]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let events: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
        assert!(events.iter().any(|e| e["event"] == "recap"));
        assert!(events.iter().any(|e| e["event"] == "result" && e["status"] == "ok" && e["task"] == "who"));
        // a result names its task's slot, as the task event does (names needn't be unique)
        let slot = |kind: &str, name: &str| events.iter().find(|e| e["event"] == kind && (e["name"] == name || e["task"] == name)).map(|e| e["slot"].clone());
        assert_eq!(slot("task", "who"), Some(serde_json::json!([1, 0, 0])), "{}", r.stdout);
        assert_eq!(slot("result", "who"), Some(serde_json::json!([1, 0, 0])), "{}", r.stdout);
    });
}

#[test]
fn apt_tasks_of_a_play_share_one_package_transaction() {
    with_hosts(|tb| {
        tb.reset(&["web1"]);
        let inv = tb.inventory();
        let inv = inv.to_str().unwrap();
        let web1 = tb.host("web1");
        let site = "- hosts: all\n  gather_facts: false\n  become: true\n  tasks:\n\
            \x20   - name: first packages\n      apt: {name: [htop], state: present}\n\
            \x20   - name: a directory\n      file: {path: /srv/pkgtest, state: directory}\n\
            \x20   - name: more packages\n      apt: {name: [acl, rsync]}\n      notify: packages arrived\n\
            \x20   - name: a command stops the merging\n      command: 'true'\n      changed_when: false\n\
            \x20   - name: packages after the command\n      apt: {name: [unzip]}\n\
            \x20 handlers:\n    - name: packages arrived\n      copy: {content: \"yes\\n\", dest: /srv/pkgtest/handler-ran}\n";
        let p = project(&[("site.yml", site)]);
        let r = provision(p.path(), &["-i", inv, "site.yml", "--limit", &web1, "-v"]);
        r.assert_ok();
        assert_eq!(r.changed_tasks(&web1), ["first packages", "a directory", "more packages", "packages after the command", "packages arrived"], "{}", r.stdout);
        assert!(r.stdout.contains("installed in the package transaction of 'first packages'"), "{}", r.stdout);
        // The host saw one apt-get run for the first two tasks and another after the command.
        let history = tb.ssh_ok("web1", "grep '^Commandline:' /var/log/apt/history.log");
        let installs: Vec<&str> = history.lines().filter(|l| l.contains(" install ")).collect();
        assert_eq!(installs.len(), 2, "{history}");
        assert!(installs[0].ends_with("-- htop acl rsync"), "{history}");
        assert!(installs[1].ends_with("-- unzip"), "{history}");
        assert_eq!(tb.ssh_ok("web1", "cat /srv/pkgtest/handler-ran"), "yes\n");
        // Nothing left to do.
        provision(p.path(), &["-i", inv, "site.yml", "--limit", &web1]).assert_no_changes();
    });
}
