//! Shared probes and actions for modules that manage files: one probe reads a path's type,
//! ownership, mode and (optionally) contents; writes are atomic (temp file beside the
//! destination, owner/mode set, then rename).

use super::args::Mode;
use super::{sh_quote, Action, Diff, ModuleError, Probe, ProbeResult, Scope};
use base64::Engine as _;

/// Files larger than this are compared by checksum only (no text diff).
pub const MAX_DIFF_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    Absent,
    File,
    Directory,
    Link { target: String },
    Other,
}

impl FileKind {
    pub fn name(&self) -> &'static str {
        match self {
            FileKind::Absent => "absent",
            FileKind::File => "file",
            FileKind::Directory => "directory",
            FileKind::Link { .. } => "link",
            FileKind::Other => "other",
        }
    }
}

/// What a path is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub kind: FileKind,
    pub owner: String,
    pub group: String,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits incl. setuid/setgid/sticky.
    pub mode: u32,
    pub size: u64,
    pub mtime: i64,
    /// Of a regular file, when contents were probed.
    pub sha256: Option<String>,
    /// Of a regular file no larger than [`MAX_DIFF_BYTES`], when contents were probed.
    pub content: Option<Vec<u8>>,
}

impl FileState {
    pub fn absent() -> Self {
        FileState { kind: FileKind::Absent, owner: String::new(), group: String::new(), uid: 0, gid: 0, mode: 0, size: 0, mtime: 0, sha256: None, content: None }
    }
    pub fn exists(&self) -> bool {
        self.kind != FileKind::Absent
    }
    pub fn mode_str(&self) -> String {
        format!("{:04o}", self.mode)
    }
    pub fn text(&self) -> Option<String> {
        self.content.as_ref().and_then(|c| String::from_utf8(c.clone()).ok())
    }
}

/// Probe one path (does not follow a final symlink). With `contents`, a regular file's sha256
/// and (if small) its bytes are read too.
pub fn file_probe(path: &str, contents: bool) -> Probe {
    Probe::new(format!("p={}\n{}", sh_quote(path), stat_lines(contents)), Scope::path(path)).with_stat(path)
}

/// What `stat` prints for a path after its type, in [`stat_lines`] and in the batch's
/// prefetched stats (see [`stat_prefetch`]).
const STAT_FIELDS: &str = "%U|%G|%u|%g|%a|%s|%Y";

/// Shell lines that `stat` every path at once (one process instead of one per probe) into
/// `$PROVISION_STATS`, where [`stat_lines`] finds them: `\n|PATH|FIELDS` per existing path.
/// Only absolute paths without `|` or a newline are taken, and paths with `|` are never
/// looked up (the lookup's pattern `\n|PATH|` must be unambiguous); `None` when fewer than
/// two paths are left.
pub fn stat_prefetch<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut ps: Vec<&str> = paths.into_iter().filter(|p| p.starts_with('/') && !p.contains(['|', '\n'])).collect();
    ps.sort_unstable();
    ps.dedup();
    if ps.len() < 2 {
        return None;
    }
    let args: Vec<String> = ps.iter().map(|p| sh_quote(p)).collect();
    Some(format!(
        "PROVISION_NL='\n'\nPROVISION_STATS=$PROVISION_NL$(stat -c '|%n|{STAT_FIELDS}' -- {} 2>/dev/null)\n",
        args.join(" ")
    ))
}

/// Shell lines printing the state of the path in shell variable `$p` in the format of
/// [`parse_file_state`]. The fields after the type come from the batch's prefetched stats
/// when `$p` is there (see [`stat_prefetch`]; declare the path with [`Probe::with_stat`]),
/// else from a `stat` of its own. With `contents`, a small regular file's bytes are sent (the
/// controller hashes them: no `sha256sum` on the host), a big one's sha256 only.
pub fn stat_lines(contents: bool) -> String {
    let mut s = format!(
        "if [ -L \"$p\" ]; then t=link; elif [ -d \"$p\" ]; then t=directory; elif [ -f \"$p\" ]; then t=file; elif [ -e \"$p\" ]; then t=other; else echo absent; exit 0; fi\n\
         r=; case $p in *'|'*) ;; *) r=${{PROVISION_STATS-}}; r=${{r#*\"${{PROVISION_NL-}}|$p|\"}} ;; esac\n\
         if [ -n \"$r\" ] && [ \"$r\" != \"${{PROVISION_STATS-}}\" ]; \
         then s=\"$t|${{r%%\"${{PROVISION_NL-}}\"*}}\"; else s=$(stat -c \"$t|{STAT_FIELDS}\" -- \"$p\") || exit 1; fi\n\
         printf '%s\\n' \"$s\"\n\
         if [ $t = link ]; then printf 'target|%s\\n' \"$(readlink -- \"$p\")\"; fi\n",
    );
    if contents {
        s.push_str(&format!(
            "if [ $t = file ]; then z=${{s%|*}}; z=${{z##*|}}; \
             if [ \"$z\" -le {MAX_DIFF_BYTES} ]; then echo content; base64 -w0 < \"$p\"; echo; \
             else printf 'sha256|%s\\n' \"$(sha256sum < \"$p\" | cut -d' ' -f1)\"; fi; fi\n"
        ));
    }
    s
}

