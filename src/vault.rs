//! Ansible Vault: files and values encrypted with `ansible-vault` (format 1.1 and 1.2,
//! AES256), read with the passwords given on the command line.
//!
//! The format, as Ansible writes it:
//!
//! ```text
//! $ANSIBLE_VAULT;1.1;AES256            (1.2 adds ";LABEL", the vault id)
//! hex( hex(salt) "\n" hex(hmac) "\n" hex(ciphertext) ), in lines of 80
//! ```
//!
//! PBKDF2-HMAC-SHA256 (10000 rounds, 32-byte salt) derives 80 bytes from the password: the
//! AES-256 key, the HMAC-SHA256 key and the CTR mode's initial counter. The plaintext is PKCS7
//! padded, encrypted with AES-256-CTR and authenticated with HMAC-SHA256 over the ciphertext.
//!
//! The passwords of a run live in a process-wide [`Keyring`] that the command line installs
//! before anything is loaded ([`install`]); every plaintext decrypted from YAML is recorded
//! ([`revealed`]) so the executor can hide it wherever it would be printed.

use hmac::{KeyInit, Mac};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

const HEADER: &str = "$ANSIBLE_VAULT";
const ROUNDS: u32 = 10_000;
const KEY_LEN: usize = 32;
const IV_LEN: usize = 16;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;
type HmacSha256 = hmac::Hmac<sha2::Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("not vault-encrypted (no $ANSIBLE_VAULT header)")]
    NotVault,
    #[error("malformed vault data: {0}")]
    Format(String),
    #[error("vault cipher '{0}' is not supported (AES256 is)")]
    Cipher(String),
    #[error("vault-encrypted, and no vault password was given (use --vault-password-file, --vault-id or --ask-vault-pass)")]
    NoSecrets,
    #[error("decryption failed: no vault password given decrypts it (tried {0})")]
    WrongPassword(String),
    #[error("vault password: {0}")]
    Password(String),
    #[error("what the vault-encrypted data holds is not UTF-8 text")]
    NotText,
    #[error("--encrypt-vault-id '{0}' is none of the given vault ids ({1})")]
    UnknownId(String, String),
}

/// Whether `data` starts like an Ansible Vault envelope.
pub fn is_encrypted(data: &[u8]) -> bool {
    let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
    data[start..].starts_with(HEADER.as_bytes()) && data[start + HEADER.len()..].first() == Some(&b';')
}

/// One password and the vault id it stands for (`default` when none was named).
#[derive(Clone)]
pub struct Secret {
    pub id: String,
    password: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.id)
    }
}

impl Secret {
    pub fn new(id: impl Into<String>, password: impl Into<Vec<u8>>) -> Secret {
        Secret { id: id.into(), password: password.into() }
    }

    /// Encrypt with this password under `label` (see [`seal`]), with a fresh random salt.
    pub fn seal(&self, plaintext: &[u8], label: Option<&str>) -> String {
        let salt: [u8; 32] = rand::random();
        seal(plaintext, &self.password, &salt, label)
    }
}

/// The passwords of a run, in the order given.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    secrets: Vec<Secret>,
}

/// A parsed envelope.
struct Envelope {
    label: Option<String>,
    salt: Vec<u8>,
    hmac: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn unhex(s: &[u8], what: &str) -> Result<Vec<u8>, VaultError> {
    hex::decode(s).map_err(|e| VaultError::Format(format!("{what} is not hexadecimal ({e})")))
}

fn parse(text: &str) -> Result<Envelope, VaultError> {
    let mut lines = text.trim().lines();
    let header = lines.next().ok_or(VaultError::NotVault)?.trim();
    let parts: Vec<&str> = header.split(';').map(str::trim).collect();
    if parts[0] != HEADER || parts.len() < 3 {
        return Err(VaultError::NotVault);
    }
    match parts[1] {
        "1.1" | "1.2" => {}
        v => return Err(VaultError::Format(format!("unknown vault format version {v}"))),
    }
    if parts[2] != "AES256" {
        return Err(VaultError::Cipher(parts[2].to_string()));
    }
    let label = parts.get(3).filter(|l| !l.is_empty()).map(|l| l.to_string());
    let body: String = lines.map(str::trim).collect();
    let inner = unhex(body.as_bytes(), "the vault body")?;
    let mut fields = inner.splitn(3, |b| *b == b'\n');
    let (Some(salt), Some(hmac), Some(ciphertext)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(VaultError::Format("the vault body lacks its salt, HMAC or ciphertext".into()));
    };
    Ok(Envelope { label, salt: unhex(salt, "the salt")?, hmac: unhex(hmac, "the HMAC")?, ciphertext: unhex(ciphertext, "the ciphertext")? })
}

/// The vault id an envelope's header names (format 1.2), `None` for a 1.1 envelope.
pub fn label(text: &str) -> Result<Option<String>, VaultError> {
    parse(text).map(|env| env.label)
}

fn derive(password: &[u8], salt: &[u8]) -> [u8; 2 * KEY_LEN + IV_LEN] {
    let mut out = [0u8; 2 * KEY_LEN + IV_LEN];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, ROUNDS, &mut out);
    out
}

