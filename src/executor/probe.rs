//! Probe batching: many read-only probes in one round trip. Each probe's stdout and stderr go
//! to temp files; the batch prints a framed, length-prefixed record per probe so any content
//! (binary, markers, missing newlines) splits back exactly.

use crate::modules::ProbeResult;

/// Build one sh script running every probe in order, each in its own subshell with stdin closed.
pub fn batch_script(tag: &str, probes: &[&str]) -> String {
    let mut s = String::with_capacity(probes.iter().map(|p| p.len() + 200).sum());
    s.push_str("o=$(mktemp) && e=$(mktemp) || exit 97\ntrap 'rm -f \"$o\" \"$e\"' EXIT\n");
    for (i, p) in probes.iter().enumerate() {
        s.push_str("(\n");
        s.push_str(p);
        s.push_str(&format!("\n) >\"$o\" 2>\"$e\" </dev/null\nrc=$?\nprintf '\\n{tag} {i} %d %d %d\\n' \"$rc\" \"$(wc -c <\"$o\")\" \"$(wc -c <\"$e\")\"\ncat \"$o\" \"$e\"\n"));
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
    let mut pos = 0;
    let header_start = format!("\n{tag} ");
    for i in 0..n {
        let rest = &out[pos..];
        let at = find(rest, header_start.as_bytes()).ok_or_else(|| FramingError(format!("record {i} missing")))?;
        let line_start = pos + at + header_start.len();
        let line_end = out[line_start..].iter().position(|&b| b == b'\n').map(|p| line_start + p).ok_or_else(|| FramingError("truncated header".into()))?;
        let header = String::from_utf8_lossy(&out[line_start..line_end]).to_string();
        let f: Vec<&str> = header.split_whitespace().collect();
        if f.len() != 4 || f[0] != i.to_string() {
            return Err(FramingError(format!("bad header '{header}' for record {i}")));
        }
        let num = |s: &str| s.parse::<usize>().map_err(|_| FramingError(format!("bad number in '{header}'")));
        let rc: i32 = f[1].parse().map_err(|_| FramingError(format!("bad rc in '{header}'")))?;
        let (olen, elen) = (num(f[2])?, num(f[3])?);
        let body = line_end + 1;
        if body + olen + elen > out.len() {
            return Err(FramingError(format!("record {i} truncated")));
        }
        results.push(ProbeResult {
            stdout: String::from_utf8_lossy(&out[body..body + olen]).into_owned(),
            stderr: String::from_utf8_lossy(&out[body + olen..body + olen + elen]).into_owned(),
            rc,
        });
        pos = body + olen + elen;
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
        let probes = ["printf 'a\\nb'", "echo err >&2; exit 3", "printf '\\nPROVISION-fake 0 0 0 0\\n'; cat /nonexistent 2>/dev/null; true", "head -c 300 /dev/zero | tr '\\0' x"];
        let script = batch_script(&tag, &probes);
        let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let r = parse_batch(&tag, probes.len(), &out.stdout).unwrap();
        assert_eq!(r[0], ProbeResult { stdout: "a\nb".into(), stderr: String::new(), rc: 0 });
        assert_eq!(r[1], ProbeResult { stdout: String::new(), stderr: "err\n".into(), rc: 3 });
        assert_eq!(r[2].stdout, "\nPROVISION-fake 0 0 0 0\n");
        assert_eq!(r[3].stdout.len(), 300);
    }

    #[test]
    fn truncated_output_is_an_error_not_a_panic() {
        assert!(parse_batch("T", 1, b"\nT 0 0 10 0\nabc").is_err());
        assert!(parse_batch("T", 1, b"").is_err());
        assert!(parse_batch("T", 1, b"\nT 0 x 1 0\na").is_err());
    }
}
