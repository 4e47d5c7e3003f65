//! Probe batching: many read-only probes in one round trip. Each probe's stdout is framed by
//! lines carrying a random tag and its exit code, its stderr copied after the header, so the
//! output splits back per probe; probes sharing a merge wrapper are sent as one script, and
//! the paths file probes `stat` are `stat`ed at once before the probes run.

use crate::modules::common::stat_prefetch;
use crate::modules::{Probe, ProbeResult, MERGE_SLOT};

/// The scripts to send for a batch's probes: probes sharing a merge wrapper become one script
/// (at the first one's place). Returns each script with the indices of the probes it answers.
pub fn merge_probes(tag: &str, probes: &[&Probe]) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        if let Some(m) = &p.merge {
            if let Some(slot) = out.iter_mut().find(|(w, _)| *w == Some(m.wrapper.as_str())) {
                slot.1.push(i);
                continue;
            }
        }
        out.push((p.merge.as_ref().map(|m| m.wrapper.as_str()), vec![i]));
    }
    out.into_iter()
        .map(|(wrapper, members)| match wrapper {
            Some(w) if members.len() > 1 => {
                let mut body = String::new();
                for (k, &i) in members.iter().enumerate() {
                    let m = probes[i].merge.as_ref().expect("merged probes have a wrapper");
                    if k > 0 {
                        body.push('\n');
                        body.push_str(&(m.separator)(&part_line(tag, k)));
                        body.push('\n');
                    }
                    body.push_str(&m.part);
                }
                (w.replacen(MERGE_SLOT, &body, 1), members)
            }
            _ => (probes[members[0]].script.clone(), members),
        })
        .collect()
}

fn part_line(tag: &str, k: usize) -> String {
    format!("{tag}-part {k}")
}

/// Split the result of a merged script (see [`merge_probes`]) into one result per part. When
/// the separators are not all there, every part gets the whole result.
pub fn split_merged(tag: &str, n: usize, r: ProbeResult) -> Vec<ProbeResult> {
    if n == 1 {
        return vec![r];
    }
    let mut sections = vec![String::new()];
    for line in r.stdout.lines() {
        if line == part_line(tag, sections.len()) {
            sections.push(String::new());
        } else {
            let s = sections.last_mut().expect("never empty");
            s.push_str(line);
            s.push('\n');
        }
    }
    if sections.len() != n {
        return vec![r; n];
    }
    sections.into_iter().map(|stdout| ProbeResult { stdout, stderr: r.stderr.clone(), rc: r.rc }).collect()
}

/// The framed results of a [`group_script`] back to the probes: (probe index, its result).
pub fn per_probe(tag: &str, members: Vec<Vec<usize>>, results: Vec<ProbeResult>) -> impl Iterator<Item = (usize, ProbeResult)> + '_ {
    members.into_iter().zip(results).flat_map(move |(m, r)| {
        let parts = split_merged(tag, m.len(), r);
        m.into_iter().zip(parts)
    })
}

/// One become user's part of a batch: the probes merged where they can be ([`merge_probes`]),
/// the paths they `stat` looked up at once ([`stat_prefetch`]), framed by [`batch_script`].
/// Returns the script and, for each framed record, the probes it answers.
pub fn group_script(tag: &str, probes: &[&Probe]) -> (String, Vec<Vec<usize>>) {
    let merged = merge_probes(tag, probes);
    let scripts: Vec<&str> = merged.iter().map(|(s, _)| s.as_str()).collect();
    let prefetch = stat_prefetch(probes.iter().flat_map(|p| p.stats.iter().map(String::as_str)));
    let script = batch_script(tag, prefetch.as_deref().unwrap_or(""), &scripts);
    (script, merged.into_iter().map(|(_, members)| members).collect())
}

