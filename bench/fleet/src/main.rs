//! A simulated fleet for provision's controller benchmark: SSH servers (russh, server side)
//! that answer every command the way a converged host answered it once.
//!
//! Record mode proxies each exec to a real converged host (system `ssh`, multiplexed) and
//! stores command -> (stdout, stderr, exit code). Replay mode answers from those recordings
//! without running anything, so one process can stand in for 1000 hosts.
//!
//!   fleet --host-key FILE --db DIR --listen PORT=KIND [--listen PORT=KIND...]
//!         [--record KIND=SSHPORT --ssh-key FILE --known-hosts FILE] [--threads N]
//!
//! Each listening port serves one kind of host (e.g. 4100=web, 4101=search); any number of
//! inventory hosts may point at the same port. Probe scripts carry random framing tags
//! (`PROVISION-<16 hex>`, one per probe batch, several in one exec when tasks run as several
//! users): each distinct tag is replaced by a numbered placeholder in the key and in the
//! stored output, and the new tags are put back on replay. The key also covers stdin.
//!
//! On SIGTERM/SIGINT it prints one JSON line of statistics (connections, execs, execs per
//! connection, misses) on stdout and exits. Commands that were not recorded get exit code 255
//! and are appended to DIR/misses-KIND.txt.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use regex::bytes::Regex;
use russh::server::{Auth, Msg, Server as _, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

const PLACEHOLDER: &[u8] = b"PROVISION-@@TAG";

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    key: String,
    cmd: String,
    stdin_len: usize,
    rc: u32,
    out: String,
    err: String,
    /// How long the real host took to answer (milliseconds, through the recording ssh).
    #[serde(default)]
    ms: u64,
}

struct Answer {
    rc: u32,
    out: Vec<u8>,
    err: Vec<u8>,
    ms: u64,
}

struct Kind {
    name: String,
    answers: Mutex<HashMap<String, Arc<Answer>>>,
    /// Some(port of the real host) in record mode.
    record: Option<u16>,
}

struct Shared {
    db: PathBuf,
    /// Replay: answer each command after the time the real host took (`--delay recorded`).
    delay: bool,
    ssh_key: Option<String>,
    known_hosts: Option<String>,
    tag: Regex,
    connections: AtomicUsize,
    execs: AtomicUsize,
    misses: AtomicUsize,
    recorded: AtomicUsize,
    bytes_out: AtomicUsize,
    per_conn: Mutex<BTreeMap<usize, usize>>,
}

/// Distinct framing tags of a request (command, then stdin), in order of first appearance.
/// One exec may hold several (one probe batch per become user).
fn tags_of(tag: &Regex, parts: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut tags: Vec<Vec<u8>> = vec![];
    for p in parts {
        for m in tag.find_iter(p) {
            if !tags.iter().any(|t| t == m.as_bytes()) {
                tags.push(m.as_bytes().to_vec());
            }
        }
    }
    tags
}

fn placeholder(i: usize) -> Vec<u8> {
    let mut p = PLACEHOLDER.to_vec();
    p.extend_from_slice(format!("{i}@@").as_bytes());
    p
}

/// Tag i -> placeholder i.
fn strip_tags(b: &[u8], tags: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b.to_vec();
    for (i, t) in tags.iter().enumerate() {
        out = replace(&out, t, &placeholder(i));
    }
    out
}

/// Placeholder i -> tag i (highest first, so @@1@@ is not taken for a prefix of @@10@@).
fn put_tags(b: &[u8], tags: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b.to_vec();
    for (i, t) in tags.iter().enumerate().rev() {
        out = replace(&out, &placeholder(i), t);
    }
    out
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() || hay.len() < from.len() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn key_of(cmd: &[u8], stdin: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(cmd);
    h.update([0u8]);
    h.update(stdin);
    hex::encode(h.finalize())
}

fn load(db: &Path, name: &str) -> Result<HashMap<String, Arc<Answer>>> {
    let path = db.join(format!("{name}.jsonl"));
    let mut map = HashMap::new();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(map),
        Err(e) => return Err(e).with_context(|| path.display().to_string()),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let e: Entry = serde_json::from_str(line).with_context(|| path.display().to_string())?;
        map.insert(e.key, Arc::new(Answer { rc: e.rc, out: B64.decode(e.out)?, err: B64.decode(e.err)?, ms: e.ms }));
    }
    Ok(map)
}

