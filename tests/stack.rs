//! The reference stack (`site.yml`, `roles/`, `inventory/testbed/group_vars`) end to end on
//! three fresh test hosts (2 web, 1 search), once per transport: the "must show" list of the
//! reference-stack issue.
//!
//! Needs root (hosts are systemd-nspawn containers, see scripts/testbed). Uses its own hosts
//! `st-web1`, `st-web2`, `st-search1` on 127.0.0.1:2801..2803.

mod common;

use common::{provision, repo, Run, Testbed};
use std::collections::BTreeSet;
use std::path::PathBuf;

const WEB: [&str; 2] = ["web1", "web2"];
const SECRET_KEY_FILE: &str = "/home/devartis/webapp/config/app/secret_key";

/// Every task of the `nginx` tag (gunicorn_nginx/tasks/nginx.yml), in order.
const NGINX_TASKS: &[&str] = &[
    "gunicorn_nginx : Install Nginx",
    "gunicorn_nginx : Create the Nginx config folder",
    "gunicorn_nginx : Create the Nginx log folder",
    "gunicorn_nginx : Write the Nginx site",
    "gunicorn_nginx : Link the site into sites-available",
    "gunicorn_nginx : Enable the site",
    "gunicorn_nginx : Disable the default site",
    "gunicorn_nginx : Rotate the Nginx logs",
    "gunicorn_nginx : Enable and start Nginx",
];

struct Stack {
    tb: Testbed,
    transport: &'static str,
}

impl Stack {
    /// Hosts are already up; put the testbed group_vars beside the generated hosts.yml.
    fn new(tb: Testbed, transport: &'static str) -> Stack {
        for sub in ["group_vars", "host_vars"] {
            let src = repo().join("inventory/testbed").join(sub);
            let Ok(entries) = std::fs::read_dir(&src) else { continue };
            let dst = tb.dir.join(sub);
            let _ = std::fs::remove_dir_all(&dst);
            std::fs::create_dir_all(&dst).unwrap();
            for e in entries {
                let e = e.unwrap();
                std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
            }
        }
        Stack { tb, transport }
    }

    fn inventory(&self) -> PathBuf {
        self.tb.inventory()
    }

    /// `provision -i <hosts.yml> --transport T site.yml ARGS` from the repository root.
    fn run(&self, args: &[&str]) -> Run {
        let inv = self.inventory();
        let mut all: Vec<&str> = vec!["-i", inv.to_str().unwrap(), "--transport", self.transport];
        all.extend_from_slice(args);
        all.push("site.yml");
        let r = provision(&repo(), &all);
        eprintln!("== [{}] provision {}: exit {}\n{}\n{}", self.transport, args.join(" "), r.code, r.stdout, r.stderr);
        r
    }

    fn host(&self, short: &str) -> String {
        self.tb.host(short)
    }

    /// GET a URL inside a host; returns (status, headers, body).
    fn http_get(&self, short: &str, url: &str) -> (u16, String, String) {
        let py = format!(
            "import urllib.request,urllib.error\n\
             try:\n r=urllib.request.urlopen('{url}',timeout=10)\n\
             except urllib.error.HTTPError as e:\n r=e\n\
             print(r.status)\nprint(str(r.headers).strip())\nprint('@@BODY@@')\nprint(r.read().decode('utf-8','replace'))\n"
        );
        let out = self.tb.ssh_ok(short, &format!("python3 -c {}", shell_quote(&py)));
        let (head, body) = out.split_once("@@BODY@@\n").unwrap_or((&out, ""));
        let mut lines = head.lines();
        let status = lines.next().unwrap_or("0").trim().parse().unwrap_or(0);
        (status, lines.collect::<Vec<_>>().join("\n"), body.to_string())
    }