/// Parse the output of [`file_probe`].
pub fn parse_file_state(r: &ProbeResult) -> Result<FileState, ModuleError> {
    if r.rc != 0 {
        return Err(ModuleError::Failed(format!("cannot read file state: {}", r.stderr.trim())));
    }
    let mut lines = r.stdout.lines();
    let first = lines.next().unwrap_or("").trim();
    if first == "absent" {
        return Ok(FileState::absent());
    }
    let f: Vec<&str> = first.split('|').collect();
    if f.len() != 8 {
        return Err(ModuleError::Probe(format!("file state line '{first}'")));
    }
    let num = |s: &str| s.parse::<u64>().map_err(|_| ModuleError::Probe(format!("file state line '{first}'")));
    let mut st = FileState {
        kind: match f[0] {
            "file" => FileKind::File,
            "directory" => FileKind::Directory,
            "link" => FileKind::Link { target: String::new() },
            _ => FileKind::Other,
        },
        owner: f[1].to_string(),
        group: f[2].to_string(),
        uid: num(f[3])? as u32,
        gid: num(f[4])? as u32,
        mode: u32::from_str_radix(f[5], 8).map_err(|_| ModuleError::Probe(format!("mode '{}'", f[5])))?,
        size: num(f[6])?,
        mtime: f[7].parse().unwrap_or(0),
        sha256: None,
        content: None,
    };
    while let Some(line) = lines.next() {
        if let Some(t) = line.strip_prefix("target|") {
            st.kind = FileKind::Link { target: t.to_string() };
        } else if let Some(h) = line.strip_prefix("sha256|") {
            st.sha256 = Some(h.trim().to_string());
        } else if line == "content" {
            let b64 = lines.next().unwrap_or("").trim();
            st.content = Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| ModuleError::Probe(format!("file content: {e}")))?,
            );
        }
    }
    if st.sha256.is_none() {
        st.sha256 = st.content.as_deref().map(sha256_hex);
    }
    Ok(st)
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Atomically write `content` to `path` (temp file in the same directory, chown/chmod, rename).
/// `owner`/`group` None keep the defaults of the running user; `mode` None keeps the existing
/// file's mode (if `existing_mode`) or the umask default.
pub fn write_file_action(path: &str, content: &[u8], owner: Option<&str>, group: Option<&str>, mode: Option<u32>, existing_mode: Option<u32>) -> Action {
    let p = sh_quote(path);
    let mut s = format!("set -e\nd=$(dirname -- {p})\ntmp=$(mktemp \"$d/.provision.XXXXXXXX\")\ntrap 'rm -f \"$tmp\"' EXIT\ncat > \"$tmp\"\n");
    if let Some(o) = owner {
        s.push_str(&format!("chown {} \"$tmp\"\n", sh_quote(o)));
    }
    if let Some(g) = group {
        s.push_str(&format!("chgrp {} \"$tmp\"\n", sh_quote(g)));
    }
    match mode.or(existing_mode) {
        Some(m) => s.push_str(&format!("chmod {m:04o} \"$tmp\"\n")),
        // mktemp creates 0600; give the umask default a normal file would get.
        None => s.push_str("chmod $(printf '%04o' $((0666 & ~$(umask)))) \"$tmp\"\n"),
    }
    s.push_str(&format!("mv -f \"$tmp\" {p}\ntrap - EXIT\n"));
    Action::new(format!("write {path}"), s, Scope::path(path)).with_stdin(content.to_vec())
}

/// `a` (a write of `path`) makes the missing folders above `path` first, as Ansible does for
/// a new file.
pub fn create_parent_dirs(a: &mut Action, path: &str) {
    if let Some(dir) = std::path::Path::new(path).parent().and_then(|d| d.to_str()).filter(|d| !d.is_empty()) {
        a.script = format!("mkdir -p -- {}\n{}", sh_quote(dir), a.script);
    }
}