fn keystream(key: &[u8], iv: &[u8], data: &mut [u8]) {
    use ctr::cipher::{KeyIvInit, StreamCipher};
    let mut c = Aes256Ctr::new_from_slices(key, iv).expect("AES-256 key and 16-byte counter");
    c.apply_keystream(data);
}

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Decrypt with one password; `None` when the password is not the one (HMAC mismatch).
fn open(env: &Envelope, password: &[u8]) -> Result<Option<Vec<u8>>, VaultError> {
    let k = derive(password, &env.salt);
    let (key, rest) = k.split_at(KEY_LEN);
    let (hmac_key, iv) = rest.split_at(KEY_LEN);
    let mut m = mac(hmac_key);
    m.update(&env.ciphertext);
    if m.verify_slice(&env.hmac).is_err() {
        return Ok(None);
    }
    let mut data = env.ciphertext.clone();
    keystream(key, iv, &mut data);
    let pad = *data.last().ok_or_else(|| VaultError::Format("empty ciphertext".into()))? as usize;
    if pad == 0 || pad > 16 || pad > data.len() || !data[data.len() - pad..].iter().all(|b| *b as usize == pad) {
        return Err(VaultError::Format("bad padding after decryption".into()));
    }
    data.truncate(data.len() - pad);
    Ok(Some(data))
}

/// Encrypt `plaintext` with `password` and this salt; `label` makes a 1.2 envelope (unless it
/// is `default`, as in Ansible). The text ends with a newline, as `ansible-vault` writes files.
pub fn seal(plaintext: &[u8], password: &[u8], salt: &[u8], label: Option<&str>) -> String {
    let k = derive(password, salt);
    let (key, rest) = k.split_at(KEY_LEN);
    let (hmac_key, iv) = rest.split_at(KEY_LEN);
    let pad = 16 - plaintext.len() % 16;
    let mut data = plaintext.to_vec();
    data.extend(std::iter::repeat_n(pad as u8, pad));
    keystream(key, iv, &mut data);
    let mut m = mac(hmac_key);
    m.update(&data);
    let tag = m.finalize().into_bytes();
    let inner = format!("{}\n{}\n{}", hex::encode(salt), hex::encode(tag), hex::encode(&data));
    let body = hex::encode(inner);
    let header = match label.filter(|l| *l != "default") {
        Some(l) => format!("{HEADER};1.2;AES256;{l}"),
        None => format!("{HEADER};1.1;AES256"),
    };
    let mut out = header;
    for chunk in body.as_bytes().chunks(80) {
        out.push('\n');
        out.push_str(std::str::from_utf8(chunk).expect("hex is ASCII"));
    }
    out.push('\n');
    out
}

impl Keyring {
    pub fn new(secrets: Vec<Secret>) -> Keyring {
        Keyring { secrets }
    }
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
    pub fn ids(&self) -> Vec<&str> {
        self.secrets.iter().map(|s| s.id.as_str()).collect()
    }

    /// Decrypt vault text: the password of the envelope's vault id first, then every other
    /// (as Ansible does).
    pub fn decrypt(&self, text: &str) -> Result<Vec<u8>, VaultError> {
        self.decrypt_with_secret(text).map(|(plain, _)| plain)
    }

