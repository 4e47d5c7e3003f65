//! Facts in one round trip: a POSIX sh script printing `key=value` lines, parsed into
//! Ansible-named facts (`ansible_hostname`, `ansible_distribution`, ...).

use crate::template::Vars;
use serde_json::{json, Value};

/// `ansible_mounts`, added to the fact script when a play mentions mounts (two more programs):
/// mounted devices and network shares from `/proc/mounts` (as Ansible lists them), sizes
/// from `df`.
pub const MOUNTS_SCRIPT: &str = r#"
df -P -k 2>/dev/null | while read -r dev blocks used avail cap mnt; do echo "df=$blocks $avail $mnt"; done
while read -r dev mnt fs opts rest; do echo "mnt=$dev $mnt $fs $opts"; done < /proc/mounts
"#;

/// Mostly shell builtins: every command started costs the host about a millisecond of CPU,
/// which adds up over a fleet (9 programs run here; the output is shaped by [`parse`]).
pub const FACTS_SCRIPT: &str = r#"
read -r h 2>/dev/null < /proc/sys/kernel/hostname || h=$(hostname)
echo "hostname=$h"
echo "fqdn=$(hostname -f 2>/dev/null || echo "$h")"
set -- $(uname -snrm)
echo "system=$1"; echo "nodename=$2"; echo "kernel=$3"; echo "arch=$4"
echo "nproc=$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)"
awk '/^physical id/ {s[$NF] = 1} /^flags.* hypervisor/ {h = 1} /^MemTotal:/ {print "memtotal_kb=" $2}
  /^MemAvailable:/ {print "memfree_kb=" $2} /^SwapTotal:/ {print "swaptotal_kb=" $2} /^SwapFree:/ {print "swapfree_kb=" $2}
  END {n = 0; for (k in s) n++; print "sockets=" n; if (h) print "hypervisor=1"}' /proc/cpuinfo /proc/meminfo
if [ -r /etc/machine-id ]; then read -r m < /etc/machine-id; echo "machine_id=$m"; fi
if [ -r /run/systemd/container ]; then read -r v < /run/systemd/container; echo "container=$v"; elif [ -e /.dockerenv ]; then echo container=docker; fi
if [ -r /sys/class/dmi/id/sys_vendor ]; then read -r v < /sys/class/dmi/id/sys_vendor; echo "sys_vendor=$v"; fi
if [ -d /run/systemd/system ]; then echo service_mgr=systemd; else read -r c 2>/dev/null < /proc/1/comm || c=sysvinit; echo "service_mgr=$c"; fi
i=$(id); u=${i#uid=}; n=${u#*\(}; g=${i#* gid=}
echo "user_id=${n%%\)*}"; echo "user_uid=${u%%\(*}"; echo "user_gid=${g%%\(*}"
echo "home=$HOME"
echo "path=$PATH"
echo "shell=$SHELL"
if [ -r /etc/debian_version ]; then read -r v < /etc/debian_version; echo "debian_version=$v"; fi
if [ -r /etc/os-release ]; then while IFS= read -r l; do k=${l%%=*}; case $k in ''|*[!A-Z_]*) ;; *) [ "$k" = "$l" ] || echo "os_$l" ;; esac; done < /etc/os-release; fi
if command -v ip >/dev/null 2>&1; then
  ip -o -4 route show default 2>/dev/null | while IFS= read -r l; do echo "route=$l"; done
  ip -o -4 addr show 2>/dev/null | while IFS= read -r l; do echo "ip4=$l"; done
else
  for a in $(hostname -I 2>/dev/null); do echo "ipv4=$a"; done
fi
command -v apt-get >/dev/null 2>&1 && echo pkg_mgr=apt
echo "now=$(LC_ALL=C date '+%s %N %Y %m %d %H %M %S %Z %z %A %w %W')"
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

