use super::*;
use serde_json::json;
use std::fs;

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, text).unwrap();
    p
}

fn ini(text: &str) -> Inventory {
    Inventory::from_ini_str("hosts", text).unwrap()
}

fn ini_err(text: &str) -> String {
    Inventory::from_ini_str("hosts", text)
        .unwrap_err()
        .to_string()
}

const INI: &str = "\
# leading comment
loose1 ansible_host=10.0.0.9
; another comment

[web]
web[01:03].example.com
web-extra:2222 ansible_user=deploy x='a b' n=42 f=1.5 t=True s=true

[db]
db-[a:b] ansible_port=5432 # comment here

[app:children]
web
db

[app:vars]
tier=app
n=7
json={'k': [1, 2]}

[all:vars]
ntp=pool.ntp.org
";

#[test]
fn ini_hosts_ranges_and_inline_vars() {
    let inv = ini(INI);
    assert_eq!(
        inv.hosts(),
        [
            "loose1",
            "web01.example.com",
            "web02.example.com",
            "web03.example.com",
            "web-extra",
            "db-a",
            "db-b"
        ]
    );
    let v = inv.host_vars("web-extra");
    assert_eq!(v["ansible_port"], json!(2222));
    assert_eq!(v["ansible_user"], json!("deploy"));
    assert_eq!(v["x"], json!("a b"));
    assert_eq!(v["n"], json!(42), "host inline beats group inline");
    assert_eq!(v["f"], json!(1.5));
    assert_eq!(v["t"], json!(true));
    assert_eq!(
        v["s"],
        json!("true"),
        "lowercase true is a string, as in Ansible"
    );
    assert_eq!(v["tier"], json!("app"));
    assert_eq!(v["ntp"], json!("pool.ntp.org"));
    assert_eq!(v["json"], json!({"k": [1, 2]}));
    let v = inv.host_vars("db-b");
    assert_eq!(v["ansible_port"], json!(5432));
    assert_eq!(v["n"], json!(7));
    assert_eq!(inv.host_vars("loose1")["ansible_host"], json!("10.0.0.9"));
    assert!(inv.host_vars("nope").is_empty());
}

#[test]
fn ini_groups_and_group_names() {
    let inv = ini(INI);
    let g = inv.groups();
    assert_eq!(g.keys().take(2).collect::<Vec<_>>(), ["all", "ungrouped"]);
    assert_eq!(g["ungrouped"], ["loose1"]);
    assert_eq!(g["all"].len(), 7);
    assert_eq!(
        g["app"],
        [
            "web01.example.com",
            "web02.example.com",
            "web03.example.com",
            "web-extra",
            "db-a",
            "db-b"
        ]
    );
    assert_eq!(g["db"], ["db-a", "db-b"]);
    assert_eq!(inv.group_names("db-a"), ["app", "db"]);
    assert_eq!(inv.group_names("loose1"), ["ungrouped"]);
}

#[test]
fn ini_host_in_several_groups_appears_once() {
    let inv = ini("h1\n[a]\nh1 x=1\nh2\n[b]\nh1 y=2\n");
    assert_eq!(inv.hosts(), ["h1", "h2"]);
    let g = inv.groups();
    assert!(g["ungrouped"].is_empty(), "h1 is in a group now");
    assert_eq!(g["b"], ["h1"]);
    let v = inv.host_vars("h1");
    assert_eq!((v["x"].clone(), v["y"].clone()), (json!(1), json!(2)));
}

#[test]
fn ini_children_declared_later_and_step_ranges() {
    let inv = ini("[parent:children]\nkid\n[kid]\nk[1:9:4]\n");
    assert_eq!(inv.groups()["parent"], ["k1", "k5", "k9"]);
}