    /// [`Keyring::decrypt`], also telling which password opened the envelope.
    pub fn decrypt_with_secret(&self, text: &str) -> Result<(Vec<u8>, &Secret), VaultError> {
        let env = parse(text)?;
        if self.secrets.is_empty() {
            return Err(VaultError::NoSecrets);
        }
        let mut order: Vec<&Secret> = self.secrets.iter().filter(|s| env.label.as_deref() == Some(s.id.as_str())).collect();
        order.extend(self.secrets.iter().filter(|s| env.label.as_deref() != Some(s.id.as_str())));
        for s in order {
            if let Some(plain) = open(&env, &s.password)? {
                return Ok((plain, s));
            }
        }
        let ids: Vec<String> = self.secrets.iter().map(|s| format!("vault id '{}'", s.id)).collect();
        Err(VaultError::WrongPassword(ids.join(", ")))
    }

    /// Encrypt with the password of `id` (the first password when `None`), under its label.
    pub fn encrypt(&self, plaintext: &[u8], id: Option<&str>) -> Result<String, VaultError> {
        let secret = match id {
            Some(id) => self.secrets.iter().find(|s| s.id == id).ok_or_else(|| VaultError::UnknownId(id.to_string(), self.ids().join(", ")))?,
            None => self.secrets.first().ok_or(VaultError::NoSecrets)?,
        };
        Ok(secret.seal(plaintext, Some(&secret.id)))
    }
}

/// Where a password comes from: `--vault-id [LABEL@]SOURCE`, where SOURCE is a file (an
/// executable one is run and its output taken) or `prompt`.
pub fn parse_vault_id(spec: &str) -> (String, String) {
    match spec.split_once('@') {
        Some((label, source)) if !label.is_empty() => (label.to_string(), source.to_string()),
        _ => ("default".to_string(), spec.trim_start_matches('@').to_string()),
    }
}

/// Read a password file (surrounding whitespace and newlines stripped), or run it if it is
/// executable and take what it prints. A script named `*-client[.ext]` is asked for the
/// vault id with `--vault-id LABEL`, as Ansible's client scripts are.
pub fn password_from_file(path: &Path, id: &str) -> Result<Vec<u8>, VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let path = crate::connection::expand_tilde(&path.to_string_lossy());
    let meta = std::fs::metadata(&path).map_err(|e| VaultError::Password(format!("the vault password file {} cannot be read: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(VaultError::Password(format!("the vault password file {} is a directory", path.display())));
    }
    let password = if meta.permissions().mode() & 0o111 != 0 {
        // `pass.sh` is the file here, not a command looked for in PATH.
        let mut cmd = std::process::Command::new(if path.is_relative() { Path::new(".").join(&path) } else { path.clone() });
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if stem.ends_with("-client") {
            cmd.args(["--vault-id", id]);
        }
        let out = cmd
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| VaultError::Password(format!("cannot run the vault password script {}: {e}", path.display())))?;
        if !out.status.success() {
            return Err(VaultError::Password(format!("the vault password script {} failed ({})", path.display(), out.status)));
        }
        trim_newlines(&out.stdout).to_vec()
    } else {
        let data = std::fs::read(&path).map_err(|e| VaultError::Password(format!("the vault password file {} cannot be read: {e}", path.display())))?;
        trim_newlines(data.trim_ascii()).to_vec()
    };
    if password.is_empty() {
        return Err(VaultError::Password(format!("the vault password from {} is empty", path.display())));
    }
    Ok(password)
}

fn trim_newlines(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !matches!(c, b'\r' | b'\n')).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !matches!(c, b'\r' | b'\n')).map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// Ask for a password on the terminal, without echo.
pub fn password_from_prompt(id: &str) -> Result<Vec<u8>, VaultError> {
    let prompt = if id == "default" { "Vault password: ".to_string() } else { format!("Vault password ({id}): ") };
    let p = rpassword::prompt_password(prompt).map_err(|e| VaultError::Password(format!("cannot read the vault password from the terminal: {e}")))?;
    if p.is_empty() {
        return Err(VaultError::Password("an empty vault password was given".into()));
    }
    Ok(p.into_bytes())
}

/// Ask twice on the terminal for a new password to encrypt with, as `ansible-vault` does
/// ("New Vault password: ", "Confirm New Vault password: "; with the vault id unless `default`).
pub fn new_password_from_prompt(id: &str) -> Result<Vec<u8>, VaultError> {
    new_password_with(id, |prompt| rpassword::prompt_password(prompt))
}

