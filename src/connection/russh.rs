//! In-process SSH (russh). OWNER: transport helper.
use super::*;
pub struct RusshTransport {}
impl RusshTransport {
    pub async fn connect(_spec: &ConnectionSpec) -> Result<Self, ConnectionError> { todo!() }
}
#[async_trait]
impl Transport for RusshTransport {
    async fn exec(&self, _command: &str, _stdin: Option<&[u8]>) -> Result<ExecOutput, ConnectionError> { todo!() }
    async fn close(&self) {}
}