/// Like [`write_file_action`], but the new content is first checked with `validate` (a command
/// containing `%s`, replaced by the temp file's path) and never put in place if that fails.
pub fn write_file_validated_action(path: &str, content: &[u8], owner: Option<&str>, group: Option<&str>, mode: Option<u32>, existing_mode: Option<u32>, validate: Option<&str>) -> Action {
    let mut a = write_file_action(path, content, owner, group, mode, existing_mode);
    if let Some(v) = validate {
        let check = v.replace("%s", "\"$tmp\"");
        a.script = a.script.replace(
            &format!("mv -f \"$tmp\" {}", sh_quote(path)),
            &format!("if ! ( {check} ) >&2; then echo \"validation failed: {}\" >&2; exit 1; fi\nmv -f \"$tmp\" {}", v.replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`"), sh_quote(path)),
        );
    }
    a
}

/// Text diff between a file's probed content and new content; a checksum note when the old
/// content is binary or too large to show.
pub fn content_diff(path: &str, before: &FileState, after: &[u8]) -> Diff {
    let before_text = if before.exists() {
        match before.text() {
            Some(t) => Some(t),
            None => Some(format!("(binary or large file, sha256 {})\n", before.sha256.clone().unwrap_or_default())),
        }
    } else {
        None
    };
    let after_text = match std::str::from_utf8(after) {
        Ok(t) => t.to_string(),
        Err(_) => format!("(binary file, sha256 {})\n", sha256_hex(after)),
    };
    Diff::Text { path: path.to_string(), before: before_text, after: Some(after_text) }
}

/// Field diffs and the action for owner/group/mode differences on an existing path.
pub fn attributes_plan(path: &str, st: &FileState, owner: Option<&str>, group: Option<&str>, mode: Option<&Mode>, recurse: bool) -> (Vec<Diff>, Option<Action>) {
    let mut diffs = Vec::new();
    let mut cmds = Vec::new();
    let p = sh_quote(path);
    let r = if recurse { "-R " } else { "" };
    let is_dir = st.kind == FileKind::Directory;
    let h = if matches!(st.kind, FileKind::Link { .. }) { "-h " } else { "" };
    if let Some(o) = owner {
        if o != st.owner && o != st.uid.to_string() {
            diffs.push(Diff::Field { name: "owner".into(), before: st.owner.clone(), after: o.to_string() });
            cmds.push(format!("chown {h}{r}{} {p}", sh_quote(o)));
        }
    }
    if let Some(g) = group {
        if g != st.group && g != st.gid.to_string() {
            diffs.push(Diff::Field { name: "group".into(), before: st.group.clone(), after: g.to_string() });
            cmds.push(format!("chgrp {h}{r}{} {p}", sh_quote(g)));
        }
    }
    if let Some(m) = mode {
        if !matches!(st.kind, FileKind::Link { .. }) {
            let want = m.resolve(st.mode, is_dir);
            if want != st.mode {
                diffs.push(Diff::Field { name: "mode".into(), before: st.mode_str(), after: format!("{want:04o}") });
                cmds.push(format!("chmod {r}{want:04o} {p}"));
            }
        }
    }
    if cmds.is_empty() {
        (diffs, None)
    } else {
        let summary = format!("set attributes of {path}");
        (diffs, Some(Action::new(summary, cmds.join(" && "), Scope::path(path))))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::ok as res;
    use super::*;

    #[test]
    fn parses_file_states() {
        assert_eq!(parse_file_state(&res("absent\n")).unwrap().kind, FileKind::Absent);
        let st = parse_file_state(&res("file|root|adm|0|4|640|6|1700000000\nsha256|abc\ncontent\naGVsbG8K\n")).unwrap();
        assert_eq!((st.kind.clone(), st.mode, st.owner.as_str(), st.group.as_str()), (FileKind::File, 0o640, "root", "adm"));
        assert_eq!(st.text().as_deref(), Some("hello\n"));
        let l = parse_file_state(&res("link|root|root|0|0|777|5|1\ntarget|/etc/x\n")).unwrap();
        assert_eq!(l.kind, FileKind::Link { target: "/etc/x".into() });
        assert!(parse_file_state(&res("garbage")).is_err());
    }

    /// The probe script itself, run by `sh` on this machine.
    fn run_probe(path: &std::path::Path) -> FileState {
        let pr = file_probe(&path.display().to_string(), true);
        parse_file_state(&super::super::testutil::run_probe(&pr.script)).unwrap()
    }

    #[test]
    fn file_probe_hashes_small_files_on_the_controller_and_big_ones_on_the_host() {
        let d = tempfile::tempdir().unwrap();
        let small = d.path().join("small");
        std::fs::write(&small, "hello\n").unwrap();
        let st = run_probe(&small);
        assert_eq!((st.kind.clone(), st.size), (FileKind::File, 6));
        assert_eq!(st.text().as_deref(), Some("hello\n"));
        assert_eq!(st.sha256.as_deref(), Some(sha256_hex(b"hello\n").as_str()));
        let data = vec![b'x'; MAX_DIFF_BYTES as usize + 1];
        let big = d.path().join("big");
        std::fs::write(&big, &data).unwrap();
        let st = run_probe(&big);
        assert_eq!(st.content, None);
        assert_eq!(st.sha256.as_deref(), Some(sha256_hex(&data).as_str()));
        assert_eq!(run_probe(&d.path().join("missing")).kind, FileKind::Absent);
        assert_eq!(run_probe(d.path()).kind, FileKind::Directory);
    }

    #[test]
    fn plans_attribute_changes_only_when_different() {
        let st = parse_file_state(&res("directory|root|root|0|0|755|4096|1\n")).unwrap();
        let (d, a) = attributes_plan("/x", &st, Some("root"), Some("root"), Some(&Mode::Octal(0o755)), false);
        assert!(d.is_empty() && a.is_none());
        let (d, a) = attributes_plan("/x", &st, Some("devartis"), None, Some(&Mode::Octal(0o750)), true);
        assert_eq!(d.len(), 2);
        assert_eq!(a.unwrap().script, "chown -R devartis /x && chmod -R 0750 /x");
    }
}