fn new_password_with(id: &str, mut ask: impl FnMut(&str) -> std::io::Result<String>) -> Result<Vec<u8>, VaultError> {
    let (first, again) = if id == "default" {
        ("New Vault password: ".to_string(), "Confirm New Vault password: ".to_string())
    } else {
        (format!("New vault password ({id}): "), format!("Confirm new vault password ({id}): "))
    };
    let read = |p: std::io::Result<String>| p.map_err(|e| VaultError::Password(format!("cannot read the vault password from the terminal: {e}")));
    let p = read(ask(&first))?;
    if p.is_empty() {
        return Err(VaultError::Password("an empty vault password was given".into()));
    }
    if read(ask(&again))? != p {
        return Err(VaultError::Password("the passwords do not match".into()));
    }
    Ok(p.into_bytes())
}

/// What a password asked for on the terminal is for: opening vaults (asked once) or
/// encrypting (a new password, asked twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    Existing,
    New,
}

/// Build the run's keyring from `--vault-id` specs and `--vault-password-file` paths (in
/// that order, as Ansible lists them), and `--ask-vault-pass`.
pub fn keyring_from(ids: &[String], files: &[PathBuf], ask: bool) -> Result<Keyring, VaultError> {
    keyring_prompting(ids, files, ask, Prompt::Existing)
}

/// [`keyring_from`], asking on the terminal as `prompt` says.
pub fn keyring_prompting(ids: &[String], files: &[PathBuf], ask: bool, prompt: Prompt) -> Result<Keyring, VaultError> {
    let mut secrets = Vec::new();
    let mut asked = std::collections::HashSet::new();
    let mut add = |id: String, source: Option<&Path>| -> Result<(), VaultError> {
        let password = match source {
            Some(p) => password_from_file(p, &id)?,
            None => {
                if !asked.insert(id.clone()) {
                    return Ok(());
                }
                match prompt {
                    Prompt::Existing => password_from_prompt(&id)?,
                    Prompt::New => new_password_from_prompt(&id)?,
                }
            }
        };
        secrets.push(Secret::new(id, password));
        Ok(())
    };
    for spec in ids {
        let (id, source) = parse_vault_id(spec);
        if source == "prompt" || source == "prompt_ask_vault_pass" {
            add(id, None)?;
        } else {
            add(id, Some(Path::new(&source)))?;
        }
    }
    for f in files {
        add("default".into(), Some(f))?;
    }
    if ask {
        add("default".into(), None)?;
    }
    Ok(Keyring::new(secrets))
}

static KEYRING: RwLock<Option<Keyring>> = RwLock::new(None);
static REVEALED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Make `k` the keyring everything loaded from now on is decrypted with.
pub fn install(k: Keyring) {
    *KEYRING.write().unwrap_or_else(|e| e.into_inner()) = Some(k);
}

/// Decrypt with the installed keyring.
pub fn decrypt(text: &str) -> Result<Vec<u8>, VaultError> {
    let guard = KEYRING.read().unwrap_or_else(|e| e.into_inner());
    match guard.as_ref() {
        Some(k) => k.decrypt(text),
        None => {
            parse(text)?;
            Err(VaultError::NoSecrets)
        }
    }
}

/// Record a decrypted value so output hides it. Values shorter than 4 characters are not
/// recorded: hiding them would blank out unrelated text.
pub fn reveal(plaintext: &str) {
    let mut r = REVEALED.lock().unwrap_or_else(|e| e.into_inner());
    let mut add = |s: &str| {
        if s.chars().count() >= 4 && !r.iter().any(|x| x == s) {
            r.push(s.to_string());
        }
    };
    let text = plaintext.trim();
    if text.contains('\n') {
        // A file: each of its lines, so a diff (which shows lines) hides them, and so does
        // any output that shows a part of the file.
        for line in text.lines() {
            add(line.trim());
        }
    } else {
        add(plaintext);
        add(text);
    }
    // Longest first, so a value that contains another is hidden whole.
    r.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Every plaintext decrypted so far, longest first.
pub fn revealed() -> Vec<String> {
    REVEALED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// `text` with every decrypted value replaced by `mask`.
pub fn hide(text: String, mask: &str) -> String {
    let r = REVEALED.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text;
    for secret in r.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), mask);
        }
    }
    out
}

/// Decrypt vault text that holds text (a vars file, an inventory, a `!vault` value) with the
/// installed keyring.
pub fn decrypt_text(text: &str) -> Result<String, VaultError> {
    String::from_utf8(decrypt(text)?).map_err(|_| VaultError::NotText)
}