/// Ansible's `ansible_date_time` from one `date` on the host (its local time; the `iso8601`
/// forms in UTC, from the epoch).
fn date_time(now: &str) -> Value {
    let w: Vec<&str> = now.split_whitespace().collect();
    let [epoch, nanos, year, month, day, hour, minute, second, tz, tz_offset, weekday, weekday_number, weeknumber] = w[..] else {
        return json!({});
    };
    let micro = nanos.get(..6).unwrap_or("000000");
    let secs: i64 = epoch.parse().unwrap_or(0);
    let utc = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    json!({
        "epoch": epoch, "epoch_int": epoch, "year": year, "month": month, "day": day,
        "hour": hour, "minute": minute, "second": second,
        "date": format!("{year}-{month}-{day}"), "time": format!("{hour}:{minute}:{second}"),
        "iso8601": utc.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "iso8601_micro": format!("{}.{micro}Z", utc.format("%Y-%m-%dT%H:%M:%S")),
        "iso8601_basic": format!("{year}{month}{day}T{hour}{minute}{second}{micro}"),
        "iso8601_basic_short": format!("{year}{month}{day}T{hour}{minute}{second}"),
        "tz": tz, "tz_offset": tz_offset, "weekday": weekday, "weekday_number": weekday_number, "weeknumber": weeknumber,
    })
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
    f.insert("swaptotal_mb".into(), json!(num("swaptotal_kb") / 1024));
    f.insert("swapfree_mb".into(), json!(num("swapfree_kb") / 1024));
    let (total, free, swap, swap_free) = (num("memtotal_kb") / 1024, num("memfree_kb") / 1024, num("swaptotal_kb") / 1024, num("swapfree_kb") / 1024);
    f.insert(
        "memory_mb".into(),
        json!({"real": {"total": total, "free": free, "used": total.saturating_sub(free)}, "swap": {"total": swap, "free": swap_free, "used": swap.saturating_sub(swap_free)}}),
    );
    if !get("machine_id").is_empty() {
        f.insert("machine_id".into(), json!(get("machine_id").trim()));
    }
    // Ansible's virtualization facts, from what the script could read without programs.
    let (vtype, vrole) = match (get("container").trim(), get("sys_vendor").trim(), !get("hypervisor").is_empty()) {
        (c, _, _) if !c.is_empty() => (if c == "docker" { "docker".to_string() } else if c == "systemd-nspawn" { "systemd-nspawn".to_string() } else { c.to_string() }, "guest"),
        (_, v, _) if v.starts_with("QEMU") || v.starts_with("Amazon EC2") || v == "Google" => ("kvm".to_string(), "guest"),
        (_, v, _) if v.starts_with("VMware") => ("VMware".to_string(), "guest"),
        (_, v, _) if v.starts_with("Xen") => ("xen".to_string(), "guest"),
        (_, v, _) if v.starts_with("innotek") => ("virtualbox".to_string(), "guest"),
        (_, v, _) if v.starts_with("Microsoft") => ("VirtualPC".to_string(), "guest"),
        (_, _, true) => ("kvm".to_string(), "guest"),
        _ => ("NA".to_string(), "NA"),
    };
    f.insert("virtualization_type".into(), json!(vtype));
    f.insert("virtualization_role".into(), json!(vrole));
    if kv.iter().any(|(k, _)| k == "mnt") {
        // Devices and network shares, as Ansible lists them; sizes from `df` by mount point.
        let sizes: std::collections::HashMap<String, (u64, u64)> = kv
            .iter()
            .filter(|(k, _)| k == "df")
            .filter_map(|(_, v)| {
                let mut w = v.splitn(3, ' ');
                let (blocks, avail, mnt) = (w.next()?.parse().ok()?, w.next()?.parse().ok()?, w.next()?);
                Some((mnt.to_string(), (blocks, avail)))
            })
            .collect();
        let mounts: Vec<Value> = kv
            .iter()
            .filter(|(k, _)| k == "mnt")
            .filter_map(|(_, v)| {
                let w: Vec<&str> = v.split(' ').collect();
                let [dev, mnt, fs, opts] = w[..] else { return None };
                if (!dev.starts_with('/') && !dev.contains(":/")) || fs == "none" {
                    return None;
                }
                let mnt = mnt.replace("\\040", " ");
                let (blocks, avail) = sizes.get(&mnt).copied().unwrap_or((0, 0));
                Some(json!({"device": dev, "mount": mnt, "fstype": fs, "options": opts, "size_total": blocks * 1024, "size_available": avail * 1024, "uuid": "N/A"}))
            })
            .collect();
        f.insert("mounts".into(), json!(mounts));
    }
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
    // Addresses: `ip addr` gives interfaces and prefixes; `hostname -I` (global addresses
    // only) stands in where `ip` is missing.
    let mut all_v4: Vec<String> = kv.iter().filter(|(k, _)| k == "ipv4").map(|(_, v)| v.trim().to_string()).filter(|v| !v.is_empty() && !v.contains(':')).collect();
    let mut interfaces = Vec::new();
    // `ip -o -4 route show default`: "default via GW dev DEV ..." (the first one counts).
    let route: Vec<&str> = kv.iter().find(|(k, _)| k == "route").map(|(_, v)| v.split_whitespace().collect()).unwrap_or_default();
    let after = |word: &str| route.iter().position(|w| *w == word).and_then(|i| route.get(i + 1)).map(|s| s.to_string()).unwrap_or_default();
    let (default_dev, default_gw) = (after("dev"), after("via"));
    let mut default_v4 = json!({});
    // `ip -o -4 addr show`: "2: eth0    inet 10.0.0.5/24 brd ... scope global eth0\ ..."
    for (_, v) in kv.iter().filter(|(k, _)| k == "ip4") {
        let parts: Vec<&str> = v.split_whitespace().collect();
        let Some(i) = parts.iter().position(|w| *w == "inet") else { continue };
        let (Some(dev), Some(cidr)) = (parts.get(1), parts.get(i + 1)) else { continue };
        let (addr, bits) = cidr.split_once('/').map(|(a, b)| (a, b.parse::<u32>().unwrap_or(32))).unwrap_or((cidr, 32));
        let dev = *dev;
        if !interfaces.contains(&dev.to_string()) {
            interfaces.push(dev.to_string());
        }
        let info = json!({"address": addr, "netmask": prefix_len(bits), "prefix": bits.to_string(), "interface": dev});
        f.insert(dev.replace(['-', '.', ':'], "_"), json!({"device": dev, "ipv4": info.clone(), "active": true}));
        if dev == default_dev && default_v4.as_object().is_some_and(|o| o.is_empty()) {
            let mut d = info.clone();
            d["gateway"] = json!(default_gw);
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
    f.insert("date_time".into(), date_time(&get("now")));
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
    fn mounts_swap_machine_id_and_virtualization() {
        let out = "swaptotal_kb=2097148\nswapfree_kb=1048574\nmemtotal_kb=4096000\nmemfree_kb=1024000\nmachine_id=abc123\ncontainer=systemd-nspawn\n\
                   df=1000 400 /\ndf=50 25 /srv/my share\n\
                   mnt=/dev/vda1 / ext4 rw,relatime\nmnt=proc /proc proc rw\nmnt=tmpfs /run tmpfs rw\nmnt=nas:/export /srv/my\\040share nfs4 rw\n";
        let f = parse(out);
        assert_eq!((f["ansible_swaptotal_mb"].as_u64(), f["ansible_swapfree_mb"].as_u64()), (Some(2047), Some(1023)));
        assert_eq!(f["ansible_memory_mb"]["real"], json!({"total": 4000, "free": 1000, "used": 3000}));
        assert_eq!(f["ansible_machine_id"], "abc123");
        assert_eq!((f["ansible_virtualization_type"].as_str(), f["ansible_virtualization_role"].as_str()), (Some("systemd-nspawn"), Some("guest")));
        assert_eq!(
            f["ansible_mounts"],
            json!([
                {"device": "/dev/vda1", "mount": "/", "fstype": "ext4", "options": "rw,relatime", "size_total": 1024000, "size_available": 409600, "uuid": "N/A"},
                {"device": "nas:/export", "mount": "/srv/my share", "fstype": "nfs4", "options": "rw", "size_total": 51200, "size_available": 25600, "uuid": "N/A"}
            ])
        );
        assert!(parse("hostname=x\n").get("ansible_mounts").is_none(), "listed only when asked for");
        assert_eq!(parse("hostname=x\n")["ansible_virtualization_type"], "NA");
    }

    #[test]
    fn local_facts_parse() {
        let out = std::process::Command::new("sh").arg("-c").arg(FACTS_SCRIPT).output().unwrap();
        let f = parse(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(f["ansible_system"], "Linux");
        assert!(f["ansible_processor_vcpus"].as_u64().unwrap() >= 1);
        assert!(f["ansible_memtotal_mb"].as_u64().unwrap() > 100);
        assert_eq!(f["ansible_facts"]["system"], "Linux");
        // The builtin-only parts agree with the programs they stand in for.
        let run = |cmd: &str| {
            let o = std::process::Command::new("sh").arg("-c").arg(cmd).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        assert_eq!(f["ansible_user_id"], run("id -un"));
        assert_eq!(f["ansible_user_uid"].to_string(), run("id -u"));
        assert_eq!(f["ansible_user_gid"].to_string(), run("id -g"));
        assert_eq!(f["ansible_kernel"], run("uname -r"));
        assert_eq!(f["ansible_architecture"], run("uname -m"));
        assert_eq!(f["ansible_nodename"], run("uname -n"));
        assert_eq!(f["ansible_hostname"], run("hostname").split('.').next().unwrap());
        assert!(f["ansible_memtotal_mb"].as_u64().unwrap() > 0);
        let epoch: u64 = f["ansible_date_time"]["epoch"].as_str().unwrap().parse().unwrap();
        assert!(epoch.abs_diff(run("date +%s").parse().unwrap()) < 60);
        assert!(f["ansible_date_time"]["iso8601"].as_str().unwrap().ends_with('Z'));
        // Ansible's keys: the host's local date, and the UTC forms from the same instant
        let dt = &f["ansible_date_time"];
        assert_eq!(dt["year"].as_str().unwrap().len(), 4);
        assert_eq!(dt["date"], format!("{}-{}-{}", dt["year"].as_str().unwrap(), dt["month"].as_str().unwrap(), dt["day"].as_str().unwrap()));
        assert_eq!(dt["time"].as_str().unwrap().len(), 8);
        let utc = std::process::Command::new("date").args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%dT%H:%M:%SZ"]).output().unwrap();
        assert_eq!(dt["iso8601"], String::from_utf8_lossy(&utc.stdout).trim());
        for k in ["hour", "minute", "second", "tz", "tz_offset", "weekday", "weekday_number", "weeknumber", "epoch_int", "iso8601_micro", "iso8601_basic", "iso8601_basic_short"] {
            assert!(dt[k].as_str().is_some_and(|v| !v.is_empty()), "{k}: {dt}");
        }
        let os_id = run(". /etc/os-release && echo $ID");
        if os_id == "debian" {
            assert_eq!(f["ansible_distribution"], "Debian");
            assert_eq!(f["ansible_os_family"], "Debian");
            assert_eq!(f["ansible_distribution_release"], run(". /etc/os-release && echo $VERSION_CODENAME"));
        }
        if run("command -v ip").is_empty() {
            return;
        }
        let gw = run("ip -o -4 route show default | awk '{for(i=1;i<NF;i++) if($i==\"via\") print $(i+1)}' | head -n1");
        if !gw.is_empty() {
            assert_eq!(f["ansible_default_ipv4"]["gateway"], gw);
            assert!(f["ansible_default_ipv4"]["address"].as_str().is_some_and(|a| !a.is_empty()));
        }
        let lo = run("ip -o -4 addr show lo | head -n1");
        if !lo.is_empty() {
            assert!(f["ansible_interfaces"].as_array().unwrap().iter().any(|i| i == "lo"));
        }
    }

    #[test]
    fn debian_facts() {
        let out = "hostname=web1\nfqdn=web1.example.com\nnproc=4\nsockets=1\nmemtotal_kb=4096000\nservice_mgr=systemd\ndebian_version=12.7\nos_ID=debian\nos_NAME=\"Debian GNU/Linux\"\nos_VERSION_ID=\"12\"\nos_VERSION_CODENAME=bookworm\nip4=1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\nip4=2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\nroute=default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.5 metric 100\nuser_id=deploy\nuser_uid=1000\n";
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
        assert_eq!(f["ansible_default_ipv4"]["gateway"], "10.0.0.1");
        assert_eq!(f["ansible_default_ipv4"]["interface"], "eth0");
        assert_eq!(f["ansible_all_ipv4_addresses"], json!(["10.0.0.5"]));
        assert_eq!(f["ansible_interfaces"], json!(["lo", "eth0"]));
    }
}
