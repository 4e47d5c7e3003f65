//! Digests for the `hash`, `checksum` and `password_hash` filters. SHA-2 comes from the
//! `sha2` crate; SHA-1 and MD5 (needed only for Ansible compatibility, never for security)
//! are small local implementations to avoid extra dependencies.

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
    hex::encode(md5(data))
}

fn padded(data: &[u8], big_endian: bool) -> Vec<u8> {
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    if big_endian {
        msg.extend_from_slice(&bit_len.to_be_bytes());
    } else {
        msg.extend_from_slice(&bit_len.to_le_bytes());
    }
    msg
}

pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    for chunk in padded(data, true).chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

pub(crate) fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(|sin(i + 1)| * 2^32), as the algorithm defines it
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
        .collect();
    let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for chunk in padded(data, false).chunks(64) {
        let mut m = [0u32; 16];
        for (i, x) in m.iter_mut().enumerate() {
            *x = u32::from_le_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i {
                0..=15 => ((b & c) | (!b & d), i),
                16..=31 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                32..=47 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 16];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    out
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
