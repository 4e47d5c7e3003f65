//! Plays on disjoint hosts run at the same time, unless the later one reads what the earlier
//! one sets; the output still reads play by play. This is the controller's scheduling, so the
//! hosts here are local-connection hosts (both "hosts" are this machine, each play signals the
//! other through files in a temp dir).

mod common;
use common::*;

const INVENTORY: &str = "all:\n  hosts:\n    a: {ansible_connection: local}\n    b: {ansible_connection: local}\n";

#[test]
fn disjoint_plays_run_alongside_and_report_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // Play 1 can only succeed if play 2 runs while play 1 is still waiting.
    let p = project(&[
        ("hosts.yml", INVENTORY),
        (
            "site.yml",
            "- name: first\n  hosts: a\n  gather_facts: false\n  tasks:\n    - name: wait for the second play\n      shell: for i in $(seq 300); do [ -e {{ d }}/from-b ] && exit 0; sleep 0.1; done; exit 1\n\
             - name: second\n  hosts: b\n  gather_facts: false\n  tasks:\n    - name: signal the first play\n      file: {path: '{{ d }}/from-b', state: touch}\n",
        ),
    ]);
    let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "-e", &format!("d={d}")]);
    r.assert_ok();
    // Output is play by play: everything of the first play before the second play's banner.
    let first = r.stdout.find("PLAY [first]").unwrap();
    let waited = r.stdout.find("TASK [wait for the second play]").unwrap();
    let second = r.stdout.find("PLAY [second]").unwrap();
    let signal = r.stdout.find("TASK [signal the first play]").unwrap();
    assert!(first < waited && waited < second && second < signal, "{}", r.stdout);
    assert!(r.stdout[waited..second].contains("changed: [a]"), "{}", r.stdout);
}

#[test]
fn a_play_reading_what_an_earlier_play_registered_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let p = project(&[
        ("hosts.yml", INVENTORY),
        (
            "site.yml",
            "- name: first\n  hosts: a\n  gather_facts: false\n  tasks:\n    - command: echo hello\n      register: greeting\n      changed_when: false\n\
             \x20   - name: the second play has not started\n      shell: sleep 1; test ! -e {{ d }}/b-started\n      changed_when: false\n\
             - name: second\n  hosts: b\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/b-started', state: touch}\n\
             \x20   - copy: {content: \"{{ hostvars['a'].greeting.stdout }}\", dest: '{{ d }}/got'}\n",
        ),
    ]);
    let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "-e", &format!("d={d}")]);
    r.assert_ok();
    assert_eq!(std::fs::read_to_string(dir.path().join("got")).unwrap(), "hello");
}

#[test]
fn plays_sharing_a_host_run_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let p = project(&[
        ("hosts.yml", INVENTORY),
        (
            "site.yml",
            "- name: first\n  hosts: a\n  gather_facts: false\n  tasks:\n    - shell: sleep 1; test ! -e {{ d }}/second-started\n      changed_when: false\n\
             - name: second\n  hosts: a:b\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/second-started', state: touch}\n",
        ),
    ]);
    let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "-e", &format!("d={d}")]);
    r.assert_ok();
}

/// The controller's debug log, reduced to (what, host) pairs for connection-level steps.
fn steps(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|l| {
            let what = ["exec facts", "exec action", "closing connection"].into_iter().find(|w| l.contains(w))?;
            let host = l.split("host=").nth(1)?.split_whitespace().next()?.trim_matches(|c| c == '"' || c == ':');
            Some((what.to_string(), host.to_string()))
        })
        .collect()
}

/// A one-play playbook running `command` on every host with `--forks 1`: its output and
/// its connection-level steps.
fn steps_of_one_fork_run(command: &str) -> (Run, Vec<(String, String)>) {
    let site = format!("- name: p\n  hosts: all\n  tasks:\n    - command: {command}\n");
    let p = project(&[("hosts.yml", INVENTORY), ("site.yml", &site)]);
    let r = provision_env(p.path(), &["-i", "hosts.yml", "site.yml", "--forks", "1"], &[("PROVISION_LOG", "provision=debug")]);
    r.assert_ok();
    let s = steps(&r.stderr);
    (r, s)
}

#[test]
fn without_hostvars_each_host_goes_from_facts_to_tasks_and_is_closed() {
    // --forks 1: the first host gathers facts, runs its task and is closed before the second
    // host is even connected (a big fleet then holds one host's connection at a time).
    let (r, s) = steps_of_one_fork_run("echo {{ inventory_hostname }}");
    let what: Vec<&str> = s.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(what, ["exec facts", "exec action", "closing connection", "exec facts", "exec action", "closing connection"], "{}", r.stderr);
    assert!(s[0].1 == s[2].1 && s[3].1 == s[5].1 && s[0].1 != s[3].1, "{s:?}");
}

#[test]
fn a_play_reading_hostvars_gathers_every_hosts_facts_first() {
    let (r, s) = steps_of_one_fork_run("echo {{ hostvars['a'].ansible_hostname }}");
    let what: Vec<String> = s.into_iter().map(|(w, _)| w).collect();
    assert_eq!(what, ["exec facts", "exec facts", "exec action", "closing connection", "exec action", "closing connection"], "{}", r.stderr);
}

#[test]
fn a_play_reading_hostvars_starts_once_the_earlier_plays_facts_are_in() {
    // The first play reads no hostvars (its hosts go from facts straight to tasks); the second
    // reads the first one's host's facts, so it waits for them, but not for the first play's end.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let p = project(&[
        ("hosts.yml", INVENTORY),
        (
            "site.yml",
            "- name: first\n  hosts: a\n  tasks:\n    - name: wait for the second play\n      shell: for i in $(seq 100); do [ -e {{ d }}/from-b ] && exit 0; sleep 0.1; done; exit 1\n\
             - name: second\n  hosts: b\n  tasks:\n    - include_tasks: second.yml\n",
        ),
        // In its own file: the playbook file is part of every play's text.
        ("second.yml", "- name: signal the first play\n  copy: {content: \"{{ hostvars['a'].ansible_hostname }}\", dest: '{{ d }}/from-b'}\n"),
    ]);
    let r = provision(p.path(), &["-i", "hosts.yml", "site.yml", "-e", &format!("d={d}")]);
    r.assert_ok();
    assert!(!std::fs::read_to_string(dir.path().join("from-b")).unwrap().is_empty());
}