#[test]
fn ini_errors_have_line_numbers() {
    let e = ini_err("[web]\nh1\n\n[web:childs]\nx\n");
    assert!(
        e.starts_with("hosts:4:") && e.contains("unknown type"),
        "{e}"
    );
    let e = ini_err("[web]\nh[3:1]\n");
    assert!(
        e.starts_with("hosts:2:") && e.contains("begin <= end"),
        "{e}"
    );
    let e = ini_err("[web]\nh[01:100]\n");
    assert!(
        e.starts_with("hosts:2:") && e.contains("equal-length"),
        "{e}"
    );
    let e = ini_err("[web]\nh1 novalue\n");
    assert!(e.starts_with("hosts:2:") && e.contains("key=value"), "{e}");
    let e = ini_err("[web]\nh1 x='open\n");
    assert!(
        e.starts_with("hosts:2:") && e.contains("closing quotation"),
        "{e}"
    );
    let e = ini_err("[web:vars]\njust text\n");
    assert!(e.starts_with("hosts:2:"), "{e}");
    let e = ini_err("[web bad]\n");
    assert!(
        e.starts_with("hosts:1:") && e.contains("invalid section"),
        "{e}"
    );
    let e = ini_err("[web]\nh1\n[web:children]\nghost\n");
    assert!(
        e.starts_with("hosts:4:") && e.contains("undefined group 'ghost'"),
        "{e}"
    );
    let e = ini_err("[nogroup:vars]\nx=1\n");
    assert!(
        e.starts_with("hosts:1:") && e.contains("undefined group"),
        "{e}"
    );
    let e = ini_err("[g]\nh\n[g:children]\ng\n");
    assert!(e.contains("cycle"), "{e}");
}

