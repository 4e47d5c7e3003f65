//! How plays follow each other: one after another as in Ansible, a play whose hosts all fail
//! (or whose failures are fatal: `any_errors_fatal`, `max_fail_percentage`) ends the run,
//! `serial` batches; with `--overlap-plays`, plays on disjoint hosts run at the same time
//! unless the later one reads what the earlier one sets, and the output still reads play by
//! play. This is the controller's scheduling, so the hosts here are local-connection hosts
//! (all "hosts" are this machine; plays and hosts leave marks in files of a temp dir).

mod common;
use common::*;

const INVENTORY: &str = "all:\n  hosts:\n    a: {ansible_connection: local}\n    b: {ansible_connection: local}\n";
const INVENTORY3: &str = "all:\n  hosts:\n    a: {ansible_connection: local}\n    b: {ansible_connection: local}\n    c: {ansible_connection: local}\n";

/// Run the project `files` (`site.yml` and any file it includes) on hosts a, b, c, with
/// `-e d=` a fresh temp dir where the plays leave their marks; extra `args` and environment.
fn run_project(files: &[(&str, &str)], args: &[&str], env: &[(&str, &str)]) -> (Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut all_files = vec![("hosts.yml", INVENTORY3)];
    all_files.extend_from_slice(files);
    let p = project(&all_files);
    let dv = format!("d={}", dir.path().display());
    let mut all = vec!["-i", "hosts.yml", "site.yml", "-e", dv.as_str()];
    all.extend_from_slice(args);
    (provision_env(p.path(), &all, env), dir)
}

/// [`run_project`] of one playbook.
fn run3(site: &str, args: &[&str]) -> (Run, tempfile::TempDir) {
    run_project(&[("site.yml", site)], args, &[])
}

fn exists(dir: &tempfile::TempDir, name: &str) -> bool {
    dir.path().join(name).exists()
}

/// Nanoseconds since the epoch a task wrote into `name`.
fn stamp(dir: &tempfile::TempDir, name: &str) -> u128 {
    std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}")).trim().parse().unwrap()
}

#[test]
fn plays_on_disjoint_hosts_run_one_after_another_by_default() {
    // As in Ansible: the second play (another host, reading nothing from the first) starts
    // only when the first has ended. Play 1 fails if play 2 started while it waited.
    let (r, dir) = run3(
        "- name: first\n  hosts: a\n  gather_facts: false\n  tasks:\n    - shell: sleep 1; test ! -e {{ d }}/second-started\n\
         - name: second\n  hosts: b\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/second-started', state: touch}\n",
        &[],
    );
    r.assert_ok();
    assert!(exists(&dir, "second-started"));
}

#[test]
fn the_environment_can_turn_overlapping_plays_on() {
    // With PROVISION_OVERLAP_PLAYS=1 the first play can only succeed if the second one runs
    // while it waits; with =false it can only succeed if the second one waits for it.
    let second = "- name: second\n  hosts: b\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/second-started', state: touch}\n";
    let waits_for_second = "- name: first\n  hosts: a\n  gather_facts: false\n  tasks:\n    - shell: for i in $(seq 300); do [ -e {{ d }}/second-started ] && exit 0; sleep 0.1; done; exit 1\n";
    let second_not_started = "- name: first\n  hosts: a\n  gather_facts: false\n  tasks:\n    - shell: sleep 1; test ! -e {{ d }}/second-started\n";
    run_project(&[("site.yml", &format!("{waits_for_second}{second}"))], &[], &[("PROVISION_OVERLAP_PLAYS", "1")]).0.assert_ok();
    run_project(&[("site.yml", &format!("{second_not_started}{second}"))], &[], &[("PROVISION_OVERLAP_PLAYS", "false")]).0.assert_ok();
}

