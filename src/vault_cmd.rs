//! `provision vault ...`: create, encrypt, decrypt, view, edit and re-key Ansible Vault files
//! and strings the way `ansible-vault` does, with no Python. The format and the crypto are
//! [`crate::vault`]'s; this is the command around them.

use crate::cli::AnsibleCfg;
use crate::vault::{self, Keyring, Prompt, VaultError};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// `provision vault`: the options every action takes, and the action.
#[derive(Debug, clap::Args)]
#[command(after_help = "Passwords also come from ANSIBLE_VAULT_PASSWORD_FILE, ANSIBLE_VAULT_IDENTITY_LIST and ansible.cfg \
    (vault_password_file, vault_identity_list, vault_encrypt_identity); with none at all, one is asked for.")]
pub struct VaultCli {
    #[command(flatten)]
    pub keys: KeyOpts,
    #[command(subcommand)]
    pub action: Action,
}

/// Where the vault passwords come from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyOpts {
    /// File holding the vault password (an executable one is run and what it prints is the
    /// password). Repeatable.
    #[arg(long = "vault-password-file", alias = "vault-pass-file", value_name = "FILE", global = true)]
    pub vault_password_files: Vec<PathBuf>,

    /// A vault password for a vault id: `LABEL@FILE`, `LABEL@prompt` or `FILE`. Repeatable.
    #[arg(long = "vault-id", value_name = "ID", global = true)]
    pub vault_ids: Vec<String>,

    /// Ask for the vault password on the terminal.
    #[arg(short = 'J', long, global = true)]
    pub ask_vault_pass: bool,

    /// The vault id to encrypt with (required when several are given; also
    /// ANSIBLE_VAULT_ENCRYPT_IDENTITY or ansible.cfg's `vault_encrypt_identity`).
    #[arg(long, value_name = "LABEL", global = true)]
    pub encrypt_vault_id: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Encrypt files in place (no FILE or `-`: stdin to stdout).
    Encrypt {
        #[arg(value_name = "FILE")]
        files: Vec<String>,
        /// Write here instead of in place (`-`: stdout); one input file at most.
        #[arg(long, value_name = "OUT")]
        output: Option<String>,
    },
    /// Decrypt files in place (no FILE or `-`: stdin to stdout).
    Decrypt {
        #[arg(value_name = "FILE")]
        files: Vec<String>,
        /// Write here instead of in place (`-`: stdout); one input file at most.
        #[arg(long, value_name = "OUT")]
        output: Option<String>,
    },
    /// Print decrypted files.
    View {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<String>,
    },
    /// Encrypt strings into `!vault |` values to paste into YAML (no STRING or `-`: stdin).
    #[command(name = "encrypt_string", alias = "encrypt-string")]
    EncryptString {
        #[arg(value_name = "STRING")]
        strings: Vec<String>,
        /// Variable name of a string, in the order of the strings. Repeatable.
        #[arg(short = 'n', long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// Variable name of the string read from stdin.
        #[arg(long, value_name = "NAME")]
        stdin_name: Option<String>,
        /// Write here instead of stdout.
        #[arg(long, value_name = "OUT")]
        output: Option<String>,
    },
    /// Create an encrypted file: edit it in $EDITOR (default vi), encrypt what was saved.
    Create {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Open the editor even when stdout is not a terminal.
        #[arg(long)]
        skip_tty_check: bool,
    },
    /// Edit encrypted files in $EDITOR (default vi); re-encrypted (same password and vault id)
    /// when changed.
    Edit {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Re-encrypt files with a new password (asked for twice unless given).
    Rekey {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// File holding the new vault password.
        #[arg(long, value_name = "FILE", conflicts_with = "new_vault_id")]
        new_vault_password_file: Option<PathBuf>,
        /// The new vault id and its password: `LABEL@FILE`, `LABEL@prompt` or `FILE`.
        #[arg(long, value_name = "ID")]
        new_vault_id: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum VaultCmdError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("{0}: input is already encrypted")]
    AlreadyEncrypted(String),
    #[error("{0}: input is not vault encrypted data")]
    NotEncrypted(String),
    #[error("{0}: {1}")]
    Decrypt(String, VaultError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}")]
    Editor(String),
}

type Result<T, E = VaultCmdError> = std::result::Result<T, E>;

const STDIN: &str = "-";