/// `ssh` to the real host on `port` (multiplexed: one login for the whole recording).
fn record_ssh(shared: &Shared, port: u16) -> std::process::Command {
    let mut c = std::process::Command::new("ssh");
    c.args(["-q", "-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=120"])
        .arg("-o")
        .arg(format!("ControlPath=/tmp/fleet-record-cm-{port}"))
        .args(["-p", &port.to_string()]);
    if let Some(k) = &shared.ssh_key {
        c.args(["-i", k]);
    }
    if let Some(k) = &shared.known_hosts {
        c.arg("-o").arg(format!("UserKnownHostsFile={k}"));
    }
    c.arg("root@127.0.0.1");
    c
}

async fn run_real(shared: &Shared, port: u16, cmd: &[u8], stdin: &[u8]) -> Result<Answer> {
    let mut c = tokio::process::Command::from(record_ssh(shared, port));
    c.arg("--").arg(String::from_utf8_lossy(cmd).into_owned());
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let started = std::time::Instant::now();
    let mut child = c.spawn()?;
    let mut sin = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let w = tokio::spawn(async move {
        let _ = sin.write_all(&data).await;
        drop(sin);
    });
    let out = child.wait_with_output().await?;
    let _ = w.await;
    Ok(Answer { rc: out.status.code().unwrap_or(255) as u32, out: out.stdout, err: out.stderr, ms: started.elapsed().as_millis() as u64 })
}

async fn answer(shared: Arc<Shared>, kind: Arc<Kind>, cmd: Vec<u8>, stdin: Vec<u8>) -> Answer {
    let tags = tags_of(&shared.tag, &[&cmd, &stdin]);
    let ncmd = strip_tags(&cmd, &tags);
    let nstdin = strip_tags(&stdin, &tags);
    let key = key_of(&ncmd, &nstdin);
    let found = kind.answers.lock().unwrap().get(&key).cloned();
    if let Some(a) = found {
        if shared.delay {
            // A host with its own CPU: takes as long as the real one did, costs us nothing.
            tokio::time::sleep(std::time::Duration::from_millis(a.ms)).await;
        }
        return Answer { rc: a.rc, out: put_tags(&a.out, &tags), err: put_tags(&a.err, &tags), ms: a.ms };
    }
    if let Some(port) = kind.record {
        match run_real(&shared, port, &cmd, &stdin).await {
            Ok(a) => {
                let stored = Answer { rc: a.rc, out: strip_tags(&a.out, &tags), err: strip_tags(&a.err, &tags), ms: a.ms };
                let e = Entry {
                    key: key.clone(),
                    cmd: String::from_utf8_lossy(&ncmd).into_owned(),
                    stdin_len: stdin.len(),
                    rc: stored.rc,
                    out: B64.encode(&stored.out),
                    err: B64.encode(&stored.err),
                    ms: stored.ms,
                };
                let line = serde_json::to_string(&e).unwrap() + "\n";
                let path = shared.db.join(format!("{}.jsonl", kind.name));
                if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                    use std::io::Write;
                    let _ = f.write_all(line.as_bytes());
                }
                kind.answers.lock().unwrap().insert(key, Arc::new(stored));
                shared.recorded.fetch_add(1, Relaxed);
                return a;
            }
            Err(e) => {
                return Answer { rc: 255, out: vec![], err: format!("fleet: record: {e}\n").into_bytes(), ms: 0 };
            }
        }
    }
    shared.misses.fetch_add(1, Relaxed);
    let path = shared.db.join(format!("misses-{}.txt", kind.name));
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        use std::io::Write;
        let _ = writeln!(f, "=== key {key} stdin {} bytes\n{}\n--- stdin\n{}", stdin.len(), String::from_utf8_lossy(&ncmd), String::from_utf8_lossy(&nstdin));
    }
    Answer { rc: 255, out: vec![], err: b"fleet: no recorded answer for this command\n".to_vec(), ms: 0 }
}