#[test]
fn cycles_are_detected() {
    let e = ini_err("[a]\n[b]\n[c]\n[a:children]\nb\n[b:children]\nc\n[c:children]\na\n");
    assert!(e.starts_with("hosts:9:") && e.contains("cycle"), "{e}");
    let e = Inventory::from_yaml_str(
        "inv.yml",
        "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("inv.yml:6:") && e.contains("cycle"), "{e}");
}

const YAML: &str = "\
all:
  hosts:
    lonely:
  vars:
    ntp: pool.ntp.org
    level: all
  children:
    web:
      hosts:
        web[1:2]:
          ansible_port: 2201
        web3.example.com:2222:
      vars:
        level: web
      children:
        frontend:
          hosts:
            web1:
              role: front
          vars:
            level: frontend
    db:
      hosts: db1
other:
  hosts:
    db1:
      extra: yes
";

#[test]
fn yaml_inventory() {
    let inv = Inventory::from_yaml_str("inv.yml", YAML).unwrap();
    assert_eq!(
        inv.hosts(),
        ["lonely", "web1", "web2", "web3.example.com", "db1"]
    );
    let g = inv.groups();
    assert_eq!(g["ungrouped"], ["lonely"]);
    assert_eq!(g["web"], ["web1", "web2", "web3.example.com"]);
    assert_eq!(g["frontend"], ["web1"]);
    assert_eq!(g["other"], ["db1"]);
    assert_eq!(inv.group_names("web1"), ["frontend", "web"]);
    let v = inv.host_vars("web1");
    assert_eq!(v["level"], json!("frontend"), "child group beats parent");
    assert_eq!(v["role"], json!("front"));
    assert_eq!(v["ansible_port"], json!(2201));
    assert_eq!(inv.host_vars("web2")["level"], json!("web"));
    assert_eq!(
        inv.host_vars("web3.example.com")["ansible_port"],
        json!(2222)
    );
    assert_eq!(inv.host_vars("lonely")["level"], json!("all"));
    assert_eq!(inv.host_vars("db1")["extra"], json!(true));
    assert!(inv.warnings().is_empty(), "{:?}", inv.warnings());
}

#[test]
fn yaml_warnings_and_errors() {
    let inv = Inventory::from_yaml_str("inv.yml", "all:\n  hots:\n    h1:\n").unwrap();
    assert!(
        inv.warnings()[0].contains("inv.yml:3:") && inv.warnings()[0].contains("hots"),
        "{:?}",
        inv.warnings()
    );
    let e = Inventory::from_yaml_str("inv.yml", "all:\n  hosts:\n    - h1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("inv.yml:3:") && e.contains("'hosts'"), "{e}");
    let e = Inventory::from_yaml_str("inv.yml", "all:\n  hosts:\n    h[2:1]:\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("inv.yml:3:") && e.contains("begin <= end"),
        "{e}"
    );
    let e = Inventory::from_yaml_str("inv.yml", "plugin: aws_ec2\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("plugin"), "{e}");
    let e = Inventory::from_yaml_str("inv.yml", "- a\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("inv.yml:1:"), "{e}");
    let e = Inventory::from_yaml_str("inv.yml", "all:\n  hosts: [\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("inv.yml:"), "{e}");
}

#[test]
fn group_priority_and_depth_order() {
    let inv = ini("[a]\nh\n[b]\nh\n[c:children]\nb\n[a:vars]\nx=a\n[b:vars]\nx=b\n[c:vars]\nx=c\n");
    // depth: a=1, c=1, b=2 -> b wins
    assert_eq!(inv.host_vars("h")["x"], json!("b"));
    let inv = ini("[a]\nh\n[b]\nh\n[a:vars]\nx=a\n[b:vars]\nx=b\n");
    assert_eq!(inv.host_vars("h")["x"], json!("b"), "same depth: by name");
    let inv = ini("[a]\nh\n[b]\nh\n[a:vars]\nx=a\nansible_group_priority=10\n[b:vars]\nx=b\n");
    assert_eq!(inv.host_vars("h")["x"], json!("a"), "priority beats name");
}

fn fixture() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let inv = write(
        d,
        "inventory/hosts",
        "[web]\nweb1 inline=host\nweb2\n[db]\ndb1\n[web:vars]\ninline=web\nwebvar=inline\nfromall=inline-web\n[all:vars]\nallvar=inline\n",
    );
    write(
        d,
        "inventory/group_vars/all.yml",
        "allvar: file\nfromall: all-file\nboth: inv-all\n",
    );
    write(
        d,
        "inventory/group_vars/web.yml",
        "webvar: file\nboth: inv-web\nlist: [1]\n",
    );
    write(
        d,
        "inventory/group_vars/db/10-main.yml",
        "dbvar: main\nover: main\n",
    );
    write(d, "inventory/group_vars/db/20-more.yaml", "over: more\n");
    write(d, "inventory/group_vars/db/skip.txt", "over: txt\n");
    write(d, "inventory/group_vars/db/.hidden.yml", "over: hidden\n");
    write(
        d,
        "inventory/host_vars/web1",
        "inline: host_vars\nhv: inv\n",
    );
    write(d, "inventory/host_vars/web2.json", "{\"hv\": \"json\"}\n");
    // playbook directory
    write(d, "play/group_vars/all.yml", "both: play-all\n");
    write(d, "play/group_vars/web.yml", "list: [2]\n");
    write(d, "play/host_vars/web1.yml", "hv: play\n");
    (tmp, inv)
}

#[test]
fn vars_precedence_with_group_and_host_vars() {
    let (tmp, path) = fixture();
    let mut inv = Inventory::load(&path).unwrap();
    let v = inv.host_vars("web1");
    assert_eq!(v["allvar"], json!("file"), "group_vars/all over [all:vars]");
    assert_eq!(
        v["fromall"],
        json!("all-file"),
        "group_vars/all over inline [web:vars] (Ansible order)"
    );
    assert_eq!(v["webvar"], json!("file"));
    assert_eq!(v["both"], json!("inv-web"));
    assert_eq!(v["inline"], json!("host_vars"));
    assert_eq!(v["hv"], json!("inv"));
    assert_eq!(inv.host_vars("web2")["hv"], json!("json"));
    assert_eq!(inv.host_vars("web2")["inline"], json!("web"));
    let v = inv.host_vars("db1");
    assert_eq!(v["dbvar"], json!("main"));
    assert_eq!(
        v["over"],
        json!("more"),
        "folder files merged in sorted order; .txt and hidden skipped"
    );
    assert_eq!(v["both"], json!("inv-all"));

    inv.add_vars_dir(&tmp.path().join("play")).unwrap();
    let v = inv.host_vars("web1");
    assert_eq!(v["hv"], json!("play"), "playbook host_vars win");
    assert_eq!(
        v["list"],
        json!([2]),
        "playbook group_vars win, lists/dicts replaced"
    );
    assert_eq!(
        v["both"],
        json!("inv-web"),
        "inventory group_vars/web beats playbook group_vars/all"
    );
    assert_eq!(inv.host_vars("db1")["both"], json!("play-all"));
    // adding the inventory's own directory again changes nothing
    inv.add_vars_dir(&tmp.path().join("inventory")).unwrap();
    assert_eq!(inv.host_vars("web1")["hv"], json!("play"));
}

#[test]
fn directory_inventory_merges_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "01-hosts.ini", "[web]\nweb1\n");
    write(
        d,
        "02-more.yml",
        "web:\n  hosts:\n    web2:\n  children:\n    canary:\n      hosts:\n        web3:\n",
    );
    write(d, "03-plain", "[db]\ndb1\n[app:children]\nweb\ndb\n");
    write(d, "04-yaml-noext", "db:\n  hosts:\n    db2:\n");
    write(d, "hosts.bak", "[junk]\nx\n");
    write(d, "notes.md", "# notes\n");
    write(d, "old~", "[junk]\ny\n");
    write(d, ".hidden", "[junk]\nz\n");
    write(d, "sub/05-nested", "[db]\ndb3\n");
    write(d, "group_vars/web.yml", "g: web\n");
    write(d, "host_vars/db1.yml", "h: db1\n");
    let inv = Inventory::load(d).unwrap();
    assert_eq!(inv.hosts(), ["web1", "web2", "web3", "db1", "db2", "db3"]);
    let g = inv.groups();
    assert!(!g.contains_key("junk"));
    assert_eq!(g["app"], ["web1", "web2", "web3", "db1", "db2", "db3"]);
    assert_eq!(inv.host_vars("web3")["g"], json!("web"));
    assert_eq!(inv.host_vars("db1")["h"], json!("db1"));
}

#[test]
fn errors_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "hosts", "[web]\nweb1\n[web:child]\n");
    let e = Inventory::load(&p).unwrap_err().to_string();
    assert!(e.contains(&format!("{}:3:", p.display())), "{e}");
    let p = write(tmp.path(), "bad.yml", "all:\n  hosts:\n    a: [\n");
    let e = Inventory::load(&p).unwrap_err().to_string();
    assert!(e.contains("bad.yml:"), "{e}");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "hosts", "[web]\nweb1\n");
    write(d.path(), "group_vars/web.yml", "- not a mapping\n");
    let e = Inventory::load(&d.path().join("hosts"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("web.yml:1:") && e.contains("mapping"), "{e}");
    let e = Inventory::load(&tmp.path().join("missing")).unwrap_err();
    assert!(matches!(e, InventoryError::Io { .. }));
}