/// How an input is named in messages.
fn shown(name: &str) -> String {
    if name == STDIN {
        "<stdin>".to_string()
    } else {
        name.to_string()
    }
}

/// A vault id's label goes into the envelope's `;`-separated header.
fn check_vault_id(spec: &str) -> Result<()> {
    let (label, _) = vault::parse_vault_id(spec);
    if label.contains(';') {
        return Err(VaultCmdError::Usage(format!("'{spec}' is not a valid vault id: the character ';' is not allowed in vault ids")));
    }
    Ok(())
}

/// The vault id to encrypt with among the keyring's `ids` (its first password when `None`):
/// `wanted` if given; with several passwords and none wanted, an error, as in ansible-vault.
fn encrypt_id(ids: &[&str], wanted: Option<String>) -> Result<Option<String>> {
    match wanted {
        Some(w) if ids.contains(&w.as_str()) => Ok(Some(w)),
        Some(w) => Err(VaultError::UnknownId(w, ids.join(", ")).into()),
        None if ids.len() > 1 => Err(VaultCmdError::Usage(format!(
            "the vault ids {} are available to encrypt: choose one with --encrypt-vault-id",
            ids.join(", ")
        ))),
        None => Ok(None),
    }
}

impl KeyOpts {
    /// The passwords given (as for a run: [`crate::cli::vault_sources`]); none at all means
    /// asking for one, as ansible-vault does.
    fn keyring(&self, cfg: &AnsibleCfg, prompt: Prompt) -> Result<Keyring> {
        let (ids, files) = crate::cli::vault_sources(cfg, &self.vault_ids, &self.vault_password_files);
        for id in &ids {
            check_vault_id(id)?;
        }
        let ask = self.ask_vault_pass || (ids.is_empty() && files.is_empty());
        Ok(vault::keyring_prompting(&ids, &files, ask, prompt)?)
    }

    /// The passwords to encrypt with (a new one asked for twice), and which of them encrypts.
    fn encrypter(&self, cfg: &AnsibleCfg) -> Result<(Keyring, Option<String>)> {
        let keyring = self.keyring(cfg, Prompt::New)?;
        let wanted = self
            .encrypt_vault_id
            .clone()
            .or_else(|| std::env::var("ANSIBLE_VAULT_ENCRYPT_IDENTITY").ok().filter(|v| !v.is_empty()))
            .or_else(|| cfg.vault_encrypt_identity.clone());
        let id = encrypt_id(&keyring.ids(), wanted)?;
        Ok((keyring, id))
    }
}

fn read_input(name: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    let r = if name == STDIN { std::io::stdin().lock().read_to_end(&mut data).map(|_| ()) } else { std::fs::read(name).map(|d| data = d) };
    r.map_err(|e| VaultCmdError::Io(format!("cannot read {}", shown(name)), e))?;
    Ok(data)
}

fn write_stdout(data: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(data).and_then(|()| out.flush()) {
        // `| head`: the reader has seen enough.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(VaultCmdError::Io("cannot write to stdout".into(), e)),
        _ => Ok(()),
    }
}

/// Write to a file ([`write_atomic`]) or, for `-`, stdout.
fn write_output(dest: &str, data: &[u8]) -> Result<()> {
    if dest == STDIN {
        return write_stdout(data);
    }
    write_atomic(Path::new(dest), data).map_err(|e| VaultCmdError::Io(format!("cannot write {dest}"), e))
}

/// Replace a file's content at once: a temp file in its directory, renamed over it, with the
/// file's permissions (and owner and group, where allowed). A new file is made with mode 0600;
/// a symlink is followed; what is no regular file (`/dev/stdout`) is written to directly.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    let old = std::fs::metadata(&target).ok();
    if let Some(m) = old.as_ref().filter(|m| !m.is_file()) {
        if m.is_dir() {
            return Err(std::io::Error::other("it is a directory"));
        }
        return std::fs::OpenOptions::new().write(true).open(&target)?.write_all(data);
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".provision-vault-").tempfile_in(dir)?;
    tmp.write_all(data)?;
    if let Some(m) = &old {
        tmp.as_file().set_permissions(m.permissions())?;
        // Only root may give a file away; anyone else keeps the file as their own.
        let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(m.uid()), Some(m.gid()));
    }
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

