//! Facts in one round trip: a POSIX sh script printing `key=value` lines, parsed into
//! Ansible-named facts (`ansible_hostname`, `ansible_distribution`, ...).

use crate::template::Vars;
use serde_json::{json, Value};

pub const FACTS_SCRIPT: &str = r#"
echo "hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
echo "fqdn=$(hostname -f 2>/dev/null || hostname 2>/dev/null)"
echo "nodename=$(uname -n)"
echo "kernel=$(uname -r)"
echo "arch=$(uname -m)"
echo "system=$(uname -s)"
echo "nproc=$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)"
echo "sockets=$(grep '^physical id' /proc/cpuinfo 2>/dev/null | sort -u | wc -l)"
echo "memtotal_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
echo "memfree_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)"
if [ -d /run/systemd/system ]; then echo service_mgr=systemd; else echo "service_mgr=$(cat /proc/1/comm 2>/dev/null || echo sysvinit)"; fi
echo "user_id=$(id -un)"
echo "user_uid=$(id -u)"
echo "user_gid=$(id -g)"
echo "home=$HOME"
echo "path=$PATH"
echo "shell=$SHELL"
[ -r /etc/debian_version ] && echo "debian_version=$(cat /etc/debian_version)"
if [ -r /etc/os-release ]; then sed -n 's/^\([A-Z_]*\)=\(.*\)$/os_\1=\2/p' /etc/os-release; fi
for a in $(hostname -I 2>/dev/null); do echo "ipv4=$a"; done
ip -o -4 route show default 2>/dev/null | awk '{for(i=1;i<NF;i++){if($i=="dev")d=$(i+1); if($i=="via")g=$(i+1)}} END{print "default_dev=" d; print "default_gw=" g}'
ip -o -4 addr show 2>/dev/null | awk '{split($4,a,"/"); print "addr=" $2 " " a[1] " " a[2]}'
command -v apt-get >/dev/null 2>&1 && echo pkg_mgr=apt
echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "epoch=$(date +%s)"
"#;

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\''))) {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

fn prefix_len(bits: u32) -> String {
    if bits == 0 {
        return "0.0.0.0".into();
    }
    let mask: u32 = u32::MAX << (32 - bits.min(32));
    format!("{}.{}.{}.{}", mask >> 24, (mask >> 16) & 255, (mask >> 8) & 255, mask & 255)
}

/// Parse the script's output into facts: `ansible_*` top-level names plus `ansible_facts`
/// (the same without the prefix).
pub fn parse(out: &str) -> Vars {
    let mut kv: Vec<(String, String)> = Vec::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once('=') {
            kv.push((k.to_string(), v.to_string()));
        }
    }
    let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let num = |k: &str| get(k).trim().parse::<u64>().unwrap_or(0);
    let mut f = Vars::new();
    let hostname = get("hostname");
    let short = hostname.split('.').next().unwrap_or("").to_string();
    let fqdn = get("fqdn");
    f.insert("hostname".into(), json!(short));
    f.insert("nodename".into(), json!(get("nodename")));
    f.insert("fqdn".into(), json!(fqdn));
    f.insert("domain".into(), json!(fqdn.split_once('.').map(|(_, d)| d.to_string()).unwrap_or_default()));
    f.insert("kernel".into(), json!(get("kernel")));
    f.insert("architecture".into(), json!(get("arch")));
    f.insert("machine".into(), json!(get("arch")));
    f.insert("system".into(), json!(get("system")));
    let vcpus = num("nproc");
    f.insert("processor_vcpus".into(), json!(vcpus));
    f.insert("processor_nproc".into(), json!(vcpus));
    f.insert("processor_count".into(), json!(num("sockets").max(1)));
    f.insert("processor_cores".into(), json!((vcpus / num("sockets").max(1)).max(1)));
    f.insert("memtotal_mb".into(), json!(num("memtotal_kb") / 1024));
    f.insert("memfree_mb".into(), json!(num("memfree_kb") / 1024));
    f.insert("service_mgr".into(), json!(get("service_mgr")));
    f.insert("user_id".into(), json!(get("user_id")));
    f.insert("user_uid".into(), json!(num("user_uid")));
    f.insert("user_gid".into(), json!(num("user_gid")));
    f.insert("user_dir".into(), json!(get("home")));
    f.insert("env".into(), json!({"HOME": get("home"), "PATH": get("path"), "SHELL": get("shell"), "USER": get("user_id")}));
    f.insert("pkg_mgr".into(), json!(if get("pkg_mgr").is_empty() { "unknown".to_string() } else { get("pkg_mgr") }));
    let os_name = unquote(&get("os_NAME"));
    let os_id = unquote(&get("os_ID"));
    let distribution = match os_id.as_str() {
        "debian" => "Debian".to_string(),
        "ubuntu" => "Ubuntu".to_string(),
        "" => "Unknown".to_string(),
        other => os_name.split_whitespace().next().map(str::to_string).unwrap_or_else(|| other.to_string()),
    };
    let version_id = unquote(&get("os_VERSION_ID"));
    let debian_version = get("debian_version").trim().to_string();
    let full_version = if os_id == "debian" && debian_version.chars().next().is_some_and(|c| c.is_ascii_digit()) { debian_version } else { version_id.clone() };
    f.insert("distribution".into(), json!(distribution));
    f.insert("distribution_release".into(), json!(unquote(&get("os_VERSION_CODENAME"))));
    f.insert("distribution_version".into(), json!(full_version));
    f.insert("distribution_major_version".into(), json!(full_version.split('.').next().unwrap_or("")));
    let like = unquote(&get("os_ID_LIKE"));
    let family = if os_id == "debian" || os_id == "ubuntu" || like.contains("debian") {
        "Debian"
    } else if like.contains("rhel") || like.contains("fedora") || os_id == "fedora" {
        "RedHat"
    } else {
        "Unknown"
    };
    f.insert("os_family".into(), json!(family));
    // Addresses: hostname -I lists global ones; `ip addr` gives interfaces and prefixes.
    let mut all_v4: Vec<String> = kv.iter().filter(|(k, _)| k == "ipv4").map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty() && !v.contains(':')).collect();
    let mut interfaces = Vec::new();
    let default_dev = get("default_dev");
    let mut default_v4 = json!({});
    for (_, v) in kv.iter().filter(|(k, _)| k == "addr") {
        let parts: Vec<&str> = v.split_whitespace().collect();
        if parts.len() != 3 {
            continue;
        }
        let (dev, addr, bits) = (parts[0], parts[1], parts[2].parse::<u32>().unwrap_or(32));
        if !interfaces.contains(&dev.to_string()) {
            interfaces.push(dev.to_string());
        }
        let info = json!({"address": addr, "netmask": prefix_len(bits), "prefix": bits.to_string(), "interface": dev});
        f.insert(format!("{}", dev.replace(['-', '.', ':'], "_")), json!({"device": dev, "ipv4": info.clone(), "active": true}));
        if dev == default_dev && default_v4.as_object().is_some_and(|o| o.is_empty()) {
            let mut d = info.clone();
            d["gateway"] = json!(get("default_gw"));
            default_v4 = d;
        }
        if !addr.starts_with("127.") && !all_v4.contains(&addr.to_string()) {
            all_v4.push(addr.to_string());
        }
    }
    if default_v4.as_object().is_some_and(|o| o.is_empty()) {
        // No default route (isolated hosts): the first non-loopback address stands in.
        if let Some(a) = all_v4.first() {
            default_v4 = json!({"address": a});
        }
    }
    f.insert("default_ipv4".into(), default_v4);
    f.insert("all_ipv4_addresses".into(), json!(all_v4));
    f.insert("interfaces".into(), json!(interfaces));
    f.insert("date_time".into(), json!({"iso8601": get("date"), "epoch": get("epoch")}));
    let mut out = Vars::new();
    for (k, v) in &f {
        out.insert(format!("ansible_{k}"), v.clone());
    }
    out.insert("ansible_facts".into(), Value::Object(f));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_facts_parse() {
        let out = std::process::Command::new("sh").arg("-c").arg(FACTS_SCRIPT).output().unwrap();
        let f = parse(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(f["ansible_system"], "Linux");
        assert!(f["ansible_processor_vcpus"].as_u64().unwrap() >= 1);
        assert!(f["ansible_memtotal_mb"].as_u64().unwrap() > 100);
        assert_eq!(f["ansible_facts"]["system"], "Linux");
    }

    #[test]
    fn debian_facts() {
        let out = "hostname=web1\nfqdn=web1.example.com\nnproc=4\nsockets=1\nmemtotal_kb=4096000\nservice_mgr=systemd\ndebian_version=12.7\nos_ID=debian\nos_NAME=\"Debian GNU/Linux\"\nos_VERSION_ID=\"12\"\nos_VERSION_CODENAME=bookworm\naddr=lo 127.0.0.1 8\naddr=eth0 10.0.0.5 24\ndefault_dev=eth0\ndefault_gw=10.0.0.1\n";
        let f = parse(out);
        assert_eq!(f["ansible_distribution"], "Debian");
        assert_eq!(f["ansible_distribution_release"], "bookworm");
        assert_eq!(f["ansible_distribution_version"], "12.7");
        assert_eq!(f["ansible_distribution_major_version"], "12");
        assert_eq!(f["ansible_os_family"], "Debian");
        assert_eq!(f["ansible_domain"], "example.com");
        assert_eq!(f["ansible_memtotal_mb"], 4000);
        assert_eq!(f["ansible_default_ipv4"]["address"], "10.0.0.5");
        assert_eq!(f["ansible_default_ipv4"]["netmask"], "255.255.255.0");
        assert_eq!(f["ansible_eth0"]["ipv4"]["address"], "10.0.0.5");
    }
}