/// [`read_file`] of a text file.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_file(path)?).map_err(|_| std::io::Error::other("not UTF-8 text"))
}

/// A controller-side file's content, decrypted if it is vault-encrypted (the `copy` and
/// `template` sources, the `file` lookup); what it decrypts to is recorded as revealed.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let data = std::fs::read(path)?;
    if !is_encrypted(&data) {
        return Ok(data);
    }
    let text = String::from_utf8_lossy(&data);
    let plain = decrypt(&text).map_err(|e| std::io::Error::other(format!("{e} ({})", path.display())))?;
    reveal(&String::from_utf8_lossy(&plain));
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by ansible-vault 2.19 (`ansible-vault encrypt` / `encrypt_string`), password
    // "hunter2-pw".
    const FILE: &str = "$ANSIBLE_VAULT;1.1;AES256
38333531366537626438653462363564323532623838393566646262383062363166343565383530
6334333531383562333662623534396266336538343235650a613462356264326465373530343835
64613862383765353262306139376466333363323864303133343166346139613665643630663236
3764666534646232360a313131396233336133366564636265346138346537626136343463653764
32333535303034366264353035326439363062323731643530386161643065623636363339376638
3830316565363636316435363838326362623362386462613931
";
    const LABELLED: &str = "$ANSIBLE_VAULT;1.2;AES256;prod