/// Encrypt `data` read from `name`, refusing what is encrypted already.
fn seal_new(keyring: &Keyring, id: Option<&str>, data: &[u8], name: &str) -> Result<String> {
    if vault::is_encrypted(data) {
        return Err(VaultCmdError::AlreadyEncrypted(shown(name)));
    }
    Ok(keyring.encrypt(data, id)?)
}

/// Decrypt `data` read from `name`; also the password that opened it.
fn open<'k>(keyring: &'k Keyring, data: &[u8], name: &str) -> Result<(Vec<u8>, &'k vault::Secret)> {
    if !vault::is_encrypted(data) {
        return Err(VaultCmdError::NotEncrypted(shown(name)));
    }
    keyring.decrypt_with_secret(&String::from_utf8_lossy(data)).map_err(|e| VaultCmdError::Decrypt(shown(name), e))
}

/// `--output` names one output: one input at most.
fn check_output(files: &[String], output: &Option<String>) -> Result<()> {
    if output.is_some() && files.len() > 1 {
        return Err(VaultCmdError::Usage("at most one input file may be used with the --output option".into()));
    }
    Ok(())
}

/// A string to encrypt, where it came from and its variable name.
#[derive(Debug, PartialEq)]
struct Plaintext {
    text: Vec<u8>,
    from: &'static str,
    name: Option<String>,
}

/// Whether encrypt_string reads stdin: no string, `-` among them, or `--stdin-name`.
fn reads_stdin(strings: &[String], stdin_name: &Option<String>) -> bool {
    strings.is_empty() || strings.iter().any(|s| s == STDIN) || stdin_name.is_some()
}

/// encrypt_string's inputs as ansible-vault orders them: stdin's text first (named by
/// `--stdin-name`), then the strings, the first ones named by the `--name`s in order.
/// Returns warnings to print too.
fn plaintexts(strings: &[String], names: &[String], stdin: Option<(Vec<u8>, Option<String>)>) -> Result<(Vec<Plaintext>, Vec<String>)> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    if let Some((text, name)) = stdin {
        if text.is_empty() {
            return Err(VaultCmdError::Usage("stdin was empty, not encrypting".into()));
        }
        out.push(Plaintext { text, from: "stdin", name });
    }
    let args: Vec<&String> = strings.iter().filter(|s| *s != STDIN).collect();
    if !names.is_empty() && args.len() > names.len() {
        warnings.push("The number of --name options do not match the number of args.".to_string());
        warnings.push(format!("The last named variable will be \"{}\". The rest will not have names.", names[names.len() - 1]));
    }
    for extra in names.iter().skip(args.len()) {
        warnings.push(format!("[WARNING]: --name '{extra}' names no string (--stdin-name names stdin's)"));
    }
    for (i, s) in args.into_iter().enumerate() {
        if s.is_empty() {
            return Err(VaultCmdError::Usage("the plaintext provided from the command line args was empty, not encrypting".into()));
        }
        out.push(Plaintext { text: s.clone().into_bytes(), from: "the command line args", name: names.get(i).cloned() });
    }
    Ok((out, warnings))
}

/// A `!vault |` block scalar, as ansible-vault prints it: `NAME: !vault |` (or `!vault |`)
/// and the envelope's lines indented by 10 spaces; no newline at the end.
fn vault_block(envelope: &str, name: Option<&str>) -> String {
    let mut out = match name {
        Some(n) => format!("{n}: !vault |"),
        None => "!vault |".to_string(),
    };
    for line in envelope.lines() {
        out.push('\n');
        out.push_str("          ");
        out.push_str(line);
    }
    out
}

/// What tells the `n`th (from 0) of several encrypted strings apart, on stderr.
fn block_comment(n: usize, p: &Plaintext) -> String {
    match &p.name {
        Some(name) => format!("# The encrypted version of variable (\"{name}\", the string #{} from {}).", n + 1, p.from),
        None => format!("# The encrypted version of the string #{} from {}.", n + 1, p.from),
    }
}

/// `$EDITOR` (shell words; the file is added last), `vi` when unset.
fn editor_argv(editor: Option<String>) -> Result<Vec<String>> {
    let e = editor.filter(|e| !e.trim().is_empty()).unwrap_or_else(|| "vi".to_string());
    match shlex::split(&e) {
        Some(argv) if !argv.is_empty() => Ok(argv),
        _ => Err(VaultCmdError::Editor(format!("cannot make sense of EDITOR='{e}'"))),
    }
}