/// Build one sh script running `preamble`, then every probe in order, each in its own
/// subshell with stdin closed.
pub fn batch_script(tag: &str, preamble: &str, probes: &[&str]) -> String {
    // Framing costs no process per probe: stdout goes straight out, followed by a header line
    // with the exit code; stderr is kept in a file and copied (`cat`) only when not empty.
    // The tag is random and only ever printed after a newline by `printf` with a literal `\n`
    // in the script, so neither a probe's output nor the script's own text (visible in `ps`)
    // contains a newline followed by the tag.
    let mut s = String::with_capacity(probes.iter().map(|p| p.len() + 120).sum::<usize>() + 100);
    // Where this batch's output starts (other users' batches may come before it).
    s.push_str(&format!("printf '{tag} start\\n'\n"));
    s.push_str("e=$(mktemp) || exit 97\ntrap 'rm -f \"$e\"' EXIT\n");
    s.push_str(preamble);
    for (i, p) in probes.iter().enumerate() {
        s.push_str("(\n");
        s.push_str(p);
        s.push_str(&format!("\n) 2>\"$e\" </dev/null\nprintf '\\n{tag} {i} %d\\n' \"$?\"\nif [ -s \"$e\" ]; then cat \"$e\"; fi\nprintf '\\n{tag} {i} end\\n'\n"));
    }
    s.push_str(&format!("printf '\\n{tag} end\\n'\n"));
    s
}

#[derive(Debug, thiserror::Error)]
#[error("probe batch output is malformed: {0}")]
pub struct FramingError(pub String);

