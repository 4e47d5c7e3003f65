//! `ansible_connection: local`: run on the controller with `sh -c`.
use super::*;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct LocalTransport {}

impl LocalTransport {
    pub fn new() -> Self {
        LocalTransport {}
    }
}

impl Default for LocalTransport {
    fn default() -> Self {
        Self::new()
    }
}

fn lost(e: std::io::Error) -> ConnectionError {
    ConnectionError::Lost { host: "localhost".into(), reason: e.to_string() }
}

/// Exit code as a shell reports it: the status, or 128 + signal number.
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(255)
}

#[async_trait]
impl Transport for LocalTransport {
    async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<ExecOutput, ConnectionError> {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(lost)?;
        let mut child_in = child.stdin.take();
        let mut child_out = child.stdout.take().expect("piped");
        let mut child_err = child.stderr.take().expect("piped");
        // Feed stdin while draining stdout/stderr, or a chatty command deadlocks on full pipes.
        let write = async {
            if let (Some(w), Some(data)) = (child_in.as_mut(), stdin) {
                // A command that exits without reading all of stdin is not an error (EPIPE).
                let _ = w.write_all(data).await;
                let _ = w.shutdown().await;
            }
            drop(child_in.take());
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (_, r1, r2) = tokio::join!(write, child_out.read_to_end(&mut out), child_err.read_to_end(&mut err));
        r1.map_err(lost)?;
        r2.map_err(lost)?;
        let status = child.wait().await.map_err(lost)?;
        Ok(ExecOutput { stdout: out, stderr: err, exit_code: exit_code(status) })
    }

    async fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_sh_with_stdin_and_exit_codes() {
        let t = LocalTransport::new();
        let o = t.exec("echo out; echo err >&2; exit 3", None).await.unwrap();
        assert_eq!((o.stdout_str().as_str(), o.stderr_str().as_str(), o.exit_code), ("out\n", "err\n", 3));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let o = t.exec("cat", Some(&data)).await.unwrap();
        assert_eq!(o.stdout, data);
        let o = t.exec("kill -9 $$", None).await.unwrap();
        assert_eq!(o.exit_code, 137);
        let o = t.exec("true", Some(b"ignored")).await.unwrap();
        assert_eq!(o.exit_code, 0);
    }
}