/// A decrypted temp file (mode 0600, in a private temp directory): overwritten, then
/// removed with its directory (and whatever the editor left there), whatever happens.
struct Scratch {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::metadata(&self.path) {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&self.path) {
                let _ = f.write_all(&vec![0u8; m.len() as usize]).and_then(|()| f.sync_all());
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Let the user edit `content` with the editor `argv`; what was saved. The temp file is named
/// like `original` so the editor recognises the kind of file.
fn edit_with(argv: &[String], original: &Path, content: &[u8]) -> Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |what: &str| {
        let what = what.to_string();
        move |e| VaultCmdError::Io(what, e)
    };
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("provision-vault-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(io("cannot make a temp directory"))?;
    let name = original.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("vault"));
    let scratch = Scratch { path: dir.path().join(name), _dir: dir };
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&scratch.path)
        .and_then(|mut f| f.write_all(content))
        .map_err(io("cannot write the temp file"))?;
    let shown_cmd = argv.join(" ");
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .arg(&scratch.path)
        .status()
        .map_err(|e| VaultCmdError::Editor(format!("cannot run the editor '{shown_cmd}': {e}")))?;
    if !status.success() {
        return Err(VaultCmdError::Editor(format!("the editor '{shown_cmd}' failed ({status}); {} is left as it was", original.display())));
    }
    std::fs::read(&scratch.path).map_err(io("cannot read the edited temp file"))
}

fn read_path(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| VaultCmdError::Io(format!("cannot read {}", path.display()), e))
}

fn write_path(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic(path, data).map_err(|e| VaultCmdError::Io(format!("cannot write {}", path.display()), e))
}

