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

/// glibc's SHA-512 crypt (`$6$`), as `mkpasswd -m sha-512` / Ansible's `password_hash`.
pub(crate) fn sha512_crypt(key: &[u8], salt: &[u8], rounds: Option<usize>) -> String {
    const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let salt: Vec<u8> = salt
        .iter()
        .copied()
        .filter(|c| *c != b'$')
        .take(16)
        .collect();
    let custom_rounds = rounds.map(|r| r.clamp(1000, 999_999_999));
    let rounds = custom_rounds.unwrap_or(5000);

    let b = Sha512::new()
        .chain_update(key)
        .chain_update(&salt)
        .chain_update(key)
        .finalize();
    let mut ctx = Sha512::new().chain_update(key).chain_update(&salt);
    let mut cnt = key.len();
    while cnt > 64 {
        ctx.update(b);
        cnt -= 64;
    }
    ctx.update(&b[..cnt]);
    let mut cnt = key.len();
    while cnt > 0 {
        if cnt & 1 != 0 {
            ctx.update(b);
        } else {
            ctx.update(key);
        }
        cnt >>= 1;
    }
    let a = ctx.finalize();

    let mut dp = Sha512::new();
    for _ in 0..key.len() {
        dp.update(key);
    }
    let dp = dp.finalize();
    let p: Vec<u8> = (0..key.len()).map(|i| dp[i % 64]).collect();

    let mut ds = Sha512::new();
    for _ in 0..(16 + a[0] as usize) {
        ds.update(&salt);
    }
    let ds = ds.finalize();
    let s: Vec<u8> = (0..salt.len()).map(|i| ds[i % 64]).collect();

    let mut c = a;
    for i in 0..rounds {
        let mut ctx = Sha512::new();
        if i & 1 != 0 {
            ctx.update(&p);
        } else {
            ctx.update(c);
        }
        if i % 3 != 0 {
            ctx.update(&s);
        }
        if i % 7 != 0 {
            ctx.update(&p);
        }
        if i & 1 != 0 {
            ctx.update(c);
        } else {
            ctx.update(&p);
        }
        c = ctx.finalize();
    }

    let mut out = String::from("$6$");
    if let Some(r) = custom_rounds {
        out.push_str(&format!("rounds={r}$"));
    }
    out.push_str(&String::from_utf8_lossy(&salt));
    out.push('$');
    let mut push = |b2: u8, b1: u8, b0: u8, n: usize| {
        let mut w = ((b2 as u32) << 16) | ((b1 as u32) << 8) | b0 as u32;
        for _ in 0..n {
            out.push(ITOA64[(w & 0x3f) as usize] as char);
            w >>= 6;
        }
    };
    for k in 0..21 {
        let (x, y, z) = (c[k], c[k + 21], c[k + 42]);
        match k % 3 {
            0 => push(x, y, z, 4),
            1 => push(y, z, x, 4),
            _ => push(z, x, y, 4),
        }
    }
    push(0, 0, c[63], 2);
    out
}
