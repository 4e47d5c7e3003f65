//! What a task's templates see: Ansible's variable precedence across role defaults,
//! inventory, facts, play vars, role vars, task vars, set_fact, role params and extra vars,
//! templated variables resolved in the task's context, loop variables, the `vars` mapping, and
//! inventory variables the executor itself reads (`ansible_become`, `ansible_managed`).
//! The host's shared variables are a layer the templar looks through, not a copy per task, so
//! this pins what each task sees. Local-connection host; the tasks write what they see into
//! files of a temp dir.

mod common;
use common::*;

const INVENTORY: &str = "\
all:
  hosts:
    a:
      ansible_connection: local
      inv_only: inventory
      shadow_default: inventory
      over_by_play: inventory
      ansible_managed: managed by the inventory
  children:
    runas:
      hosts:
        b:
          ansible_connection: local
          ansible_become: true
          ansible_become_user: nobody
";

const R1_DEFAULTS: &str = "\
r1_default: r1
shared_default: r1
shadow_default: r1
over_by_play: r1
over_by_task: r1
over_by_setfact: r1
over_by_param: r1
over_all: r1
";

const R2_DEFAULTS: &str = "\
shared_default: r2
r2_default: r2
";

const R1_VARS: &str = "\
r1_var: r1 vars
over_by_role_vars: r1 vars
";

const R1_TASKS: &str = "\
- name: before set_fact
  copy:
    dest: \"{{ d }}/before\"
    content: |
      {{ r1_default }} {{ r2_default }} {{ shared_default }} {{ shadow_default }} {{ inv_only }}
      {{ over_by_play }} {{ over_by_role_vars }} {{ r1_var }} {{ over_by_task }} {{ over_by_setfact }}
      {{ over_by_param }} {{ over_all }} {{ app_dir }} {{ role_name }} {{ ansible_facts.system }}
      {{ 'inv_only' in vars }} {{ 'r1_default' in vars }} {{ lookup('vars', 'over_by_play') }} {{ vars['over_by_task'] }}
  vars:
    over_by_task: task
    home_dir: /srv/from-task
- set_fact:
    over_by_setfact: set_fact
    over_by_task: set_fact
- name: after set_fact
  copy:
    dest: \"{{ d }}/after\"
    content: \"{{ over_by_setfact }} {{ over_by_task }} {{ over_by_param }} {{ over_all }} {{ app_dir }}\\n\"
- name: loop variables over the host's
  copy:
    dest: \"{{ d }}/item-{{ item }}\"
    content: \"{{ item }} {{ ansible_loop.index }} {{ over_by_play }}\\n\"
  loop: [x, y]
  loop_control:
    extended: true
- name: a template sees ansible_managed from the inventory
  template:
    src: managed.j2
    dest: \"{{ d }}/managed\"
";

const SITE: &str = "\
- name: precedence
  hosts: a
  vars:
    over_by_play: play
    home_dir: /home/play
    app_dir: \"{{ home_dir }}/app\"
    over_by_role_vars: play
  roles:
    - role: r1
      over_by_param: param
    - role: r2
  tasks:
    - name: a play task sees the last role's defaults for a shared name
      copy:
        dest: \"{{ d }}/play-task\"
        content: \"{{ shared_default }} {{ over_by_setfact }} {{ r1_var }}\\n\"
- name: become from inventory variables
  hosts: b
  gather_facts: false
  tasks:
    - shell: id -un > {{ d }}/who && chmod 644 {{ d }}/who
      changed_when: false
";

#[test]
fn tasks_see_ansible_precedence_through_the_hosts_variable_layers() {
    let out = tempfile::tempdir().unwrap();
    // `nobody` (become user of host b) must be able to write there.
    std::fs::set_permissions(out.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let p = project(&[
        ("hosts.yml", INVENTORY),
        ("site.yml", SITE),
        ("roles/r1/defaults/main.yml", R1_DEFAULTS),
        ("roles/r1/vars/main.yml", R1_VARS),
        ("roles/r1/tasks/main.yml", R1_TASKS),
        ("roles/r1/templates/managed.j2", "# {{ ansible_managed }}\n"),
        ("roles/r2/defaults/main.yml", R2_DEFAULTS),
        ("roles/r2/tasks/main.yml", "- debug: msg=r2\n"),
    ]);
    let d = format!("d={}", out.path().display());
    let run = provision(p.path(), &["-i", "hosts.yml", "site.yml", "-e", &d, "-e", "over_all=extra"]);
    run.assert_ok();
    let read = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}\n{}", run.stdout));

    // Own role's default beats another role's; inventory beats defaults; play vars beat
    // inventory; role vars beat play vars; task vars beat both; a role parameter and extra
    // vars beat everything; a templated play var is rendered with the task's vars.
    assert_eq!(
        read("before"),
        "r1 r2 r1 inventory inventory\n\
         play r1 vars r1 vars task r1\n\
         param extra /srv/from-task/app r1 Linux\n\
         True True play task\n"
    );
    // set_fact beats play and task vars (of later tasks), not role params or extra vars.
    assert_eq!(read("after"), "set_fact set_fact param extra /home/play/app\n");
    assert_eq!(read("item-x"), "x 1 play\n");
    assert_eq!(read("item-y"), "y 2 play\n");
    assert_eq!(read("managed"), "# managed by the inventory\n");
    // Outside r1 the shared name is r2's default (the play's last role), and the set_fact of
    // an earlier task stays on the host.
    assert_eq!(read("play-task"), "r2 set_fact r1 vars\n");
    // `ansible_become` and `ansible_become_user` come from the inventory.
    assert_eq!(read("who"), "nobody\n");

    // The same variables, the same files: nothing to change the second time.
    provision(p.path(), &["-i", "hosts.yml", "site.yml", "-e", &d, "-e", "over_all=extra"]).assert_no_changes();
}