fn sel(inv: &Inventory, p: &str) -> Vec<String> {
    inv.select(p).unwrap()
}

#[test]
fn patterns_of_every_kind() {
    let inv = ini(INI);
    let all = inv.hosts();
    assert_eq!(sel(&inv, "all"), all);
    assert_eq!(sel(&inv, "*"), all);
    assert_eq!(sel(&inv, "db"), ["db-a", "db-b"]);
    assert_eq!(sel(&inv, "db-a"), ["db-a"]);
    assert_eq!(
        sel(&inv, "web0*"),
        [
            "web01.example.com",
            "web02.example.com",
            "web03.example.com"
        ]
    );
    assert_eq!(
        sel(&inv, "*.example.com"),
        [
            "web01.example.com",
            "web02.example.com",
            "web03.example.com"
        ]
    );
    assert_eq!(
        sel(&inv, "~web0[12]"),
        ["web01.example.com", "web02.example.com"]
    );
    assert_eq!(sel(&inv, "~^db"), ["db-a", "db-b"]);
    // union, in inventory order, deduplicated
    assert_eq!(sel(&inv, "db:loose1"), ["loose1", "db-a", "db-b"]);
    assert_eq!(sel(&inv, "db,loose1,db-a"), ["loose1", "db-a", "db-b"]);
    // intersection and exclusion, applied after unions regardless of position
    assert_eq!(sel(&inv, "app:&db"), ["db-a", "db-b"]);
    assert_eq!(sel(&inv, "&db:app"), ["db-a", "db-b"]);
    assert_eq!(sel(&inv, "app:!web"), ["db-a", "db-b"]);
    assert_eq!(sel(&inv, "!web:app:!db-b"), ["db-a"]);
    assert_eq!(sel(&inv, "all:!app"), ["loose1"]);
    assert_eq!(
        sel(&inv, "!app"),
        ["loose1"],
        "only exclusions start from all"
    );
    assert_eq!(sel(&inv, "web:&db"), Vec::<String>::new());
    // slices
    assert_eq!(sel(&inv, "web[0]"), ["web01.example.com"]);
    assert_eq!(sel(&inv, "web[-1]"), ["web-extra"]);
    assert_eq!(
        sel(&inv, "web[1:2]"),
        ["web02.example.com", "web03.example.com"]
    );
    assert_eq!(sel(&inv, "web[2:]"), ["web03.example.com", "web-extra"]);
    assert_eq!(sel(&inv, "web[0]:db[1]"), ["web01.example.com", "db-b"]);
    assert_eq!(sel(&inv, "web[9]"), Vec::<String>::new());
    // glob char classes still work as host patterns
    assert_eq!(sel(&inv, "db-[ab]"), ["db-a", "db-b"]);
    // unknown names match nothing
    assert!(sel(&inv, "nosuch").is_empty());
    assert!(sel(&inv, "nosuch:!db").is_empty());
    // ... and are named, for the warning
    assert_eq!(inv.unmatched_terms("db-a:web3:!nosuch2:db").unwrap(), ["web3", "nosuch2"]);
    assert!(inv.unmatched_terms("web[9]:db:!loose1:&app").unwrap().is_empty(), "a known group is never unmatched");
    // errors
    assert!(matches!(
        inv.select("~(unclosed"),
        Err(InventoryError::Pattern(_))
    ));
    assert!(inv.select("  ").is_err());
}