    /// Like `Testbed::snapshot` (every file's metadata and content, packages, users, units),
    /// minus what running services write on their own: PostgreSQL's and Elasticsearch's data,
    /// the application's logs, Python bytecode caches.
    fn snapshot(&self, short: &str) -> String {
        let prune = "\\( -path /proc -o -path /sys -o -path /run -o -path /tmp -o -path /var/tmp -o -path /var/log -o -path /var/cache \
                     -o -path /var/lib/systemd -o -path /dev -o -path /srv -o -path /var/lib/postgresql -o -path /var/lib/elasticsearch \
                     -o -path /var/lib/nginx -o -path /var/lib/logrotate -o -path /home/devartis/webapp/logs -o -name __pycache__ \\) -prune";
        self.tb.ssh_ok(
            short,
            &format!(
                "find / -xdev {prune} -o -printf '%p %y %m %u %g %s %T@\\n' | sort | sha256sum; \
                 find / -xdev {prune} -o -type f -size -2M -print0 | sort -z | xargs -0 sha256sum 2>/dev/null | sha256sum; \
                 dpkg-query -W -f='${{Package}} ${{Version}} ${{Status}}\\n' | sha256sum; getent passwd | sha256sum; getent group | sha256sum; \
                 systemctl list-unit-files --no-legend --no-pager | sha256sum; systemctl list-units --no-legend --no-pager --state=active | sort | sha256sum; \
                 ufw status verbose | sha256sum"
            ),
        )
    }

    /// The file listing behind the first line of `snapshot`, to show what differs.
    fn listing(&self, short: &str) -> String {
        self.tb.ssh_ok(short, "find /etc /home /opt /usr/local /var/lib -xdev \\( -path /var/lib/postgresql -o -path /var/lib/elasticsearch -o -path /var/lib/systemd -o -path /home/devartis/webapp/logs -o -name __pycache__ \\) -prune -o -printf '%p %y %m %u %g %s %T@\\n' | sort")
    }

    /// Snapshots of all hosts, with listings to explain a difference.
    fn snapshots(&self) -> Vec<(String, String)> {
        ["web1", "web2", "search1"].iter().map(|h| (self.snapshot(h), self.listing(h))).collect()
    }

    fn assert_unchanged(&self, before: &[(String, String)], what: &str) {
        let after = self.snapshots();
        for (i, h) in ["web1", "web2", "search1"].iter().enumerate() {
            if before[i].0 != after[i].0 {
                let (b, a) = (&before[i].1, &after[i].1);
                let gone: Vec<&str> = b.lines().filter(|l| !a.contains(l)).collect();
                let new: Vec<&str> = a.lines().filter(|l| !b.contains(l)).collect();
                panic!("[{}] {what} changed {h}:\nsnapshot before:\n{}\nafter:\n{}\nlisting lines gone: {gone:#?}\nnew: {new:#?}", self.transport, before[i].0, after[i].0);
            }
        }
    }

    fn secret_key_digest(&self, short: &str) -> String {
        self.tb.ssh_ok(short, &format!("sha256sum {SECRET_KEY_FILE}"))
    }

    /// `ufw status` rules as a set of "TO ACTION FROM" (comments dropped, v6 twins folded).
    fn ufw_rules(&self, short: &str) -> (String, BTreeSet<String>) {
        let out = self.tb.ssh_ok(short, "ufw status verbose");
        let mut rules = BTreeSet::new();
        let mut in_table = false;
        for line in out.lines() {
            if line.starts_with("--") {
                in_table = true;
                continue;
            }
            if !in_table || line.trim().is_empty() {
                continue;
            }
            let line = line.split('#').next().unwrap().replace(" (v6)", "");
            let words: Vec<&str> = line.split_whitespace().collect();
            rules.insert(words.join(" "));
        }
        (out, rules)
    }