39313535343930313431353735663531663230616663343463353234383135376534623436326164
6433376164383637336565636364303363336362383564370a623565336134306631343137383761
33363831306131353663623239623461353931353431653262333333383431663433656335613736
6230363137663033330a393463636539646234353737306566626664633836303433373634376238
6236";

    fn ring(pairs: &[(&str, &str)]) -> Keyring {
        Keyring::new(pairs.iter().map(|(i, p)| Secret::new(*i, p.as_bytes())).collect())
    }

    #[test]
    fn decrypts_what_ansible_vault_wrote() {
        let k = ring(&[("default", "hunter2-pw")]);
        assert_eq!(k.decrypt(FILE).unwrap(), b"db_password: \"s3cr3t-value\"\nnested:\n  k: 1\n");
        // Indented as in a `!vault |` block, with the label of `--vault-id prod@...`.
        let indented: String = LABELLED.lines().map(|l| format!("          {l}\n")).collect();
        assert_eq!(k.decrypt(&indented).unwrap(), b"labelled");
    }

    #[test]
    fn tries_the_labelled_password_first_then_the_others() {
        let k = ring(&[("dev", "nope"), ("prod", "hunter2-pw")]);
        assert_eq!(k.decrypt(LABELLED).unwrap(), b"labelled");
        assert_eq!(k.decrypt(FILE).unwrap().len(), 43, "an unlabelled vault: every password is tried");
        let e = ring(&[("dev", "nope")]).decrypt(FILE).unwrap_err().to_string();
        assert_eq!(e, "decryption failed: no vault password given decrypts it (tried vault id 'dev')");
        assert!(matches!(Keyring::default().decrypt(FILE), Err(VaultError::NoSecrets)));
    }

    #[test]
    fn sealed_text_opens_again_and_is_laid_out_like_ansibles() {
        let k = ring(&[("default", "pw1"), ("prod", "pw2")]);
        let plain = b"exactly sixteen!";
        let t = k.encrypt(plain, None).unwrap();
        assert!(t.starts_with("$ANSIBLE_VAULT;1.1;AES256\n") && t.ends_with('\n'), "{t}");
        assert!(t.lines().skip(1).all(|l| l.len() <= 80 && l.bytes().all(|b| b.is_ascii_hexdigit())));
        assert_eq!(k.decrypt(&t).unwrap(), plain, "a full block of padding");
        let t = k.encrypt(b"", Some("prod")).unwrap();
        assert!(t.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"));
        assert_eq!(k.decrypt(&t).unwrap(), b"");
        assert!(matches!(k.encrypt(b"x", Some("qa")), Err(VaultError::UnknownId(..))));
        // The same salt and password give Ansible's bytes: seal reproduces the recorded file.
        let env = parse(FILE).unwrap();
        let again = seal(b"db_password: \"s3cr3t-value\"\nnested:\n  k: 1\n", b"hunter2-pw", &env.salt, None);
        assert_eq!(again, FILE);
    }

    #[test]
    fn tampering_and_bad_envelopes_are_errors() {
        let k = ring(&[("default", "hunter2-pw")]);
        let mut bad = FILE.to_string();
        bad.replace_range(200..201, if &FILE[200..201] == "3" { "4" } else { "3" });
        assert!(k.decrypt(&bad).is_err());
        assert!(matches!(k.decrypt("hello"), Err(VaultError::NotVault)));
        assert!(matches!(k.decrypt("$ANSIBLE_VAULT;1.1;AES128\n00\n"), Err(VaultError::Cipher(_))));
        assert!(matches!(k.decrypt("$ANSIBLE_VAULT;1.1;AES256\nzz\n"), Err(VaultError::Format(_))));
        assert!(is_encrypted(FILE.as_bytes()) && is_encrypted(b"\n  $ANSIBLE_VAULT;1.2;AES256;x") && !is_encrypted(b"$ANSIBLE_VAULTX"));
    }

    #[test]
    fn password_files_and_scripts() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pw");
        std::fs::write(&f, "  hunter2-pw \n\n").unwrap();
        assert_eq!(password_from_file(&f, "default").unwrap(), b"hunter2-pw");
        let s = d.path().join("pass-client.sh");
        std::fs::write(&s, "#!/bin/sh\necho \"pw-for-$2\"\n").unwrap();
        std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(password_from_file(&s, "prod").unwrap(), b"pw-for-prod");
        std::fs::write(d.path().join("empty"), "\n").unwrap();
        assert!(password_from_file(&d.path().join("empty"), "default").unwrap_err().to_string().contains("is empty"));
        assert!(password_from_file(&d.path().join("missing"), "default").is_err());
        let k = keyring_from(&[format!("prod@{}", s.display())], &[f], false).unwrap();
        assert_eq!(k.ids(), vec!["prod", "default"]);
        assert_eq!(parse_vault_id("x"), ("default".to_string(), "x".to_string()));
        assert_eq!(parse_vault_id("dev@prompt"), ("dev".to_string(), "prompt".to_string()));
    }

    #[test]
    fn labels_the_secret_that_opened_and_sealing_with_it() {
        assert_eq!(label(LABELLED).unwrap().as_deref(), Some("prod"));
        assert_eq!(label(FILE).unwrap(), None);
        assert!(matches!(label("plain"), Err(VaultError::NotVault)));
        let k = ring(&[("default", "nope"), ("default", "hunter2-pw")]);
        let (plain, s) = k.decrypt_with_secret(LABELLED).unwrap();
        assert_eq!(plain, b"labelled");
        // the second of two `default` passwords: sealing with it, under the file's label
        let t = s.seal(b"again", Some("prod"));
        assert!(t.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"), "{t}");
        assert_eq!(ring(&[("x", "hunter2-pw")]).decrypt(&t).unwrap(), b"again");
        assert!(ring(&[("x", "nope")]).decrypt(&t).is_err());
        assert_ne!(s.seal(b"again", None), s.seal(b"again", None), "a fresh salt each time");
    }

    #[test]
    fn new_passwords_are_asked_twice() {
        let mut prompts = Vec::new();
        let p = new_password_with("default", |q| {
            prompts.push(q.to_string());
            Ok("pw".into())
        })
        .unwrap();
        assert_eq!(p, b"pw");
        assert_eq!(prompts, vec!["New Vault password: ", "Confirm New Vault password: "]);
        prompts.clear();
        new_password_with("prod", |q| {
            prompts.push(q.to_string());
            Ok("pw".into())
        })
        .unwrap();
        assert_eq!(prompts, vec!["New vault password (prod): ", "Confirm new vault password (prod): "]);
        let mut given = ["a", "b"].into_iter();
        let e = new_password_with("default", |_| Ok(given.next().unwrap().into())).unwrap_err().to_string();
        assert_eq!(e, "vault password: the passwords do not match");
        let e = new_password_with("default", |_| Ok(String::new())).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn revealed_values_include_a_files_lines() {
        reveal("line-one-secret\nline-two-secret\n");
        let r = revealed();
        assert!(r.iter().any(|s| s == "line-one-secret") && r.iter().any(|s| s == "line-two-secret"));
        assert!(r.windows(2).all(|w| w[0].len() >= w[1].len()));
        assert_eq!(hide("a line-one-secret b".into(), "X"), "a X b");
    }
}