#[derive(Default)]
struct Req {
    cmd: Option<Vec<u8>>,
    stdin: Vec<u8>,
}

struct Conn {
    shared: Arc<Shared>,
    kind: Arc<Kind>,
    chans: HashMap<ChannelId, Req>,
    execs: usize,
}

impl Drop for Conn {
    fn drop(&mut self) {
        *self.shared.per_conn.lock().unwrap().entry(self.execs).or_default() += 1;
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, _user: &str, _key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn channel_open_session(&mut self, channel: Channel<Msg>, reply: russh::server::ChannelOpenHandle, _s: &mut Session) -> Result<(), Self::Error> {
        self.chans.insert(channel.id(), Req::default());
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(&mut self, channel: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        self.execs += 1;
        self.shared.execs.fetch_add(1, Relaxed);
        self.chans.entry(channel).or_default().cmd = Some(data.to_vec());
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn subsystem_request(&mut self, channel: ChannelId, _name: &str, session: &mut Session) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], _s: &mut Session) -> Result<(), Self::Error> {
        self.chans.entry(channel).or_default().stdin.extend_from_slice(data);
        Ok(())
    }

    async fn channel_eof(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        let Some(req) = self.chans.remove(&channel) else { return Ok(()) };
        let Some(cmd) = req.cmd else {
            session.close(channel)?;
            return Ok(());
        };
        let shared = self.shared.clone();
        let kind = self.kind.clone();
        let handle = session.handle();
        tokio::spawn(async move {
            let a = answer(shared.clone(), kind, cmd, req.stdin).await;
            shared.bytes_out.fetch_add(a.out.len() + a.err.len(), Relaxed);
            for chunk in a.out.chunks(32 * 1024) {
                if handle.data(channel, chunk.to_vec()).await.is_err() {
                    return;
                }
            }
            for chunk in a.err.chunks(32 * 1024) {
                if handle.extended_data(channel, 1, chunk.to_vec()).await.is_err() {
                    return;
                }
            }
            let _ = handle.exit_status_request(channel, a.rc).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        Ok(())
    }
}

#[derive(Clone)]
struct Listener {
    shared: Arc<Shared>,
    kind: Arc<Kind>,
}

impl russh::server::Server for Listener {
    type Handler = Conn;
    fn new_client(&mut self, _: Option<std::net::SocketAddr>) -> Conn {
        self.shared.connections.fetch_add(1, Relaxed);
        Conn { shared: self.shared.clone(), kind: self.kind.clone(), chans: HashMap::new(), execs: 0 }
    }
    fn handle_session_error(&mut self, e: russh::Error) {
        eprintln!("fleet: session error: {e}");
    }
}

fn usage() -> ! {
    eprintln!("usage: fleet --host-key FILE --db DIR --listen PORT=KIND... [--record KIND=SSHPORT --ssh-key FILE --known-hosts FILE] [--threads N] [--delay none|recorded]");
    std::process::exit(1)
}

fn main() -> Result<()> {
    let mut host_key = None;
    let mut db = None;
    let mut listens: Vec<(u16, String)> = vec![];
    let mut records: HashMap<String, u16> = HashMap::new();
    let mut ssh_key = None;
    let mut known_hosts = None;
    let mut threads = 1usize;
    let mut delay = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--host-key" => host_key = Some(v()),
            "--db" => db = Some(PathBuf::from(v())),
            "--listen" => {
                let s = v();
                let (p, k) = s.split_once('=').unwrap_or_else(|| usage());
                listens.push((p.parse()?, k.to_string()));
            }
            "--record" => {
                let s = v();
                let (k, p) = s.split_once('=').unwrap_or_else(|| usage());
                records.insert(k.to_string(), p.parse()?);
            }
            "--ssh-key" => ssh_key = Some(v()),
            "--known-hosts" => known_hosts = Some(v()),
            "--threads" => threads = v().parse()?,
            "--delay" => match v().as_str() {
                "recorded" => delay = true,
                "none" => delay = false,
                _ => usage(),
            },
            _ => usage(),
        }
    }
    let (Some(host_key), Some(db)) = (host_key, db) else { usage() };
    if listens.is_empty() {
        usage();
    }
    std::fs::create_dir_all(&db)?;
    let key = russh::keys::load_secret_key(&host_key, None).with_context(|| host_key.clone())?;
    let shared = Arc::new(Shared {
        db: db.clone(),
        delay,
        ssh_key,
        known_hosts,
        tag: Regex::new(r"PROVISION-[0-9a-f]{16}").unwrap(),
        connections: AtomicUsize::new(0),
        execs: AtomicUsize::new(0),
        misses: AtomicUsize::new(0),
        recorded: AtomicUsize::new(0),
        bytes_out: AtomicUsize::new(0),
        per_conn: Mutex::new(BTreeMap::new()),
    });
    let mut kinds: HashMap<String, Arc<Kind>> = HashMap::new();
    for (_, k) in &listens {
        if !kinds.contains_key(k) {
            let answers = load(&db, k)?;
            eprintln!("fleet: kind {k}: {} recorded answers{}", answers.len(), if records.contains_key(k) { " (recording)" } else { "" });
            kinds.insert(k.clone(), Arc::new(Kind { name: k.clone(), answers: Mutex::new(answers), record: records.get(k).copied() }));
        }
    }
    for k in records.keys() {
        if !kinds.contains_key(k) {
            bail!("--record {k}: no --listen for that kind");
        }
    }
    // Record mode: log in to each real host once before listening, so the recorded time of
    // the first command is the host's work, not the recording ssh's own login.
    for port in records.values() {
        let st = record_ssh(&shared, *port).arg("true").status()?;
        if !st.success() {
            bail!("--record: cannot log in to 127.0.0.1:{port} ({st})");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()?;
    rt.block_on(async move {
        let config = Arc::new(russh::server::Config {
            keys: vec![key],
            inactivity_timeout: Some(std::time::Duration::from_secs(600)),
            auth_rejection_time: std::time::Duration::from_millis(0),
            auth_rejection_time_initial: Some(std::time::Duration::from_millis(0)),
            nodelay: true,
            ..Default::default()
        });
        for (port, k) in &listens {
            let sock = tokio::net::TcpListener::bind(("127.0.0.1", *port)).await.with_context(|| format!("bind 127.0.0.1:{port}"))?;
            let mut l = Listener { shared: shared.clone(), kind: kinds[k].clone() };
            let config = config.clone();
            tokio::spawn(async move {
                let _ = l.run_on_socket(config, &sock).await;
            });
        }
        eprintln!("fleet: listening on {}", listens.iter().map(|(p, k)| format!("{p}={k}")).collect::<Vec<_>>().join(" "));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let per_conn: BTreeMap<String, usize> = shared.per_conn.lock().unwrap().iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let stats = serde_json::json!({
            "connections": shared.connections.load(Relaxed),
            "execs": shared.execs.load(Relaxed),
            "misses": shared.misses.load(Relaxed),
            "recorded": shared.recorded.load(Relaxed),
            "bytes_out": shared.bytes_out.load(Relaxed),
            "execs_per_connection": per_conn,
        });
        println!("{stats}");
        anyhow::Ok(())
    })?;
    // Don't wait for open sessions.
    std::process::exit(0)
}