    /// Host names a run printed task results for (fact gathering aside: like Ansible, a
    /// play gathers facts even when the selection leaves it no task).
    fn hosts_touched(run: &Run) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut facts = false;
        for line in run.stdout.lines() {
            if line.starts_with("TASK [") || line.starts_with("RUNNING HANDLER [") {
                facts = line.starts_with("TASK [Gathering Facts]");
            }
            if facts {
                continue;
            }
            for word in ["ok: [", "changed: [", "skipping: [", "fatal: ["] {
                if let Some(rest) = line.strip_prefix(word) {
                    if let Some((h, _)) = rest.split_once(']') {
                        out.insert(h.to_string());
                    }
                }
            }
        }
        out
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Names of the tasks (and handlers, as "HANDLER name") that printed a result line.
fn tasks_run(run: &Run) -> Vec<String> {
    let mut current: Option<String> = None;
    let mut out: Vec<String> = Vec::new();
    for line in run.stdout.lines() {
        if let Some(rest) = line.strip_prefix("TASK [") {
            current = rest.rsplit_once(']').map(|(a, _)| a.to_string());
        } else if let Some(rest) = line.strip_prefix("RUNNING HANDLER [") {
            current = rest.rsplit_once(']').map(|(a, _)| format!("HANDLER {a}"));
        } else if ["ok: [", "changed: [", "fatal: ["].iter().any(|p| line.starts_with(p)) {
            if let Some(c) = &current {
                if c != "Gathering Facts" && !out.contains(c) {
                    out.push(c.clone());
                }
            }
        }
    }
    out
}

fn handlers_run(run: &Run) -> Vec<String> {
    tasks_run(run).into_iter().filter_map(|t| t.strip_prefix("HANDLER ").map(str::to_string)).collect()
}

/// Everything the issue asks to show, against one set of fresh hosts with one transport.
fn must_show(s: &Stack) {
    let t = s.transport;
    let all_hosts: BTreeSet<String> = ["web1", "web2", "search1"].iter().map(|h| s.host(h)).collect();

    // 3. `--check --diff` on fresh hosts: the full plan with diffs, nothing changed.
    let before = s.snapshots();
    let plan = s.run(&["--check", "--diff"]);
    plan.assert_ok();
    let recap = plan.recap();
    assert_eq!(recap.keys().cloned().collect::<BTreeSet<_>>(), all_hosts, "[{t}] check recap");
    for (h, r) in &recap {
        assert!(r.changed > 5, "[{t}] --check on a fresh host {h} should predict many changes: {r:?}");
    }
    assert!(plan.stdout.contains("+++ "), "[{t}] --check --diff printed no file diffs");
    s.assert_unchanged(&before, "--check --diff on fresh hosts");

    // 1. One command converges all hosts.
    let first = s.run(&["--diff"]);
    first.assert_ok();
    let recap = first.recap();
    assert_eq!(recap.keys().cloned().collect::<BTreeSet<_>>(), all_hosts, "[{t}] converge recap");
    for (h, r) in &recap {
        assert_eq!((r.failed, r.unreachable), (0, 0), "[{t}] {h}: {r:?}");
        assert!(r.changed > 0, "[{t}] {h} converged without changes?");
    }
    // The secret key never appears in output (diffs of the env file included).
    for h in WEB {
        let key = s.tb.ssh_ok(h, &format!("cat {SECRET_KEY_FILE}"));
        let key = key.trim();
        assert!(key.len() >= 32, "[{t}] secret key on {h} too short: {} chars", key.len());
        assert!(!first.stdout.contains(key) && !first.stderr.contains(key), "[{t}] the secret key of {h} was printed");
        let env = s.tb.ssh_ok(h, "cat /home/devartis/webapp/app/.env");
        assert!(env.contains(&format!("SECRET_KEY={key}")), "[{t}] env file on {h} does not use the secret key");
    }

    // The page through Nginx -> Gunicorn socket -> PostgreSQL, and a static file by Nginx.
    let check_web = |label: &str| {
        for h in WEB {
            let (status, headers, body) = s.http_get(h, "http://127.0.0.1/");
            assert_eq!(status, 200, "[{t}] {label}: GET / on {h}: {headers}\n{body}");
            assert!(body.contains("Series de tiempo"), "[{t}] {label}: page on {h}: {body}");
            assert!(body.contains("postgresql"), "[{t}] {label}: the page on {h} did not come from PostgreSQL: {body}");
            assert!(headers.to_lowercase().contains("server: nginx"), "[{t}] {label}: not through nginx on {h}: {headers}");
            let (status, headers, body) = s.http_get(h, "http://127.0.0.1/static/series/style.css");
            assert_eq!(status, 200, "[{t}] {label}: static file on {h}: {headers}\n{body}");
            assert!(headers.to_lowercase().contains("server: nginx"), "[{t}] {label}: static not by nginx on {h}");
            // Gunicorn listens on its unix socket in sockets/gunicorn.
            s.tb.ssh_ok(h, "test -S /home/devartis/webapp/sockets/gunicorn/gunicorn.sock");
        }
    };
    check_web("after converge");
    let (status, _, body) = s.http_get("search1", "http://127.0.0.1:9200/");
    assert_eq!(status, 200, "[{t}] search1:9200: {body}");
    assert!(body.contains("cluster_name") && body.contains("seriesdetiempo-testbed"), "[{t}] search1:9200 answered {body}");

    // `ufw status` shows exactly the declared rules.
    let expect_web: BTreeSet<String> = ["22/tcp ALLOW IN Anywhere", "80/tcp ALLOW IN Anywhere", "443/tcp ALLOW IN Anywhere"].iter().map(|s| s.to_string()).collect();
    let expect_search: BTreeSet<String> = ["22/tcp ALLOW IN Anywhere", "9200:9400/tcp ALLOW IN 127.0.0.0/8"].iter().map(|s| s.to_string()).collect();
    let check_ufw = |label: &str| {
        for (h, expect) in [("web1", &expect_web), ("web2", &expect_web), ("search1", &expect_search)] {
            let (raw, rules) = s.ufw_rules(h);
            assert!(raw.contains("Status: active"), "[{t}] {label}: ufw inactive on {h}:\n{raw}");
            assert!(raw.contains("deny (incoming)"), "[{t}] {label}: default incoming not deny on {h}:\n{raw}");
            assert_eq!(&rules, expect, "[{t}] {label}: ufw rules on {h}:\n{raw}");
        }
    };
    check_ufw("after converge");

    // 2. Second run: changed=0 everywhere, secret key unchanged.
    let keys: Vec<String> = WEB.iter().map(|h| s.secret_key_digest(h)).collect();
    let r = s.run(&["-v"]);
    r.assert_no_changes();
    // One round trip for facts and one for every probe of the play, on every host: tasks
    // whose arguments use a value registered earlier are probed ahead too.
    for (h, rc) in r.recap() {
        assert_eq!(rc.round_trips, Some(2), "[{t}] round trips of {h} in a no-change run:\n{}", r.stdout);
    }
    assert_eq!(keys, WEB.iter().map(|h| s.secret_key_digest(h)).collect::<Vec<_>>(), "[{t}] secret key changed on the second run");

    // 3. `--check --diff` on converged hosts: changed=0, and nothing changes.
    let before = s.snapshots();
    let r = s.run(&["--check", "--diff", "-v"]);
    r.assert_no_changes();
    for (h, rc) in r.recap() {
        assert_eq!(rc.round_trips, Some(2), "[{t}] round trips of {h} with --check --diff:\n{}", r.stdout);
    }
    s.assert_unchanged(&before, "--check --diff on converged hosts");

    // 4. `--roles postgres` touches only PostgreSQL tasks (and only web hosts have the role).
    let r = s.run(&["--roles", "postgres"]);
    r.assert_no_changes();
    let tasks = tasks_run(&r);
    assert!(!tasks.is_empty(), "[{t}] --roles postgres ran nothing");
    assert!(tasks.iter().all(|n| n.starts_with("postgres : ")), "[{t}] --roles postgres ran {tasks:?}");
    assert!(tasks.iter().any(|n| n.contains("database")), "[{t}] --roles postgres skipped the database tasks: {tasks:?}");
    assert_eq!(Stack::hosts_touched(&r), WEB.iter().map(|h| s.host(h)).collect(), "[{t}] --roles postgres hosts");

    // `--tags nginx` runs exactly the Nginx tasks.
    let r = s.run(&["--tags", "nginx"]);
    r.assert_no_changes();
    assert_eq!(tasks_run(&r), NGINX_TASKS.iter().map(|n| n.to_string()).collect::<Vec<_>>(), "[{t}] --tags nginx");

    // `--limit web1` only that host.
    let r = s.run(&["--limit", &s.host("web1")]);
    r.assert_no_changes();
    assert_eq!(r.recap().keys().cloned().collect::<Vec<_>>(), vec![s.host("web1")], "[{t}] --limit recap");
    assert_eq!(Stack::hosts_touched(&r), [s.host("web1")].into_iter().collect(), "[{t}] --limit web1 touched others");

    // 5. One template variable changed: exactly that file, only its handler(s).
    let web1 = s.host("web1");
    let r = s.run(&["--diff", "--limit", &web1, "-e", "nginx_client_max_body_size=25m"]);
    r.assert_ok();
    assert_eq!(r.changed_tasks(&web1), vec!["gunicorn_nginx : Write the Nginx site".to_string(), "gunicorn_nginx : reload nginx service".to_string()], "[{t}] nginx var change");
    assert_eq!(handlers_run(&r), vec!["gunicorn_nginx : validate nginx configuration", "gunicorn_nginx : reload nginx service"], "[{t}] nginx var change handlers");
    assert_eq!(r.stdout.lines().filter(|l| l.starts_with("+++ after: /")).count(), 1, "[{t}] expected one file diff:\n{}", r.stdout);
    assert!(r.stdout.contains("+    client_max_body_size 25m;"), "[{t}] diff does not show the new value");
    assert_eq!(s.tb.ssh_ok("web1", "grep -c 'client_max_body_size 25m' /home/devartis/webapp/config/nginx/default.conf").trim(), "1");

    // Back to the default: the same file and handlers again.
    let r = s.run(&["--limit", &web1]);
    r.assert_ok();
    assert_eq!(r.changed_tasks(&web1), vec!["gunicorn_nginx : Write the Nginx site".to_string(), "gunicorn_nginx : reload nginx service".to_string()], "[{t}] restoring the nginx var");

    let gunicorn_changed = vec!["gunicorn_nginx : Write the Gunicorn configuration".to_string(), "gunicorn_nginx : restart gunicorn".to_string()];
    let r = s.run(&["--diff", "--limit", &web1, "-e", "gunicorn_timeout=45"]);
    r.assert_ok();
    assert_eq!(r.changed_tasks(&web1), gunicorn_changed, "[{t}] gunicorn var change");
    assert_eq!(handlers_run(&r), vec!["gunicorn_nginx : restart gunicorn"], "[{t}] gunicorn var change handlers");
    assert_eq!(r.stdout.lines().filter(|l| l.starts_with("+++ after: /")).count(), 1, "[{t}] expected one file diff:\n{}", r.stdout);
    let r = s.run(&["--limit", &web1]);
    r.assert_ok();
    assert_eq!(r.changed_tasks(&web1), gunicorn_changed, "[{t}] restoring the gunicorn var");
    s.run(&[]).assert_no_changes();
    check_web("after the template changes");

    // Exclusive firewall: an undeclared rule is removed by the next run.
    s.tb.ssh_ok("web2", "ufw allow 8080/tcp");
    let r = s.run(&["--tags", "base", "--limit", &s.host("web2")]);
    r.assert_ok();
    assert!(r.total_changed() > 0, "[{t}] the stray ufw rule went unnoticed");
    check_ufw("after removing a stray rule");
    s.run(&[]).assert_no_changes();
}

#[test]
fn reference_stack_must_show_both_transports() {
    let tb = Testbed::up("st", 2800, 3);
    let stack = Stack::new(tb, "openssh");
    must_show(&stack);

    // Same again from pristine hosts with the in-process SSH client.
    stack.tb.reset(&["web1", "web2", "search1"]);
    let stack = Stack { tb: stack.tb, transport: "russh" };
    must_show(&stack);
    stack.tb.down();
}