/// Run `provision vault ACTION`. Progress messages go to stderr.
pub fn run(cmd: &VaultCli, cfg: &AnsibleCfg) -> Result<()> {
    let keys = &cmd.keys;
    let stdin_tty = std::io::stdin().is_terminal();
    match &cmd.action {
        Action::Encrypt { files, output } => {
            check_output(files, output)?;
            let (keyring, id) = keys.encrypter(cfg)?;
            if files.is_empty() && stdin_tty {
                eprintln!("Reading plaintext input from stdin");
            }
            let inputs = if files.is_empty() { vec![STDIN.to_string()] } else { files.clone() };
            for f in &inputs {
                let text = seal_new(&keyring, id.as_deref(), &read_input(f)?, f)?;
                write_output(output.as_deref().unwrap_or(f), text.as_bytes())?;
            }
            eprintln!("Encryption successful");
        }
        Action::Decrypt { files, output } => {
            check_output(files, output)?;
            let keyring = keys.keyring(cfg, Prompt::Existing)?;
            if files.is_empty() && stdin_tty {
                eprintln!("Reading ciphertext input from stdin");
            }
            let inputs = if files.is_empty() { vec![STDIN.to_string()] } else { files.clone() };
            for f in &inputs {
                let (plain, _) = open(&keyring, &read_input(f)?, f)?;
                write_output(output.as_deref().unwrap_or(f), &plain)?;
            }
            eprintln!("Decryption successful");
        }
        Action::View { files } => {
            let keyring = keys.keyring(cfg, Prompt::Existing)?;
            for f in files {
                let (plain, _) = open(&keyring, &read_input(f)?, f)?;
                write_stdout(&plain)?;
            }
        }
        Action::EncryptString { strings, names, stdin_name, output } => {
            let (keyring, id) = keys.encrypter(cfg)?;
            let stdin = if reads_stdin(strings, stdin_name) {
                if stdin_tty {
                    eprintln!("Reading plaintext input from stdin. (ctrl-d to end input, twice if your content does not already have a newline)");
                }
                let text = read_input(STDIN)?;
                if stdin_tty && !text.ends_with(b"\n") {
                    eprintln!();
                }
                Some((text, stdin_name.clone()))
            } else {
                None
            };
            let (inputs, warnings) = plaintexts(strings, names, stdin)?;
            for w in warnings {
                eprintln!("{w}");
            }
            let mut out = String::new();
            for (n, p) in inputs.iter().enumerate() {
                let envelope = seal_new(&keyring, id.as_deref(), &p.text, p.from)?;
                if inputs.len() > 1 {
                    eprintln!("{}", block_comment(n, p));
                }
                out.push_str(&vault_block(&envelope, p.name.as_deref()));
                out.push('\n');
            }
            write_output(output.as_deref().unwrap_or(STDIN), out.as_bytes())?;
            eprintln!("Encryption successful");
        }
        Action::Create { file, skip_tty_check } => {
            if file.exists() {
                return Err(VaultCmdError::Usage(format!("{} exists, please use 'edit' instead", file.display())));
            }
            if !skip_tty_check && !std::io::stdout().is_terminal() {
                return Err(VaultCmdError::Usage("not a tty, editor cannot be opened (--skip-tty-check opens it anyway)".into()));
            }
            let argv = editor_argv(std::env::var("EDITOR").ok())?;
            let (keyring, id) = keys.encrypter(cfg)?;
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
                eprintln!("[WARNING]: {} does not exist, creating...", dir.display());
                std::fs::create_dir_all(dir).map_err(|e| VaultCmdError::Io(format!("cannot create {}", dir.display()), e))?;
            }
            let plain = edit_with(&argv, file, b"")?;
            let text = seal_new(&keyring, id.as_deref(), &plain, &file.display().to_string())?;
            write_path(file, text.as_bytes())?;
        }
        Action::Edit { files } => {
            let argv = editor_argv(std::env::var("EDITOR").ok())?;
            let keyring = keys.keyring(cfg, Prompt::Existing)?;
            for f in files {
                let name = f.display().to_string();
                let data = read_path(f)?;
                let (plain, secret) = open(&keyring, &data, &name)?;
                // The same password and vault id as before.
                let label = vault::label(&String::from_utf8_lossy(&data))?;
                let edited = edit_with(&argv, f, &plain)?;
                if edited != plain {
                    if vault::is_encrypted(&edited) {
                        return Err(VaultCmdError::AlreadyEncrypted(name));
                    }
                    write_path(f, secret.seal(&edited, label.as_deref()).as_bytes())?;
                }
            }
        }
        Action::Rekey { files, new_vault_password_file, new_vault_id } => {
            if let Some(id) = new_vault_id {
                check_vault_id(id)?;
            }
            let old = keys.keyring(cfg, Prompt::Existing)?;
            let new = match (new_vault_password_file, new_vault_id) {
                (Some(f), _) => vault::keyring_prompting(&[], std::slice::from_ref(f), false, Prompt::New)?,
                (None, Some(id)) => vault::keyring_prompting(std::slice::from_ref(id), &[], false, Prompt::New)?,
                (None, None) => vault::keyring_prompting(&[], &[], true, Prompt::New)?,
            };
            let id = encrypt_id(&new.ids(), keys.encrypt_vault_id.clone())?;
            for f in files {
                let (plain, _) = open(&old, &read_path(f)?, &f.display().to_string())?;
                write_path(f, new.encrypt(&plain, id.as_deref())?.as_bytes())?;
            }
            eprintln!("Rekey successful");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ENVELOPE: &str = "$ANSIBLE_VAULT;1.2;AES256;prod\n3132\n6162\n";

    #[test]
    fn vault_blocks_are_laid_out_like_ansible_vaults() {
        assert_eq!(vault_block(ENVELOPE, Some("db_pass")), "db_pass: !vault |\n          $ANSIBLE_VAULT;1.2;AES256;prod\n          3132\n          6162");
        assert_eq!(vault_block(ENVELOPE, None), "!vault |\n          $ANSIBLE_VAULT;1.2;AES256;prod\n          3132\n          6162");
        let p = Plaintext { text: b"x".to_vec(), from: "stdin", name: None };
        assert_eq!(block_comment(0, &p), "# The encrypted version of the string #1 from stdin.");
        let p = Plaintext { name: Some("v".into()), from: "the command line args", ..p };
        assert_eq!(block_comment(2, &p), "# The encrypted version of variable (\"v\", the string #3 from the command line args).");
    }

    #[test]
    fn strings_are_named_in_order_after_stdin() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(reads_stdin(&[], &None) && reads_stdin(&s(&["a", "-"]), &None) && reads_stdin(&s(&["a"]), &Some("n".into())));
        assert!(!reads_stdin(&s(&["a"]), &None));
        let (p, w) = plaintexts(&s(&["a", "-", "b", "c"]), &s(&["n1"]), Some((b"in\n".to_vec(), Some("sn".into())))).unwrap();
        let got: Vec<(&[u8], &str, Option<&str>)> = p.iter().map(|p| (p.text.as_slice(), p.from, p.name.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                (&b"in\n"[..], "stdin", Some("sn")),
                (&b"a"[..], "the command line args", Some("n1")),
                (&b"b"[..], "the command line args", None),
                (&b"c"[..], "the command line args", None)
            ]
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[1].contains("The last named variable will be \"n1\""), "{w:?}");
        let (p, w) = plaintexts(&s(&["a", "b"]), &s(&["x", "y"]), None).unwrap();
        assert!(w.is_empty() && p[1].name.as_deref() == Some("y"));
        let (_, w) = plaintexts(&s(&["a"]), &s(&["x", "y"]), None).unwrap();
        assert_eq!(w, vec!["[WARNING]: --name 'y' names no string (--stdin-name names stdin's)"]);
        assert!(plaintexts(&s(&[""]), &[], None).unwrap_err().to_string().contains("args was empty"));
        assert!(plaintexts(&[], &[], Some((vec![], None))).unwrap_err().to_string().contains("stdin was empty"));
    }

    #[test]
    fn the_encrypting_vault_id() {
        assert_eq!(encrypt_id(&["default"], None).unwrap(), None);
        assert_eq!(encrypt_id(&[], None).unwrap(), None);
        let e = encrypt_id(&["default", "prod"], None).unwrap_err().to_string();
        assert_eq!(e, "the vault ids default, prod are available to encrypt: choose one with --encrypt-vault-id");
        assert!(encrypt_id(&["default", "default"], None).is_err(), "two passwords, even of one id");
        assert_eq!(encrypt_id(&["default", "prod"], Some("prod".into())).unwrap().as_deref(), Some("prod"));
        let e = encrypt_id(&["default", "prod"], Some("qa".into())).unwrap_err().to_string();
        assert_eq!(e, "--encrypt-vault-id 'qa' is none of the given vault ids (default, prod)");
        assert!(check_vault_id("prod@pw.txt").is_ok() && check_vault_id("pw;x.txt").is_ok());
        assert!(check_vault_id("pr;od@pw.txt").unwrap_err().to_string().contains("';' is not allowed"));
    }

    #[test]
    fn editor_words() {
        assert_eq!(editor_argv(None).unwrap(), vec!["vi"]);
        assert_eq!(editor_argv(Some("  ".into())).unwrap(), vec!["vi"]);
        assert_eq!(editor_argv(Some("code --wait".into())).unwrap(), vec!["code", "--wait"]);
        assert!(editor_argv(Some("'unclosed".into())).is_err());
    }

    #[test]
    fn editing_happens_in_a_private_file_that_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log");
        // The script records the temp file's path and modes, then edits it.
        let script = format!("f=\"$1\"; stat -c '%a %n' \"$f\" \"$(dirname \"$f\")\" > {}; sed -i s/a/b/ \"$f\"", log.display());
        let argv: Vec<String> = vec!["sh".into(), "-c".into(), script, "editor".into()];
        let out = edit_with(&argv, Path::new("group_vars/all.yml"), b"a: 1\n").unwrap();
        assert_eq!(out, b"b: 1\n");
        let log = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert!(lines[0].starts_with("600 ") && lines[0].ends_with("/all.yml"), "{log}");
        assert!(lines[1].starts_with("700 "), "{log}");
        let path = lines[0].split_once(' ').unwrap().1;
        assert!(!Path::new(path).exists() && !Path::new(lines[1].split_once(' ').unwrap().1).exists(), "temp file and dir removed");
        // A failing editor: an error, and the temp file is gone too.
        let e = edit_with(&["false".to_string()], Path::new("x.yml"), b"secret").unwrap_err().to_string();
        assert!(e.contains("the editor 'false' failed") && e.contains("x.yml is left as it was"), "{e}");
        assert!(edit_with(&["/nonexistent/editor".to_string()], Path::new("x"), b"").unwrap_err().to_string().contains("cannot run the editor"));
    }

    #[test]
    fn atomic_writes_keep_permissions_and_follow_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f.yml");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&f, b"new").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o640);
        let link = d.path().join("link.yml");
        std::os::unix::fs::symlink("f.yml", &link).unwrap();
        write_atomic(&link, b"via link").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&f).unwrap(), b"via link");
        let n = d.path().join("new.yml");
        write_atomic(&n, b"x").unwrap();
        assert_eq!(std::fs::metadata(&n).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(write_atomic(d.path(), b"x").is_err());
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 3, "no temp file left: {left:?}");
    }
}