#[test]
fn ip_and_localhost_hosts() {
    let inv =
        ini("localhost ansible_connection=local\n10.0.0.1:2200\n[v6]\nfe80::1\n[fe80::2]:2201\n");
    assert_eq!(inv.hosts(), ["localhost", "10.0.0.1", "fe80::1", "fe80::2"]);
    assert_eq!(inv.host_vars("10.0.0.1")["ansible_port"], json!(2200));
    assert_eq!(inv.host_vars("fe80::2")["ansible_port"], json!(2201));
    assert_eq!(sel(&inv, "10.0.0.1"), ["10.0.0.1"]);
    assert_eq!(sel(&inv, "localhost"), ["localhost"]);
    assert_eq!(sel(&inv, "fe80::1"), ["fe80::1"]);
}

#[test]
fn testbed_inventory_parses() {
    // The inventory `scripts/testbed up 3` writes (its own writer; no hosts needed).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.yml");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed");
    let out = std::process::Command::new("bash").arg(&script).arg("inventory").arg(&path).args(["web1:2201", "web2:2202", "search1:2203"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inv = Inventory::load(&path).unwrap();
    assert_eq!(inv.hosts(), ["web1", "web2", "search1"]);
    assert_eq!(sel(&inv, "web"), ["web1", "web2"]);
    assert_eq!(inv.group_names("search1"), ["search"]);
    let v = inv.host_vars("web2");
    assert_eq!(v["ansible_port"], json!(2202));
    assert_eq!(v["ansible_host"], json!("127.0.0.1"));
    assert_eq!(v["ansible_user"], json!("root"));
    let known_hosts = format!("-o UserKnownHostsFile={}/known_hosts", dir.path().canonicalize().unwrap().display());
    assert_eq!(v["ansible_ssh_common_args"], json!(known_hosts));
    assert!(inv.warnings().is_empty());
}
