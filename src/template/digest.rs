//! Digests for the `hash`, `checksum` and `password_hash` filters, from the `sha1`, `sha2`
//! and `md5` crates (SHA-1 and MD5 only for Ansible compatibility, never for security).

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

pub(crate) fn hex_digest(algo: &str, data: &[u8]) -> Option<String> {
    Some(match algo.to_ascii_lowercase().as_str() {
        "sha1" => sha1_hex(data),
        "md5" => md5_hex(data),
        "sha224" => hex::encode(Sha224::digest(data)),
        "sha256" => hex::encode(Sha256::digest(data)),
        "sha384" => hex::encode(Sha384::digest(data)),
        "sha512" => hex::encode(Sha512::digest(data)),
        _ => return None,
    })
}

pub(crate) fn sha1_hex(data: &[u8]) -> String {
    hex::encode(sha1(data))
}

pub(crate) fn md5_hex(data: &[u8]) -> String {
    format!("{:x}", md5::compute(data))
}

pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    sha1::Sha1::digest(data).into()
}

const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// crypt(3)'s base-64 of three bytes (`n` characters, least significant first).
fn push_b64(out: &mut String, b2: u8, b1: u8, b0: u8, n: usize) {
    let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
    for _ in 0..n {
        out.push(ITOA64[(w & 0x3f) as usize] as char);
        w >>= 6;
    }
}

/// The salt glibc uses: up to the first `$`, at most `max` bytes.
fn crypt_salt(salt: &[u8], max: usize) -> Vec<u8> {
    salt.iter().copied().take_while(|c| *c != b'$').take(max).collect()
}

/// glibc's SHA-256 (`$5$`) or SHA-512 (`$6$`) crypt, as `openssl passwd -5`/`-6`,
/// `mkpasswd` and Ansible's `password_hash`: `rounds` (clamped to 1000..999999999, and
/// then written in the hash) or the implicit 5000.
pub(crate) fn sha_crypt(sha512: bool, key: &[u8], salt: &[u8], rounds: Option<usize>) -> String {
    let salt = crypt_salt(salt, 16);
    let custom = rounds.map(|r| r.clamp(1000, 999_999_999) as u32);
    // the rounds are in range: `new` can't fail
    let params = sha_crypt::Params::new(custom.unwrap_or(5000)).unwrap_or_default();
    let mut out = String::from(if sha512 { "$6$" } else { "$5$" });
    if let Some(r) = custom {
        out.push_str(&format!("rounds={r}$"));
    }
    out.push_str(&String::from_utf8_lossy(&salt));
    out.push('$');
    // bytes i, i+n, i+2n, rotated by i % 3 (one way for SHA-512, the other for SHA-256),
    // then what is left
    let mut groups = |c: &[u8], n: usize| {
        for i in 0..n {
            let (x, y, z) = (c[i], c[i + n], c[i + 2 * n]);
            match (i % 3, sha512) {
                (0, _) => push_b64(&mut out, x, y, z, 4),
                (1, true) | (2, false) => push_b64(&mut out, y, z, x, 4),
                _ => push_b64(&mut out, z, x, y, 4),
            }
        }
    };
    if sha512 {
        let c = sha_crypt::sha512_crypt(key, &salt, params);
        groups(&c, 21);
        push_b64(&mut out, 0, 0, c[63], 2);
    } else {
        let c = sha_crypt::sha256_crypt(key, &salt, params);
        groups(&c, 10);
        push_b64(&mut out, 0, c[31], c[30], 3);
    }
    out
}

/// glibc's MD5 crypt (`$1$`), as `openssl passwd -1` and Ansible's `password_hash('md5')`
/// (salt: at most 8 characters). No crate for it is kept up: it is short, from `md5`.
pub(crate) fn md5_crypt(key: &[u8], salt: &[u8]) -> String {
    let salt = crypt_salt(salt, 8);
    let mut alt = md5::Context::new();
    alt.consume(key);
    alt.consume(&salt);
    alt.consume(key);
    let alt = alt.finalize().0;
    let mut ctx = md5::Context::new();
    ctx.consume(key);
    ctx.consume(b"$1$");
    ctx.consume(&salt);
    let mut left = key.len();
    while left > 0 {
        ctx.consume(&alt[..left.min(16)]);
        left = left.saturating_sub(16);
    }
    let mut i = key.len();
    while i > 0 {
        if i & 1 != 0 {
            ctx.consume([0u8]);
        } else {
            ctx.consume(&key[..1]);
        }
        i >>= 1;
    }
    let mut f = ctx.finalize().0;
    for i in 0..1000 {
        let mut c = md5::Context::new();
        if i & 1 != 0 {
            c.consume(key);
        } else {
            c.consume(f);
        }
        if i % 3 != 0 {
            c.consume(&salt);
        }
        if i % 7 != 0 {
            c.consume(key);
        }
        if i & 1 != 0 {
            c.consume(f);
        } else {
            c.consume(key);
        }
        f = c.finalize().0;
    }
    let mut out = format!("$1${}$", String::from_utf8_lossy(&salt));
    for i in 0..5 {
        let j = if i == 4 { 5 } else { i + 12 };
        push_b64(&mut out, f[i], f[i + 6], f[j], 4);
    }
    push_b64(&mut out, 0, 0, f[11], 2);
    out
}