/// Split the batch output back into one result per probe.
pub fn parse_batch(tag: &str, n: usize, out: &[u8]) -> Result<Vec<ProbeResult>, FramingError> {
    let mut results = Vec::with_capacity(n);
    let start = format!("{tag} start\n");
    let mut pos = find(out, start.as_bytes()).ok_or_else(|| FramingError("batch did not start".into()))? + start.len();
    for i in 0..n {
        let header = format!("\n{tag} {i} ");
        let at = find(&out[pos..], header.as_bytes()).map(|a| pos + a).ok_or_else(|| FramingError(format!("record {i} missing")))?;
        let rc_start = at + header.len();
        let rc_end = out[rc_start..].iter().position(|&b| b == b'\n').map(|p| rc_start + p).ok_or_else(|| FramingError(format!("record {i}: truncated header")))?;
        let rc_text = String::from_utf8_lossy(&out[rc_start..rc_end]);
        let rc: i32 = rc_text.parse().map_err(|_| FramingError(format!("record {i}: bad exit code '{rc_text}'")))?;
        let trailer = format!("\n{tag} {i} end\n");
        let err_start = rc_end + 1;
        let err_end = find(&out[err_start.min(out.len())..], trailer.as_bytes())
            .map(|a| err_start + a)
            .ok_or_else(|| FramingError(format!("record {i} truncated")))?;
        results.push(ProbeResult {
            stdout: String::from_utf8_lossy(&out[pos..at]).into_owned(),
            stderr: String::from_utf8_lossy(&out[err_start..err_end]).into_owned(),
            rc,
        });
        pos = err_end + trailer.len();
    }
    Ok(results)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A random marker so probe output can't forge frames by accident.
pub fn new_tag() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("PROVISION-{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::Scope;

    /// Run probes as the executor does: merged, batched, through real sh, split back.
    fn run(probes: &[&Probe]) -> (usize, Vec<ProbeResult>) {
        run_with_path(probes, None)
    }

    /// [`run`], with `dir` first in PATH (to put fake commands there).
    fn run_with_path(probes: &[&Probe], dir: Option<&std::path::Path>) -> (usize, Vec<ProbeResult>) {
        let tag = new_tag();
        let (script, merged) = group_script(&tag, probes);
        let mut cmd = std::process::Command::new("sh");
        if let Some(d) = dir {
            cmd.env("PATH", format!("{}:{}", d.display(), std::env::var("PATH").unwrap_or_default()));
        }
        let out = cmd.arg("-c").arg(script).output().unwrap();
        let results = parse_batch(&tag, merged.len(), &out.stdout).unwrap();
        let sent = merged.len();
        let mut by_probe = vec![ProbeResult::default(); probes.len()];
        for (i, r) in per_probe(&tag, merged, results) {
            by_probe[i] = r;
        }
        (sent, by_probe)
    }

    #[test]
    fn probes_sharing_a_wrapper_run_as_one_and_split_back() {
        // The "session" prints its input, as psql prints query results; it counts its runs.
        let d = tempfile::tempdir().unwrap();
        let wrapper = format!("echo run >> {}/runs; cat <<'EOF'\n{MERGE_SLOT}\nEOF\n", d.path().display());
        let sep: fn(&str) -> String = |line| line.to_string();
        let a = Probe::mergeable(wrapper.clone(), "a|1\na|2".into(), sep, Scope::Host);
        let plain = Probe::new("echo plain", Scope::Host);
        let b = Probe::mergeable(wrapper.clone(), "b|1".into(), sep, Scope::Host);
        let other = Probe::mergeable("cat <<'EOF'\n@@PROVISION_MERGE_SLOT@@\nEOF\n".into(), "c|1".into(), sep, Scope::Host);
        let (sent, r) = run(&[&a, &plain, &b, &other]);
        assert_eq!(sent, 3);
        assert_eq!(std::fs::read_to_string(d.path().join("runs")).unwrap(), "run\n");
        assert_eq!(r[0].stdout, "a|1\na|2\n");
        assert_eq!(r[1].stdout, "plain\n");
        assert_eq!(r[2].stdout, "b|1\n");
        assert_eq!(r[3].stdout, "c|1\n");
        // a lone mergeable probe is sent as its own script
        let (sent, r) = run(&[&b]);
        assert_eq!((sent, r[0].stdout.as_str()), (1, "b|1\n"));
    }

    #[test]
    fn a_failed_merged_probe_gives_every_part_the_whole_answer() {
        let wrapper = format!("echo 'down|no server'; echo oops >&2; exit 2\n: '{MERGE_SLOT}'");
        let sep: fn(&str) -> String = |line| line.to_string();
        let a = Probe::mergeable(wrapper.clone(), "x".into(), sep, Scope::Host);
        let b = Probe::mergeable(wrapper, "y".into(), sep, Scope::Host);
        let (sent, r) = run(&[&a, &b]);
        assert_eq!(sent, 1);
        for r in r {
            assert_eq!(r, ProbeResult { stdout: "down|no server\n".into(), stderr: "oops\n".into(), rc: 2 });
        }
    }

    #[test]
    fn file_probes_stat_their_paths_at_once_with_the_same_answers() {
        use crate::modules::common::{file_probe, parse_file_state, FileKind};
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("tree");
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::write(root.join("file"), "hello\n").unwrap();
        std::fs::write(root.join("file b"), "spaced\n").unwrap(); // a name that extends another's
        std::fs::write(root.join("odd|name"), "piped\n").unwrap(); // left out of the prefetch
        std::fs::write(root.join("it's"), "quoted\n").unwrap();
        // Named like the lookup key of "file" followed by its owner field: must not borrow its stat.
        let owner = std::process::Command::new("stat").arg("-c").arg("%U").arg(root.join("file")).output().unwrap();
        let owner = String::from_utf8(owner.stdout).unwrap().trim().to_string();
        std::fs::write(root.join(format!("file|{owner}")), "not file\n").unwrap();
        std::fs::set_permissions(root.join(format!("file|{owner}")), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(root.join("file"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("file", root.join("link")).unwrap();
        let tricky = format!("file|{owner}");
        let names = ["dir", "file", "file b", "odd|name", "it's", "link", "absent", tricky.as_str()];
        let paths: Vec<String> = names.iter().map(|n| root.join(n).display().to_string()).collect();
        let probes: Vec<Probe> = paths.iter().map(|p| file_probe(p, true)).collect();
        let refs: Vec<&Probe> = probes.iter().collect();

        // A `stat` that logs each start, first in PATH.
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = d.path().join("stat.log");
        let real = ["/usr/bin/stat", "/bin/stat"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap();
        std::fs::write(bin.join("stat"), format!("#!/bin/sh\necho x >> '{}'\nexec {real} \"$@\"\n", log.display())).unwrap();
        std::fs::set_permissions(bin.join("stat"), std::fs::Permissions::from_mode(0o755)).unwrap();

        let (_, batched) = run_with_path(&refs, Some(&bin));
        // One `stat` for the batch, plus one for each path the prefetch leaves out.
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);
        for (i, p) in probes.iter().enumerate() {
            let alone = run(&[p]).1.remove(0);
            assert_eq!(batched[i], alone, "{}", paths[i]);
            assert_eq!(batched[i].rc, 0, "{:?}", batched[i]);
        }
        let st = |i: usize| parse_file_state(&batched[i]).unwrap();
        assert_eq!(st(0).kind, FileKind::Directory);
        assert_eq!((st(1).kind.clone(), st(1).mode, st(1).content.as_deref()), (FileKind::File, 0o640, Some(&b"hello\n"[..])));
        assert_eq!(st(2).content.as_deref(), Some(&b"spaced\n"[..]));
        assert_eq!(st(3).content.as_deref(), Some(&b"piped\n"[..]));
        assert_eq!(st(4).content.as_deref(), Some(&b"quoted\n"[..]));
        assert_eq!(st(5).kind, FileKind::Link { target: "file".into() });
        assert!(!st(6).exists());
        assert_eq!((st(7).mode, st(7).content.as_deref()), (0o600, Some(&b"not file\n"[..])));
    }

    #[test]
    fn batch_round_trips_through_real_sh() {
        let tag = new_tag();
        let forged = format!("printf '%s' '\\n{tag} 5 0\\n'");
        let probes = ["printf 'a\\nb'", "echo err >&2; exit 3", "printf '\\nPROVISION-fake 0 0 0 0\\n'; cat /nonexistent 2>/dev/null; true", "head -c 300 /dev/zero | tr '\\0' x", "printf 'x\\n\\n'; printf 'e\\n\\n' >&2", &forged];
        let script = batch_script(&tag, "", &probes);
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let r = parse_batch(&tag, probes.len(), &out.stdout).unwrap();
        assert_eq!(r[0], ProbeResult { stdout: "a\nb".into(), stderr: String::new(), rc: 0 });
        assert_eq!(r[1], ProbeResult { stdout: String::new(), stderr: "err\n".into(), rc: 3 });
        assert_eq!(r[2].stdout, "\nPROVISION-fake 0 0 0 0\n");
        assert_eq!(r[3].stdout.len(), 300);
        assert_eq!(r[4], ProbeResult { stdout: "x\n\n".into(), stderr: "e\n\n".into(), rc: 0 });
        assert_eq!(r[5].stdout, format!("\\n{tag} 5 0\\n"));
        // the script's own text (what `ps` shows) never has a newline followed by the tag
        assert!(!script.contains(&format!("\n{tag}")));
    }

    #[test]
    fn batches_of_several_users_in_one_output_stay_apart() {
        let (t1, t2) = (new_tag(), new_tag());
        let script = format!("({})\n({})", batch_script(&t1, "", &["echo first; echo e1 >&2"]), batch_script(&t2, "", &["echo second", "true"]));
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(parse_batch(&t1, 1, &out.stdout).unwrap(), vec![ProbeResult { stdout: "first\n".into(), stderr: "e1\n".into(), rc: 0 }]);
        let second = parse_batch(&t2, 2, &out.stdout).unwrap();
        assert_eq!(second[0], ProbeResult { stdout: "second\n".into(), stderr: String::new(), rc: 0 });
        assert_eq!(second[1], ProbeResult::default());
    }

    #[test]
    fn truncated_output_is_an_error_not_a_panic() {
        assert!(parse_batch("T", 1, b"T start\nabc\nT 0 0\nabc").is_err());
        assert!(parse_batch("T", 1, b"").is_err());
        assert!(parse_batch("T", 1, b"out\nT 0 2\nerr\nT 0 end\n").is_err(), "no start");
        assert!(parse_batch("T", 1, b"T start\n\nT 0 x\na\nT 0 end\n").is_err());
        assert!(parse_batch("T", 2, b"T start\n\nT 0 0\n\nT 0 end\n").is_err());
        assert_eq!(parse_batch("T", 1, b"T start\nout\nT 0 2\nerr\nT 0 end\n").unwrap()[0], ProbeResult { stdout: "out".into(), stderr: "err".into(), rc: 2 });
    }
}