#[test]
fn production_is_not_touched_when_every_qa_host_failed() {
    // Promote from QA to production: the QA play's only host fails its smoke test, so the run
    // ends there (Ansible's "NO MORE HOSTS LEFT") and the production play never starts.
    let site = "- name: qa\n  hosts: a\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/qa-deployed', state: touch}\n    - name: smoke test\n      command: 'false'\n\
                - name: production\n  hosts: b:c\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/{{ inventory_hostname }}-deployed', state: touch}\n";
    let (r, dir) = run3(site, &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(exists(&dir, "qa-deployed"));
    assert!(!exists(&dir, "b-deployed") && !exists(&dir, "c-deployed"), "production was deployed\n{}", r.stdout);
    assert!(r.stdout.contains("NO MORE HOSTS LEFT"), "{}", r.stdout);
    assert!(!r.stdout.contains("PLAY [production]"), "{}", r.stdout);
    let recap = r.recap();
    assert_eq!(recap["a"].failed, 1, "{}", r.stdout);
    assert!(!recap.contains_key("b") && !recap.contains_key("c"), "{}", r.stdout);
}

#[test]
fn check_mode_fails_qa_on_what_it_can_know_and_not_on_what_it_guessed() {
    // In check mode, after a predicted change, an assert on a variable given with -e fails as
    // it would for real (and production is not predicted), while an assert on the result of a
    // command that check mode didn't run cannot be predicted (skipped, production goes on).
    let site = "- name: qa\n  hosts: a\n  gather_facts: false\n  tasks:\n    - copy: {content: \"x\\n\", dest: '{{ d }}/qa.txt'}\n\
                \x20   - command: cat {{ d }}/qa.txt\n      register: smoke\n      changed_when: false\n\
                \x20   - name: smoke output\n      assert: {that: \"smoke.stdout == 'x'\"}\n\
                \x20   - name: release gate\n      assert: {that: \"release is version('2.0', '<')\"}\n\
                - name: production\n  hosts: b\n  gather_facts: false\n  tasks:\n    - debug: {msg: deploy}\n";
    let (r, dir) = run3(site, &["--check", "-e", "release=2.5"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("cannot predict in check mode") && r.stdout.contains("smoke"), "{}", r.stdout);
    assert!(r.stdout.contains("fatal: [a]: FAILED!") && r.stdout.contains("release is version"), "{}", r.stdout);
    assert!(!r.stdout.contains("PLAY [production]"), "{}", r.stdout);
    assert!(!exists(&dir, "qa.txt"), "check mode wrote a file");
    let (r, _) = run3(site, &["--check", "-e", "release=1.5"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PLAY [production] (check mode)"), "{}", r.stdout);
}

#[test]
fn with_overlap_plays_a_play_of_fatal_failures_is_still_waited_for() {
    // --overlap-plays lets a disjoint play run alongside, but not past a play that says its
    // failures stop everything: production waits for QA, and QA failing ends the run.
    let site = "- name: qa\n  hosts: a\n  gather_facts: false\n  any_errors_fatal: true\n  tasks:\n    - shell: sleep 1; exit 1\n\
                - name: production\n  hosts: b\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/b-deployed', state: touch}\n";
    let (r, dir) = run3(site, &["--overlap-plays"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(!exists(&dir, "b-deployed"), "{}", r.stdout);
    // and it runs once QA passed
    let (r, dir) = run3(&site.replace("exit 1", "exit 0"), &["--overlap-plays"]);
    r.assert_ok();
    assert!(exists(&dir, "b-deployed"));
}

#[test]
fn hosts_that_failed_sit_out_later_plays_and_the_others_go_on() {
    let (r, dir) = run3(
        "- name: first\n  hosts: a:b\n  gather_facts: false\n  tasks:\n    - command: \"{{ 'false' if inventory_hostname == 'a' else 'true' }}\"\n\
         - name: second\n  hosts: all\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/{{ inventory_hostname }}-second', state: touch}\n",
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(!exists(&dir, "a-second") && exists(&dir, "b-second") && exists(&dir, "c-second"), "{}", r.stdout);
    assert!(!r.stdout.contains("NO MORE HOSTS LEFT"), "{}", r.stdout);
}

#[test]
fn any_errors_fatal_stops_the_other_hosts_after_their_current_task() {
    // a fails once b is in its first task (2 s): b finishes that task, runs no other, and
    // the next play doesn't start.
    let (r, dir) = run3(
        "- name: deploy\n  hosts: a:b\n  gather_facts: false\n  any_errors_fatal: true\n  vars:\n\
         \x20   on_a: for i in $(seq 300); do [ -e {{ d }}/b-started ] && exit 1; sleep 0.1; done; exit 2\n\
         \x20   on_b: touch {{ d }}/b-started; sleep 2\n  tasks:\n\
         \x20   - shell: \"{{ on_a if inventory_hostname == 'a' else on_b }}\"\n\
         \x20   - file: {path: '{{ d }}/{{ inventory_hostname }}-second-task', state: touch}\n\
         - name: after\n  hosts: c\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/c-after', state: touch}\n",
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(!exists(&dir, "b-second-task") && !exists(&dir, "a-second-task") && !exists(&dir, "c-after"), "{}", r.stdout);
    assert!(r.stdout.contains("NO MORE HOSTS LEFT"), "{}", r.stdout);
    let recap = r.recap();
    assert_eq!((recap["a"].failed, recap["b"].failed, recap["b"].changed), (1, 0, 1), "{}", r.stdout);
}

#[test]
fn any_errors_fatal_on_a_block_or_task_counts_only_there() {
    // Fatal only for the block's task: a's failure in a non-fatal task lets b go on.
    let site = "- name: deploy\n  hosts: a:b\n  gather_facts: false\n  tasks:\n\
                \x20   - block:\n        - command: 'true'\n      any_errors_fatal: true\n\
                \x20   - command: \"{{ 'false' if inventory_hostname == 'a' else 'true' }}\"\n\
                \x20   - file: {path: '{{ d }}/{{ inventory_hostname }}-last', state: touch}\n";
    let (r, dir) = run3(site, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(!exists(&dir, "a-last") && exists(&dir, "b-last"), "{}", r.stdout);
}

#[test]
fn max_fail_percentage_ends_the_run_only_when_exceeded() {
    let site = |pct: u32| {
        format!(
            "- name: deploy\n  hosts: all\n  gather_facts: false\n  max_fail_percentage: {pct}\n  tasks:\n\
             \x20   - command: \"{{{{ 'false' if inventory_hostname == 'a' else 'true' }}}}\"\n\
             - name: after\n  hosts: all\n  gather_facts: false\n  tasks:\n    - file: {{path: '{{{{ d }}}}/{{{{ inventory_hostname }}}}-after', state: touch}}\n"
        )
    };
    // 1 of 3 hosts failed: 33% is within 40% ...
    let (r, dir) = run3(&site(40), &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(exists(&dir, "b-after") && exists(&dir, "c-after") && !exists(&dir, "a-after"), "{}", r.stdout);
    // ... and more than 30%
    let (r, dir) = run3(&site(30), &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(!exists(&dir, "b-after") && !exists(&dir, "c-after"), "{}", r.stdout);
    assert!(r.stdout.contains("NO MORE HOSTS LEFT"), "{}", r.stdout);
}

#[test]
fn serial_runs_the_play_batch_after_batch() {
    // serial: 1 -> a, then b, then c, each host's whole play before the next one starts.
    let (r, dir) = run3(
        "- name: rolling\n  hosts: all\n  gather_facts: false\n  serial: 1\n  tasks:\n\
         \x20   - shell: date +%s%N > {{ d }}/{{ inventory_hostname }}.start; sleep 0.3\n\
         \x20   - shell: date +%s%N > {{ d }}/{{ inventory_hostname }}.end\n\
         \x20   - copy: {content: \"{{ ansible_play_batch | join(',') }}/{{ ansible_play_hosts_all | join(',') }}\", dest: '{{ d }}/{{ inventory_hostname }}.batch'}\n",
        &[],
    );
    r.assert_ok();
    assert!(stamp(&dir, "a.end") <= stamp(&dir, "b.start") && stamp(&dir, "b.end") <= stamp(&dir, "c.start"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(dir.path().join("b.batch")).unwrap(), "b/a,b,c");
    assert_eq!(r.stdout.matches("PLAY [rolling]").count(), 3, "{}", r.stdout);
}

#[test]
fn a_serial_batch_that_fails_stops_the_rollout() {
    // Templated batch size (2): a and b fail in the first batch, c is never touched.
    let (r, dir) = run3(
        "- name: rolling\n  hosts: all\n  gather_facts: false\n  serial: \"{{ batch }}\"\n  tasks:\n\
         \x20   - file: {path: '{{ d }}/{{ inventory_hostname }}-touched', state: touch}\n\
         \x20   - command: 'false'\n",
        &["-e", "batch=2"],
    );
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(exists(&dir, "a-touched") && exists(&dir, "b-touched") && !exists(&dir, "c-touched"), "{}", r.stdout);
    assert_eq!(r.stdout.matches("PLAY [rolling]").count(), 1, "{}", r.stdout);
    assert!(r.stdout.contains("NO MORE HOSTS LEFT"), "{}", r.stdout);
}

#[test]
fn with_overlap_plays_disjoint_plays_run_alongside_and_report_in_order() {
    // Play 1 can only succeed if play 2 runs while play 1 is still waiting.
    let (r, _dir) = run3(
        "- name: first\n  hosts: a\n  gather_facts: false\n  tasks:\n    - name: wait for the second play\n      shell: for i in $(seq 300); do [ -e {{ d }}/from-b ] && exit 0; sleep 0.1; done; exit 1\n\
         - name: second\n  hosts: b\n  gather_facts: false\n  tasks:\n    - name: signal the first play\n      file: {path: '{{ d }}/from-b', state: touch}\n",
        &["--overlap-plays"],
    );
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
    let (r, dir) = run3(
        "- name: first\n  hosts: a\n  gather_facts: false\n  tasks:\n    - command: echo hello\n      register: greeting\n      changed_when: false\n\
             \x20   - name: the second play has not started\n      shell: sleep 1; test ! -e {{ d }}/b-started\n      changed_when: false\n\
             - name: second\n  hosts: b\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/b-started', state: touch}\n\
         \x20   - copy: {content: \"{{ hostvars['a'].greeting.stdout }}\", dest: '{{ d }}/got'}\n",
        &["--overlap-plays"],
    );
    r.assert_ok();
    assert_eq!(std::fs::read_to_string(dir.path().join("got")).unwrap(), "hello");
}

#[test]
fn plays_sharing_a_host_run_in_order() {
    run3(
        "- name: first\n  hosts: a\n  gather_facts: false\n  tasks:\n    - shell: sleep 1; test ! -e {{ d }}/second-started\n      changed_when: false\n\
         - name: second\n  hosts: a:b\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/second-started', state: touch}\n",
        &["--overlap-plays"],
    )
    .0
    .assert_ok();
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
    let (r, dir) = run_project(
        &[
            (
                "site.yml",
                "- name: first\n  hosts: a\n  tasks:\n    - name: wait for the second play\n      shell: for i in $(seq 100); do [ -e {{ d }}/from-b ] && exit 0; sleep 0.1; done; exit 1\n\
                 - name: second\n  hosts: b\n  tasks:\n    - include_tasks: second.yml\n",
            ),
            // In its own file: the playbook file is part of every play's text.
            ("second.yml", "- name: signal the first play\n  copy: {content: \"{{ hostvars['a'].ansible_hostname }}\", dest: '{{ d }}/from-b'}\n"),
        ],
        &["--overlap-plays"],
        &[],
    );
    r.assert_ok();
    assert!(!std::fs::read_to_string(dir.path().join("from-b")).unwrap().is_empty());
}

#[test]
fn a_serial_that_is_not_a_batch_size_fails_the_play_with_its_location() {
    let (r, dir) = run3(
        "- name: rolling\n  hosts: all\n  gather_facts: false\n  serial: \"{{ batch }}\"\n  tasks:\n    - file: {path: '{{ d }}/{{ inventory_hostname }}', state: touch}\n",
        &["-e", "batch=lots"],
    );
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stdout.contains("site.yml:1:") && r.stdout.contains("serial: expected a number of hosts"), "{}", r.stdout);
    assert!(!exists(&dir, "a") && !exists(&dir, "b") && !exists(&dir, "c"));
}

#[test]
fn meta_end_host_follows_its_when() {
    let (r, dir) = run3(
        "- name: p\n  hosts: a:b\n  gather_facts: false\n  tasks:\n    - meta: end_host\n      when: inventory_hostname == 'a'\n\
         \x20   - file: {path: '{{ d }}/{{ inventory_hostname }}-after', state: touch}\n",
        &[],
    );
    r.assert_ok();
    assert!(!exists(&dir, "a-after") && exists(&dir, "b-after"), "{}", r.stdout);
}

#[test]
fn meta_end_play_ends_the_play_for_every_host_and_the_run_goes_on() {
    // a ends the play while b is inside its first task: b runs no further task, nothing
    // failed, and the next play runs.
    let (r, dir) = run3(
        "- name: p\n  hosts: a:b\n  gather_facts: false\n  vars:\n\
         \x20   on_a: for i in $(seq 300); do [ -e {{ d }}/b-started ] && exit 0; sleep 0.1; done; exit 1\n\
         \x20   on_b: touch {{ d }}/b-started; sleep 2\n  tasks:\n\
         \x20   - shell: \"{{ on_a if inventory_hostname == 'a' else on_b }}\"\n\
         \x20   - meta: end_play\n      when: inventory_hostname == 'a'\n\
         \x20   - file: {path: '{{ d }}/{{ inventory_hostname }}-third', state: touch}\n\
         - name: next\n  hosts: c\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/c-next', state: touch}\n",
        &[],
    );
    r.assert_ok();
    assert!(!exists(&dir, "a-third") && !exists(&dir, "b-third") && exists(&dir, "c-next"), "{}", r.stdout);
}

#[test]
fn meta_end_play_is_where_every_host_stops_however_far_behind_or_ahead_it_was() {
    // As in Ansible's linear strategy: b is still sleeping in the first task when a reaches
    // the end. Whichever host's condition ends the play, b still runs the task before the
    // end, and neither runs the task after it (a, which answers first, may not run ahead
    // while b's answer is pending).
    for ender in ["a", "b"] {
        let (r, dir) = run3(
            &format!(
                "- name: p\n  hosts: a:b\n  gather_facts: false\n  tasks:\n\
                 \x20   - shell: sleep {{{{ 1 if inventory_hostname == 'b' else 0 }}}}\n\
                 \x20   - file: {{path: '{{{{ d }}}}/{{{{ inventory_hostname }}}}-before', state: touch}}\n\
                 \x20   - meta: end_play\n      when: inventory_hostname == '{ender}'\n\
                 \x20   - file: {{path: '{{{{ d }}}}/{{{{ inventory_hostname }}}}-after', state: touch}}\n"
            ),
            &[],
        );
        r.assert_ok();
        assert!(exists(&dir, "a-before") && exists(&dir, "b-before"), "{ender} ended the play: {}", r.stdout);
        assert!(!exists(&dir, "a-after") && !exists(&dir, "b-after"), "{ender} ended the play: {}", r.stdout);
        assert!(r.stdout.lines().any(|l| l.starts_with("b ") && l.contains(": ok=2    changed=2 ")), "{}", r.stdout);
    }
}

#[test]
fn async_with_poll_runs_the_task_within_its_time_limit() {
    // The first job finishes in time; the second is stopped at its limit (its `touch` never
    // runs), fails with Ansible's message and the host goes on (ignore_errors).
    let (r, dir) = run3(
        "- hosts: a\n  gather_facts: false\n  tasks:\n\
         \x20   - shell: sleep 1; touch {{ d }}/in-time\n      async: 20\n      poll: 5\n\
         \x20   - shell: sleep 4; touch {{ d }}/late\n      async: 1\n      poll: 1\n      ignore_errors: true\n      register: late\n\
         \x20   - copy: {dest: '{{ d }}/msg', content: '{{ late.msg }}'}\n",
        &[],
    );
    r.assert_ok();
    assert!(exists(&dir, "in-time"), "{}", r.stdout);
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(!exists(&dir, "late"), "the job went on past its limit");
    assert_eq!(std::fs::read_to_string(dir.path().join("msg")).unwrap(), "async task did not complete within the requested time - 1s");
}

#[test]
fn async_with_poll_0_starts_a_job_that_async_status_reads_later() {
    // The job waits for a flag a later task makes: so it is still running when it is first
    // asked about, and the host went on without it. Then: its result once finished (a failed
    // command, ignored), a job stopped by its time limit, a task with nothing to run
    // (`creates`), cleanup, and a job id that is gone.
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - shell: while [ ! -e {{ d }}/go ]; do sleep 0.1; done; cat; echo err >&2; exit 3\n      args: {stdin: hello}\n      async: 30\n      poll: 0\n      register: job\n\
                \x20   - async_status: {jid: '{{ job.ansible_job_id }}'}\n      register: early\n\
                \x20   - file: {path: '{{ d }}/go', state: touch}\n\
                \x20   - async_status: {jid: '{{ job.ansible_job_id }}'}\n      register: done\n      until: done is finished\n      retries: 50\n      delay: 1\n      ignore_errors: true\n\
                \x20   - copy: {dest: '{{ d }}/result', content: \"{{ job.changed }} {{ job.finished }} {{ early.finished }} {{ done.finished }} {{ done.rc }} {{ done.stdout }} {{ done.stderr }} {{ done.failed }} {{ done.msg }}\\n\"}\n\
                \x20   - command: sleep 30\n      async: 1\n      poll: 0\n      register: slow\n\
                \x20   - async_status: {jid: '{{ slow.ansible_job_id }}'}\n      register: slow_done\n      until: slow_done is finished\n      retries: 20\n      delay: 1\n      ignore_errors: true\n\
                \x20   - command: {cmd: 'true', creates: '{{ d }}'}\n      async: 10\n      poll: 0\n      register: nothing\n\
                \x20   - async_status: {jid: '{{ nothing.ansible_job_id }}'}\n      register: nothing_done\n\
                \x20   - async_status: {jid: '{{ item }}', mode: cleanup}\n      loop: ['{{ job.ansible_job_id }}', '{{ slow.ansible_job_id }}', '{{ nothing.ansible_job_id }}']\n      register: erased\n\
                \x20   - async_status: {jid: '{{ job.ansible_job_id }}'}\n      register: gone\n      ignore_errors: true\n\
                \x20   - copy: {dest: '{{ d }}/more', content: \"{{ slow_done.msg }}|{{ nothing_done.finished }} {{ nothing_done.stdout }} {{ nothing_done.changed }}|{{ erased.results[0].erased == job.results_file }}|{{ gone.msg }}\\n\"}\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_else(|e| panic!("{n}: {e}\n{}", r.stdout));
    assert_eq!(read("result"), "True False False True 3 hello err True non-zero return code\n", "{}", r.stdout);
    assert_eq!(read("more"), format!("Timeout exceeded|True skipped, since {} exists False|True|could not find job\n", dir.path().display()), "{}", r.stdout);
    // Started jobs count as changes, as in Ansible; the finished failing command is ignored
    // and changed; the missing job's failure is ignored too.
    let a = &r.recap()["a"];
    assert_eq!((a.failed, a.ignored), (0, 3), "{}", r.stdout);
    // Only command and shell tasks run in the background; check mode starts nothing.
    let (r, _) = run3("- hosts: a\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/x', state: touch}\n      async: 10\n      poll: 0\n", &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stdout.contains("site.yml:4:7: async with poll: 0 starts command and shell tasks in the background; file can only run with a poll interval above 0"), "{}", r.stdout);
    let (r, dir) = run3("- hosts: a\n  gather_facts: false\n  tasks:\n    - shell: touch {{ d }}/ran\n      async: 10\n      poll: 0\n      register: j\n    - async_status: {jid: '{{ j.ansible_job_id }}'}\n", &["--check"]);
    r.assert_ok();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!exists(&dir, "ran"), "{}", r.stdout);
}

#[test]
fn meta_end_batch_ends_only_the_current_batch() {
    let (r, dir) = run3(
        "- name: rolling\n  hosts: all\n  gather_facts: false\n  serial: 1\n  tasks:\n    - meta: end_batch\n      when: inventory_hostname == 'a'\n\
         \x20   - file: {path: '{{ d }}/{{ inventory_hostname }}-done', state: touch}\n",
        &[],
    );
    r.assert_ok();
    assert!(!exists(&dir, "a-done") && exists(&dir, "b-done") && exists(&dir, "c-done"), "{}", r.stdout);
}

#[test]
fn a_meta_task_that_cannot_run_fails_its_host_with_the_location() {
    // An unknown action, and a `when` that can't be evaluated: both fail the host there.
    for (meta, expect) in [("meta: bogus", "unsupported meta action 'bogus'"), ("meta: end_host\n      when: nosuchvar.x", "when")] {
        let site = format!("- name: p\n  hosts: a\n  gather_facts: false\n  tasks:\n    - {meta}\n    - file: {{path: '{{{{ d }}}}/after', state: touch}}\n");
        let (r, dir) = run3(&site, &[]);
        assert_eq!(r.code, 2, "{}", r.stdout);
        assert!(r.stdout.contains("site.yml:5:") && r.stdout.contains(expect), "{}", r.stdout);
        assert!(!exists(&dir, "after"), "{}", r.stdout);
    }
}

/// Sizes of the probe batches the controller sent, in order (from its debug log).
fn probe_batches(stderr: &str) -> Vec<usize> {
    stderr.lines().filter(|l| l.contains("exec probe batch")).filter_map(|l| l.split("probes=").nth(1)?.split_whitespace().next()?.parse().ok()).collect()
}

#[test]
fn after_a_change_the_probes_it_made_stale_are_rerun_ahead_only_for_the_next_tasks() {
    // A command may change anything, so it makes every probe read before it stale. Re-running
    // all of them ahead at the next task would repeat each later task's probe after every
    // change of a converging host; only the next two tasks' are run ahead again, the later
    // ones when their turn is near. A stale answer is never used: the command creates `e`,
    // which the first batch saw missing.
    let stat = |n: &str| format!("    - stat: {{path: '{{{{ d }}}}/{n}'}}\n      register: st_{n}\n");
    let mut site = String::from("- name: p\n  hosts: a\n  gather_facts: false\n  tasks:\n");
    site.push_str(&stat("a"));
    site.push_str("    - command: touch {{ d }}/e\n");
    for n in ["b", "c", "d", "e", "f"] {
        site.push_str(&stat(n));
    }
    site.push_str("    - assert: {that: [st_e.stat.exists, not st_f.stat.exists]}\n");
    let (r, _dir) = run_project(&[("site.yml", &site)], &[], &[("PROVISION_LOG", "provision=debug")]);
    r.assert_ok();
    // a..f ahead of the first task; after the command: b (now due), c, d; then e, f.
    assert_eq!(probe_batches(&r.stderr), [6, 3, 2], "{}", r.stderr);
}

#[test]
fn loops_handlers_and_notify_as_ansible_has_them() {
    // Registered loop results name their item; with_items flattens one level and takes a lone
    // value as one item; an imported role's handlers run; `notify` may be templated.
    let site = "- hosts: a\n  gather_facts: false\n  vars: {nums: [1, 2], hname: play handler}\n  tasks:\n\
                \x20   - command: echo {{ item }}\n      loop: [x, y]\n      loop_control: {index_var: i}\n      register: r\n      changed_when: false\n\
                \x20   - copy: {content: \"{{ r.results | map(attribute='item') | join(',') }} {{ r.results[1].i }} {{ r.results[0].ansible_loop_var }}\\n\", dest: '{{ d }}/items'}\n\
                \x20   - shell: echo {{ item }} >> {{ d }}/flat\n      with_items: [\"{{ nums }}\", 9]\n\
                \x20   - shell: echo {{ item }} >> {{ d }}/lone\n      with_items: lone\n\
                \x20   - shell: echo '{{ item | to_json }}' >> {{ d }}/once\n      with_items: [[1, [2, 3]]]\n\
                \x20   - import_role: {name: rr}\n\
                \x20   - command: 'true'\n      notify: '{{ hname }}'\n\
                \x20 handlers:\n    - name: play handler\n      file: {path: '{{ d }}/play-handler', state: touch}\n";
    let (r, dir) = run_project(
        &[
            ("site.yml", site),
            ("roles/rr/tasks/main.yml", "- command: 'true'\n  notify: rr handler\n"),
            ("roles/rr/handlers/main.yml", "- name: rr handler\n  file: {path: '{{ d }}/rr-handler', state: touch}\n"),
        ],
        &[],
        &[],
    );
    r.assert_ok();
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_else(|e| panic!("{n}: {e}\n{}", r.stdout));
    assert_eq!(read("items"), "x,y 1 item\n");
    assert_eq!(read("flat"), "1\n2\n9\n");
    assert_eq!(read("lone"), "lone\n");
    assert_eq!(read("once"), "1\n[2, 3]\n", "one level, not two");
    assert!(exists(&dir, "rr-handler") && exists(&dir, "play-handler"), "{}", r.stdout);
    assert!(!r.stdout.contains("does not exist"), "{}", r.stdout);
}

#[test]
fn an_ignored_failure_counts_as_ansible_counts_it() {
    // Ansible's recap: an ignored failure is ok and ignored, and changed too when its result
    // says so (a failing command always does); a loop with an ignored failing item is one
    // ignored result, changed if any item changed. changed_when: false keeps it unchanged.
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - command: 'false'\n      ignore_errors: true\n\
                \x20   - shell: exit 3\n      ignore_errors: true\n      changed_when: false\n\
                \x20   - shell: test {{ item }} = ok\n      loop: [ok, bad]\n      ignore_errors: true\n\
                \x20   - file: {path: '{{ d }}/after', state: touch}\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    assert!(exists(&dir, "after"));
    let a = &r.recap()["a"];
    assert_eq!((a.ok, a.changed, a.ignored, a.failed), (4, 3, 3, 0), "{}", r.stdout);
}

#[test]
fn run_once_runs_on_the_first_live_host_after_the_others_and_gives_them_its_result() {
    // a fails first; c is slow at the first task. The run_once task waits for c (it checks
    // c's mark), runs once, on b (the first host still in the play), and b and c both get its
    // registered result and the fact it set. --forks 1: waiting gives up the fork slot.
    let site = "- hosts: all\n  gather_facts: false\n  tasks:\n\
                \x20   - shell: \"{{ 'exit 1' if inventory_hostname == 'a' else 'true' }}; if [ {{ inventory_hostname }} = c ]; then sleep 1; fi; touch {{ d }}/{{ inventory_hostname }}-first\"\n\
                \x20   - shell: test -e {{ d }}/c-first && echo {{ inventory_hostname }} >> {{ d }}/once && echo ran-on-{{ inventory_hostname }}\n      run_once: true\n      register: r\n\
                \x20   - set_fact: {token: \"{{ 999999999 | random }}\"}\n      run_once: true\n\
                \x20   - copy: {content: \"{{ r.stdout }} {{ token }}\\n\", dest: '{{ d }}/{{ inventory_hostname }}-saw'}\n";
    for forks in ["50", "1"] {
        let (r, dir) = run3(site, &["--forks", forks]);
        assert_eq!(r.code, 2, "a failed\n{}\n{}", r.stdout, r.stderr);
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_else(|e| panic!("{n}: {e}\n{}", r.stdout));
        assert_eq!(read("once"), "b\n", "once, on b, after c's first task\n{}", r.stdout);
        let (b, c) = (read("b-saw"), read("c-saw"));
        assert!(b.starts_with("ran-on-b "), "{b}");
        assert_eq!(b, c, "c has b's result and fact");
        assert!(!exists(&dir, "a-saw"));
        let recap = r.recap();
        assert_eq!((recap["a"].failed, recap["b"].failed, recap["c"].failed), (1, 0, 0), "{}", r.stdout);
    }
}

#[test]
fn a_failed_run_once_task_fails_every_host_of_the_batch() {
    let site = "- hosts: all\n  gather_facts: false\n  tasks:\n\
                \x20   - command: 'false'\n      run_once: true\n\
                \x20   - file: {path: '{{ d }}/{{ inventory_hostname }}-after', state: touch}\n";
    let (r, dir) = run3(site, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(!exists(&dir, "a-after") && !exists(&dir, "b-after") && !exists(&dir, "c-after"), "{}", r.stdout);
    assert!(r.stdout.contains("the run_once task failed on a"), "{}", r.stdout);
    let recap = r.recap();
    assert_eq!((recap["a"].failed, recap["b"].failed, recap["c"].failed), (1, 1, 1), "{}", r.stdout);
}

#[test]
fn hostvars_show_what_the_other_hosts_registered_earlier_in_the_play() {
    // Each host registers a value (c slowly); the next task reads every host's through
    // hostvars, so it waits for all of them, as Ansible's linear strategy does.
    let site = "- hosts: all\n  gather_facts: false\n  tasks:\n\
                \x20   - shell: \"{% if inventory_hostname == 'c' %}sleep 1; {% endif %}echo {{ inventory_hostname }}-$$\"\n      register: out\n\
                \x20   - set_fact: {mine: \"{{ out.stdout }}\"}\n\
                \x20   - copy:\n        dest: '{{ d }}/{{ inventory_hostname }}-all'\n        content: \"{% for h in ansible_play_hosts %}{{ hostvars[h].out.stdout }}={{ hostvars[h].mine }} {% endfor %}\\n\"\n";
    for forks in ["50", "1"] {
        let (r, dir) = run3(site, &["--forks", forks]);
        r.assert_ok();
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_else(|e| panic!("{n}: {e}\n{}", r.stdout));
        let a = read("a-all");
        assert_eq!(a, read("b-all"));
        assert_eq!(a, read("c-all"));
        let parts: Vec<&str> = a.split_whitespace().collect();
        assert_eq!(parts.len(), 3, "{a}");
        for (p, h) in parts.iter().zip(["a", "b", "c"]) {
            let (out, mine) = p.split_once('=').unwrap();
            assert!(out.starts_with(&format!("{h}-")) && out == mine, "{a}");
        }
    }
}

#[test]
fn until_retries_a_task_until_its_condition_holds_and_fails_when_it_never_does() {
    // A counter on the host: the first task needs 3 attempts; the second never gets there
    // (2 retries: 3 attempts, then failed, ignored); with `retries` alone a failing command
    // is run again; `delay` may be a template.
    let site = "- hosts: a\n  gather_facts: false\n  vars: {pause: 0}\n  tasks:\n\
                \x20   - shell: echo x >> {{ d }}/n; wc -l < {{ d }}/n\n      register: r\n      until: r.stdout | int >= 3\n      retries: 5\n      delay: '{{ pause }}'\n\
                \x20   - shell: echo y >> {{ d }}/m; wc -l < {{ d }}/m\n      register: never\n      until: never.stdout | int > 10\n      retries: 2\n      delay: 0\n      ignore_errors: true\n\
                \x20   - shell: echo z >> {{ d }}/k; test $(wc -l < {{ d }}/k) -ge 2\n      register: k\n      retries: 4\n      delay: 0\n\
                \x20   - copy: {content: \"{{ r.attempts }} {{ r.stdout }} {{ never.attempts }} {{ never.failed }} {{ k.attempts }}\\n\", dest: '{{ d }}/result'}\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_else(|e| panic!("{n}: {e}\n{}", r.stdout));
    assert_eq!(read("result"), "3 3 3 True 2\n", "{}", r.stdout);
    assert_eq!(read("m").lines().count(), 3, "2 retries: 3 attempts");
    for line in ["FAILED - RETRYING: [a]: shell (5 retries left).", "FAILED - RETRYING: [a]: shell (4 retries left).", "FAILED - RETRYING: [a]: shell (1 retries left)."] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.stdout);
    }
    assert!(r.stdout.contains("the until condition was still false after 3 attempts"), "{}", r.stdout);
    assert!(r.stdout.contains("ignored=1"), "{}", r.stdout);
}

#[test]
fn until_in_check_mode_does_not_wait_for_what_a_skipped_change_would_have_made() {
    // The command that would create the file doesn't run in check mode, so the wait for it
    // is "cannot predict" at once (not 100 retries of a minute), and the run succeeds.
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - command: touch {{ d }}/ready\n      args: {creates: '{{ d }}/ready'}\n\
                \x20   - stat: {path: '{{ d }}/ready'}\n      register: st\n      until: st.stat.exists\n      retries: 100\n      delay: 60\n";
    let (r, _dir) = run3(site, &["--check"]);
    r.assert_ok();
    assert!(r.stdout.contains("cannot predict"), "{}", r.stdout);
    assert!(!r.stdout.contains("RETRYING"), "{}", r.stdout);
}

#[test]
fn environment_layers_from_play_to_task_and_templated_mappings() {
    // Play < block < task, inner names winning; a whole layer may be a template giving a
    // mapping (`environment: "{{ proxy_env }}"`); values are rendered per host.
    let site = "- hosts: a:b\n  gather_facts: false\n  vars: {proxy_env: {HTTP_PROXY: 'http://proxy:3128', WHO: '{{ inventory_hostname }}'}}\n  environment: {A: play, B: play}\n  tasks:\n\
                \x20   - block:\n        - shell: echo \"$A $B $C $HTTP_PROXY $WHO\" > {{ d }}/{{ inventory_hostname }}\n          environment: {C: task, B: task}\n      environment: \"{{ proxy_env }}\"\n\
                \x20   - shell: 'true'\n      environment: {'not a name': x}\n      when: inventory_hostname == 'b'\n";
    let (r, dir) = run3(site, &[]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_else(|e| panic!("{n}: {e}\n{}", r.stdout));
    assert_eq!(read("a"), "play task task http://proxy:3128 a\n");
    assert_eq!(read("b"), "play task task http://proxy:3128 b\n");
    assert!(r.stdout.contains("site.yml:10:") && r.stdout.contains("'not a name' is not a valid variable name"), "{}", r.stdout);
}

/// The marks a run left in `dir`, sorted.
fn marks(dir: &tempfile::TempDir) -> Vec<String> {
    let mut m: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    m.sort();
    m
}

#[test]
fn block_rescue_and_always_as_ansible_runs_them() {
    // A body failure skips the rest of the body, runs the rescue (which sees what failed) and
    // the always section, and the play goes on: the host counts as rescued, not failed.
    let t = |name: &str| format!("file: {{path: '{{{{ d }}}}/{name}', state: touch}}");
    let site = format!(
        "- hosts: a\n  gather_facts: false\n  tasks:\n\
         \x20   - block:\n        - {}\n        - name: breaks\n          command: sh -c 'exit 3'\n        - {}\n      rescue:\n        - copy: {{content: \"{{{{ ansible_failed_task.name }}}} {{{{ ansible_failed_result.rc }}}}\\n\", dest: '{{{{ d }}}}/rescued'}}\n      always:\n        - {}\n\
         \x20   - block:\n        - {}\n      rescue:\n        - {}\n      always:\n        - {}\n\
         \x20   - {}\n",
        t("body1"),
        t("body3"),
        t("always1"),
        t("ok-body"),
        t("ok-rescue"),
        t("ok-always"),
        t("after")
    );
    let (r, dir) = run3(&site, &[]);
    r.assert_ok();
    assert_eq!(marks(&dir), ["after", "always1", "body1", "ok-always", "ok-body", "rescued"], "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(dir.path().join("rescued")).unwrap(), "breaks 3\n");
    assert!(r.stdout.contains("rescued=1") && r.stdout.contains("failed=0"), "{}", r.stdout);
}

#[test]
fn a_failure_no_rescue_takes_runs_the_always_sections_and_fails_the_host() {
    // Inner block: always only (runs, then the failure goes out to the outer block's rescue,
    // which fails too: the outer always runs and the host fails; nothing after the block).
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - block:\n        - block:\n            - command: 'false'\n            - file: {path: '{{ d }}/not-run', state: touch}\n          always:\n            - file: {path: '{{ d }}/inner-always', state: touch}\n\
                \x20     rescue:\n        - file: {path: '{{ d }}/outer-rescue', state: touch}\n        - command: 'false'\n        - file: {path: '{{ d }}/not-run-either', state: touch}\n\
                \x20     always:\n        - file: {path: '{{ d }}/outer-always', state: touch}\n\
                \x20   - file: {path: '{{ d }}/after', state: touch}\n";
    let (r, dir) = run3(site, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert_eq!(marks(&dir), ["inner-always", "outer-always", "outer-rescue"], "{}", r.stdout);
    let recap = r.recap();
    assert_eq!(recap["a"].failed, 1, "the rescue's failure: {}", r.stdout);
    assert!(r.stdout.contains("rescued=1"), "the first failure was rescued: {}", r.stdout);
}

#[test]
fn handlers_run_after_each_section_and_may_notify_other_handlers() {
    // Ansible's play: handlers notified by pre_tasks run before the roles, those of the roles
    // and tasks before post_tasks. A handler notifying one defined after it runs it in the
    // same flush; one defined before it waits for the next flush.
    let site = "- hosts: a\n  gather_facts: false\n\
                \x20 pre_tasks:\n    - {shell: 'echo pre >> {{ d }}/log', notify: h pre}\n\
                \x20 roles: [rr]\n\
                \x20 tasks:\n    - {shell: 'echo task >> {{ d }}/log', notify: reload}\n\
                \x20 post_tasks:\n    - {shell: 'echo post >> {{ d }}/log'}\n\
                \x20 handlers:\n\
                \x20   - {name: restart, shell: 'echo restart >> {{ d }}/log'}\n\
                \x20   - {name: h pre, shell: 'echo h-pre >> {{ d }}/log'}\n\
                \x20   - {name: reload, shell: 'echo reload >> {{ d }}/log', notify: [after reload, restart]}\n\
                \x20   - {name: after reload, shell: 'echo after-reload >> {{ d }}/log'}\n";
    let (r, dir) = run_project(
        &[
            ("site.yml", site),
            ("roles/rr/tasks/main.yml", "- shell: 'echo role >> {{ d }}/log'\n  notify: rr handler\n"),
            ("roles/rr/handlers/main.yml", "- name: rr handler\n  shell: 'echo rr-handler >> {{ d }}/log'\n"),
        ],
        &[],
        &[],
    );
    r.assert_ok();
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(log, "pre\nh-pre\nrole\ntask\nrr-handler\nreload\nafter-reload\npost\nrestart\n", "{}", r.stdout);
    // The added flushes are not tasks anyone wrote.
    let p = project(&[("hosts.yml", INVENTORY3), ("site.yml", site), ("roles/rr/tasks/main.yml", "- shell: 'true'\n"), ("roles/rr/handlers/main.yml", "")]);
    let list = provision(p.path(), &["-i", "hosts.yml", "site.yml", "--list-tasks"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(!list.stdout.contains("meta"), "{}", list.stdout);
}

#[test]
fn a_notify_naming_no_handler_is_an_error_before_anything_runs() {
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n    - file: {path: '{{ d }}/ran', state: touch}\n    - command: 'true'\n      notify: restart ngnix\n  handlers:\n    - name: restart nginx\n      command: 'true'\n    - name: other\n      command: 'true'\n      listen: web restarts\n";
    let (r, dir) = run3(site, &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("site.yml:5:7: notify: no handler is named or listens to 'restart ngnix' (the play's handlers: restart nginx, other)"), "{}", r.stderr);
    assert!(!exists(&dir, "ran"));
    // A listen topic is a handler's name too.
    let (ok, _) = run3(&site.replace("restart ngnix", "web restarts"), &[]);
    ok.assert_ok();
}

#[test]
fn a_loop_with_an_ignored_failed_item_registers_as_failed() {
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - command: echo {{ item }}\n      loop: [1, 2, 3]\n      register: lr\n      failed_when: item == 2\n      ignore_errors: true\n\
                \x20   - copy: {content: \"{{ lr is failed }} {{ lr.failed }} {{ lr.msg }} {{ lr.results | map(attribute='failed') | list }}\\n\", dest: '{{ d }}/out'}\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    assert_eq!(std::fs::read_to_string(dir.path().join("out")).unwrap(), "True True One or more items failed [False, True, False]\n", "{}", r.stdout);
}

#[test]
fn the_diff_keyword_hides_or_shows_a_tasks_diff() {
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - copy: {content: \"hidden-line\\n\", dest: '{{ d }}/hidden'}\n      diff: false\n\
                \x20   - block:\n        - copy: {content: \"block-hidden\\n\", dest: '{{ d }}/block'}\n      diff: no\n\
                \x20   - copy: {content: \"shown-line\\n\", dest: '{{ d }}/shown'}\n";
    let (r, dir) = run3(site, &["--diff"]);
    r.assert_ok();
    assert!(exists(&dir, "hidden") && exists(&dir, "block"));
    assert!(!r.stdout.contains("hidden-line") && !r.stdout.contains("block-hidden"), "{}", r.stdout);
    assert!(r.stdout.contains("+shown-line"), "{}", r.stdout);
    assert!(!r.stderr.contains("ignored"), "{}", r.stderr);
    // `diff: true` shows it without --diff.
    let (r, _) = run3(&site.replace("diff: false", "diff: true"), &[]);
    r.assert_ok();
    assert!(r.stdout.contains("+hidden-line") && !r.stdout.contains("+shown-line"), "{}", r.stdout);
}

#[test]
fn roles_entries_and_includes_load_the_files_they_name_and_run_once_unless_they_differ() {
    let site = "- hosts: a\n  gather_facts: false\n\
                \x20 roles:\n    - {role: common, when: false}\n    - {role: common, when: true}\n    - dup\n    - dup\n\
                \x20 tasks:\n\
                \x20   - include_role: {name: app, tasks_from: other}\n      vars: {app_port: 7000}\n\
                \x20   - import_role: {name: app, tasks_from: other.yml}\n\
                \x20   - import_role: {name: app}\n\
                \x20   - import_role: {name: app}\n\
                \x20   - include_role: {name: app, tasks_from: show, vars_from: extra, defaults_from: alt, handlers_from: alt}\n";
    let log = "shell: echo {{ what }} >> {{ d }}/log\n";
    let files = [
        ("site.yml", site),
        ("roles/common/tasks/main.yml", "- vars: {what: common}\n  shell: echo {{ what }} >> {{ d }}/log\n"),
        ("roles/dup/meta/main.yml", "allow_duplicates: true\n"),
        ("roles/dup/tasks/main.yml", "- vars: {what: dup}\n  shell: echo {{ what }} >> {{ d }}/log\n"),
        ("roles/app/defaults/main.yml", "app_port: 8000\nflavour: main-default\n"),
        ("roles/app/defaults/alt.yml", "app_port: 8000\nflavour: alt-default\n"),
        ("roles/app/vars/extra.yml", "colour: extra-var\n"),
        ("roles/app/tasks/main.yml", &format!("- vars: {{what: main}}\n  {log}")),
        ("roles/app/tasks/other.yml", &format!("- vars: {{what: 'other {{{{ app_port }}}}'}}\n  {log}")),
        ("roles/app/tasks/show.yml", &format!("- vars: {{what: '{{{{ flavour }}}} {{{{ colour }}}}'}}\n  {log}  notify: alt handler\n")),
        ("roles/app/handlers/alt.yml", "- name: alt handler\n  shell: echo alt-handler >> {{ d }}/log\n"),
    ];
    let (r, dir) = run_project(&files, &[], &[]);
    r.assert_ok();
    let got = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(got, "common\ndup\ndup\nother 7000\nother 8000\nmain\nalt-default extra-var\nalt-handler\n", "{}", r.stdout);
    // A loop on an include is refused where it is written (includes are static).
    let looped = "- hosts: a\n  gather_facts: false\n  tasks:\n    - include_role: {name: dup}\n      loop: [1, 2]\n";
    let (r, _) = run_project(&[("site.yml", looped), ("roles/dup/tasks/main.yml", "- debug: {msg: hi}\n")], &[], &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("site.yml:5:7: 'loop' on include_role is not supported"), "{}", r.stderr);
    let missing = "- hosts: a\n  gather_facts: false\n  tasks:\n    - include_role: {name: dup, tasks_from: nope}\n";
    let (r, _) = run_project(&[("site.yml", missing), ("roles/dup/tasks/main.yml", "- debug: {msg: hi}\n")], &[], &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("role 'dup': tasks/nope not found"), "{}", r.stderr);
}

#[test]
fn an_include_tasks_when_is_evaluated_once_and_an_import_tasks_when_per_task() {
    let inc = "- set_fact: {flag: false}\n- shell: echo {{ label }} >> {{ d }}/log\n";
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - set_fact: {flag: true}\n\
                \x20   - include_tasks: inc.yml\n      vars: {label: included}\n      when: flag\n\
                \x20   - set_fact: {flag: true}\n\
                \x20   - import_tasks: inc.yml\n      vars: {label: imported}\n      when: flag\n\
                \x20   - include_tasks: inc.yml\n      vars: {label: never}\n      when: flag\n";
    let (r, dir) = run_project(&[("site.yml", site), ("inc.yml", inc)], &[], &[]);
    r.assert_ok();
    assert_eq!(std::fs::read_to_string(dir.path().join("log")).unwrap(), "included\n", "{}", r.stdout);
}

#[test]
fn check_mode_reports_a_tasks_own_input_errors_after_a_predicted_change() {
    // A typo in a variable, a bad argument and a missing controller file are the task's
    // own mistakes, not consequences of an earlier change check mode didn't make.
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - copy: {content: \"x\\n\", dest: '{{ d }}/first'}\n\
                \x20   - command: cat {{ d }}/first\n      register: out\n\
                \x20   - name: reads a guessed value\n      copy: {content: '{{ out.stdout_lines[0] }}', dest: '{{ d }}/second'}\n\
                \x20   - name: TYPO\n      copy: {content: '{{ app_nmae }}', dest: '{{ d }}/third'}\n";
    let (r, dir) = run3(site, &["--check"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("cannot predict in check mode"), "{}", r.stdout);
    assert!(r.stdout.contains("fatal: [a]: FAILED!") && r.stdout.contains("app_nmae"), "{}", r.stdout);
    assert!(!exists(&dir, "first"));
    for bad in ["file: {path: '{{ d }}/x', mode: abc, state: touch}", "copy: {src: files/nope.conf, dest: '{{ d }}/y'}"] {
        let (r, _) = run3(&site.replace("copy: {content: '{{ app_nmae }}', dest: '{{ d }}/third'}", bad), &["--check"]);
        assert_eq!(r.code, 2, "{bad}:\n{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("TASK [TYPO]") && r.stdout.contains("fatal: [a]: FAILED!"), "{bad}:\n{}", r.stdout);
    }
}

#[test]
fn set_fact_in_a_loop_builds_on_what_the_item_before_set() {
    let site = "- hosts: a\n  gather_facts: false\n  vars: {acc: [], byname: {}}\n  tasks:\n\
                \x20   - set_fact: {acc: \"{{ acc + [item | upper] }}\"}\n      loop: [a, b, c]\n\
                \x20   - set_fact:\n        byname: \"{{ byname | combine({item.n: item.v}) }}\"\n      loop: [{n: x, v: 1}, {n: y, v: 2}]\n\
                \x20   - copy: {content: \"{{ acc | join(',') }} {{ byname | to_json }}\\n\", dest: '{{ d }}/out'}\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    assert_eq!(std::fs::read_to_string(dir.path().join("out")).unwrap(), "A,B,C {\"x\": 1, \"y\": 2}\n", "{}", r.stdout);
}

#[test]
fn ansible_play_hosts_spans_the_batches_without_failed_hosts_and_play_hosts_is_the_batch() {
    let site = "- hosts: all\n  gather_facts: false\n  serial: 2\n  tasks:\n\
                \x20   - shell: echo '{{ inventory_hostname }} {{ ansible_play_hosts | join(\",\") }} {{ ansible_play_batch | join(\",\") }} {{ play_hosts | join(\",\") }} {{ ansible_play_hosts_all | join(\",\") }}' >> {{ d }}/log\n\
                \x20   - fail: {msg: b fails}\n      when: inventory_hostname == 'b'\n";
    let (r, dir) = run3(site, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let mut lines: Vec<String> = std::fs::read_to_string(dir.path().join("log")).unwrap().lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["a a,b,c a,b a,b a,b,c", "b a,b,c a,b a,b a,b,c", "c a,c c c a,b,c"], "{}", r.stdout);
}

#[test]
fn module_defaults_fill_the_arguments_a_task_leaves_out() {
    let site = "- hosts: a\n  gather_facts: false\n\
                \x20 module_defaults:\n    ansible.builtin.file: {mode: '0600', state: touch}\n    copy: {mode: '0640'}\n\
                \x20 tasks:\n\
                \x20   - file: {path: '{{ d }}/play-default'}\n\
                \x20   - file: {path: '{{ d }}/own-mode', mode: '0644'}\n\
                \x20   - block:\n        - file: {path: '{{ d }}/block-default'}\n      module_defaults:\n        file: {mode: '0700'}\n\
                \x20   - copy: {content: \"x\\n\", dest: '{{ d }}/copied'}\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    use std::os::unix::fs::PermissionsExt;
    let mode = |n: &str| std::fs::metadata(dir.path().join(n)).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode("play-default"), mode("own-mode"), mode("block-default"), mode("copied")), (0o600, 0o644, 0o700, 0o640), "{}", r.stdout);
}

#[test]
fn order_takes_the_hosts_in_the_order_the_play_says() {
    let site = "- hosts: all\n  gather_facts: false\n  serial: 1\n  order: reverse_inventory\n  tasks:\n    - shell: echo {{ inventory_hostname }} >> {{ d }}/log\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    assert_eq!(std::fs::read_to_string(dir.path().join("log")).unwrap(), "c\nb\na\n", "{}", r.stdout);
    let (r, _) = run3(&site.replace("reverse_inventory", "backwards"), &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("order must be one of"), "{}", r.stderr);
}

#[test]
fn a_write_through_one_path_is_seen_through_the_files_other_paths() {
    // A release folder used through a `current` link, `..` and a hard link: what a task
    // writes through one path is what the next task reads through another.
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - file: {path: '{{ d }}/releases/1', state: directory}\n\
                \x20   - file: {src: '{{ d }}/releases/1', path: '{{ d }}/current', state: link}\n\
                \x20   - copy: {content: \"a=1\\ndebug=1\\n\", dest: '{{ d }}/current/app.conf'}\n\
                \x20   - lineinfile: {path: '{{ d }}/releases/1/app.conf', regexp: '^debug=', state: absent}\n\
                \x20   - copy: {content: \"other\\n\", dest: '{{ d }}/releases/1/app.conf', force: false}\n\
                \x20   - stat: {path: '{{ d }}/releases/1/app.conf'}\n      register: st\n\
                \x20   - file: {path: '{{ d }}/releases/1/../x', state: touch}\n\
                \x20   - stat: {path: '{{ d }}/releases/x'}\n      register: x\n\
                \x20   - copy: {content: \"{{ st.stat.exists }} {{ x.stat.exists }}\\n\", dest: '{{ d }}/out'}\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
    assert_eq!(read("releases/1/app.conf"), "a=1\n", "{}", r.stdout);
    assert_eq!(read("out"), "True True\n", "{}", r.stdout);
}

#[test]
fn with_any_errors_fatal_no_host_runs_ahead_of_a_failing_one() {
    // Ansible's hosts go task by task together: b, done with the first task at once, waits
    // for a to finish it, and a's fatal failure stops b before the second task.
    let site = "- hosts: a:b\n  gather_facts: false\n  any_errors_fatal: true\n  tasks:\n\
                \x20   - shell: sleep 1; exit 1\n      when: inventory_hostname == 'a'\n\
                \x20   - file: {path: '{{ d }}/{{ inventory_hostname }}-second', state: touch}\n";
    let (r, dir) = run3(site, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(!exists(&dir, "b-second") && !exists(&dir, "a-second"), "{}", r.stdout);
}

#[test]
fn vars_files_names_may_be_templates_and_lists_of_which_the_first_found_is_read() {
    let site = "- hosts: all\n  gather_facts: false\n  vars: {flavour: plain}\n\
                \x20 vars_files:\n    - common.yml\n    - \"vars/{{ env }}.yml\"\n    - [\"vars/{{ inventory_hostname }}.yml\", vars/default.yml]\n\
                \x20 tasks:\n    - shell: echo {{ inventory_hostname }} {{ common }} {{ level }} {{ who }} {{ flavour }} >> {{ d }}/log\n";
    let files = [
        ("site.yml", site),
        ("common.yml", "common: c\nflavour: from-common\n"),
        ("vars/prod.yml", "level: prod-level\nflavour: from-prod\n"),
        ("vars/a.yml", "who: host-a\n"),
        ("vars/default.yml", "who: someone\n"),
    ];
    let (r, dir) = run_project(&files, &["-e", "env=prod", "--limit", "a:b"], &[]);
    r.assert_ok();
    let mut lines: Vec<String> = std::fs::read_to_string(dir.path().join("log")).unwrap().lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["a c prod-level host-a from-prod", "b c prod-level someone from-prod"], "{}", r.stdout);
    // A name that reads nothing fails the host's first task, saying which.
    let (r, _) = run_project(&files, &["-e", "env=qa", "--limit", "a"], &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stdout.contains("site.yml:6:7: vars_files: none of vars/qa.yml found"), "{}", r.stdout);
}

#[test]
fn a_write_that_fails_changed_nothing() {
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - copy: {content: \"x\\n\", dest: '{{ d }}/no/such/folder/file'}\n      register: w\n      ignore_errors: true\n\
                \x20   - copy: {content: \"{{ w.changed }} {{ w.failed }}\\n\", dest: '{{ d }}/out'}\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    assert_eq!(std::fs::read_to_string(dir.path().join("out")).unwrap(), "False True\n", "{}", r.stdout);
    let a = &r.recap()["a"];
    assert_eq!((a.changed, a.ignored), (1, 1), "{}", r.stdout);
}

#[test]
fn a_registered_failure_message_is_the_modules_and_the_output_says_where() {
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - file: {path: '{{ d }}/{{ nope }}', state: file}\n      register: f\n      ignore_errors: true\n\
                \x20   - copy: {content: \"{{ f.msg }}\\n\", dest: '{{ d }}/out'}\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    let msg = std::fs::read_to_string(dir.path().join("out")).unwrap();
    assert!(!msg.contains("site.yml:") && msg.contains("nope"), "{msg}");
    assert!(r.stdout.contains("=> site.yml:4:7: "), "{}", r.stdout);
}

#[test]
fn extended_loops_know_the_items_around_them() {
    let site = "- hosts: a\n  gather_facts: false\n  tasks:\n\
                \x20   - shell: echo {{ ansible_loop.previtem | default('-') }} {{ item }} {{ ansible_loop.nextitem | default('-') }} {{ ansible_loop.allitems | length }} >> {{ d }}/log\n      loop: [x, y, z]\n      loop_control: {extended: true}\n";
    let (r, dir) = run3(site, &[]);
    r.assert_ok();
    assert_eq!(std::fs::read_to_string(dir.path().join("log")).unwrap(), "- x y 3\nx y z 3\ny z - 3\n", "{}", r.stdout);
}

#[test]
fn vars_prompt_takes_extra_vars_or_the_default_without_a_terminal() {
    let site = "- hosts: a\n  gather_facts: false\n  vars_prompt:\n    - {name: release, prompt: Release?, default: '1.0', private: false}\n    - {name: token, prompt: Token?}\n\
                \x20 tasks:\n    - copy: {content: \"{{ release }} {{ token }}\\n\", dest: '{{ d }}/out'}\n";
    let (r, dir) = run3(site, &["-e", "token=tok-123"]);
    r.assert_ok();
    assert_eq!(std::fs::read_to_string(dir.path().join("out")).unwrap(), "1.0 tok-123\n");
    let (r, dir) = run3(site, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("site.yml:5:7: vars_prompt 'token': no terminal to ask on and no default; give it with -e token=..."), "{}", r.stderr);
    assert!(!exists(&dir, "out"));
}

#[test]
fn a_host_that_fails_leaves_ansible_play_hosts_for_the_tasks_after() {
    // b fails at once; a and c wait a moment, then list the play's hosts.
    let site = "- hosts: all\n  gather_facts: false\n  tasks:\n\
                \x20   - shell: \"{{ 'exit 1' if inventory_hostname == 'b' else 'sleep 1' }}\"\n\
                \x20   - shell: echo {{ inventory_hostname }} {{ ansible_play_hosts | join(',') }} {{ ansible_play_batch | join(',') }} >> {{ d }}/log\n";
    let (r, dir) = run3(site, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let mut lines: Vec<String> = std::fs::read_to_string(dir.path().join("log")).unwrap().lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["a a,c a,c", "c a,c a,c"], "{}", r.stdout);
}
