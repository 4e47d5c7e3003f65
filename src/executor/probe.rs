//! Probe batching: many read-only probes in one round trip. Each probe's stdout and stderr go
//! to temp files; the batch prints a framed, length-prefixed record per probe so any content
//! (binary, markers, missing newlines) splits back exactly.

use crate::modules::ProbeResult;

/// Build one sh script running every probe in order, each in its own subshell with stdin closed.
pub fn batch_script(tag: &str, probes: &[&str]) -> String {
    // Framing costs no process per probe: stdout goes straight out, followed by a header line
    // with the exit code; stderr is kept in a file and copied (`cat`) only when not empty.
    // The tag is random and only ever printed after a newline by `printf` with a literal `\n`
    // in the script, so neither a probe's output nor the script's own text (visible in `ps`)
    // contains a newline followed by the tag.
    let mut s = String::with_capacity(probes.iter().map(|p| p.len() + 120).sum::<usize>() + 100);
    // Where this batch's output starts (other users' batches may come before it).
    s.push_str(&format!("printf '{tag} start\\n'\n"));
    s.push_str("e=$(mktemp) || exit 97\ntrap 'rm -f \"$e\"' EXIT\n");
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

    #[test]
    fn batch_round_trips_through_real_sh() {
        let tag = new_tag();
        let forged = format!("printf '%s' '\\n{tag} 5 0\\n'");
        let probes = ["printf 'a\\nb'", "echo err >&2; exit 3", "printf '\\nPROVISION-fake 0 0 0 0\\n'; cat /nonexistent 2>/dev/null; true", "head -c 300 /dev/zero | tr '\\0' x", "printf 'x\\n\\n'; printf 'e\\n\\n' >&2", &forged];
        let script = batch_script(&tag, &probes);
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
        let script = format!("({})\n({})", batch_script(&t1, &["echo first; echo e1 >&2"]), batch_script(&t2, &["echo second", "true"]));
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
